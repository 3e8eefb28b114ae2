"""Pins on the upstream internals sftkit relies on (issue: a minor transformers release must not break resume or
batching without a failing test).

Every private method of transformers' Trainer / TRL's SFTTrainer that sftkit overrides or calls, and every public
one whose exact signature our overrides assume, is listed in PINNED with the parameters we rely on. A rename, a
removed method or a changed signature fails `test_pinned_hooks_exist_with_the_signatures_we_rely_on`; the test
below it shows, by renaming one with monkeypatch, that the check does fail.
"""

from __future__ import annotations

import inspect

import pytest
from transformers import Trainer, TrainingArguments
from trl import SFTTrainer

from sftkit.training.trainer import SftkitTrainer

# (class, method) -> the parameters, in order, that our override or our call uses.
PINNED = {
    # private: transformers' save, after the step's logging and validation; ours writes global_step_N
    (Trainer, "_save_checkpoint"): ["self", "model", "trial"],
    # private: transformers' resume calls them with the checkpoint folder; ours read the global_step_N layout
    (Trainer, "_load_from_checkpoint"): ["self", "resume_from_checkpoint", "model"],
    (Trainer, "_load_optimizer_and_scheduler"): ["self", "checkpoint"],
    (Trainer, "_load_rng_state"): ["self", "checkpoint"],
    # private, called by our validation loop
    (Trainer, "_prepare_inputs"): ["self", "inputs"],
    # private: the step's gradient norm, before the optimizer step; ours stops or skips a non-finite step
    (Trainer, "_get_grad_norm"): ["self", "model", "grad_norm"],
    # public, overridden: our versions take and return exactly these
    (Trainer, "get_batch_samples"): ["self", "epoch_iterator", "num_batches", "device"],
    (Trainer, "training_step"): ["self", "model", "inputs", "num_items_in_batch"],
    (Trainer, "get_train_dataloader"): ["self"],
    (Trainer, "get_eval_dataloader"): ["self", "eval_dataset"],
    (Trainer, "evaluation_loop"): [
        "self", "dataloader", "description", "prediction_loss_only", "ignore_keys", "metric_key_prefix"
    ],
    (Trainer, "log"): ["self", "logs", "start_time"],
    (SFTTrainer, "compute_loss"): ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
}  # fmt: skip

# Behaviour of the training loop our overrides depend on, pinned in its source.
SOURCE_PINS = {
    # one get_batch_samples per optimizer step, its num_items passed to every training_step of the step
    (Trainer, "_run_epoch"): [
        "self.get_batch_samples(epoch_iterator, num_batches",
        "self.training_step(model, inputs, num_items_in_batch)",
        "set_epoch(epoch)",  # our StepLoader / StepSampler learn the epoch this way
        "skip_first_batches(",  # exact resume skips whole step batches
        # the step's gradient norm on every optimizer step, before the optimizer steps (training/nonfinite.py)
        "grad_norm = self._get_grad_norm(model, grad_norm=grad_norm)",
    ],
    # a save asked by a callback: after logging and validation, then on_save
    (Trainer, "_maybe_log_save_evaluate"): ["self.control.should_save", "self._save_checkpoint(model, trial)"],
    # the resume path reads trainer_state.json from our checkpoint folder and calls the three loaders above
    (Trainer, "_prepare_for_training"): [
        "self._load_from_checkpoint(resume_from_checkpoint",
        "self._load_optimizer_and_scheduler(resume_from_checkpoint)",
    ],
    # TRL's loss: normalised by num_items_in_batch, scaled by the number of processes (DDP averages)
    (SFTTrainer, "compute_loss"): ["num_items_in_batch", "self.accelerator.num_processes"],
}


def problems(pins=PINNED, source_pins=SOURCE_PINS) -> list[str]:
    found = []
    for (cls, name), expected in pins.items():
        method = getattr(cls, name, None)
        if method is None:
            found.append(f"{cls.__name__}.{name} is gone")
            continue
        params = list(inspect.signature(method).parameters)
        if params[: len(expected)] != expected:
            found.append(f"{cls.__name__}.{name}{tuple(params)} != {tuple(expected)}")
    for (cls, name), snippets in source_pins.items():
        method = getattr(cls, name, None)
        source = inspect.getsource(method) if method is not None else ""
        found += [f"{cls.__name__}.{name} no longer contains {s!r}" for s in snippets if s not in source]
    return found


def test_pinned_hooks_exist_with_the_signatures_we_rely_on():
    assert problems() == []


def test_the_pin_fails_when_a_hook_is_renamed(monkeypatch):
    original = Trainer._load_rng_state
    monkeypatch.delattr(Trainer, "_load_rng_state")
    monkeypatch.setattr(Trainer, "_load_rng_states", original, raising=False)
    assert problems() == ["Trainer._load_rng_state is gone"]


def test_the_pin_fails_when_a_signature_changes(monkeypatch):
    def get_batch_samples(self, iterator, n, device):
        return [], None

    monkeypatch.setattr(Trainer, "get_batch_samples", get_batch_samples)
    assert any("get_batch_samples" in p for p in problems())


