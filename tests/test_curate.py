"""`sftkit prepare`'s curation (`data/curate.py`, `normalize.py`, `decontaminate.py`; issue #24) on real files: the
bundled GSM8K sample, GSM8K test problems (tests/assets/curation) and MATH-style LaTeX solutions."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit.data import prepare
from sftkit.data.normalize import solution_key

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
GSM8K_TEST = ROOT / "tests" / "assets" / "curation" / "gsm8k_test_40.jsonl"
PROMPT = "Solve for $x$: $2x = 1$."
LATEX = [  # one MATH-style solution written five ways, then a different solution with the same answer
    r"We have $x = \frac12$, so the answer is $\boxed{\frac12}$.",
    r"We have \(x=\frac{1}{2}\), so the answer is \(\boxed{\frac{1}{2}}\).",
    r"We  have $x = \dfrac{1}{2}$,  so The answer is $\boxed{\tfrac 1 2}$." + "\n",
    r"We have $$x = \frac{1}{2},$$ so the answer is \[\boxed{\left.\frac{1}{2}\right.}\].".replace(
        "$$x", "\\[x"
    ).replace(",$$", ",\\]"),
    r"We have $x = \frac12$, so the answer is $\boxed{\frac12}$.",  # the first, exactly
    r"Dividing by $2$: $x = 0.5$. The answer is $\boxed{\frac{1}{2}}$.",
]


def run(capsys, *argv) -> tuple[str, dict]:
    code = prepare.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    folder = Path(argv[list(argv).index("--output-dir") + 1])
    return out.out, json.loads((folder / "prepare_report.json").read_text())


def rows(folder: Path) -> list[dict]:
    return pq.read_table(folder / "train.parquet").to_pylist() + pq.read_table(folder / "val.parquet").to_pylist()


def test_latex_spellings_of_one_solution_share_a_key_and_others_do_not():
    keys = {solution_key(text) for text in LATEX[:5]}
    assert len(keys) == 1
    assert solution_key(LATEX[5]) not in keys
    assert solution_key(r"$\frac{2}{1}$") != solution_key(r"$\frac{1}{2}$")
    assert solution_key(r"\frac123") == solution_key(r"\frac{1}{2}3") != solution_key(r"\frac{12}{3}")


@pytest.mark.parametrize(
    ("dedup", "kept"), [("none", [0, 1, 2, 3, 4, 5]), ("exact", [0, 1, 2, 3, 5]), ("normalized", [0, 5])]
)
def test_dedup_of_math_solutions_and_duplicates_always_counted(tmp_path: Path, capsys, dedup: str, kept: list[int]):
    src = write_jsonl(
        tmp_path / "s.jsonl", [{"prompt": PROMPT, "generated_solution": t, "n": i} for i, t in enumerate(LATEX)]
    )
    out, report = run(capsys, src, "--output-dir", tmp_path / "o", "--val-split", "0", "--dedup", dedup)
    assert sorted(r["n"] for r in rows(tmp_path / "o")) == kept  # the first of each in input order
    assert report["duplicates_held"] == {"exact": 1, "normalized": 4}
    assert report["curation"]["duplicates_dropped"] == 6 - len(kept)
    assert f"duplicates held (same prompt and solution): 1 exact, 4 after normalisation; --dedup {dedup}: " in out


def test_dedup_on_the_gsm8k_sample_across_rounds(tmp_path: Path, capsys):
    again = shutil.copy(SAMPLE / "solutions_0.jsonl", tmp_path / "round2.jsonl")  # a round that resampled the same
    out, report = run(capsys, SAMPLE / "solutions_*.jsonl", again, "--output-dir", tmp_path / "o", "--dedup", "exact")
    assert report["rows"]["usable"] == 900 and report["curation"]["duplicates_dropped"] == 300
    assert (
        len(rows(tmp_path / "o")) == 600 and report["split"]["train"]["rows"] + report["split"]["val"]["rows"] == 600
    )


def solutions(per_prompt: dict[str, list[str]]) -> list[dict]:
    return [{"prompt": p, "generated_solution": s} for p, sols in per_prompt.items() for s in sols]


def test_max_per_prompt_prefers_distinct_solutions(tmp_path: Path, capsys):
    easy = ["$x = 1$. #### 1"] * 5 + ["We get x=1. #### 1", "So $x=1$. #### 1", "Thus 1. #### 1"]
    hard = ["Long work. #### 7"]
    src = write_jsonl(tmp_path / "s.jsonl", solutions({"easy?": easy, "hard?": hard}))
    for seed in range(4):
        out, report = run(capsys, src, "--output-dir", tmp_path / f"k{seed}", "--val-split", "0", "--max-per-prompt",
                          "4", "--seed", seed)  # fmt: skip
        kept = Counter(r["generated_solution"] for r in rows(tmp_path / f"k{seed}") if r["prompt"] == "easy?")
        assert sorted(kept.values()) == [1, 1, 1, 1]  # the 4 distinct ones, never a second copy of the first
        assert report["curation"]["rows_capped"] == 4 and report["curation"]["prompts_capped"] == 1
    assert "--max-per-prompt 4: 4 rows capped in 1 problems" in out


def test_max_per_prompt_is_seeded_and_byte_identical(tmp_path: Path, capsys):
    src = write_jsonl(
        tmp_path / "s.jsonl", solutions({f"p{i}?": [f"way {j} to {i}" for j in range(8)] for i in range(30)})
    )
    chosen = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        run(
            capsys,
            src,
            "--output-dir",
            tmp_path / name,
            "--max-per-prompt",
            "3",
            "--seed",
            seed,
            "--dedup",
            "normalized",
        )
        chosen[name] = {(r["prompt"], r["generated_solution"]) for r in rows(tmp_path / name)}
        assert len(chosen[name]) == 90
    for file in ("train.parquet", "val.parquet"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    reports = [(tmp_path / d / "prepare_report.json").read_text().replace(str(tmp_path / d), "") for d in "ab"]
    assert reports[0] == reports[1]
    assert chosen["a"] != chosen["c"]


def planted(n: int) -> list[dict]:
    """GSM8K test problems leaked into training prompts, in the sample's framing and with other spacing/case."""
    tests = [json.loads(line)["question"] for line in GSM8K_TEST.read_text().splitlines()[:n]]
    frame = "Solve the following math problem step by step. Put the final answer in \\boxed{}.\n\n"
    return [{"id": f"leak{i}", "prompt": frame + "  ".join(q.upper().split()), "generated_solution": f"#### {i}"}
            for i, q in enumerate(tests)]  # fmt: skip


