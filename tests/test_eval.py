"""`sftkit eval` and the in-process `generate` / `grade` API, on the tiny model (CPU, offline).

What is pinned down: the prompt is token for token the training prompt and generation stops at the end-of-turn;
the accuracy equals `sftkit filter`'s on the written rows (with correct and wrong solutions, K > 1, a problem
without gold); full, LoRA and not-yet-exported checkpoints load; user mistakes exit 2 with a message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

from sftkit.data.labels import Encoder
from sftkit.evaluation import backends, command, generate, grade
from sftkit.evaluation.generate import Generated
from sftkit.evaluation.problems import load_problems
from sftkit.grading import filter as filter_cmd
from sftkit.training.modeling import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT / "data" / "sample" / "metadata.jsonl"
SEED_KEYS = {"id", "prompt", "generated_solution", "num_tokens", "sample", "correct", "extracted_answer", "finished"}


def _golds() -> dict[int, str]:
    return {row["id"]: row["answer"] for row in map(json.loads, METADATA.read_text().splitlines())}


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory) -> Path:
    """The first 6 problems of the bundled sample (id, prompt) and one id the metadata does not have."""
    rows, seen = [], set()
    for line in (ROOT / "data" / "sample" / "solutions_0.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["id"] not in seen and len(rows) < 6:
            seen.add(row["id"])
            rows.append({"id": row["id"], "prompt": row["prompt"]})
    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run_eval(model, problems, out: Path, *extra: str) -> tuple[int, dict]:
    report = out.with_suffix(".report.json")
    argv = [str(model), "--problems", str(problems), "--metadata-file", str(METADATA), "--output", str(out)]
    rc = command.main([*argv, "--report-json", str(report), *extra])
    return rc, json.loads(report.read_text()) if rc == 0 else {}


def _run_filter(solutions: Path) -> dict:
    report = solutions.with_suffix(".filter.json")
    argv = ["--solutions-file", str(solutions), "--metadata-file", str(METADATA), "--report-json", str(report)]
    assert filter_cmd.main([*argv, "--save-correct", str(solutions.with_suffix(".correct.parquet"))]) == 0
    return json.loads(report.read_text())


def _same_numbers(ours: dict, theirs: dict) -> None:
    """The accuracy and per-problem numbers of `sftkit eval` equal `sftkit filter`'s on its output (blank
    solutions aside: the filter skips them as bad rows, eval counts them wrong; then only the counts are compared)."""
    blank = theirs["bad_rows"]["solutions"].get("empty field", 0)
    assert ours["empty_solutions"] == blank
    if blank:
        assert ours["solutions"] == theirs["solutions"] + blank and ours["correct"] == theirs["correct"]
        return
    for key in ("solutions", "graded", "correct", "accuracy", "graded_accuracy", "ungraded", "verdicts", "problems"):
        assert ours[key] == theirs[key], key
    for key in ("majority_vote", "any_correct"):
        assert ours.get(key) == theirs.get(key), key
    for k, entry in theirs.get("pass_at_k", {}).items():
        assert ours["pass_at_k"][k] == entry


# ---- in-process API ----------------------------------------------------------------------------------------------
class ForceTokens(LogitsProcessor):
    """Row r of the batch writes `token` until step stop_at[r], then the end-of-turn; `after` would follow."""

    def __init__(self, token: int, end: int, after: int, stop_at: list[int]):
        self.token, self.end, self.after, self.stop_at, self.start = token, end, after, stop_at, None

    def __call__(self, input_ids, scores):
        self.start = self.start if self.start is not None else input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        forced = torch.full_like(scores, -1e9)
        for row in range(scores.shape[0]):
            choice = self.token if step < self.stop_at[row] else self.end if step == self.stop_at[row] else self.after
            forced[row, choice] = 0.0
        return forced


def test_prompt_is_the_training_prompt_and_generation_stops_at_end_of_turn(tiny_model_dir, monkeypatch):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train()
    encoder = Encoder(tokenizer)
    prompts = [
        "What is 2+2?",
        "A much longer prompt: a farmer has 17 sheep and all but 9 run away. How many are left?",
    ]
    seen = []
    original = model.generate

    def spy(**kwargs):
        seen.append((kwargs["input_ids"], kwargs["attention_mask"]))
        return original(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    seven, eight = tokenizer.convert_tokens_to_ids("7"), tokenizer.convert_tokens_to_ids("8")
    end = encoder.end_ids[0]
    force = LogitsProcessorList([ForceTokens(seven, end, eight, stop_at=[3, 5])])  # batch sorted by prompt length
    rng = torch.random.get_rng_state()
    out = generate(model, tokenizer, prompts, max_new_tokens=12, logits_processor=force)

    ids, mask = seen[0]
    unpadded = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
    assert unpadded == encoder.prompt_ids_batch(prompts)  # the training prompt, token for token
    assert mask[0, 0] == 0 and mask[:, -1].all()  # left padding
    assert [(o[0].num_tokens, o[0].finished) for o in out] == [(4, True), (6, True)]  # 3 (5) tokens + end-of-turn
    assert out[0][0].text == tokenizer.decode([seven] * 3) and "8" not in out[1][0].text
    assert out[1][0].text == tokenizer.decode([seven] * 5)
    assert model.training and torch.equal(torch.random.get_rng_state(), rng)  # state left as it was


def test_generate_on_a_peft_model_being_trained(tiny_model_dir):
    from peft import get_peft_model

    from sftkit.training.modeling import lora_config

    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora_config(4, 8, 0.1, ["all-linear"])
    )
    model.gradient_checkpointing_enable()
    model.train()
    frozen = model.get_base_model().model.embed_tokens.eval()  # a module kept in eval mode by the trainer
    modes = [m.training for m in model.modules()]
    out = generate(model, tokenizer, ["What is 2+2?"], samples=2, temperature=1.0, max_new_tokens=5)
    assert len(out[0]) == 2 and all(1 <= g.num_tokens <= 5 for g in out[0])
    assert [m.training for m in model.modules()] == modes and model.training and not frozen.training


def test_cut_at_max_new_tokens_and_samples(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = ["What is 2+2?", "Name a prime number.", "Add 3 and 4, then double it."]
    greedy_one = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=1)
    greedy_batch = generate(model, tokenizer, prompts, samples=2, max_new_tokens=6, batch_size=8)
    assert [[g.text for g in o] for o in greedy_batch] == [[o[0].text] * 2 for o in greedy_one]  # padding-proof
    assert not model.training
    sampled = generate(model, tokenizer, prompts, samples=3, temperature=1.0, max_new_tokens=6, seed=1)
    again = generate(model, tokenizer, prompts, samples=3, temperature=1.0, max_new_tokens=6, seed=1)
    assert sampled == again and all(len(o) == 3 for o in sampled)
    assert len({g.text for o in sampled for g in o}) > 3  # samples differ
    assert all(g.num_tokens <= 6 for o in sampled for g in o)


def test_grade_uses_the_filters_judgement():
    texts = ["So 48 + 24 = 72.\nThe answer is $\\boxed{72}$.", "The answer is 11.", "no answer here", "#### 5"]
    assert grade(["72", "10", "3", "5"], texts) == [True, False, False, True]


def test_problems_from_a_prepared_file_count_each_problem_once(sample_parquet, tmp_path):
    problems = load_problems(sample_parquet.val, metadata_file=METADATA)
    assert problems.repeated_rows > 0 and len({p.key for p in problems.items}) == len(problems.items)
    assert all(p.gold == _golds()[int(p.key)] for p in problems.items)
    assert len(load_problems(sample_parquet.val, metadata_file=METADATA, limit=3).items) == 3
    with_gold = tmp_path / "with_gold.jsonl"
    with_gold.write_text('{"id": "a", "prompt": "1+1?", "answer": "Add. #### 2"}\n{"id": "b", "prompt": "x?"}\n')
    items = load_problems(with_gold).items
    assert [(p.gold, p.missing) for p in items] == [("2", None), (None, "no_gold_answer")]


# ---- the command ------------------------------------------------------------------------------------------------
class StubBackend:
    """Canned solutions: sample k of problem i is correct when (i + k) % 3 != 0, else a wrong number; `empty`:
    the (i, k) solutions that are empty (the end of turn came first)."""

    name, device = "stub", "cpu"

    def __init__(self, golds: list[str | None], empty: tuple = ()):
        self.golds, self.empty, self.prompt_ids = golds, empty, None

    def generate(self, prompt_ids, sampling, batch_size):
        self.prompt_ids = prompt_ids
        return [[self.solution(gold, i, k) for k in range(sampling.samples)] for i, gold in enumerate(self.golds)]

    def solution(self, gold: str | None, i: int, k: int) -> Generated:
        value = gold if gold and (i + k) % 3 else "123456"
        text = "" if (i, k) in self.empty else f"So it is {value}.\nThe answer is $\\boxed{{{value}}}$."
        return Generated(text, 9)


def test_accuracy_equals_filter_with_right_and_wrong_solutions(tiny_model_dir, problems_file, tmp_path, monkeypatch):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(problems_file.read_text() + '{"id": 999999, "prompt": "A problem without metadata."}\n')
    golds = [_golds().get(json.loads(line)["id"]) for line in problems.read_text().splitlines()]
    stub = StubBackend(golds)
    monkeypatch.setattr(backends, "open_backend", lambda *args: stub)
    rc, ours = _run_eval(tiny_model_dir, problems, tmp_path / "out.jsonl", "--samples", "3")
    assert rc == 0
    prompts = [json.loads(line)["prompt"] for line in problems.read_text().splitlines()]
    assert stub.prompt_ids == Encoder(load_tokenizer(str(tiny_model_dir))).prompt_ids_batch(prompts)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 21 and all(set(r) == SEED_KEYS for r in rows)
    assert [r["correct"] for r in rows[-3:]] == [None] * 3  # the problem without gold: written, not graded
    assert 0 < ours["correct"] < 18 and ours["ungraded"]["no_metadata"] == 3
    assert ours["ids_without_metadata"]["ids"] == 1 and set(ours["pass_at_k"]) == {"1", "2", "3"}
    assert ours["correct"] == sum(r["correct"] is True for r in rows)
    _same_numbers(ours, _run_filter(tmp_path / "out.jsonl"))

    # An empty solution is wrong for eval; the filter skips it as a bad row (and says so): the one difference.
    monkeypatch.setattr(backends, "open_backend", lambda *args: StubBackend(golds, empty=[(0, 1)]))
    rc, ours = _run_eval(tiny_model_dir, problems, tmp_path / "empty.jsonl", "--samples", "3")
    theirs = _run_filter(tmp_path / "empty.jsonl")
    assert rc == 0 and ours["empty_solutions"] == 1 and ours["verdicts"]["no_answer"] == 1
    _same_numbers(ours, theirs)


def test_the_prompt_decides_whether_a_lists_order_matters_as_in_filter(tiny_model_dir, tmp_path, monkeypatch):
    """The problem's prompt reaches the judge (`grade_texts(questions=...)`), as `sftkit filter` reads the written
    rows' prompts: the same list in another order is wrong where the prompt asks for an order, right elsewhere."""
    problems = tmp_path / "problems.jsonl"
    asks, any_order = "Find the roots. Enter them in increasing order.", "Find all the roots, separated by commas."
    rows = [{"id": i, "prompt": p, "answer": "-2, 1, 3"} for i, p in enumerate([asks, any_order])]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reply = type("Backend", (StubBackend,), {"solution": lambda *a: Generated("So $\\boxed{3, 1, -2}$.", 9)})
    monkeypatch.setattr(backends, "open_backend", lambda *args: reply([None, None]))
    out = tmp_path / "out.jsonl"
    assert command.main([str(tiny_model_dir), "--problems", str(problems), "--output", str(out)]) == 0
    assert [json.loads(line)["correct"] for line in out.read_text().splitlines()] == [False, True]
    argv = ["--solutions-file", out, "--metadata-file", problems, "--save-correct", tmp_path / "c.parquet"]
    assert filter_cmd.main([str(a) for a in [*argv, "--report-json", tmp_path / "f.json"]]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["correct"] == 1


def test_user_mistakes_exit_2_without_traceback(tiny_model_dir, problems_file, tmp_path, capsys):
    incomplete = tmp_path / "run" / "global_step_5"
    incomplete.mkdir(parents=True)
    (incomplete / "model.pt").write_bytes(b"")
    no_gold = tmp_path / "no_gold.jsonl"
    no_gold.write_text('{"id": "x1", "prompt": "1+1?"}\n')
    meta = ["--metadata-file", str(METADATA)]
    cases = [
        ([str(tiny_model_dir), "--problems", str(tmp_path / "missing.jsonl")], "--problems"),
        ([str(incomplete), "--problems", str(problems_file), *meta], "not a complete checkpoint"),
        ([str(tiny_model_dir), "--problems", str(no_gold)], "no problem of"),
        ([str(tiny_model_dir), "--problems", str(no_gold), *meta], "no problem of"),
        ([str(tmp_path / "nope"), "--problems", str(problems_file), *meta], "does not exist"),
        ([str(tiny_model_dir), "--problems", str(problems_file), *meta, "--top-p", "0"], "--top-p"),
        (
            [str(tiny_model_dir), "--problems", str(problems_file), "--metadata-file", str(no_gold.parent / "m")],
            "-file",
        ),
    ]
    for argv, message in cases:
        assert command.main([*argv, "--output", str(tmp_path / "o.jsonl")]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_output_must_be_jsonl_and_says_so(tiny_model_dir, problems_file, tmp_path, capsys):
    argv = [str(tiny_model_dir), "--problems", str(problems_file), "--output", str(tmp_path / "o.txt")]
    assert command.main(argv) == 2
    err = capsys.readouterr().err
    assert "the output is JSON Lines; give a file name ending in .jsonl" in err, err
    assert not (tmp_path / "o.txt").exists()


# ---- real checkpoints (trained for a few steps) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(assets, tmp_path_factory) -> dict[str, Path]:
    from _train_utils import train

    base = tmp_path_factory.mktemp("eval-runs")
    short = dict(max_steps=2, eval_steps=2, save_steps=2)  # trained weights, not a good model: 2 steps do
    train(assets, base / "full", **short)
    train(assets, base / "lora", lora_rank=4, lora_alpha=8, **short)
    return {"full": base / "full" / "global_step_final", "lora": base / "lora" / "global_step_final", **assets}


@pytest.mark.slow
def test_checkpoint_rows_and_accuracy_equal_filter(checkpoints, problems_file, tmp_path):
    out = tmp_path / "solutions.jsonl"
    argv = ["--samples", "2", "--temperature", "1.0", "--max-new-tokens", "24", "--limit", "4"]
    rc, ours = _run_eval(checkpoints["full"], problems_file, out, *argv)
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and all(set(r) == SEED_KEYS for r in rows)
    assert [r["sample"] for r in rows[:2]] == [0, 1] and all(1 <= r["num_tokens"] <= 24 for r in rows)
    assert "pass_at_k" in ours and ours["generation"]["backend"] == "transformers"
    _same_numbers(ours, _run_filter(out))


@pytest.mark.slow
def test_lora_and_unexported_checkpoints(checkpoints, problems_file, tmp_path):
    from contextlib import ExitStack

    from sftkit.evaluation.source import load_model, resolve

    with ExitStack() as stack:
        source = resolve(str(checkpoints["lora"]), stack)
        assert source.adapter and Path(source.model) == checkpoints["model"]
        lora, base = load_model(source), AutoModelForCausalLM.from_pretrained(checkpoints["model"])
        ids = torch.tensor([[1, 2, 3, 4]])
        assert not torch.allclose(lora(ids).logits, base(ids).logits)  # the adapter is applied
    rc, _ = _run_eval(checkpoints["lora"], problems_file, tmp_path / "lora.jsonl", "--max-new-tokens", "8")
    assert rc == 0 and len((tmp_path / "lora.jsonl").read_text().splitlines()) == 6

    bare = tmp_path / "run" / "global_step_final"  # as a numbered checkpoint: no huggingface/ folder
    shutil.copytree(checkpoints["full"], bare, ignore=shutil.ignore_patterns("huggingface"))
    argv = ("--max-new-tokens", "12", "--limit", "3")
    _run_eval(checkpoints["full"], problems_file, tmp_path / "hf.jsonl", *argv)
    rc, _ = _run_eval(bare, problems_file, tmp_path / "bare.jsonl", *argv)
    assert rc == 0 and (tmp_path / "bare.jsonl").read_text() == (tmp_path / "hf.jsonl").read_text()
    rc, _ = _run_eval(bare.parent, problems_file, tmp_path / "run.jsonl", *argv)  # a run folder: its newest
    assert rc == 0 and (tmp_path / "run.jsonl").read_text() == (tmp_path / "hf.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_export_is_evaluated_from_model_pt(checkpoints, tmp_path, capsys, damage):
    from contextlib import ExitStack

    from sftkit.evaluation.source import load_model, resolve

    ckpt = shutil.copytree(checkpoints["full"], tmp_path / "run" / "global_step_final")
    weights = ckpt / "huggingface" / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        with open(weights, "r+b") as fh:
            fh.truncate(weights.stat().st_size // 2)
    ids = torch.tensor([[1, 2, 3, 4]])
    intact = AutoModelForCausalLM.from_pretrained(checkpoints["full"] / "huggingface")
    for given in (ckpt, ckpt / "huggingface"):
        with ExitStack() as stack:
            model = load_model(resolve(str(given), stack), device="cpu")
            torch.testing.assert_close(model(ids).logits, intact(ids).logits)
        printed = capsys.readouterr().out
        assert f"{ckpt / 'huggingface'} is damaged (model.safetensors is {damage}" in printed
        assert f"sftkit export {ckpt} --output {ckpt / 'huggingface'} --overwrite" in printed
