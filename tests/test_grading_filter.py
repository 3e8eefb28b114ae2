"""`sftkit filter` on bad input (issue #17) and with prose answers: one id shared by different prompts, ungraded
solutions in the headline, output paths checked before any work, the answer routes and `--require-marker`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit.grading import filter as grade
from sftkit.grading.outputs import check_output


def sol(id_, text: str, prompt: str | None = None) -> dict:
    row = {"id": id_, "generated_solution": f"We add $3 + 4 = 7$ first.\n\n{text}"}
    return row | ({"prompt": prompt} if prompt is not None else {"prompt": f"problem {id_}?"})


def run(capsys, tmp: Path, solutions: list[Path], metadata: Path, *more) -> tuple[int, str, str, dict | None]:
    report = tmp / "report.json"
    argv = ["--solutions-file", *solutions, "--metadata-file", metadata, "--save-correct", tmp / "c.parquet"]
    code = grade.main([str(a) for a in [*argv, "--report-json", report, "--overwrite", *more]])  # run again
    out = capsys.readouterr()
    return code, out.out, out.err, json.loads(report.read_text()) if report.exists() else None


# 1. one id shared by different prompts


def test_an_id_shared_by_different_prompts_is_a_user_error(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "10"}])
    a = write_jsonl(tmp_path / "a.jsonl", [sol(1, "#### 10", "How many apples does Ann have after the fair?")])
    b = write_jsonl(tmp_path / "b.jsonl", [sol(2, "#### 3"), sol(1, "#### 4", "What is the least prime above 3?")])
    code, _, err, _ = run(capsys, tmp_path, [a, b], meta)
    assert code == 2 and "Traceback" not in err
    assert "id '1' is shared by solutions to different prompts" in err
    assert f"{a}:1 'How many apples does Ann have after the fair?'" in err
    assert f"{b}:2 'What is the least prime above 3?'" in err
    assert "give each problem its own id" in err


def test_long_prompts_are_shortened_in_the_message(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "10"}])
    rows = [sol(1, "#### 10", "A very long problem statement " * 20), sol(1, "#### 10", "Another one " * 30)]
    code, _, err, _ = run(capsys, tmp_path, [write_jsonl(tmp_path / "s.jsonl", rows)], meta)
    assert code == 2 and "A very long problem statement A very long problem stateme...'" in err


def test_same_prompt_in_several_files_or_no_prompt_column_is_fine(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "10"}])
    a = write_jsonl(tmp_path / "a.jsonl", [sol(1, "#### 10", "Same problem?")])
    b = write_jsonl(tmp_path / "b.jsonl", [sol(1, "#### 11", " Same problem?\n")])  # the same, give or take spaces
    assert run(capsys, tmp_path, [a, b], meta)[0] == 0
    no_prompt = [{"id": 1, "generated_solution": "#### 10"}, {"id": 1, "generated_solution": "#### 12"}]
    assert run(capsys, tmp_path, [write_jsonl(tmp_path / "n.jsonl", no_prompt)], meta)[0] == 0


def test_chat_prompts_are_compared_too(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "10"}])
    chat = [[{"role": "user", "content": "2 + 8?"}], [{"role": "user", "content": "5 + 5?"}]]
    rows = [sol(1, "#### 10", chat[0]), sol(1, "#### 10", chat[0]), sol(1, "#### 10", chat[1])]
    code, _, err, _ = run(capsys, tmp_path, [write_jsonl(tmp_path / "s.jsonl", rows)], meta)
    assert code == 2 and f"{tmp_path / 's.jsonl'}:3" in err


# 2. every solution read counts in the headline


def test_headline_counts_solutions_without_a_gold_answer(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": i, "answer": str(i)} for i in range(5)] + [{"id": 9}])
    rows = [sol(i, f"#### {i}") for i in range(5)] + [sol(9, "#### 9") for _ in range(5)]
    code, out, _, r = run(capsys, tmp_path, [write_jsonl(tmp_path / "s.jsonl", rows)], meta)
    assert code == 0
    assert "accuracy: 5/10 = 50.00% (5 ungraded: no gold answer); 5 graded solutions of 5 problems" in out
    assert (r["solutions"], r["graded"], r["correct"], r["accuracy"], r["graded_accuracy"]) == (10, 5, 5, 0.5, 1.0)
    assert r["ungraded"] == {"no_gold_answer": 5, "no_metadata": 0}
    assert r["per_file"][str(tmp_path / "s.jsonl")] == {
        "solutions": 10,
        "graded": 5,
        "ungraded": 5,
        "correct": 5,
        "accuracy": 0.5,
    }
    assert r["ids_without_gold_answer"] == {"ids": 1, "solutions": 5, "first": ["9"]}
    assert "ids whose metadata has no gold answer: 1 (5 solutions, not graded), e.g. '9'" in out


def test_headline_with_both_reasons_and_per_file_lines(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "1"}, {"id": 2}])
    a = write_jsonl(tmp_path / "a.jsonl", [sol(1, "#### 1"), sol(2, "#### 2")])
    b = write_jsonl(tmp_path / "b.jsonl", [sol(1, "#### 5"), sol(7, "#### 7"), sol(8, "#### 8")])
    code, out, _, r = run(capsys, tmp_path, [a, b], meta)
    assert code == 0
    assert "accuracy: 1/5 = 20.00% (3 ungraded: 1 no gold answer, 2 no metadata)" in out
    assert f"{a}" in out and "1/2 = 50.00% (1 ungraded)" in out and "0/3 = 0.00% (2 ungraded)" in out
    assert sum(e["solutions"] for e in r["per_file"].values()) == r["solutions"] == 5


# 3. output paths checked before any work


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "10"}])
    return write_jsonl(tmp_path / "s.jsonl", [sol(1, "#### 10")]), meta


@pytest.mark.parametrize("flag", ["--save-correct", "--save-incorrect", "--report-json"])
def test_a_file_where_the_output_folder_should_be(tmp_path: Path, capsys, monkeypatch, inputs, flag: str):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    monkeypatch.setattr(grade, "grade_pairs", lambda *a, **k: pytest.fail("graded before checking the outputs"))
    args = {"--save-correct": tmp_path / "c.parquet", flag: tmp_path / "notes.txt" / "sub" / "out.parquet"}
    argv = ["--solutions-file", inputs[0], "--metadata-file", inputs[1], *(x for kv in args.items() for x in kv)]
    code = grade.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{flag} {tmp_path / 'notes.txt' / 'sub' / 'out.parquet'}: {tmp_path / 'notes.txt'} is a file" in err


@pytest.mark.parametrize("flag", ["--save-correct", "--report-json"])
def test_an_output_path_that_is_a_folder(tmp_path: Path, capsys, monkeypatch, inputs, flag: str):
    (tmp_path / "out.parquet").mkdir()
    monkeypatch.setattr(grade, "grade_pairs", lambda *a, **k: pytest.fail("graded before checking the outputs"))
    args = {"--save-correct": tmp_path / "c.parquet", flag: tmp_path / "out.parquet"}
    argv = ["--solutions-file", inputs[0], "--metadata-file", inputs[1], *(x for kv in args.items() for x in kv)]
    code = grade.main([str(a) for a in argv])
    assert code == 2 and "this is a folder; give a file name" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_output_folder(tmp_path: Path, capsys, inputs):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err, _ = run(capsys, tmp_path, [inputs[0]], inputs[1], "--save-incorrect", locked / "i.parquet")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "no permission to write there" in err


def test_a_folder_without_write_permission_is_refused(tmp_path: Path, monkeypatch):
    """What os.access says decides (as root everything is writable, so the answer is simulated here)."""
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(grade.SftkitError, match="--save-correct .*: no permission to write there"):
        check_output(str(tmp_path / "c.parquet"), "--save-correct")
    assert check_output(str(tmp_path / "sub" / "c.parquet"), "--save-correct") == tmp_path / "sub" / "c.parquet"


# answer routes and --require-marker


def test_prose_answers_are_graded_and_counted(tmp_path: Path, capsys):
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": 1, "answer": "75"}, {"id": 2, "answer": "\\frac{1}{3}"}])
    rows = [
        sol(1, "Therefore, the area of kite $ABCD$ is $75$ square units."),
        sol(1, "The area is $\\boxed{75}$."),
        sol(2, "Thus, the probability is $\\frac{1}{3}$, which is about $33\\%$."),
        sol(2, "So we find $p = \\frac{1}{3}$ and then we substitute it into the"),  # cut off: no final answer
    ]
    code, out, _, r = run(capsys, tmp_path, [write_jsonl(tmp_path / "s.jsonl", rows)], meta)
    assert code == 0 and r["correct"] == 3 and r["verdicts"]["no_answer"] == 1
    assert r["answer_routes"] == {"marker": 1, "prose": 2, "not_found": 1} and r["require_marker"] is False
    assert "final answers of the graded solutions: 1 after a marker" in out
    assert "2 from the concluding statement (prose), 1 not found" in out
    assert len(pq.read_table(tmp_path / "c.parquet")) == 3

    code, out, _, r = run(capsys, tmp_path, [tmp_path / "s.jsonl"], meta, "--require-marker")
    assert code == 0 and r["correct"] == 1 and r["verdicts"]["no_answer"] == 3
    assert r["answer_routes"] == {"marker": 1, "prose": 0, "not_found": 3} and r["require_marker"] is True
    assert "(--require-marker: only markers count)" in out


def test_the_prompt_decides_whether_a_lists_order_matters(tmp_path: Path, capsys):
    """The row's prompt reaches the judge: where it asks for an order, a list in another order is wrong; where it
    does not (or there is no prompt), any order is right. A chat prompt's user turn counts as its text."""
    golds = [{"id": i, "answer": "-2, 1, 3"} for i in range(4)]
    meta = write_jsonl(tmp_path / "m.jsonl", golds)
    asks, any_order = "Find the roots. Enter them in increasing order.", "Find all the roots, separated by commas."
    chat = [{"role": "system", "content": "Answer in any order."}, {"role": "user", "content": asks}]
    rows = [
        sol(0, "So the roots are $\\boxed{-2, 1, 3}$.", asks),
        sol(0, "So the roots are $\\boxed{3, 1, -2}$.", asks),
        sol(1, "So the roots are $\\boxed{3, 1, -2}$.", any_order),
        {"id": 2, "generated_solution": "So the roots are $\\boxed{3, 1, -2}$."},
        sol(3, "So the roots are $\\boxed{3, 1, -2}$.", chat),
    ]
    code, _, _, r = run(capsys, tmp_path, [write_jsonl(tmp_path / "s.jsonl", rows)], meta)
    assert code == 0 and r["verdicts"]["wrong"] == 2 and r["correct"] == 3
    kept = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert [(row["id"], "3, 1, -2" in row["generated_solution"]) for row in kept] == [(0, 0), (1, 1), (2, 1)]
    # prompts that change no verdict do not split the (gold, answer) pairs: ids 1 and 2 share one, as 0 and 3 do
    assert r["grading"]["distinct_answers"] == 3