def test_decontaminate_drops_leaked_gsm8k_test_problems(tmp_path: Path, capsys):
    train = [json.loads(line) for line in (SAMPLE / "solutions_0.jsonl").read_text().splitlines()[:20]]
    src = write_jsonl(tmp_path / "s.jsonl", train + planted(3) + planted(3))  # two solutions of each leak
    out, report = run(capsys, src, "--output-dir", tmp_path / "o", "--decontaminate", GSM8K_TEST)
    assert sorted(r["id"] for r in rows(tmp_path / "o")) == sorted(str(r["id"]) for r in train)  # ids mixed: text
    d = report["curation"]["decontamination"]
    assert report["curation"]["rows_decontaminated"] == 6
    assert (d["prompts_dropped"], d["eval_problems_matched"], d["eval_problems"]) == (3, 3, 40)
    assert [m["eval"] for m in d["first_matches"]] == [f"{GSM8K_TEST}:{i}" for i in (1, 2, 3)]
    said = "decontamination (8-word n-grams, 40 distinct eval problems in 40 rows of 1 files): 6 rows dropped, 3 "
    assert said in out
    assert f"~ {GSM8K_TEST}:1 'Janet" in out


def test_decontaminate_ignores_the_instruction_shared_by_eval_prompts(tmp_path: Path, capsys):
    """Eval problems in the same framing as training (a prepared val.parquet): only the real problems match."""
    evals = write_jsonl(
        tmp_path / "eval.jsonl", [json.loads(x) for x in (SAMPLE / "solutions_1.jsonl").read_text().splitlines()[:10]]
    )
    out, report = run(capsys, SAMPLE / "solutions_0.jsonl", "--output-dir", tmp_path / "o", "--decontaminate", evals,
                      "--decontaminate-ngram", "13")  # fmt: skip
    d = report["curation"]["decontamination"]
    assert d["prompts_dropped"] == 10 and len(rows(tmp_path / "o")) == 290
    assert d["template_ngrams_ignored"] >= 1 and "ignored as template text" in out


