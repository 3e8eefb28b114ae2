"""Silent failures found by a fresh-eyes review of this round's change; each test failed on the reviewed code."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from sftkit.data.dataset import build_dataset
from sftkit.data.labels import IGNORE, Encoded, Encoder
from sftkit.errors import SftkitError


def _build(files, tokenizer, cache):
    return build_dataset(files, Encoder(tokenizer), "prompt", "generated_solution", 256, "right",
                         cache_dir=str(cache), verbose=False)  # fmt: skip


# 1. Loss normalisation: average_tokens_across_devices=false divided the loss and gradients by the world size
def test_average_tokens_across_devices_false_is_refused():
    from sftkit.config.plan import plan_run

    with pytest.raises(SftkitError, match="average_tokens_across_devices=false .* number of GPUs"):
        plan_run(None, ["model_name_or_path=m", "train_files=[t.parquet]", "average_tokens_across_devices=false"],
                 environ={})  # fmt: skip


# 2. eval -> filter -> train: a generation cut at max_new_tokens is kept and trained with an end-of-turn
def test_generation_cut_at_max_new_tokens_is_not_kept_as_a_correct_solution(assets, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    from sftkit.data.rows import RowReport
    from sftkit.evaluation.command import _rows, write_jsonl
    from sftkit.evaluation.generate import generate
    from sftkit.evaluation.grade import grade_texts
    from sftkit.evaluation.problems import Problem, Problems
    from sftkit.grading import filter as gfilter
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
    gfilter.main(["--solutions-file", str(tmp_path / "round.jsonl"), "--metadata-file", str(tmp_path / "meta.jsonl"),
                  "--save-correct", str(tmp_path / "correct.parquet"), "--workers", "1"])  # fmt: skip
    kept = pq.read_table(tmp_path / "correct.parquet").to_pylist()
    trained = [tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])
               for ex in (Encoder(tok).encode(r["prompt"], r["generated_solution"]) for r in kept)]  # fmt: skip
    assert kept == [], f"a cut generation is kept and trained as {trained[0][-40:]!r}"


# 3. Resume: examples built with another chat template / tokenizer / labels version are accepted
def test_resume_refuses_examples_built_another_way(tmp_path):
    from sftkit.checkpoint import resume

    saved = {"config": {}, "data": {"files_digest": "f", "rows": 540, "examples": 540, "key": "examples-key-A"}}
    now = {"files_digest": "f", "rows": 540, "examples": 540, "key": "examples-key-B"}  # same files, other template
    with pytest.raises(SftkitError):
        resume.check_compatible(tmp_path, saved, {}, now, ignore=False)


# 4. Cache key: tokenizer_config.json's split_special_tokens changes every example but not the key
def test_cache_key_changes_with_split_special_tokens(assets, tmp_path):
    from sftkit.training.modeling import load_tokenizer

    model = tmp_path / "model"
    shutil.copytree(assets["model"], model)
    first = _build([str(assets["val"])], load_tokenizer(str(model)), tmp_path / "cache")
    config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**config, "split_special_tokens": True}))
    tok = load_tokenizer(str(model))
    fresh = Encoder(tok).encode("What is 2 + 3?", "It is 5.")
    before = Encoder(load_tokenizer(str(assets["model"]))).encode("What is 2 + 3?", "It is 5.")
    assert fresh != before  # the setting changes the examples (the prompt's <|im_start|> becomes plain text)
    second = _build([str(assets["val"])], tok, tmp_path / "cache")
    assert second.key != first.key and second.seconds is not None  # built again, not the old examples


# 5. Cache: a folder written by the earlier cache layout (same key) is taken as complete with 0 examples
def test_cache_folder_of_the_earlier_layout_is_rebuilt_not_trusted(assets, tmp_path):
    from sftkit.training.modeling import load_tokenizer

    tok = load_tokenizer(str(assets["model"]))
    split = _build([str(assets["train"])], tok, tmp_path / "cache")
    report = json.loads((split.path / "report.json").read_text())
    report.pop("examples_kept")  # what 8e184ce wrote: dataset/ + report.json without examples_kept
    (split.path / "dataset").mkdir()
    (split.path / "examples.arrow").rename(split.path / "dataset" / "data-00000-of-00001.arrow")
    (split.path / "report.json").write_text(json.dumps(report))
    again = _build([str(assets["train"])], tok, tmp_path / "cache")  # raises "every example was dropped ..."
    assert len(again) == len(split)


# 6. Inputs: the same file named twice (relative and absolute) is read twice
def test_the_same_file_named_twice_is_read_once(assets, tmp_path, monkeypatch):
    from sftkit.training.modeling import load_tokenizer

    tok = load_tokenizer(str(assets["model"]))
    monkeypatch.chdir(assets["train"].parent)
    once = _build(["train.parquet"], tok, tmp_path / "cache")
    twice = _build(["train.parquet", str(assets["train"].resolve())], tok, tmp_path / "cache")
    assert len(twice) == len(once)  # 1080 vs 540: every example trained twice per epoch, no message


# 7. Grading: a scale word is taken for a unit ("4 hundred" graded equal to 4)
def test_scale_words_are_not_units():
    from sftkit.grading.judge import CORRECT, judge

    assert judge("4", "4 hundred") != CORRECT
    assert judge("2", "2 or more") != CORRECT


# 8. Labels: a template whose end-of-turn is plain text, with a BOS-adding tokenizer: end_ids start with BOS
def test_plain_text_end_of_turn_with_a_bos_adding_tokenizer(real_llama3):
    from real_tokenizers import llama3_style

    tok = llama3_style()
    tok.chat_template = (
        "{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] + '\\n### end\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
    )
    enc = Encoder(tok)
    assert tok.bos_token_id not in enc.end_ids
    assert isinstance(enc.encode("What is 2+2?", "It is 4."), Encoded)
