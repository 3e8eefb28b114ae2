"""`sftkit prepare`: JSONL -> train/val Parquet; deterministic split by prompt; bad rows counted, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit.cli import main as cli_main
from sftkit.data import parquet, prepare

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def solutions(n_problems: int, per_problem: int, start: int = 0) -> list[dict]:
    return [
        {"id": i, "prompt": f"problem {i}?", "generated_solution": f"solution {j} of {i}", "num_tokens": 3 + j}
        for i in range(start, start + n_problems)
        for j in range(per_problem)
    ]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = prepare.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def read(out_dir: Path) -> tuple[list[dict], list[dict]]:
    return pq.read_table(out_dir / "train.parquet").to_pylist(), pq.read_table(out_dir / "val.parquet").to_pylist()


def test_bundled_sample_prepares(tmp_path, capsys):
    code, out, _ = run(capsys, SAMPLE / "solutions_*.jsonl", "--output-dir", tmp_path, "--val-split", "0.1")
    assert code == 0
    train, val = read(tmp_path)
    assert (len(train), len(val)) == (540, 60)  # 300 problems x 2 solutions; 30 problems in val
    assert list(train[0]) == ["id", "prompt", "generated_solution", "num_tokens"]
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}
    assert "rows read: 600, usable: 600, dropped: 0" in out
    assert "train: 540 rows, 270 problems" in out and "val:   60 rows, 30 problems" in out


def test_same_seed_same_files_other_seed_other_split(tmp_path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", solutions(50, 3))
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        assert run(capsys, src, "--output-dir", tmp_path / name, "--seed", seed)[0] == 0
    for split in ("train.parquet", "val.parquet"):
        assert (tmp_path / "a" / split).read_bytes() == (tmp_path / "b" / split).read_bytes()
    val_a, val_c = ({r["prompt"] for r in read(tmp_path / d)[1]} for d in ("a", "c"))
    assert len(val_a) == len(val_c) == 5 and val_a != val_c


def test_split_by_prompt_keeps_each_problem_on_one_side(tmp_path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", solutions(40, 4) + solutions(20, 1, start=40))  # uneven group sizes
    assert run(capsys, src, "--output-dir", tmp_path, "--val-split", "0.25")[0] == 0
    train, val = read(tmp_path)
    assert len(train) + len(val) == 180
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}
    assert len({r["prompt"] for r in val}) == 15  # round(60 problems * 0.25)


@pytest.mark.parametrize(
    ("n_groups", "val_split", "expected"),
    [(10, 0.1, 1), (10, 0.25, 3), (2, 0.01, 1), (1, 0.5, 0), (10, 0.99, 9), (10, 0.0, 0), (300, 0.1, 30)],
)
def test_val_size_is_rounded_at_least_one_and_train_never_empty(n_groups, val_split, expected):
    assert prepare.n_val(n_groups, val_split) == expected


def test_split_by_row(tmp_path, capsys):
    rows = solutions(30, 4)
    src = write_jsonl(tmp_path / "s.jsonl", rows)
    code, out, _ = run(capsys, src, "--output-dir", tmp_path, "--split-by", "row", "--val-split", "0.2")
    assert code == 0
    train, val = read(tmp_path)
    assert len(val) == 24 and len(train) == 96
    assert sorted(map(json.dumps, train + val)) == sorted(map(json.dumps, rows))  # every row once, unchanged
    assert "problems are on both sides (--split-by row)" in out  # a row split leaks problems into val


def test_val_split_zero_writes_empty_val_with_same_columns(tmp_path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", solutions(5, 2))
    code, out, _ = run(capsys, src, "--output-dir", tmp_path, "--val-split", "0")
    assert code == 0
    assert pq.read_table(tmp_path / "train.parquet").num_rows == 10
    val = pq.read_table(tmp_path / "val.parquet")
    assert val.num_rows == 0 and val.schema.names == ["id", "prompt", "generated_solution", "num_tokens"]
    assert "val.parquet is empty (--val-split 0)" in out


BAD_LINES = {
    "malformed JSON": '{"prompt": "p", "generated_solution": ',
    "not an object": '["prompt", "generated_solution"]',
    "missing field": {"prompt": "p"},
    "empty field": {"prompt": "p", "generated_solution": "   "},
    "non-string field": {"prompt": "p", "generated_solution": 42},
}


@pytest.mark.parametrize("kind", BAD_LINES)
def test_every_bad_row_is_counted_and_shown_with_file_and_line(tmp_path, capsys, kind):
    src = write_jsonl(tmp_path / "s.jsonl", solutions(2, 1) + ["", BAD_LINES[kind]])  # blank line 3 is skipped
    code, out, _ = run(capsys, src, "--output-dir", tmp_path / "out")
    assert code == 0
    assert "rows read: 3, usable: 2, dropped: 1" in out
    assert f"dropped ({kind}): 1" in out
    assert f"{src}:4:" in out


@pytest.mark.parametrize(
    ("make", "kind", "reason"),
    [
        (lambda d: d / "nope.jsonl", "missing file", "file not found"),
        (lambda d: d / "nope_*.jsonl", "no match", "glob matches no file"),
        (lambda d: (d / "sub").mkdir() or d / "sub", "no match", "directory has no"),
        (lambda d: write_jsonl(d / "empty.jsonl", []), "empty file", "empty file"),
        (
            lambda d: (d / "bad.parquet").write_text("not parquet") and d / "bad.parquet",
            "unreadable file",
            "not a readable Parquet",
        ),
    ],
)
def test_input_problems_are_reported_and_strict_makes_them_fatal(tmp_path, capsys, make, kind, reason):
    good = write_jsonl(tmp_path / "good.jsonl", solutions(3, 1))
    bad = make(tmp_path)
    code, out, _ = run(capsys, good, bad, "--output-dir", tmp_path / "out")
    assert code == 0 and f"input problem ({kind}): 1" in out and f"{bad}: {reason}" in out
    code, out, err = run(capsys, good, bad, "--output-dir", tmp_path / "strict", "--strict")
    assert code == 2 and f"{bad}: {reason}" in err and "--strict" in err
    assert not (tmp_path / "strict" / "train.parquet").exists()


def test_strict_fails_on_a_bad_row_with_exit_2(tmp_path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", solutions(3, 1) + ["{oops"])
    code, out, err = run(capsys, src, "--output-dir", tmp_path / "out", "--strict")
    assert code == 2 and f"error: {src}:4: malformed JSON" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_custom_prompt_and_response_keys(tmp_path, capsys):
    rows = [{"question": f"q{i}", "answer": f"a{i}", "source": "x"} for i in range(10)]
    src = write_jsonl(tmp_path / "qa.jsonl", rows)
    code, out, err = run(capsys, src, "--output-dir", tmp_path / "default")
    assert code == 2
    assert "columns found (rows that have them): question (10), answer (10), source (10)" in err
    assert "pass --prompt-key" in err and "pass --response-key" in err
    code, out, _ = run(capsys, src, "--output-dir", tmp_path, "--prompt-key", "question", "--response-key", "answer")
    assert code == 0
    train, val = read(tmp_path)
    assert sorted(train + val, key=lambda r: r["question"]) == rows and len(val) == 1


def test_response_column_is_used_when_there_is_no_generated_solution(tmp_path, capsys):
    src = write_jsonl(tmp_path / "r.jsonl", [{"prompt": f"p{i}", "response": f"r{i}"} for i in range(4)])
    code, out, _ = run(capsys, src, "--output-dir", tmp_path)
    assert code == 0 and "using --response-key response" in out


def test_globs_directories_and_several_files_are_merged_once(tmp_path, capsys):
    for k in range(3):
        write_jsonl(tmp_path / f"run_{k}.jsonl", solutions(10, 1, start=10 * k))
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, tmp_path / "run_*.jsonl", tmp_path / "run_0.jsonl", tmp_path, "--output-dir", out_dir)
    assert code == 0 and "inputs: 3 files" in out
    train, val = read(out_dir)
    assert len(train) + len(val) == 30 and len({r["id"] for r in train + val}) == 30


def test_source_columns_kept_and_mixed_types_normalised(tmp_path, capsys):
    write_jsonl(
        tmp_path / "a.jsonl",
        [{"id": i, "prompt": f"p{i}", "generated_solution": "s", "num_tokens": 3} for i in range(3)],
    )
    write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"id": f"b-{i}", "prompt": f"q{i}", "generated_solution": "s", "num_tokens": 2.5, "meta": {"k": [i]}}
            for i in range(3)
        ],
    )
    code, out, _ = run(capsys, tmp_path / "*.jsonl", "--output-dir", tmp_path / "out", "--val-split", "0")
    assert code == 0
    table = pq.read_table(tmp_path / "out" / "train.parquet")
    assert table.schema.names == ["id", "prompt", "generated_solution", "num_tokens", "meta"]
    assert table.column("id").to_pylist() == ["0", "1", "2", "b-0", "b-1", "b-2"]
    assert table.column("num_tokens").to_pylist() == [3.0, 3.0, 3.0, 2.5, 2.5, 2.5]
    assert table.column("meta").to_pylist() == [None, None, None, '{"k": [0]}', '{"k": [1]}', '{"k": [2]}']
    assert "note: column 'id': int and str values -> text" in out
    assert "note: column 'num_tokens': int and float values -> float" in out
    assert "note: column 'meta': absent in 3 rows -> null there" in out


def test_parquet_input_such_as_filter_output(tmp_path, capsys):
    assert run(capsys, SAMPLE / "solutions_0.jsonl", "--output-dir", tmp_path / "a", "--val-split", "0")[0] == 0
    code, out, _ = run(capsys, tmp_path / "a" / "train.parquet", "--output-dir", tmp_path / "b")
    assert code == 0 and "rows read: 300, usable: 300" in out
    assert [len(part) for part in read(tmp_path / "b")] == [270, 30]


def test_written_in_batches_same_rows(tmp_path, capsys, monkeypatch):
    src = write_jsonl(tmp_path / "s.jsonl", solutions(20, 3))
    assert run(capsys, src, "--output-dir", tmp_path / "one")[0] == 0
    monkeypatch.setattr(parquet, "BATCH_ROWS", 4)
    assert run(capsys, src, "--output-dir", tmp_path / "many")[0] == 0
    assert pq.ParquetFile(tmp_path / "many" / "train.parquet").num_row_groups > 1
    assert read(tmp_path / "one") == read(tmp_path / "many")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "no input file found"),
        (["{bad}"], "no usable row in 2 rows read"),
        (["{good}", "--val-split", "1.5"], "--val-split must be a fraction in [0, 1)"),
        (["{good}", "--output-dir", "{good}"], "is not a folder"),
    ],
)
def test_user_errors_exit_2_without_traceback(tmp_path, capsys, args, message):
    paths = {
        "missing": tmp_path / "missing.jsonl",
        "bad": write_jsonl(tmp_path / "bad.jsonl", ["{", "nope"]),
        "good": write_jsonl(tmp_path / "good.jsonl", solutions(2, 1)),
    }
    argv = [a.format(**paths) for a in args]
    if "--output-dir" not in argv:
        argv += ["--output-dir", str(tmp_path / "out")]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_dispatch_and_help(tmp_path, capsys):
    assert cli_main(["prepare", str(SAMPLE / "solutions_0.jsonl"), "--output-dir", str(tmp_path)]) == 0
    with pytest.raises(SystemExit) as exc:
        cli_main(["prepare", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for option in (
        "--output-dir",
        "--val-split",
        "--prompt-key",
        "--response-key",
        "--seed",
        "--split-by",
        "--strict",
    ):
        assert option in help_text


@pytest.mark.parametrize("shim", ["sft/prepare_data.py", "scripts/convert_jsonl_to_parquet.py"])
def test_seed_shims_help_and_end_to_end(tmp_path, shim):
    python = ROOT / ".venv" / "bin" / "python"
    python = str(python) if python.exists() else sys.executable
    done = subprocess.run([python, shim, "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "--val-split" in done.stdout and shim in done.stdout
    argv = [python, shim, "data/sample/solutions_0.jsonl", "data/sample/solutions_1.jsonl"]
    argv += [
        "--output-dir",
        str(tmp_path),
        "--val-split",
        "0.1",
        "--prompt-key",
        "prompt",
        "--response-key",
        "generated_solution",
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [len(part) for part in read(tmp_path)] == [540, 60]