def test_decontaminate_names_the_problem_column_or_says_which_exist(tmp_path: Path, capsys):
    evals = write_jsonl(tmp_path / "e.jsonl", [{"task": "Janet's ducks lay 16 eggs per day"}])
    code = prepare.main(
        [str(SAMPLE / "solutions_0.jsonl"), "--output-dir", str(tmp_path / "o"), "--decontaminate", str(evals)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "columns found: task (1)" in err and "--decontaminate-key" in err
    run(capsys, SAMPLE / "solutions_0.jsonl", "--output-dir", tmp_path / "o", "--decontaminate", evals,
        "--decontaminate-key", "task", "--decontaminate-ngram", "3")  # fmt: skip


def test_a_problem_repeated_in_the_eval_file_is_still_decontaminated(tmp_path: Path, capsys):
    """An eval file with several rows per problem (a val.parquet of k solutions each) counts each problem once: its
    n-grams are not template text, however many rows repeat it."""
    tests = [json.loads(line) for line in GSM8K_TEST.read_text().splitlines()]
    evals = write_jsonl(tmp_path / "e.jsonl", [tests[0]] * 5 + tests[1:4])
    src = write_jsonl(tmp_path / "s.jsonl", planted(1) + [{"prompt": "Unrelated?", "generated_solution": "#### 1"}])
    out, report = run(capsys, src, "--output-dir", tmp_path / "o", "--decontaminate", evals)
    d = report["curation"]["decontamination"]
    assert (d["eval_rows"], d["eval_problems"], d["prompts_dropped"], d["template_ngrams_ignored"]) == (8, 4, 1, 0)
    assert [r["prompt"] for r in rows(tmp_path / "o")] == ["Unrelated?"]


def test_short_eval_problems_match_the_same_text_and_are_counted(tmp_path: Path, capsys):
    """A problem shorter than the n-gram has none: it matches a training prompt that is the same text, or opens or
    closes it (an instruction after or before it), not one that holds other words in its place; the summary says
    how many such problems there are."""
    problems = [{"problem": r"Compute $\dbinom{8}{4}$."}, {"problem": "What is $1+1$?"}]
    evals = write_jsonl(tmp_path / "e.jsonl", problems)
    train = ["Compute $\\dbinom{8}{4}$.", "what is 1 + 1 ?", "What is $1+1+1$?", r"Compute $\dbinom{8}{4}$ twice.",
             "Solve step by step. Put the answer in \\boxed{}.\n\nWhat is $1+1$?",  # the sample's format
             "What is  $1+1$?\nPlease reason step by step.", "Then: what is $1+1+1$?"]  # fmt: skip
    src = write_jsonl(tmp_path / "s.jsonl", [{"prompt": p, "generated_solution": "#### 1"} for p in train])
    out, report = run(capsys, src, "--output-dir", tmp_path / "o", "--decontaminate", evals, "--val-split", "0")
    d = report["curation"]["decontamination"]
    assert (d["eval_problems_short"], d["prompts_dropped"], d["eval_problems_matched"]) == (2, 4, 2)
    assert sorted(r["prompt"] for r in rows(tmp_path / "o")) == sorted([train[2], train[3], train[6]])
    assert "2 eval problems shorter than 8 words: matched only by a training prompt that is, opens or closes" in out


def test_bad_eval_rows_are_counted_and_shown_and_fatal_with_strict(tmp_path: Path, capsys):
    tests = [json.loads(line) for line in GSM8K_TEST.read_text().splitlines()][:3]
    evals = tmp_path / "e.jsonl"
    evals.write_text("{broken\n" + json.dumps(tests[1]) + "\n" + json.dumps({"question": 7}) + "\n")
    argv = [SAMPLE / "solutions_0.jsonl", "--output-dir", tmp_path / "o", "--decontaminate", evals]
    out, report = run(capsys, *argv)
    d = report["curation"]["decontamination"]
    assert (d["eval_rows"], d["eval_rows_bad"], d["eval_problems"]) == (3, 2, 1)
    assert f"warning: 2 eval rows without a readable problem (not checked):\n    {evals}:1" in out
    assert f"{evals}:3: no problem text" in out
    code = prepare.main([str(a) for a in argv] + ["--strict", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and f"{evals}:1" in err and "--strict" in err


def test_mix_weights_spread_over_prompts_and_report_shares(tmp_path: Path, capsys):
    both = tmp_path / "round1"
    both.mkdir()
    for f in SAMPLE.glob("solutions_*.jsonl"):
        shutil.copy(f, both)  # 300 prompts x 2 solutions
    base = write_jsonl(
        tmp_path / "base.jsonl", [{"prompt": f"base {i}?", "generated_solution": f"b{i}"} for i in range(50)]
    )
    out, report = run(capsys, "--mix", f"{both}:0.5", f"{base}:2", "--output-dir", tmp_path / "o")
    written = rows(tmp_path / "o")
    from_round = [r for r in written if not r["prompt"].startswith("base")]
    assert len(from_round) == 300 and len({r["prompt"] for r in from_round}) == 300  # one solution of every prompt
    assert Counter(r["generated_solution"] for r in written if r["prompt"].startswith("base")) == {
        f"b{i}": 2 for i in range(50)
    }
    shares = {s["name"]: (s["weight"], s["rows_out"], s["share"]) for s in report["sources"]}
    assert shares == {str(both): (0.5, 300, 0.75), str(base): (2.0, 100, 0.25)}
    assert f"source {both} (weight 0.5, 2 files): 600 usable" in out and "-> 300 rows (75.0% of the output)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mix", "{a}"], "give FILE_OR_GLOB:WEIGHT"),
        (["--mix", "{a}:-1"], "a weight > 0"),
        (["{a}", "--mix", "{a}:2"], "is in two sources"),
        (["{a}", "--max-per-prompt", "0"], "keep 1 or more"),
        (["--mix", "{a}:0.0001"], "300 left out by the weights ("),
        (["{a}", "--decontaminate", "{a}", "--decontaminate-ngram", "0"], "give 1 or more words"),
        (["{a}", "--decontaminate-ngram", "13"], "--decontaminate-ngram without --decontaminate EVAL"),
        (["{a}", "--decontaminate-key", "question"], "--decontaminate-key without --decontaminate EVAL"),
        (["{a}", "--decontaminate", "{a}", "{a}.missing"], "every evaluation file must exist"),
        (["{a}", "--decontaminate", "/nowhere/*.jsonl"], "glob matches no file"),
        (["{a}", "--decontaminate", "{a}"], "is both a training input and a --decontaminate file"),
        (["{a}", "--decontaminate", "{d}"], "is both a training input and a --decontaminate file"),
    ],
)
def test_curation_mistakes_are_messages(tmp_path: Path, capsys, argv: list[str], message: str):
    a = str(SAMPLE / "solutions_0.jsonl")
    code = prepare.main([x.format(a=a, d=SAMPLE) for x in argv] + ["--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_report_json_holds_the_numbers_the_console_prints(tmp_path: Path, capsys):
    src = write_jsonl(
        tmp_path / "s.jsonl", solutions({f"p{i}?": [f"s{j}" for j in range(i % 4 + 1)] for i in range(20)}) + ["{bad"]
    )
    out, r = run(capsys, src, "--output-dir", tmp_path / "o", "--max-per-prompt", "2", "--decontaminate", GSM8K_TEST)
    assert f"rows read: {r['rows']['read']}, usable: {r['rows']['usable']}, dropped: 1" in out
    assert f"dropped (malformed JSON): {r['rows']['bad']['malformed JSON']}" in out
    assert (
        f"--max-per-prompt 2: {r['curation']['rows_capped']} rows capped in {r['curation']['prompts_capped']}" in out
    )
    for side in ("train", "val"):
        s = r["split"][side]
        assert f"{s['rows']} rows, {s['problems']} problems -> {s['path']}" in out
    assert r["split"]["train"]["rows"] + r["split"]["val"]["rows"] == 50 - 5 * 1 - 5 * 2  # 5 prompts each of 3, 4


def test_a_prepared_folder_as_a_source_is_read_without_its_report(tmp_path: Path, capsys):
    run(capsys, SAMPLE / "solutions_0.jsonl", "--output-dir", tmp_path / "round1")
    out, report = run(capsys, "--mix", f"{tmp_path / 'round1'}:0.5", "--output-dir", tmp_path / "o")
    assert report["inputs"] == [str(tmp_path / "round1" / f) for f in ("train.parquet", "val.parquet")]
    assert report["rows"] == {**report["rows"], "read": 300, "usable": 300, "dropped": 0}
    assert len(rows(tmp_path / "o")) == 150


def test_a_stop_while_writing_leaves_the_earlier_outputs_and_no_temporary_file(tmp_path: Path, capfd, monkeypatch):
    """SIGTERM (a real one) in the middle of the second pass: exit 75 and one line, the earlier outputs as they
    were, no hidden .tmp file; the three outputs are only ever replaced together."""
    import os
    import signal

    from sftkit.data.parquet import ParquetSink

    out = tmp_path / "o"
    argv = [str(SAMPLE / "solutions_0.jsonl"), "--output-dir", str(out)]
    assert prepare.main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    add = ParquetSink.add
    monkeypatch.setattr(ParquetSink, "add", lambda self, *a: (os.kill(os.getpid(), signal.SIGTERM), add(self, *a)))
    capfd.readouterr()
    assert prepare.main([*argv, "--overwrite", "--max-per-prompt", "1"]) == 75
    err = capfd.readouterr().err
    assert "SIGTERM received: prepare stopped, nothing written" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing else, nothing changed


def test_a_stop_while_the_outputs_are_put_in_place_waits_for_all_three(tmp_path: Path, capfd, monkeypatch):
    """A SIGTERM sent to the process (here from another thread, as `kill` may reach one of pyarrow's) while the
    outputs replace the earlier ones: all three are replaced, then prepare stops (exit 75) and says so."""
    import os
    import signal
    import threading

    from sftkit.data.parquet import ParquetSink

    out = tmp_path / "o"
    argv = [str(SAMPLE / "solutions_0.jsonl"), "--output-dir", str(out)]
    assert prepare.main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    publish = ParquetSink.publish

    def publish_under_a_signal(self):
        sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
        sender.start()
        sender.join()
        publish(self)

    monkeypatch.setattr(ParquetSink, "publish", publish_under_a_signal)
    capfd.readouterr()
    assert prepare.main([*argv, "--overwrite", "--max-per-prompt", "1", "--val-split", "0.2"]) == 75
    assert "SIGTERM received: prepare stopped, after its outputs were written in full" in capfd.readouterr().err
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == sorted(before) and all(after[name] != before[name] for name in before)
    assert json.loads(after["prepare_report.json"])["split"]["val_split"] == 0.2
