"""`sftkit filter` (and the seed's evaluation/run_evaluation.py): ids, files, the report's numbers, the Parquet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit.grading import filter as grade

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def run(capsys, solutions, metadata, save_correct, *more) -> tuple[int, str, str]:
    """`sftkit filter --solutions-file SOLUTIONS... --metadata-file METADATA --save-correct OUT MORE...`"""
    solutions = solutions if isinstance(solutions, list) else [solutions]
    argv = ["--solutions-file", *solutions, "--metadata-file", metadata, "--save-correct", save_correct, *more]
    code = grade.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def sol(id_, text: str, **extra) -> dict:
    return {"id": id_, "prompt": f"problem {id_}?", "generated_solution": f"Some steps: 3 + 4 = 7.\n{text}", **extra}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """4 problems, 2 files (int ids in one, str ids in the other), one unknown id, one bad row, a duplicate id."""
    write_jsonl(tmp_path / "unique_meta.jsonl", [{"id": 1, "answer": "10"}])
    write_jsonl(
        tmp_path / "meta.jsonl",
        [
            {"id": 1, "answer": "10"},
            {"id": 2, "answer": 20},
            {"id": "3", "answer": "30"},
            {"id": 4, "answer": "40"},
            {"id": 1, "answer": "11"},
        ],
    )
    write_jsonl(
        tmp_path / "run_a.jsonl",
        [sol(1, "#### 10"), sol(2, "#### 21"), sol(3, "#### 30"), sol(4, "#### 40"), sol(9, "#### 5")],
    )
    write_jsonl(
        tmp_path / "run_b.jsonl",
        [
            sol("1", "#### 10"),
            sol("1", "#### 12"),
            sol("2", "#### 22"),
            sol("2", "The answer is 21."),
            '{"id": 3, "broken',
            sol("3", "no idea"),
            sol("4", "\\boxed{41}"),
        ],
    )
    return tmp_path


def test_report_numbers_by_hand(small: Path, capsys):
    code, out, _ = run(
        capsys,
        small / "run_*.jsonl",
        small / "meta.jsonl",
        small / "out/correct.parquet",
        "--report-json",
        small / "report.json",
    )
    assert code == 0
    r = json.loads((small / "report.json").read_text())
    # problem 1: correct, correct, 12 | 2: 21, 22, 21 | 3: correct, no answer | 4: correct, 41 (id 9: no metadata)
    assert (r["solutions"], r["graded"], r["correct"], r["accuracy"]) == (11, 10, 4, 4 / 11)  # every one read
    assert r["graded_accuracy"] == 0.4 and r["ungraded"] == {"no_gold_answer": 0, "no_metadata": 1}
    assert r["per_file"][str(small / "run_a.jsonl")] == {
        "solutions": 5,
        "graded": 4,
        "ungraded": 1,
        "correct": 3,
        "accuracy": 0.6,
    }
    assert r["per_file"][str(small / "run_b.jsonl")]["correct"] == 1
    assert r["verdicts"] == {"correct": 4, "wrong": 5, "no_answer": 1, "unparseable": 0, "timeout": 0}
    assert r["pass_at_k"]["1"]["value"] == pytest.approx((2 / 3 + 0 + 1 / 2 + 1 / 2) / 4)  # mean of c/n
    assert r["pass_at_k"]["2"]["value"] == pytest.approx(3 / 4)  # 1 - C(n-c, 2) / C(n, 2): 1, 0, 1, 1
    assert "4" not in r["pass_at_k"]  # no problem has 4 solutions
    assert r["majority_vote"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)  # 10 wins; 21 wins; 30 alone; 40-41 tie
    assert r["any_correct"] == {"problems": 3, "value": 0.75}
    assert r["ids_without_metadata"] == {"ids": 1, "solutions": 1, "first": ["9"]}
    assert (r["metadata"]["duplicate_ids"], r["metadata"]["conflicting_duplicates"]) == (1, 1)
    assert r["bad_rows"]["solutions"] == {"malformed JSON": 1}
    assert "accuracy: 4/11 = 36.36% (1 ungraded: no metadata); 10 graded solutions of 4 problems" in out
    assert "majority vote" in out and "pass@2" in out
    assert r["answer_routes"] == {"marker": 9, "prose": 0, "not_found": 1}
    assert f"{small / 'run_b.jsonl'}:5: malformed JSON" in out  # file:line of the bad row
    assert "ids without metadata: 1 (1 solutions, not graded), e.g. '9'" in out
    assert "duplicate ids in metadata: 1" in out


def test_parquet_keeps_source_columns_and_mixed_ids(small: Path, capsys):
    correct, incorrect = small / "c.parquet", small / "i.parquet"
    run(
        capsys,
        [small / "run_a.jsonl", small / "run_b.jsonl"],
        small / "meta.jsonl",
        correct,
        "--save-incorrect",
        incorrect,
    )
    table = pq.read_table(correct)
    assert table.column_names == ["id", "prompt", "generated_solution", "source_file", "gold_answer"]
    rows = table.to_pylist()
    assert [(r["id"], Path(r["source_file"]).name) for r in rows] == [
        ("1", "run_a.jsonl"),
        ("3", "run_a.jsonl"),
        ("4", "run_a.jsonl"),
        ("1", "run_b.jsonl"),
    ]
    wrong = pq.read_table(incorrect).to_pylist()
    assert {r["verdict"] for r in wrong} == {"wrong", "no_answer"} and len(wrong) == 6
    assert {(r["extracted_answer"], r["gold_answer"]) for r in wrong if r["id"] == "4"} == {("41", "40")}


def test_directory_input_and_metadata_from_solution_field(tmp_path: Path, capsys):
    write_jsonl(
        tmp_path / "meta.jsonl",
        [
            {"id": "a", "solution": "so $x = \\boxed{\\frac{1}{2}}$"},
            {"id": "b", "question": "q", "answer": "steps <<1+1=2>>\n#### 1,200"},
        ],
    )
    (tmp_path / "runs").mkdir()
    write_jsonl(tmp_path / "runs" / "r.jsonl", [sol("a", "The answer is 0.5."), sol("b", "The answer is $1200.")])
    code, out, _ = run(capsys, tmp_path / "runs", tmp_path / "meta.jsonl", tmp_path / "c.parquet")
    assert code == 0 and "accuracy: 2/2 = 100.00%" in out


def test_sample_end_to_end_through_the_seed_shim(tmp_path: Path):
    """Every bundled solution graded, and graded as a plain number comparison of its final answer would."""
    report, out = tmp_path / "report.json", tmp_path / "correct.parquet"
    cmd = [
        sys.executable,
        str(ROOT / "evaluation" / "run_evaluation.py"),
        "--solutions-file",
        str(SAMPLE / "solutions_*.jsonl"),
        "--metadata-file",
        str(SAMPLE / "metadata.jsonl"),
        "--save-correct",
        str(out),
        "--report-json",
        str(report),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    gold = {row["id"]: float(row["answer"]) for row in map(json.loads, open(SAMPLE / "metadata.jsonl"))}
    expected = []
    for name in ("solutions_0.jsonl", "solutions_1.jsonl"):
        for row in map(json.loads, open(SAMPLE / name)):
            final = re.findall(r"\\boxed\{([^}]*)\}|#### (\S+)", row["generated_solution"])[-1]
            if float(final[0] or final[1]) == gold[row["id"]]:
                expected.append((row["id"], str(SAMPLE / name)))
    r = json.loads(report.read_text())
    assert r["graded"] == 600 and r["ids_without_metadata"]["solutions"] == 0
    assert r["correct"] == len(expected) and 0.8 < r["accuracy"] < 0.95
    table = pq.read_table(out)
    assert table.column_names == ["id", "prompt", "generated_solution", "num_tokens", "source_file", "gold_answer"]
    assert list(zip(table["id"].to_pylist(), table["source_file"].to_pylist())) == expected
    assert f"accuracy: {len(expected)}/600" in proc.stdout


FORMATS = ["{body}\n#### {a}", "{body}\nThe answer is $\\boxed{{{a}}}$.", "{body}\nAnswer: {a}", "{body}\nA: {a}"]


@pytest.mark.parametrize("altered", [False, True])
def test_gsm8k_style_solutions_from_the_sample_metadata(tmp_path: Path, capsys, altered: bool):
    """Gold answers (in every format, some with thousands separators) all pass; altered ones all fail."""
    meta = [json.loads(line) for line in open(SAMPLE / "metadata.jsonl")]
    rows = []
    for i, m in enumerate(meta):
        value = float(m["answer"])
        value = (value + 1 + i % 3 if i % 2 else value * 2 + 1) if altered else value
        text = f"{value:,.0f}" if value == int(value) and i % 4 == 0 else f"{value:g}"
        rows.append(sol(m["id"], FORMATS[i % 4].format(body=m["question"], a=text)))
    write_jsonl(tmp_path / "s.jsonl", rows)
    code, out, _ = run(
        capsys,
        tmp_path / "s.jsonl",
        SAMPLE / "metadata.jsonl",
        tmp_path / "c.parquet",
        "--report-json",
        tmp_path / "r.json",
    )
    r = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and r["graded"] == len(meta) == 300
    assert r["correct"] == (0 if altered else 300), out


def test_timeouts_are_reported_as_incorrect(tmp_path: Path, capsys):
    write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "5"}])
    write_jsonl(tmp_path / "s.jsonl", [sol(1, "\\boxed{9^{9^{9^{9}}}}"), sol(1, "#### 5")])
    code, out, _ = run(capsys, tmp_path / "s.jsonl", tmp_path / "m.jsonl", tmp_path / "c.parquet", "--timeout", "0.2")
    assert code == 0 and "accuracy: 1/2" in out and "timeout 1" in out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--metadata-file": "nope.jsonl"}, "metadata file not found: nope.jsonl"),
        ({"--solutions-file": "missing.jsonl"}, "missing.jsonl: file not found"),
        ({"--solutions-file": "run_*.json"}, "glob matches no file"),
        ({"--response-key": "response"}, "columns found: id (11), prompt (11), generated_solution (11)"),
        ({"--id-key": "problem"}, "no usable 'problem' field"),
        ({"--answer-key": "gold"}, "no 'gold'"),
        ({"--save-correct": "out.csv"}, "give a file name ending in .parquet"),
        ({"--timeout": "0"}, "--timeout 0"),
        ({"--workers": "0"}, "--workers 0"),
        ({"--strict": None}, "meta.jsonl:5: duplicate id '1' in the metadata (--strict)"),
        ({"--strict": None, "--metadata-file": "unique_meta.jsonl"}, "run_b.jsonl:5: malformed JSON"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(small: Path, monkeypatch, capsys, change: dict, message: str):
    monkeypatch.chdir(small)
    args = {
        "--solutions-file": "run_*.jsonl",
        "--metadata-file": "meta.jsonl",
        "--save-correct": "c.parquet",
        **change,
    }
    code = grade.main([x for flag, value in args.items() for x in (flag, value) if x is not None])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_strict_refuses_ids_without_metadata(small: Path, capsys):
    write_jsonl(small / "clean.jsonl", [sol(1, "#### 10"), sol(9, "#### 5")])
    code, _, err = run(capsys, small / "clean.jsonl", small / "unique_meta.jsonl", small / "c.parquet", "--strict")
    assert code == 2 and "1 solution ids have no metadata, e.g. ['9']" in err


def test_no_common_id_names_both_sides(small: Path, capsys):
    write_jsonl(small / "other.jsonl", [sol("x", "#### 1")])
    code, _, err = run(capsys, small / "other.jsonl", small / "meta.jsonl", small / "c.parquet")
    assert code == 2 and "solution ids ['x'], metadata ids ['1', '2', '3']" in err


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        grade.main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for action in grade.build_parser()._actions:
        assert action.help, action.option_strings
    assert "--save-correct" in help_text and "--report-json" in help_text
