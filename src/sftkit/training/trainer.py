"""`SftkitTrainer`: TRL's SFTTrainer with sftkit's metrics and checkpoint layout.

Kept from TRL/transformers: the training loop, loss (mean over the trained tokens of the whole optimizer step,
across micro-batches and ranks, via `num_items_in_batch`), collator, samplers, exact-resume data skipping.
Replaced: checkpoint save/load (transformers' `checkpoint-N/` layout -> our `global_step_N/`, gathered to rank 0),
and the logged numbers (tokens/s of real tokens, padding fraction, ETA, MFU, peak memory).
"""

from __future__ import annotations

import time

import torch
from trl import SFTTrainer

from sftkit import __version__
from sftkit.checkpoint import layout as checkpoint
from sftkit.training.batching import GroupedSampler, TokenBudgetBatchSampler
from sftkit.training.metrics import StepCounter, flops_per_token, peak_flops


def batch_counts(inputs: dict) -> torch.Tensor:
    """[real tokens, computed tokens, sequences, sum of squared sequence lengths] of one micro-batch, as a tensor
    on the batch's device (no sync)."""
    ids = inputs["input_ids"]
    if "attention_mask" in inputs:
        lengths = inputs["attention_mask"].sum(dim=1).double()
    else:  # padding-free: one row of concatenated sequences; TRL's collator gives their boundaries
        lengths = inputs["cu_seq_lens_q"].diff().double()
    computed = torch.tensor(float(ids.numel()), dtype=torch.float64, device=ids.device)
    count = torch.tensor(float(lengths.numel()), dtype=torch.float64, device=ids.device)
    return torch.stack([lengths.sum(), computed, count, (lengths**2).sum()])


