"""Agreement with careful correctness labels: our grader against plain math-verify on the labelled competition-math
sets of tests/assets/grading/ (README.md there: tune, held-out, fresh, untouched), and on the bundled GSM8K sample.

Plain math-verify is `verify(parse("$" + gold + "$"), parse(solution))`: its own extraction on the whole solution
(the gold wrapped in `$`, as `parse(gold)` reads a bare LaTeX gold such as `\\frac{14}{3}` as nothing and "2,4,3" as
2.4). Run this file with `-s` to see the numbers.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from math_verify import parse, verify

from sftkit.grading.extract import final_answer
from sftkit.grading.judge import CORRECT, judge

ROOT = Path(__file__).resolve().parents[1]
SETS = ROOT / "tests" / "assets" / "grading"
SAMPLE = ROOT / "data" / "sample"


def ours(gold: str, solution: str, question: str | None = None) -> bool:
    return judge(gold, final_answer(solution).text, question) == CORRECT


def plain(gold: str, solution: str, question: str | None = None) -> bool:  # math-verify has no use for the question
    gold_parsed, parsed = parse(f"${gold}$", parsing_timeout=None), parse(solution, parsing_timeout=None)
    return bool(verify(gold_parsed, parsed, timeout_seconds=None))


COUNTS = ("rows", "false_accepts", "false_rejects")
PARTS = ("tune", "heldout", "fresh", "untouched", "families")  # families: measured only (README.md there)


def measure(rows: list[dict], grader) -> dict:
    accepted = [grader(r["gold"], r["solution"], r.get("question")) for r in rows]  # a few rows have the problem
    result = {
        "rows": len(rows),
        "false_accepts": sum(a and not r["label"] for r, a in zip(rows, accepted)),
        "false_rejects": sum(r["label"] and not a for r, a in zip(rows, accepted)),
    }
    return result | {"agreement": 1 - (result["false_accepts"] + result["false_rejects"]) / len(rows)}


@pytest.fixture(scope="module")
def results() -> dict:
    out = {}
    for split in PARTS:
        rows = [json.loads(line) for line in open(SETS / f"{split}.jsonl")]
        out |= {(split, "ours"): measure(rows, ours), (split, "plain"): measure(rows, plain)}
    for name in ("ours", "plain"):
        total = {key: sum(out[split, name][key] for split in PARTS) for key in COUNTS}
        out["all", name] = total | {"agreement": 1 - (total["false_accepts"] + total["false_rejects"]) / total["rows"]}
    for (split, name), r in out.items():
        print(
            f"{split:8} {name:6} agreement {100 * r['agreement']:6.2f}% of {r['rows']} rows, "
            f"false accepts {r['false_accepts']}, false rejects {r['false_rejects']}"
        )
    return out


def test_the_sets_are_labelled_and_varied():
    rows = [json.loads(line) for split in PARTS for line in open(SETS / f"{split}.jsonl")]
    assert len(rows) >= 600 and {"gold", "solution", "label", "kind", "source"} <= set(rows[0])
    assert 0.4 < sum(r["label"] for r in rows) / len(rows) < 0.7
    kinds = {r["kind"] for r in rows}
    for kind in ("prose", "prose_equation", "prose_bold", "boxed_intermediate_then_wrong_final", "truncated",
                 "prose_right_mid_wrong_final", "minerva_matrix", "choice_letters", "two_boxes", "units", "percent",
                 "degrees", "interval", "tuple_order", "ordered_list", "pm", "equation", "list"):  # fmt: skip
        assert kind in kinds, kind


def test_the_sets_are_what_the_builder_makes():
    sys.path.insert(0, str(SETS))
    try:
        import build_sets
    finally:
        sys.path.remove(str(SETS))
    for split in build_sets.SPLITS:
        assert build_sets.build(split) == [json.loads(line) for line in open(SETS / f"{split}.jsonl")], split


@pytest.mark.parametrize("split", ["tune", "heldout", "untouched", "families", "all"])
def test_agreement_with_the_labels(results: dict, split: str):
    assert results[split, "ours"]["agreement"] >= 0.99, results[split, "ours"]


@pytest.mark.parametrize("split", [*PARTS, "all"])
def test_no_more_false_accepts_than_plain_math_verify(results: dict, split: str):
    assert results[split, "ours"]["false_accepts"] <= results[split, "plain"]["false_accepts"], results
    assert results[split, "ours"]["agreement"] >= results[split, "plain"]["agreement"], results


def test_gsm8k_sample_agrees_with_its_labels():
    """Every bundled GSM8K solution: correct exactly when its final number is the gold one (600 of 600)."""
    gold = {row["id"]: row["answer"] for row in map(json.loads, open(SAMPLE / "metadata.jsonl"))}
    rows = [json.loads(line) for name in ("solutions_0.jsonl", "solutions_1.jsonl") for line in open(SAMPLE / name)]
    for row in rows:
        final = re.findall(r"\\boxed\{([^}]*)\}|#### (\S+)", row["generated_solution"])[-1]
        label = float(final[0] or final[1]) == float(gold[row["id"]])
        assert ours(str(gold[row["id"]]), row["generated_solution"]) == label, row
    assert len(rows) == 600
