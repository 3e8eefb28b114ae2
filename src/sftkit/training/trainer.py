"""`SftkitTrainer`: TRL's SFTTrainer driven by the run plan, with sftkit's batching, metrics and checkpoints.

Kept from TRL/transformers: the training loop (optimizer, scheduler, clipping, logging, callbacks, exact-resume
data skipping), TRL's collator and fused loss (mean over the trained tokens of the optimizer step, across
micro-batches and ranks, via `num_items_in_batch`).

Replaced, each for a reason given where it is done:
- the data loaders (`get_train_dataloader`, `get_eval_dataloader`; public): one step batch per optimizer step and
  rank, sharded over the data-parallel ranks only, no repeated examples (loader.py);
- gradient accumulation (`get_batch_samples`, `training_step`; public): a step batch is cut into micro-batches
  here, a fixed number of examples or by a token budget, the same number on every rank (batching.py);
- the validation loop (`evaluation_loop`; public): the token mean over the whole validation set;
- checkpoints (`_save_checkpoint`, `_load_from_checkpoint`, `_load_optimizer_and_scheduler`, `_load_rng_state`:
  private hooks of transformers' save and resume, pinned by tests/test_upstream_trainer.py): our `global_step_N/`
  layout instead of `checkpoint-N/`. When to save is decided by a callback (callbacks.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import time
from pathlib import Path

import torch
from trl import SFTTrainer

from sftkit import dist
from sftkit.checkpoint import layout, state
from sftkit.data.labels import IGNORE
from sftkit.training import batching, loader, nonfinite, sharding, shared_prompts
from sftkit.training.metrics import StepCounter, flops_per_token, peak_flops
from sftkit.training.preempt import StopRequest


class SftkitTrainer(SFTTrainer):
    def __init__(
        self, *args, plan, train_lengths, data_identity: dict, sequence_parallel=None, accuracy=None,
        prompt_groups=None, **kwargs
    ):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.train_lengths = train_lengths  # numpy array: example lengths of the training set
        self.data_identity = data_identity  # fingerprint of the training examples (recorded in train_state.pt)
        self.sp = sequence_parallel  # ulysses.Group or None
        self.accuracy = accuracy  # accuracy.AccuracyProbe or None (eval_accuracy_samples)
        self.filler = loader.Examples(self.train_dataset).filler
        self.counter = StepCounter()
        self.peak_flops = peak_flops()
        self.run_start = None  # (time, global step) when this run's training began: for the ETA
        self.preempted = False
        self.stop = StopRequest()  # SIGTERM/SIGUSR1/SIGINT/stop file (preempt.py)
        self.loss_finite = True  # this rank's loss of the current step (nonfinite.py)
        self.skipped_at: list[int] = []  # the optimizer steps skipped with nonfinite_step=skip
        self.nonfinite_loss_at: list[int] = []  # those among them whose loss was not finite
        self.logged_step = 0  # the step of the last training-loss log
        # data.share_prompts where it applies: a prompt id per example when some prompt repeats (shared_prompts.py)
        self.prompt_groups = prompt_groups
        self.share_prompts = prompt_groups is not None
        self.sharding = sharding.running(self.accelerator)  # what Accelerate really runs (FSDP2, DDP, none)

    @property
    def skipped_steps(self) -> int:
        return len(self.skipped_at)

    @property
    def dp_rank(self) -> int:
        return self.args.process_index // self.plan.sp_size

    # ---- data ----------------------------------------------------------------------------------------------
    def get_train_dataloader(self):
        return loader.train_loader(self.train_dataset, self.train_lengths, self.plan, self.dp_rank, self.prompt_groups)

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        return loader.eval_loader(
            dataset, self.args.per_device_eval_batch_size, self.dp_rank, self.plan.dp_size, self.collate
        )

    def collate(self, examples: list[dict]) -> dict:
        """Examples -> model inputs (TRL's collator: padded, or one padding-free row), then this rank's slice of
        the sequence under sequence parallelism."""
        batch = self.data_collator(examples or [self.filler])
        return self.sp.slice(batch) if self.sp is not None else batch

    def collate_train(self, examples: list[dict]) -> dict:
        """A training micro-batch: with data.share_prompts, one holding a repeated prompt is one row of shared
        prompts + continuations; any other takes the plain path."""
        if self.share_prompts and shared_prompts.repeats(examples):
            return shared_prompts.pack(examples or [self.filler])
        return self.collate(examples)

    def sequence_parallel(self):
        """Forwards inside run sequence-parallel (attention across the group); others, e.g. generation, do not."""
        return self.sp.running() if self.sp is not None else contextlib.nullcontext()

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """One step batch (gradient_accumulation_steps=1 in the Trainer's view) and the trained tokens of the whole
        step on all ranks — each sequence-parallel group counted once — as the loss's denominator."""
        batches = list(itertools.islice(epoch_iterator, num_batches))
        local = torch.tensor(float(sum(b.trained_tokens for b in batches)), device=device)
        if dist.distributed():
            torch.distributed.all_reduce(local)
        return batches, local / self.plan.sp_size

    def micro_batches(self, step: loader.StepBatch) -> list[list[dict]]:
        """This rank's examples cut into micro-batches, as many on every rank (FSDP and DDP collectives pair up)."""
        lengths = [len(ex["input_ids"]) for ex in step.examples]
        plan = self.plan
        groups = [shared_prompts.prompt_length(ex["labels"]) for ex in step.examples] if self.share_prompts else None
        groups = groups and [hash(tuple(ex["input_ids"][:n])) for ex, n in zip(step.examples, groups)]
        # the budget counts the plain path's cost, an upper bound of a packed row's length (a part may take either)
        parts = batching.micro_batches(lengths, plan.micro_batch, plan.token_budget, plan.padding_free, groups)
        count = torch.tensor(len(parts), device=self.args.device)
        if dist.distributed():
            torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MAX)
        parts = batching.equalize(parts, int(count.item()))
        return [[step.examples[i] for i in part] for part in parts]

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not isinstance(inputs, loader.StepBatch):
            return super().training_step(model, inputs, num_items_in_batch)
        if self.run_start is None:
            self.run_start = (time.perf_counter(), self.state.global_step)
        parts = self.micro_batches(inputs)
        self.count_tokens(parts)
        total = None
        for i, part in enumerate(parts):
            # Gradients are synchronised once per step, with the last micro-batch (transformers does the same for
            # its own accumulation; here the micro-batches are ours).
            sync = contextlib.nullcontext() if i == len(parts) - 1 else self.accelerator.no_sync(model)
            with sync, self.sequence_parallel():
                loss = super().training_step(model, self.collate_train(part), num_items_in_batch)
            total = loss if total is None else total + loss
        self.loss_finite = bool(torch.isfinite(total).all())
        return total

    def _get_grad_norm(self, model, grad_norm=None):
        # transformers computes the step's gradient norm here, after the backward passes and before the optimizer
        # step (pinned in tests/test_upstream_trainer.py): the one place where a non-finite step can still be stopped
        # or skipped before it reaches the weights (nonfinite.py).
        grad_norm = super()._get_grad_norm(model, grad_norm)
        nonfinite.check_step(self, model, self.loss_finite, grad_norm)
        return grad_norm

    # ---- metrics -------------------------------------------------------------------------------------------
    def count_tokens(self, parts: list[list[dict]]) -> None:
        """[real tokens, computed tokens, sum of squared lengths] of a step on this rank (one rank per
        sequence-parallel group counts: the others hold the same examples)."""
        if self.sp is not None and self.sp.rank != 0:
            return
        lengths = [[len(ex["input_ids"]) for ex in part if any(x != IGNORE for x in ex["labels"])] for part in parts]
        real = sum(map(sum, lengths))
        filler = [len(self.filler["input_ids"])]
        computed = 0
        for part, trained in zip(parts, lengths):
            if self.share_prompts and shared_prompts.repeats(part):  # a packed row: no padding (a shared prompt
                computed += sum(trained)  # is counted per solution, as in `real`)
            else:
                computed += batching.cost([len(ex["input_ids"]) for ex in part] or filler, self.plan.padding_free)
        squares = sum(n * n for part in lengths for n in part)
        counts = torch.tensor([real, computed, squares], dtype=torch.float64)
        self.counter.add(counts)

    def _reduced_counts(self) -> tuple[float, float, float]:
        """Token counts since the last log, all ranks: one collective per logging step."""
        t = self.counter.totals
        t = torch.zeros(3, dtype=torch.float64) if t is None else t
        t = t.to(self.args.device)
        if dist.distributed():
            torch.distributed.all_reduce(t)
        return tuple(t.tolist())

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self.model.training:
            logs.update(self.speed_metrics())
            nonfinite.window_loss(self, logs, self.logged_step)
            self.logged_step = self.state.global_step
        super().log(logs, start_time)

    def speed_metrics(self) -> dict:
        real, padded, attended = self._reduced_counts()
        elapsed = max(time.perf_counter() - (self.counter.start or time.perf_counter()), 1e-9)
        self.counter.reset()
        out = {"tokens_per_second": real / elapsed, "padding_fraction": 1 - real / padded if padded else 0.0}
        if self.skipped_steps:
            out["skipped_steps"] = self.skipped_steps
        start_time, start_step = self.run_start or (time.perf_counter() - elapsed, self.state.global_step - 1)
        done = max(self.state.global_step - start_step, 1)
        remaining = self.state.max_steps - self.state.global_step
        out["eta_seconds"] = (time.perf_counter() - start_time) / done * remaining
        if torch.cuda.is_available():
            out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            if self.peak_flops and real and self.plan.bf16:  # peak_flops is the bf16 peak
                out["mfu"] = self.mfu(real, attended, elapsed)
        return out

    def mfu(self, real: float, attended: float, elapsed: float) -> float:
        cfg = self.model.config
        params = list(self.model.parameters())
        n_params = sum(p.numel() for p in params)
        n_trainable = sum(p.numel() for p in params if p.requires_grad)
        per_token = flops_per_token(n_params, cfg.num_hidden_layers, cfg.hidden_size, attended / real, n_trainable)
        return per_token * real / elapsed / (self.peak_flops * self.plan.world_size)

    # ---- validation ------------------------------------------------------------------------------------------
    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """Validation loss = mean over every trained token of the validation set (all ranks, each example once),
        as the training loss is per step. (transformers' loop averages per-batch means weighted by batch size: not
        the same number, and not the same for padded and padding-free batches.) TRL's fused loss does the work."""
        from transformers.trainer_utils import EvalLoopOutput

        model = self.model
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=self.args.device)
        samples = 0
        scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
        with torch.no_grad(), self.sequence_parallel():
            for inputs in dataloader:
                inputs = self._prepare_inputs(inputs)
                labels = inputs["shift_labels"] if "shift_labels" in inputs else inputs["labels"][..., 1:]
                n = (labels != IGNORE).sum()
                loss = self.compute_loss(model, inputs, num_items_in_batch=n)  # = sum / n x scale (TRL)
                totals += torch.stack([loss.detach().double() * n / scale, n.double()])
                samples += inputs["input_ids"].shape[0]
        if dist.distributed():
            torch.distributed.all_reduce(totals)
        metrics = {f"{metric_key_prefix}_loss": (totals[0] / totals[1].clamp(min=1)).item()}
        if self.accuracy is not None:
            metrics[f"{metric_key_prefix}_accuracy"] = self.accuracy(self)
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=samples)

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.counter.pause(time.perf_counter() - start)

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def save_checkpoint(self, name: str):
        """global_step_N / global_step_final (checkpoint/save.py); its time is not training time."""
        from sftkit.checkpoint.save import save_checkpoint

        start = time.perf_counter()
        try:
            return save_checkpoint(self, name)
        finally:
            self.counter.pause(time.perf_counter() - start)

    def _save_checkpoint(self, model, trial=None) -> None:
        # transformers calls this when a callback asked for a save (callbacks.RunSchedule), after the step's logging
        # and validation, then fires `on_save`: our global_step_N layout instead of its checkpoint-N/ folder.
        self.save_checkpoint(f"global_step_{self.state.global_step}")

    def state_json(self) -> str:
        return json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n"

    # transformers' resume calls these three with the checkpoint folder: they read our layout instead of
    # `checkpoint-N/` (pinned in tests/test_upstream_trainer.py).
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        state.load_model(model if model is not None else self.model, resume_from_checkpoint, self.plan.lora)

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint is None:
            return
        state.load_optimizer(self.model, self.optimizer, checkpoint)  # no-op for global_step_0
        sched = layout.read(Path(checkpoint) / layout.SCHED, "a scheduler state", weights_only=False)
        if sched and self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(sched)

    def _load_rng_state(self, checkpoint):
        if checkpoint is None:
            return
        states = layout.load_state(checkpoint)["rng_states"]
        # Same world size: each rank its own state. Another world size: rank r takes state r mod saved ranks
        # (dropout masks differ from the original run then; the data order does not depend on these states).
        state.set_rng_state(states[self.args.process_index % len(states)])