def test_help_explains_the_routes_and_the_flag(capsys):
    with pytest.raises(SystemExit):
        grade.main(["--help"])
    text = capsys.readouterr().out
    assert "--require-marker" in text and "concluding statement" in text and "ungraded" in text


def test_generation_cut_at_max_new_tokens_is_not_kept_as_a_correct_solution(assets, tmp_path):
    """eval -> filter -> train: a generation cut at max_new_tokens (`"finished": false`) was kept and trained with
    an end-of-turn the model never wrote."""
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    from sftkit.data.labels import IGNORE, Encoder
    from sftkit.data.rows import RowReport
    from sftkit.evaluation.command import _rows, write_jsonl
    from sftkit.evaluation.generate import generate
    from sftkit.evaluation.grade import grade_texts
    from sftkit.evaluation.problems import Problem, Problems
    from sftkit.training.modeling import load_tokenizer

    tok = load_tokenizer(str(assets["model"]))
    model = AutoModelForCausalLM.from_pretrained(assets["model"])
    text = "So x = 5, and the answer is $\\boxed{5}$. Let me double check: the answer is $\\boxed{5}$. " * 20
    forced = tok(text, add_special_tokens=False)["input_ids"]
    prompt = "What is 2 + 3?"
    start = len(Encoder(tok).prompt_ids(prompt))

    class Loop(LogitsProcessor):  # the model answers, then repeats itself until max_new_tokens
        def __call__(self, ids, scores):
            out = torch.full_like(scores, -1e9)
            out[:, forced[ids.shape[1] - start]] = 0
            return out

    gen = generate(model, tok, [prompt], max_new_tokens=70, logits_processor=LogitsProcessorList([Loop()]))[0][0]
    assert not gen.finished
    rows = _rows(Problems([Problem("p1", "p1", prompt, "5", None)], RowReport(), 0, "t"), [[gen]],
                 grade_texts(["5"], [gen.text]))  # fmt: skip
    write_jsonl(tmp_path / "round.jsonl", rows)
    (tmp_path / "meta.jsonl").write_text(json.dumps({"id": "p1", "answer": "5"}) + "\n")
    grade.main(["--solutions-file", str(tmp_path / "round.jsonl"), "--metadata-file", str(tmp_path / "meta.jsonl"),
                "--save-correct", str(tmp_path / "correct.parquet"), "--workers", "1"])  # fmt: skip
    kept = pq.read_table(tmp_path / "correct.parquet").to_pylist()
    trained = [tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])
               for ex in (Encoder(tok).encode(r["prompt"], r["generated_solution"]) for r in kept)]  # fmt: skip
    assert kept == [], f"a cut generation is kept and trained as {trained[0][-40:]!r}"