class SftkitTrainer(SFTTrainer):
    def __init__(self, *args, resolved_config: dict, lora: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.resolved_config = resolved_config
        self.lora = lora
        self.counter = StepCounter()
        self.peak_flops = peak_flops()
        self.epoch_sampler = None  # ours, told the epoch directly (see _run_epoch)
        self.run_start = None  # (time, global step) when this run's training began: for the ETA

    # ---- batching (batching.py) ------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or "length" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        self.epoch_sampler = GroupedSampler(dataset["length"], self.resolved_config["global_batch"], self.args.seed)
        return self.epoch_sampler

    def get_train_dataloader(self):
        budget = self.resolved_config.get("max_token_len_per_gpu")
        if not self.resolved_config.get("use_dynamic_bsz") or not budget:
            return super().get_train_dataloader()
        from functools import partial

        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        sampler = TokenBudgetBatchSampler(
            self.train_dataset["length"], budget, self.args.seed, multiple_of=self.args.world_size
        )
        self.epoch_sampler = sampler
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0,
            worker_init_fn=partial(
                seed_worker, num_workers=self.args.dataloader_num_workers, rank=self.args.process_index
            ),
        )
        return self.accelerator.prepare(loader)

    # ---- metrics -------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.counter.add(batch_counts(inputs))
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _reduced_counts(self) -> tuple[float, float, float, float]:
        """(real tokens, computed tokens, sequences, sum of squared lengths) since the last log, all ranks.
        One device sync per logging step, none per micro-batch."""
        t = self.counter.totals
        t = t.to(self.args.device) if t is not None else torch.zeros(4, dtype=torch.float64, device=self.args.device)
        if checkpoint.distributed():
            torch.distributed.all_reduce(t)
        return tuple(t.tolist())

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self.model.training:
            logs.update(self.speed_metrics())
        super().log(logs, start_time)

    def speed_metrics(self) -> dict:
        real, padded, seqs, attended = self._reduced_counts()
        elapsed = max(time.perf_counter() - (self.counter.start or time.perf_counter()), 1e-9)
        self.counter.reset()
        out = {"tokens_per_second": real / elapsed, "padding_fraction": 1 - real / padded if padded else 0.0}
        start_time, start_step = self.run_start or (time.perf_counter() - elapsed, self.state.global_step - 1)
        done = max(self.state.global_step - start_step, 1)
        remaining = self.state.max_steps - self.state.global_step
        out["eta_seconds"] = (time.perf_counter() - start_time) / done * remaining
        if torch.cuda.is_available():
            out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            if self.peak_flops and real and self.args.bf16:  # peak_flops is the bf16 peak
                cfg = self.model.config
                mean_attended = attended / real  # token-weighted mean sequence length
                params = list(self.model.parameters())
                n_params = sum(p.numel() for p in params)
                n_trainable = sum(p.numel() for p in params if p.requires_grad)
                per_token = flops_per_token(
                    n_params, cfg.num_hidden_layers, cfg.hidden_size, mean_attended, n_trainable
                )
                world = torch.distributed.get_world_size() if checkpoint.distributed() else 1
                out["mfu"] = per_token * real / elapsed / (self.peak_flops * world)
        return out

    def _run_epoch(self, model, epoch, *args, **kwargs):
        # Accelerate's and transformers' set_epoch reach a sampler two wrappers down at most; on a resume with 2+
        # processes ours sits three down (SkipBatchSampler > BatchSamplerShard > BatchSampler): tell it directly,
        # or a resumed later epoch would replay epoch 0's order.
        if self.epoch_sampler is not None:
            self.epoch_sampler.set_epoch(epoch)
        if self.run_start is None:
            self.run_start = (time.perf_counter(), self.state.global_step)
        return super()._run_epoch(model, epoch, *args, **kwargs)

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """Validation loss = mean over every trained token of the validation set (all ranks), as the training loss
        is per step. (transformers' loop averages per-batch means weighted by batch size: not the same number,
        and not the same for padded and padding-free batches.) TRL's fused loss does the work."""
        from transformers.trainer_utils import EvalLoopOutput

        model = self.model
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=self.args.device)
        samples = 0
        scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
        with torch.no_grad():
            for inputs in dataloader:
                inputs = self._prepare_inputs(inputs)
                n = (inputs["labels"][..., 1:] != -100).sum()
                loss = self.compute_loss(model, inputs, num_items_in_batch=n)  # = sum / n x scale (TRL)
                totals += torch.stack([loss.detach().double() * n / scale, n.double()])
                samples += inputs["input_ids"].shape[0]
        if checkpoint.distributed():
            torch.distributed.all_reduce(totals)
        loss = (totals[0] / totals[1].clamp(min=1)).item()
        metrics = {f"{metric_key_prefix}_loss": loss}
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=samples)

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.counter.pause(time.perf_counter() - start)

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial=None) -> None:
        step, every = self.state.global_step, int(self.state.save_steps or 0)  # state: ratios already resolved
        if every and step % every and step >= self.state.max_steps:
            return  # transformers' extra save at the last step: global_step_final follows, no need to write twice
        self.save_sftkit_checkpoint(f"global_step_{step}")

    def save_sftkit_checkpoint(self, name: str, extra=None):
        """Every rank gathers; rank 0 writes `name` atomically (with `extra(tmp_dir)` inside it, e.g. the Hugging
        Face export), updates `latest`, prunes old ones."""
        start = time.perf_counter()
        try:
            return self._save_sftkit_checkpoint(name, extra)
        finally:
            self.counter.pause(time.perf_counter() - start)

    def _save_sftkit_checkpoint(self, name: str, extra=None):
        model_sd = checkpoint.trained_state_dict(self.model, self.lora)
        optim_sd = checkpoint.gather_optimizer(self.model, self.optimizer) if self.optimizer is not None else {}
        rngs = checkpoint.all_rng_states()
        need = checkpoint.tensor_bytes(model_sd) + checkpoint.tensor_bytes(optim_sd)
        problem = checkpoint.broadcast(
            checkpoint.check_disk(self._output_root(), need) if self.is_world_process_zero() else None
        )
        if problem:
            from sftkit.errors import SftkitError

            raise SftkitError(problem)
        path = None
        if self.is_world_process_zero():
            files = {
                checkpoint.MODEL: model_sd,
                checkpoint.OPTIM: optim_sd,
                checkpoint.SCHED: self.lr_scheduler.state_dict() if self.lr_scheduler is not None else {},
                checkpoint.STATE: self.train_state(rngs),
                checkpoint.HF_STATE: self.state_json(),
            }
            path = checkpoint.write_checkpoint(self._output_root(), name, files, extra)
            checkpoint.prune(self._output_root(), self.args.max_ckpt_to_keep, keep_also=path)
        checkpoint.barrier()
        return path

    def _output_root(self):
        from pathlib import Path

        root = Path(self.args.output_dir)
        root.mkdir(parents=True, exist_ok=True)
        return root

    def train_state(self, rngs: list[dict]) -> dict:
        return {
            "global_step": self.state.global_step,
            "epoch": self.state.epoch,
            # Position in the data: Trainer's sampler is seeded by (seed, epoch), so global step + global batch
            # determine exactly which examples come next.
            "samples_seen": self.state.global_step * self.resolved_config["global_batch"],
            "world_size": self.args.world_size,
            "rng_states": rngs,
            "config": self.resolved_config,
            "sftkit_version": __version__,
            "saved_at": time.time(),
        }

    def state_json(self) -> str:
        import dataclasses
        import json

        return json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n"

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        checkpoint.load_model(model if model is not None else self.model, resume_from_checkpoint, self.lora)

    def _load_optimizer_and_scheduler(self, checkpoint_dir):
        if checkpoint_dir is None:
            return
        checkpoint.load_optimizer(self.model, self.optimizer, checkpoint_dir)  # no-op for global_step_0
        sched = torch.load(f"{checkpoint_dir}/{checkpoint.SCHED}", map_location="cpu", weights_only=False)
        if sched and self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(sched)

    def _load_rng_state(self, checkpoint_dir):
        if checkpoint_dir is None:
            return
        states = checkpoint.load_state(checkpoint_dir)["rng_states"]
        # Same world size: each rank its own state. Another world size: rank r takes state r mod saved ranks
        # (dropout masks differ from the original run then; the data order does not depend on these states).
        checkpoint.set_rng_state(states[self.args.process_index % len(states)])
