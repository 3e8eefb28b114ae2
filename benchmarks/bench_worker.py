"""One benchmark run in its own process (so peak RSS / peak GPU memory belong to that run alone).

    python benchmarks/bench_worker.py {sftkit,trl,loss} SPEC.json OUT.json

SPEC: model (folder), data (JSONL with prompt/generated_solution), steps, batch, max_length, lr, seed, work (folder),
and the variant: `sftkit_overrides` (recipe keys) or `trl_config` (SFTConfig fields: group_by_length, packing).
- `sftkit`: `sftkit.train.run(plan_run(recipes/tiny.yaml + overrides))`, the tiny recipe's settings with the
  benchmark's batch (global = micro: no accumulation, as TRL's default), steps, no checkpoints/validation in between.
- `trl`: plain `trl.SFTTrainer` on a conversational prompt-completion dataset (`prompt=[user msg]`,
  `completion=[assistant msg]`), SFTConfig defaults except batch, steps, lr, logging_steps=1, max_length, seed,
  report_to none, gradient_checkpointing=False (as sftkit), and on CPU bf16=False + use_cpu.
- `loss`: both pipelines' labels on the same first `batch` examples, losses with the same initial model.
Both training runs are measured by the same probe: a forward pre-hook counting real (attention-mask) tokens and
computed tokens, and a timestamp at every optimizer step end; tokens/s is taken over the steps after the first.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parents[1]


class Probe(TrainerCallback):
    """Counts what the model computes in training forwards; marks (time, real, padded, sum len^2, trained) per
    step. Real tokens: those of the examples as the model sees them (a shared prompt counts once); trained: labels
    other than -100 after the shift (the loss's denominator, the same for every pipeline but TRL's extra newline)."""

    def __init__(self):
        self.real = self.padded = self.trained = 0
        self.squares = 0.0
        self.marks: list[tuple[float, int, int, float, int]] = []
        self.peak: float = 0.0

    def hook(self, module, args, kwargs):
        if not (module.training and torch.is_grad_enabled()):
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if mask is not None:
            lengths = mask.sum(dim=1).tolist()
        else:  # padding-free row: positions restart at 0 for each sequence
            starts = (kwargs["position_ids"][0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
            lengths = [b - a for a, b in zip(starts[:-1], starts[1:])]
        labels = kwargs.get("shift_labels")
        labels = kwargs["labels"][:, 1:] if labels is None else labels
        self.real += int(sum(lengths))
        self.trained += int((labels != -100).sum())
        self.padded += ids.numel()
        self.squares += float(sum(n * n for n in lengths))

    def mark(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), self.real, self.padded, self.squares, self.trained))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.register_forward_pre_hook(self.hook, with_kwargs=True)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.mark()

    def on_step_end(self, args, state, control, **kwargs):
        self.mark()

    def on_train_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            self.peak = torch.cuda.max_memory_allocated() / 2**30
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux

    def result(self, from_start: bool = False) -> dict:
        """Rates over the steps after the first, or (`from_start`: a whole epoch) over all of them."""
        first = 0 if from_start else 1
        (t1, r1, p1, s1, c1), (tn, rn, pn, sn, cn) = self.marks[first], self.marks[-1]
        return {
            "steps": len(self.marks) - 1,
            "tokens_per_second": (rn - r1) / (tn - t1),
            "trained_tokens_per_second": (cn - c1) / (tn - t1),
            "computed_per_trained": (pn - p1) / max(cn - c1, 1),
            "seconds_per_step": (tn - t1) / (len(self.marks) - 1 - first),
            "padding_fraction": 1 - (rn - r1) / (pn - p1),
            "real_tokens": rn,
            "mean_attended": (sn - s1) / max(rn - r1, 1),  # token-weighted mean sequence length
            "peak_memory": self.peak,
        }


def read_pairs(path: str) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [(r["prompt"], r["generated_solution"]) for r in rows]


def run_sftkit(spec: dict, probe: Probe):
    from sftkit.config.plan import plan_run
    from sftkit.train import run

    overrides = {
        "model_name_or_path": spec["model"],
        "train_files": f"[{spec['data']}]",
        "val_files": "[]",
        "output_dir": f"{spec['work']}/sftkit",
        "max_length": spec["max_length"],
        "per_device_train_batch_size": spec["batch"],
        "train_batch_size": spec["batch"],
        "max_steps": spec["steps"],
        "learning_rate": spec["lr"],
        "seed": spec["seed"],
        "save_steps": 0,
        "eval_steps": 0,
        "logger": "console",
        **spec.get("sftkit_overrides", {}),
    }
    plan = plan_run(str(ROOT / "recipes" / "tiny.yaml"), [f"{k}={v}" for k, v in overrides.items()], environ={})
    return run(plan, callbacks=[probe])


def trl_dataset(pairs):
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]}
            for p, r in pairs
        ]
    )


def trl_trainer(spec: dict, pairs, steps: int, callbacks=()):
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    gpu = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=f"{spec['work']}/trl",
        per_device_train_batch_size=spec["batch"],
        max_steps=steps,
        learning_rate=spec["lr"],
        logging_steps=1,
        max_length=spec["max_length"],
        seed=spec["seed"],
        report_to="none",
        gradient_checkpointing=False,
        bf16=gpu,
        use_cpu=not gpu,
        disable_tqdm=True,
        **spec.get("trl_config", {}),
    )
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    return SFTTrainer(
        model=spec["model"],
        args=config,
        train_dataset=trl_dataset(pairs),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def run_trl(spec: dict, probe: Probe):
    trainer = trl_trainer(spec, read_pairs(spec["data"]), spec["steps"], [probe])
    trainer.train()
    return trainer


def per_token_losses(model, examples) -> list[torch.Tensor]:
    """Cross-entropy of every trained token of each example (unreduced), one forward per example."""
    out = []
    with torch.no_grad():
        for ids, labels in examples:
            logits = model(input_ids=torch.tensor([ids], device=model.device), use_cache=False).logits[0, :-1]
            target = torch.tensor(labels[1:], device=model.device)
            keep = target != -100
            out.append(torch.nn.functional.cross_entropy(logits[keep].float(), target[keep], reduction="none").cpu())
    return out


def loss_check(spec: dict) -> dict:
    """The first `batch` examples through each pipeline's labels, losses from the same initial weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder

    tok = AutoTokenizer.from_pretrained(spec["model"])
    split = build_dataset([spec["data"]], Encoder(tok), "prompt", "generated_solution", spec["max_length"], "right")
    ds = split.dataset
    ours = [(ds[i]["input_ids"], ds[i]["labels"]) for i in range(spec["batch"])]
    trl_ds = trl_trainer(spec, read_pairs(spec["data"])[: spec["batch"]], 1).train_dataset
    theirs = [(trl_ds[i]["input_ids"], trl_ds[i]["labels"]) for i in range(spec["batch"])]
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    a, b = per_token_losses(model, ours), per_token_losses(model, theirs)
    shared, extra = [], []
    for (ids_a, lab_a), (ids_b, lab_b), la, lb in zip(ours, theirs, a, b):
        n = len(la)  # TRL's sequence = ours + what it trains after the end-of-turn; same prefix, same logits
        assert ids_b[: len(ids_a)] == ids_a and lab_b[: len(lab_a)] == lab_a, "pipelines frame the prompt differently"
        shared.append((la - lb[:n]).abs().max().item())
        extra += [ids_b[i] for i in range(len(ids_a), len(ids_b)) if lab_b[i] != -100]
    count_a, count_b = sum(len(x) for x in a), sum(len(x) for x in b)
    return {
        "sftkit_loss": torch.cat(a).mean().item(),
        "trl_loss": torch.cat(b).mean().item(),
        "sftkit_trained_tokens": count_a,
        "trl_trained_tokens": count_b,
        "trl_extra_tokens": sorted({tok.decode([t]) for t in extra}),
        "max_abs_diff_shared_tokens": max(shared),
    }


def main(kind: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.manual_seed(spec["seed"])
    if kind == "loss":
        result = loss_check(spec)
    else:
        probe = Probe()
        trainer = (run_sftkit if kind == "sftkit" else run_trl)(spec, probe)
        result = probe.result(spec.get("from_start", False))
        result["n_params"] = sum(p.numel() for p in trainer.model.parameters())
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
