"""Pins on the upstream internals sftkit relies on (issue: a minor transformers release must not break resume or
batching without a failing test).

Every private method of transformers' Trainer / TRL's SFTTrainer that sftkit overrides or calls, and every public
one whose exact signature our overrides assume, is listed in PINNED with the parameters we rely on. A rename, a
removed method or a changed signature fails `test_pinned_hooks_exist_with_the_signatures_we_rely_on`; the test
below it shows, by renaming one with monkeypatch, that the check does fail.

What the training loop does with those hooks (when it calls them, with what, in which order), and TRL's loss, are
pinned by behaviour in tests/test_upstream_trainer.py; TRL's fused LM head and Accelerate's FSDP condition below.
No test reads upstream source text (issue 22): each calls the upstream code on a tiny input and checks what sftkit
relies on.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import trl.trainer.utils as trl_utils
from transformers import Trainer, TrainingArguments
from trl import SFTTrainer

from sftkit.data.labels import IGNORE
from sftkit.training.trainer import SftkitTrainer
from test_lm_head import loss_grads_and_rows, tiny_model

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


def problems(pins=PINNED) -> list[str]:
    found = []
    for (cls, name), expected in pins.items():
        method = getattr(cls, name, None)
        if method is None:
            found.append(f"{cls.__name__}.{name} is gone")
            continue
        params = list(inspect.signature(method).parameters)
        if params[: len(expected)] != expected:
            found.append(f"{cls.__name__}.{name}{tuple(params)} != {tuple(expected)}")
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


def test_trl_fused_head_scores_pre_shifted_labels_at_every_given_position():
    """Sequence parallelism hands TRL's fused LM head `shift_labels` (shifted before slicing, so the last position
    of a rank's slice is scored with the next rank's first token): scored as given, none dropped or shifted again."""
    model = tiny_model()
    ids = torch.randint(1, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :3] = IGNORE
    shift = torch.cat([labels[:, 1:], torch.full((2, 1), IGNORE)], dim=1)
    with torch.no_grad():
        whole = model(input_ids=ids, labels=labels, fused_lm_head=True)
        given = model(input_ids=ids, shift_labels=shift, fused_lm_head=True)
        first = model(input_ids=ids[:, :5], shift_labels=shift[:, :5], fused_lm_head=True)  # one rank's slice
    torch.testing.assert_close(given.log_probs[:, :-1], whole.log_probs)
    torch.testing.assert_close(given.loss, whole.loss)
    torch.testing.assert_close(first.log_probs, whole.log_probs[:, :5])
    assert bool((first.log_probs[:, 4] != 0).all())  # the slice's last position scored


@pytest.mark.parametrize("compact", [True, False])
def test_trl_fused_head_asks_use_triton_at_call_time_whether_to_score_trained_positions_only(compact, monkeypatch):
    """sftkit.training.lm_head widens the module-level `_use_triton` after the head is added: the forward must
    read that name on each call, with the hidden states' device, and project only the trained positions when it
    says True (every shifted position when False)."""
    model = tiny_model()  # the fused head is added before the name is replaced
    asked = []

    def use_triton(device) -> bool:
        asked.append(device)
        return compact

    monkeypatch.setattr(trl_utils, "_use_triton", use_triton)
    ids = torch.randint(1, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :6] = IGNORE  # 3 trained positions a row after the shift
    _, _, rows = loss_grads_and_rows(model, {"input_ids": ids, "labels": labels}, monkeypatch)
    assert asked == [torch.device("cpu")]
    assert rows == ([2 * 3] if compact else [2 * 8])


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


def accelerator_state(kind, monkeypatch) -> tuple:
    """AcceleratorState as the Trainer's Accelerator builds it with an FSDP2 plugin, in a process whose
    distributed type is `kind` (set on the PartialState: a real MULTI_GPU or MULTI_CPU needs several processes)."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import FullyShardedDataParallelPlugin, TorchDynamoPlugin

    for state in (PartialState, AcceleratorState):  # emptied now, the session's own state put back after the test
        monkeypatch.setattr(state, "_shared_state", {})
    PartialState(cpu=True)
    PartialState._shared_state["distributed_type"] = kind
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
    state = AcceleratorState(mixed_precision="bf16", fsdp_plugin=plugin, dynamo_plugin=TorchDynamoPlugin(),
                             _from_accelerator=True)  # fmt: skip
    found = (state.distributed_type, getattr(state, "fsdp_plugin", None) is plugin, plugin.mixed_precision_policy)
    return (*found, PartialState._shared_state["distributed_type"])


def test_accelerate_drops_fsdp_on_cpu_and_fsdp_launch_does_what_it_does_on_gpus(monkeypatch):
    """tests/fsdp_launch.py repeats for MULTI_CPU what AcceleratorState.__init__ does for GPU-like types, and
    training/sharding.py says 'Accelerate runs FSDP2 only on GPUs'. An Accelerate that keeps FSDP on CPU, or does
    something else with the plugin on GPUs, fails here: adapt the patch and the message then."""
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    from fsdp_launch import patch_accelerate

    gpu = accelerator_state(DistributedType.MULTI_GPU, monkeypatch)
    assert gpu[:2] == (DistributedType.FSDP, True) and gpu[2].param_dtype == torch.bfloat16
    assert gpu[3] == DistributedType.FSDP
    cpu = accelerator_state(DistributedType.MULTI_CPU, monkeypatch)
    assert cpu == (DistributedType.MULTI_CPU, False, None, DistributedType.MULTI_CPU)  # FSDP dropped on CPU
    monkeypatch.setattr(AcceleratorState, "__init__", AcceleratorState.__init__)  # put back after the test
    patch_accelerate()
    assert accelerator_state(DistributedType.MULTI_CPU, monkeypatch) == gpu  # the patch: as on GPUs


def test_accelerate_launch_tells_the_processes_an_fsdp_config_was_asked_for():
    """training/sharding.asked reads what `accelerate launch` exports for an FSDP config."""
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils import launch

    argv = "--use_fsdp --fsdp_version 2 --num_processes 2 --num_machines 1 --machine_rank 0 --main_process_port 29500"
    argv = [*argv.split(), "--mixed_precision", "no", "--dynamo_backend", "no", "train.py"]
    env = launch.prepare_multi_gpu_env(launch_command_parser().parse_args(argv))
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
