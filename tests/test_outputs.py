"""`sftkit/outputs.py`: one output convention for every command (issue #20, 3.7). An output that is one of the
command's inputs is refused (through globs, folders, `..`, symlinks, hard links), the input left as it was; an
existing output needs --overwrite. Every case here overwrote a file before."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit.checkpoint import export
from sftkit.checkpoint.layout import REQUIRED
from sftkit.data import prepare
from sftkit.evaluation import command as evaluate
from sftkit.grading import filter as grade
from sftkit.outputs import same_file

ROWS = [
    {"id": i, "prompt": f"What is {i} + 1?", "generated_solution": f"{i} + 1 = {i + 1}. #### {i + 1}"}
    for i in range(6)
]
META = [{"id": i, "answer": str(i + 1)} for i in range(6)]


def snapshot(*paths: Path) -> dict:
    return {p: p.read_bytes() for p in paths}


def error(code: int, capsys) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


def test_same_file_sees_through_dots_symlinks_and_hard_links(tmp_path: Path):
    real = write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(real)
    os.link(real, tmp_path / "hard.jsonl")
    for other in (tmp_path / "sub" / ".." / "a.jsonl", tmp_path / "link.jsonl", tmp_path / "hard.jsonl"):
        assert same_file(other, real)
    assert not same_file(tmp_path / "b.jsonl", real) and not same_file(tmp_path / "sub", real)


# prepare


def test_prepare_refuses_to_write_over_its_input_file(tmp_path: Path, capsys):
    assert prepare.main([str(write_jsonl(tmp_path / "s.jsonl", ROWS)), "--output-dir", str(tmp_path / "d")]) == 0
    before = snapshot(tmp_path / "d" / "train.parquet", tmp_path / "d" / "val.parquet")
    for inputs in (["train.parquet"], ["*.parquet"], ["."]):  # a file, a glob, the folder itself
        argv = [str(tmp_path / "d" / name) for name in inputs]
        err = error(prepare.main([*argv, "--output-dir", str(tmp_path / "d"), "--overwrite"]), capsys)
        assert "train.parquet is one of this command's inputs" in err, err
    assert snapshot(*before) == before


def test_prepare_needs_overwrite_for_an_earlier_split(tmp_path: Path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", ROWS)
    assert prepare.main([str(src), "--output-dir", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    before = snapshot(*(tmp_path / "d").iterdir())
    err = error(prepare.main([str(src), "--output-dir", str(tmp_path / "d"), "--seed", "7"]), capsys)
    assert "train.parquet" in err and "prepare_report.json already exist: add --overwrite" in err
    assert snapshot(*before) == before
    assert prepare.main([str(src), "--output-dir", str(tmp_path / "d"), "--seed", "7", "--overwrite"]) == 0


def test_prepare_refuses_to_write_over_an_eval_file(tmp_path: Path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", ROWS)
    assert prepare.main([str(src), "--output-dir", str(tmp_path / "d")]) == 0
    before = snapshot(tmp_path / "d" / "val.parquet")
    argv = [str(src), "--output-dir", str(tmp_path / "d"), "--decontaminate", str(tmp_path / "d" / "val.parquet")]
    err = error(prepare.main([*argv, "--overwrite"]), capsys)
    assert "val.parquet is one of this command's inputs" in err
    assert snapshot(*before) == before


# filter


def filter_argv(solutions: Path, meta: Path, save: Path, *more) -> list[str]:
    argv = ["--solutions-file", solutions, "--metadata-file", meta, "--save-correct", save, "--workers", "1", *more]
    return [str(a) for a in argv]


@pytest.mark.parametrize("target", ["solutions", "symlink", "metadata"])
def test_filter_refuses_to_write_over_an_input(tmp_path: Path, capsys, target: str):
    solutions, meta = tmp_path / "s.parquet", write_jsonl(tmp_path / "m.jsonl", META)
    pq.write_table(pa.Table.from_pylist(ROWS), solutions)  # an earlier filter's output, graded again
    (tmp_path / "link.parquet").symlink_to(solutions)
    before = snapshot(solutions, meta)
    if target == "metadata":
        argv = filter_argv(solutions, meta, tmp_path / "c.parquet", "--report-json", meta)
    else:
        argv = filter_argv(solutions, meta, tmp_path / ("s.parquet" if target == "solutions" else "link.parquet"))
    err = error(grade.main([*argv, "--overwrite"]), capsys)
    assert "is one of this command's inputs" in err
    assert snapshot(*before) == before


def test_filter_needs_overwrite_for_an_existing_output(tmp_path: Path, capsys):
    argv = filter_argv(
        write_jsonl(tmp_path / "s.jsonl", ROWS), write_jsonl(tmp_path / "m.jsonl", META), tmp_path / "c.parquet"
    )
    assert grade.main(argv) == 0
    capsys.readouterr()
    before = snapshot(tmp_path / "c.parquet")
    err = error(grade.main(argv), capsys)
    assert f"--save-correct {tmp_path / 'c.parquet'} already exists: add --overwrite" in err
    assert snapshot(*before) == before
    assert grade.main([*argv, "--overwrite"]) == 0


# eval: checked before the model is even looked at


@pytest.mark.parametrize("target", ["problems", "metadata"])
def test_eval_refuses_to_write_over_its_problems_or_gold_answers(tmp_path: Path, capsys, target: str):
    problems, meta = write_jsonl(tmp_path / "p.jsonl", ROWS), write_jsonl(tmp_path / "m.jsonl", META)
    before = snapshot(problems, meta)
    out = {"problems": problems, "metadata": meta}[target]
    argv = [str(tmp_path / "no-model"), "--problems", str(problems), "--metadata-file", str(meta)]
    err = error(evaluate.main([*argv, "--output", str(out), "--overwrite"]), capsys)
    assert f"--output {out} is one of this command's inputs" in err
    assert snapshot(*before) == before


def test_eval_needs_overwrite_for_last_rounds_solutions(tmp_path: Path, capsys):
    problems, last = write_jsonl(tmp_path / "p.jsonl", ROWS), write_jsonl(tmp_path / "round1.jsonl", ROWS)
    meta = write_jsonl(tmp_path / "m.jsonl", META)
    argv = [
        str(tmp_path / "no-model"),
        "--problems",
        str(problems),
        "--metadata-file",
        str(meta),
        "--output",
        str(last),
    ]
    err = error(evaluate.main(argv), capsys)
    assert f"--output {last} already exists: add --overwrite" in err
    err = error(evaluate.main([*argv, "--overwrite"]), capsys)
    assert "does not exist" in err and "--output" not in err  # past the output check: the model is the problem


def test_export_refuses_to_write_into_its_checkpoint(tmp_path: Path, capsys):
    ckpt = tmp_path / "run" / "global_step_2"
    ckpt.mkdir(parents=True)
    for name in REQUIRED:
        (ckpt / name).write_text("x")
    err = error(
        export.main([str(ckpt), "--output", str(tmp_path / "run" / "." / "global_step_2"), "--overwrite"]), capsys
    )
    assert "is one of this command's inputs" in err
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(REQUIRED)
