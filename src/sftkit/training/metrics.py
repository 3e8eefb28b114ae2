"""What a run reports (docs/contracts.md §6): console line + progress bar, `metrics.jsonl`, `loss.png`; MFU and peak
memory.

Keys of a training row in metrics.jsonl: step, epoch, loss, learning_rate, grad_norm, tokens_per_second,
padding_fraction, eta_seconds (+ mfu, peak_memory_gib on GPU). Validation rows: step, val_loss (+ val_accuracy with
eval_accuracy_samples).
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

from sftkit import dist

TRAIN_KEYS = (
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "padding_fraction",
    "eta_seconds",
    "mfu",
    "peak_memory_gib",
    "skipped_steps",  # only with nonfinite_step=skip, once a step was skipped
)

# Dense bf16 peak FLOP/s per GPU (no sparsity), matched against torch.cuda.get_device_name() in this order
# (more specific names first: an "H100 PCIe" is not an "H100 SXM", an "L40S" is not an "L4").
PEAK_FLOPS = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("A10G", 70e12),
    ("L4", 121e12),
    ("4090", 165e12),
]


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_FLOPS if k in name), None)


def flops_per_token(
    n_params: int, n_layers: int, hidden: int, seq_len: float, n_trainable: int | None = None
) -> float:
    """Training FLOPs per token (PaLM appendix B): the matmuls cost 2N forward, 2N for the activation gradients and
    2N for the weight gradients of the *trained* weights (all of them in full fine-tuning: 6N; LoRA: ~4N), plus
    12·L·H·S for attention scores and values, S the mean sequence length attended over."""
    trainable = n_params if n_trainable is None else n_trainable
    return 4 * n_params + 2 * trainable + 12 * n_layers * hidden * seq_len


class StepCounter:
    """Tokens since the last log, as one tensor [real, computed, sum of squared lengths]."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.totals = None
        self.start = None  # set by the first micro-batch: set-up time is not training time

    def pause(self, seconds: float):
        """Time spent outside training (validation, checkpoints) does not count against tokens/s."""
        if self.start is not None:
            self.start += seconds

    def add(self, counts):
        if self.start is None:
            self.start = time.perf_counter()
        self.totals = counts if self.totals is None else self.totals + counts


def fmt(key: str, value) -> str:
    """One `key=value` of the console line, in the unit a person reads (the JSON keeps raw numbers)."""
    if not isinstance(value, float | int):
        return f"{key}={value}"
    if key == "learning_rate":
        return f"lr={value:.3e}"
    if key == "tokens_per_second":
        return f"tokens/s={value:,.0f}"
    if key == "padding_fraction":
        return f"padding={value:.1%}"
    if key == "mfu":
        return f"mfu={value:.1%}"
    if key == "peak_memory_gib":
        return f"peak_mem={value:.1f}GiB"
    if key == "eta_seconds":
        minutes, seconds = divmod(int(value), 60)
        return f"eta={minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
    if key == "epoch":
        return f"epoch={value:.2f}"
    return f"{key}={value:.4g}"


def finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


class MetricsCallback(TrainerCallback):
    """Console lines under a progress bar, metrics.jsonl, and loss.png at the end. Rank 0 only."""

    def __init__(self, output_dir: str, progress_bar: bool = True):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.bar = None
        self.progress_bar = progress_bar  # disable_tqdm=true: console lines only

    def on_train_begin(self, args, state, control, **kwargs):
        if not dist.is_main():
            return
        import sys

        from tqdm.auto import tqdm

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.truncate_after(state.global_step)
        # in a log file a bar leaves `\r` fragments: plain lines only there
        if self.progress_bar and sys.stderr.isatty():
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", dynamic_ncols=True)

    def truncate_after(self, step: int) -> None:
        """A fresh run starts a fresh file; a resumed one drops the rows logged after its checkpoint (a crashed run
        may have logged steps it never saved), so each step appears once."""
        if not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = [line for line in rows if step and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not dist.is_main() or not logs:
            return
        if "eval_loss" in logs:
            row = {"step": state.global_step, "val_loss": logs["eval_loss"]}
            line = f"step {state.global_step}/{state.max_steps} val_loss={logs['eval_loss']:.4f}"
            if "eval_accuracy" in logs:
                row["val_accuracy"] = logs["eval_accuracy"]
                line += f" val_accuracy={logs['eval_accuracy']:.1%}"
        elif "loss" in logs:
            row = {"step": state.global_step, **{k: logs[k] for k in TRAIN_KEYS[1:] if k in logs}}
            parts = [fmt(k, v) for k, v in row.items() if k not in ("step",)]
            line = f"step {state.global_step}/{state.max_steps} " + " ".join(parts)
        else:
            return
        with open(self.path, "a") as fh:  # NaN/inf are not JSON: written as null (the console line shows them)
            fh.write(json.dumps({k: finite_or_none(v) for k, v in row.items()}, allow_nan=False) + "\n")
        (self.bar.write if self.bar is not None else functools.partial(print, flush=True))(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def plot_loss(metrics_path: str | Path, out_path: str | Path) -> Path | None:
    """loss.png: train and validation loss against step, from metrics.jsonl."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]  # null: not finite, or skipped
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    accuracy = [(r["step"], r["val_accuracy"]) for r in rows if "val_accuracy" in r]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(12 if accuracy else 7, 4), squeeze=False)
    ax = axes[0][0]
    if accuracy:  # second panel: greedy accuracy on validation problems (eval_accuracy_samples)
        acc_ax = axes[0][1]
        acc_ax.plot(*zip(*accuracy), "o-", color="tab:green", label="val accuracy")
        acc_ax.set_xlabel("step")
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_ylim(0, 1)
        acc_ax.legend()
        acc_ax.grid(alpha=0.3)
    if train:
        ax.plot(*zip(*train), label="train loss")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return Path(out_path)
