"""Rebuild the peer-suite cases (one JSONL per suite here) from the other projects' own grader tests.

    python tests/assets/grading/peer_suites/build_peer_suites.py [--mirror /work/.mirror]

Reads each project's file at the pinned commit below (`git -C <mirror>/<owner>+<name>/repo show <commit>:<path>`,
a clone made by the session's fetch tool; any clone of the repository works: pass --mirror) and writes rows of
`{"id", "gold", "pred", "expected", "options", "note"}`: the suite's gold answer and prediction texts, whether the
suite calls them equal (`expected`), and the suite's own comparison options (`options`: match types, precision,
allow_set_relation_comp). Which cases are kept and why (NOTICE.md here has the licences):
- Math-Verify (tests/test_all.py, test_numina_cases.py, test_open_thoughts.py, test_yujianll.py): every
  parametrized (gold, pred, expected) case, except those that test an option against our use: a set-form gold
  with `allow_set_relation_comp=False` expecting an inequality prediction to be rejected (a grader of "gold from
  metadata vs a model's solution" should accept `-2 <= x <= 7` for `x \\in [-2,7]`; the same case with the option
  on is kept), and the one case whose gold is computed at import time (an f-string).
- lighteval (tests/unit/metrics/test_extractive_match.py): its math cases in English, minus those identical to a
  Math-Verify case (lighteval's file copies most of them); its multiple-choice index extraction (NativeLetters)
  and other languages are about another extractor.
- hendrycks/math (modeling/math_equivalence_test.py): every `is_equiv(test_in, test_out)` assertion; test_in is
  the gold.
- Qwen2.5-Math (evaluation/grader.py, `_test_math_equal`): its example pairs (`math_equal(pred, gt)`), which
  carry no expected value there: the labels (LABELS below) are ours, by working each pair out; a pair whose
  answer depends on the question's rounding instruction (100/3 vs 33.3, a decimal matrix vs its rounding) is left
  out.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {  # suite -> (repository, pinned commit, files)
    "math_verify": (
        "huggingface/Math-Verify",
        "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a",
        ["tests/test_all.py", "tests/test_numina_cases.py", "tests/test_open_thoughts.py", "tests/test_yujianll.py"],
    ),
    "lighteval": (
        "huggingface/lighteval",
        "3fd15266bc8448b797e61462d293aa3fd40b3580",
        ["tests/unit/metrics/test_extractive_match.py"],
    ),
    "hendrycks_math": (
        "hendrycks/math",
        "985bdc1696e88e8643f081a0ff4719da39f2ae2a",
        ["modeling/math_equivalence_test.py"],
    ),
    "qwen25_math": ("QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465", ["evaluation/grader.py"]),
}
LABELS = {  # Qwen2.5-Math's example predictions -> are they equal to the reference there? (worked out by hand)
    "0.0833333333333333": True,  # 1/12 to 16 digits
    "(1,4.5)": True,
    "\\frac{x}{7}+\\frac{2}{7}": True,
    "\\sec^2(y)": True,  # = tan^2(y) + 1
    "\\begin{pmatrix}-\\frac{7}{4}&-2\\\\4&\\frac{1}{4}\\end{pmatrix}": True,  # the same matrix, the gold in ( )
    "\\begin{pmatrix}\\frac{1}{3x^{2/3}}&0&0\\\\0&1&0\\\\-\\sin(x)&0&0\\end{pmatrix}": True,  # x^{2/3} = cbrt(x)^2
    "-\\frac{8x^2}{9(x^2-2)^{5/3}}+\\frac{2}{3(x^2-2)^{2/3}}": True,  # = -2(x^2+6) / (9 (x^2-2)^{5/3})
    "-34x-45y+20z-100=0": True,  # the same plane
    "\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{2\\sqrt{33}+15}": True,
    "(+5)(b+2)": False,
    "\\frac{1+\\sqrt{5}}{2}": False,
    "\\frac{34}{16}+\\frac{\\sqrt{1358}}{16}": False,  # about 4.43
    "1": False,  # against 1\\sqrt{19}
    "(0.6,2.6667]": True,  # (3/5, 8/3] to the 4 decimals written
    "x+1": False,
}
SKIPPED_QWEN = {
    "\\frac{100}{3}",
    "\\begin{pmatrix}0.290243531202435\\\\0.196008371385084\\\\-0.186381278538813\\end{pmatrix}",
}


def show(mirror: Path, repo: str, commit: str, path: str) -> str:
    gitdir = mirror / repo.replace("/", "+") / "repo"
    return subprocess.run(["git", "-C", str(gitdir), "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def _value(node: ast.AST):
    """A literal, or a dotted name (`Language.ENGLISH` -> "Language.ENGLISH"); None for anything computed."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _options(function: ast.FunctionDef) -> dict:
    """The keyword arguments of the suite's comparison call in the test body (`compare_strings(..., precision=5)`)."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "compare_strings":
            return {
                k.arg: (_value(k.value) if not isinstance(k.value, ast.Name) else k.value.id) for k in node.keywords
            }
    return {}


def pytest_cases(source: str, file: str) -> list[dict]:
    """Every case of every `@pytest.mark.parametrize("gold, pred, expected...", [...])` test of a file."""
    rows = []
    for function in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)):
        for decorator in function.decorator_list:
            if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize"):
                continue
            names = [n.strip() for n in _value(decorator.args[0]).split(",")]
            if names[:2] != ["gold", "pred"]:
                continue
            options = _options(function)
            for i, case in enumerate(decorator.args[1].elts):
                values = dict(zip(names, (_value(v) for v in case.elts)))
                row_options = {k: values.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
                expected = values.get("expected", values.get("result"))
                case_id = f"{file}::{function.name}[{i}]"
                rows.append({"id": case_id, "gold": values["gold"], "pred": values["pred"], "expected": bool(expected),
                             "options": row_options, "language": values.get("language")})  # fmt: skip
    return rows


def keep_math_verify(row: dict) -> str | None:
    """Why a Math-Verify case is left out (None: kept)."""
    if row["gold"] is None or row["pred"] is None:
        return "computed at import time"
    if row["options"].get("allow_set_relation_comp") is False and "\\in" in row["gold"] and not row["expected"]:
        return "tests the option off for a set-form gold"
    return None


def hendrycks_cases(source: str, file: str) -> list[dict]:
    rows = []
    for function in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)):
        strings = {t.targets[0].id: t.value.value for t in function.body if isinstance(t, ast.Assign)}
        for call in (
            n for n in ast.walk(function) if isinstance(n, ast.Call) and getattr(n.func, "attr", "")[:6] == "assert"
        ):
            rows.append({"id": f"{file}::{function.name}", "gold": strings["test_in"], "pred": strings["test_out"],
                         "expected": call.func.attr == "assertTrue", "options": {}})  # fmt: skip
    return rows


def qwen_cases(source: str, file: str) -> list[dict]:
    """The pairs of `_test_math_equal`: `math_equal("pred", "gt")` and `pred = '...'` / `gt = '...'` lines."""
    body = source[source.index("def _test_math_equal") :]
    body = re.sub(r"(?m)^\s*#\s?", "", body.split("print(math_equal(pred", 1)[0])
    pairs = [(m[1], m[2]) for m in re.finditer(r"math_equal\((\"[^\n]*?\"), (\"[^\n]*?\")", body)]
    pairs += [(m[1], m[2]) for m in re.finditer(r"pred\s*=\s*(['\"].*?['\"])[,\n]\s*gt\s*=\s*(['\"].*?['\"])", body)]
    pairs += [(m[2], m[1]) for m in re.finditer(r"gt\s*=\s*(\"[^\n]*\")\n\s*pred\s*=\s*(\"[^\n]*\")", body)]
    rows = []
    for i, (pred, gold) in enumerate((ast.literal_eval(p), ast.literal_eval(g)) for p, g in pairs):
        if pred in SKIPPED_QWEN:
            continue
        rows.append({"id": f"{file}::_test_math_equal[{i}]", "gold": gold, "pred": pred, "expected": LABELS[pred],
                     "options": {}, "note": "label by sftkit (the source gives none)"})  # fmt: skip
    return rows


def build(mirror: Path) -> dict[str, list[dict]]:
    suites, seen = {}, set()
    for suite, (repo, commit, files) in SOURCES.items():
        rows = []
        for file in files:
            source = show(mirror, repo, commit, file)
            if suite == "hendrycks_math":
                rows += hendrycks_cases(source, file)
            elif suite == "qwen25_math":
                rows += qwen_cases(source, file)
            else:
                rows += pytest_cases(source, file)
        if suite == "math_verify":
            rows = [r for r in rows if keep_math_verify(r) is None]
            seen = {(r["gold"], r["pred"], r["expected"]) for r in rows}
        if suite == "lighteval":
            rows = [r for r in rows if r["language"] in (None, "Language.ENGLISH") and r["gold"] and r["pred"]]
            rows = [r for r in rows if "NativeLetters" not in str(r["options"].get("match_types"))]
            rows = [r for r in rows if (r["gold"], r["pred"], r["expected"]) not in seen]
        for r in rows:
            r.pop("language", None)
            r.setdefault("note", "")
            r["id"] = f"{repo}@{commit[:7]}:{r['id']}"
        suites[suite] = rows
    return suites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    for suite, rows in build(parser.parse_args().mirror).items():
        (HERE / f"{suite}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{suite}: {len(rows)} cases")


if __name__ == "__main__":
    main()