def test_our_overrides_keep_the_upstream_signatures():
    for (cls, name), expected in PINNED.items():
        ours = getattr(SftkitTrainer, name)
        if ours is not getattr(cls, name):
            assert list(inspect.signature(ours).parameters)[: len(expected)] == expected, name


def test_training_arguments_mixed_precision_is_an_attribute_set_after_init(tmp_path, monkeypatch):
    """The plan sets `mixed_precision` on the built arguments (an accelerate config's value must not win over an
    explicit dtype): transformers takes it from the accelerate config's environment in __post_init__, as a plain
    attribute (no dataclass field, so the plan cannot pass it to the constructor)."""
    import dataclasses

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert args.mixed_precision == "bf16"  # the accelerate config's choice, unless the plan overwrites it
    assert "mixed_precision" not in {f.name for f in dataclasses.fields(TrainingArguments)}
    args.mixed_precision = "no"
    assert args.mixed_precision == "no"


def test_trl_fused_head_scores_pre_shifted_labels():
    """Sequence parallelism hands TRL's fused LM head `shift_labels` (already shifted, sliced per rank)."""
    from trl.trainer.utils import add_fused_lm_head

    source = inspect.getsource(add_fused_lm_head)
    assert "shift_labels" in source and "labels = shift_labels" in source


def test_trl_fused_head_decides_compact_scoring_through_use_triton():
    """sftkit.training.lm_head widens the module-level `_use_triton` that `add_fused_lm_head` reads to decide
    whether only trained positions are projected."""
    import trl.trainer.utils as trl_utils

    source = inspect.getsource(trl_utils.add_fused_lm_head)
    assert "compact = _use_triton(hidden_states.device)" in source and callable(trl_utils._use_triton)


def test_trl_padding_free_collator_gives_sequence_boundaries():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [-100, 5]}]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5] and "attention_mask" not in batch


def test_attention_registries_we_use():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    assert callable(AttentionInterface.register) and callable(AttentionMaskInterface.register)
    assert "sdpa" in AttentionInterface._global_mapping and "sdpa" in AttentionMaskInterface._global_mapping


def test_partial_state_is_seen_without_being_created():
    """dist._state() reads Accelerate's private `PartialState._shared_state`: empty until a PartialState is built
    (TrainingArguments builds one), so sftkit's rank and world size never create the state (which would set up
    the process group). The public `accelerate.state.is_initialized()` cannot replace it: it watches
    AcceleratorState, which only the Trainer's Accelerator builds, and stays False in between."""
    from accelerate.state import AcceleratorState, PartialState, is_initialized

    from sftkit import dist

    saved = dict(PartialState._shared_state), dict(AcceleratorState._shared_state)
    PartialState._shared_state.clear()
    AcceleratorState._shared_state.clear()
    try:
        assert dist._state() is None and not PartialState._shared_state  # asking created nothing
        PartialState(cpu=True)
        state = dist._state()
        assert state is not None and state.num_processes == dist.world_size() == 1 and dist.is_main()
        assert not is_initialized()
    finally:
        PartialState._shared_state.clear()
        AcceleratorState._shared_state.clear()
        PartialState._shared_state.update(saved[0])
        AcceleratorState._shared_state.update(saved[1])


@pytest.mark.parametrize("name", ["get_train_dataloader", "get_eval_dataloader", "training_step", "evaluation_loop"])
def test_overridden_public_methods_are_documented_at_the_override(name):
    """Each override says what upstream behaviour it replaces (module docstring or its own)."""
    doc = inspect.getdoc(SftkitTrainer) or ""
    module_doc = inspect.getmodule(SftkitTrainer).__doc__
    assert name in module_doc or name in doc


def test_accelerate_drops_fsdp_on_cpu_by_the_condition_fsdp_launch_patches():
    """tests/fsdp_launch.py repeats for MULTI_CPU what this branch of AcceleratorState.__init__ does for GPU-like
    types, and training/sharding.py says 'DDP ... Accelerate runs FSDP2 only on GPUs'. An Accelerate that changes
    the condition (FSDP on CPU, another branch) fails here: adapt the patch and the message then."""
    from accelerate.state import AcceleratorState

    source = inspect.getsource(AcceleratorState.__init__)
    start = source.index("elif self.distributed_type in [")
    types = source[start : source.index("]:", start)]
    assert "DistributedType.MULTI_GPU" in types and "MULTI_CPU" not in types
    branch = source[start : source.index('PartialState._shared_state["distributed_type"]', start)]
    for snippet in (
        "self.distributed_type = DistributedType.FSDP",
        "fsdp_plugin.set_mixed_precision(self._mixed_precision)",
        "self.fsdp_plugin = fsdp_plugin",
    ):
        assert snippet in branch, snippet


def test_accelerate_launch_tells_the_processes_an_fsdp_config_was_asked_for():
    """training/sharding.asked reads what `accelerate launch` exports for an FSDP config."""
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils import launch

    argv = "--use_fsdp --fsdp_version 2 --num_processes 2 --num_machines 1 --machine_rank 0 --main_process_port 29500"
    argv = [*argv.split(), "--mixed_precision", "no", "--dynamo_backend", "no", "train.py"]
    env = launch.prepare_multi_gpu_env(launch_command_parser().parse_args(argv))
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
