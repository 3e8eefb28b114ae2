"""Training end to end on the tiny model (CPU, fp32): full fine-tuning, LoRA, metrics, loss normalisation."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from _train_utils import ROOT, model_pt, overrides, sftkit_process, train

pytestmark = pytest.mark.slow


def test_full_finetuning_layout_metrics_and_export(assets, tmp_path):
    out = tmp_path / "run"
    trainer = train(assets, out, max_steps=8, save_steps=4, per_device_eval_batch_size=1)
    names = sorted(p.name for p in out.iterdir())
    assert {"global_step_4", "global_step_final", "latest", "metrics.jsonl", "loss.png"} <= set(names)
    assert "global_step_8" not in names  # the last step is written once, as global_step_final
    assert (out / "latest").read_text().strip() == "global_step_final"
    final = out / "global_step_final"
    for f in (
        "model.pt",
        "optimizer.pt",
        "scheduler.pt",
        "train_state.pt",
        "huggingface/config.json",
        "huggingface/model.safetensors",
        "huggingface/tokenizer.json",
        "huggingface/generation_config.json",
    ):
        assert (final / f).is_file(), f
    state = torch.load(final / "train_state.pt", weights_only=False)
    assert state["global_step"] == 8 and state["config"]["global_batch"] == 8 and state["sftkit_version"]
    assert len(state["rng_states"]) == 1

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 9))
    for key in (
        "step",
        "epoch",
        "loss",
        "learning_rate",
        "grad_norm",
        "tokens_per_second",
        "padding_fraction",
        "eta_seconds",
    ):
        assert key in train_rows[0], key
    assert 0 <= train_rows[0]["padding_fraction"] < 1 and train_rows[0]["tokens_per_second"] > 0
    assert [r["step"] for r in rows if "val_loss" in r] == [3, 6, 8]  # every eval_steps=3 and at the end
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]  # it learns
    # val_loss = mean over every trained token of the validation set, computed here example by example. (With
    # eval batches of 1, transformers' own loop would give the mean of the per-example means: distinguishable.)
    sums, counts = [], []
    trainer.model.eval()
    with torch.no_grad():
        for ex in trainer.eval_dataset:
            ids, labels = torch.tensor([ex["input_ids"]]), torch.tensor([ex["labels"]])
            counts.append(int((labels[:, 1:] != -100).sum()))
            sums.append(float(trainer.model(input_ids=ids, labels=labels, use_cache=False).loss) * counts[-1])
    token_mean = sum(sums) / sum(counts)
    example_mean = sum(s / n for s, n in zip(sums, counts)) / len(sums)
    assert abs(token_mean - example_mean) > 1e-5 * token_mean
    assert rows[-1]["val_loss"] == pytest.approx(token_mean, rel=1e-6)
    # Base weights changed; the exported folder loads and gives the in-memory model's logits.
    before = AutoModelForCausalLM.from_pretrained(assets["model"]).state_dict()
    after = model_pt(final)
    assert not torch.equal(before["model.layers.0.mlp.up_proj.weight"], after["model.layers.0.mlp.up_proj.weight"])
    exported = AutoModelForCausalLM.from_pretrained(final / "huggingface").eval()
    ids = torch.tensor([[1, 5, 9, 42, 7, 300, 2]])
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, trainer.model(ids).logits, atol=1e-5, rtol=0)
    generated = exported.generate(ids, max_new_tokens=3, do_sample=False)
    assert ids.shape[1] < generated.shape[1] <= ids.shape[1] + 3


def test_lora_trains_only_adapters_and_merged_export(assets, tmp_path):
    out = tmp_path / "lora"
    trainer = train(
        assets, out, max_steps=4, save_steps=0, lora_rank=4, lora_alpha=8, merge_lora="true", learning_rate=1e-2
    )
    saved = model_pt(out / "global_step_final")
    assert saved and all(".lora_" in k for k in saved)
    assert any(not torch.all(v == 0) for k, v in saved.items() if "lora_B" in k)  # B starts at zero: it moved
    base = AutoModelForCausalLM.from_pretrained(assets["model"]).state_dict()
    for name, param in trainer.model.named_parameters():
        if ".lora_" in name:
            assert param.requires_grad
            continue
        assert not param.requires_grad
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        torch.testing.assert_close(param.detach(), base[key], atol=0, rtol=0)
    hf = out / "global_step_final" / "huggingface"
    assert (hf / "adapter_config.json").is_file() and (hf / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(hf / "merged").eval()
    ids = torch.tensor([[1, 5, 9, 42, 7, 300, 2]])
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, trainer.model(ids).logits, atol=1e-5, rtol=1e-5)


class GradNorms(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.logs.append(logs)


def test_loss_is_mean_over_trained_tokens_whatever_the_micro_batch(assets, tmp_path):
    """1 micro-batch of 8 vs 4 accumulated micro-batches of 2: same loss, gradient and weights (fp32)."""
    runs = {}
    for name, micro in (("1x8", 8), ("4x2", 2)):
        cb = GradNorms()
        common = dict(
            max_steps=2,
            save_steps=0,
            eval_steps=0,
            val_files="[]",
            per_device_train_batch_size=micro,
            train_batch_size=8,
            train_sampling_strategy="sequential",
            optim="sgd",
            learning_rate=0.5,
            max_grad_norm=0,
            warmup_steps=0,
            lr_scheduler_type="constant",
        )
        trainer = train(assets, tmp_path / name, callbacks=[cb], **common)
        runs[name] = (cb.logs, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
    (logs_a, weights_a), (logs_b, weights_b) = runs["1x8"], runs["4x2"]
    for a, b in zip(logs_a, logs_b):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    for key in weights_a:
        torch.testing.assert_close(weights_a[key], weights_b[key], atol=1e-5, rtol=0)


def test_bundled_recipes_exist_for_every_make_target():
    names = {p.stem for p in (ROOT / "recipes").glob("*.yaml")}
    for base in ("tiny", "qwen0.5b", "qwen1.5b", "llama3b"):
        assert base in names and f"{base}-lora" in names


@pytest.mark.extended  # a whole run in a subprocess, 12 s: CI runs it in make test-extended
def test_log_files_get_plain_lines(assets, tmp_path):
    proc = sftkit_process("train", *overrides(assets, tmp_path / "o", max_steps=3, eval_steps=0, save_steps=0))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout and "\r" not in proc.stderr  # no progress-bar fragments
    assert "step 3/3" in proc.stdout
