"""Test-only launcher: sftkit's training through Accelerate's real FSDP2 path on CPU (gloo), in each rank:

    accelerate launch --config_file accelerate_configs/fsdp4.yaml --num_processes 2 \\
        tests/fsdp_launch.py EVIDENCE_DIR [sftkit train arguments...]

Accelerate keeps the FSDP plugin only for GPU-like distributed types (`AcceleratorState.__init__`, pinned in
tests/test_upstream.py); on CPU (`MULTI_CPU`) it drops it and the Trainer wraps DDP. `patch_accelerate` does for
`MULTI_CPU` what that branch does for GPUs, before the Trainer builds its Accelerator; nothing else in FSDP2 is
device-specific (`fully_shard` builds a CPU device mesh over gloo by itself).

The launcher then runs `sftkit.train` as `-m sftkit.train` would, and each rank writes EVIDENCE_DIR/rank<R>.json:
what the model really was once Accelerate prepared it (an FSDPModule, DTensor-sharded parameters, the mixed
precision policy, the dtype a layer computed in), so a test fails when FSDP silently became DDP.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback


def patch_accelerate() -> None:
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def __init__(self, mixed_precision=None, cpu=False, dynamo_plugin=None, deepspeed_plugin=None,
                 fsdp_plugin=None, *args, **kwargs):  # fmt: skip
        fresh = not AcceleratorState._shared_state
        original(self, mixed_precision, cpu, dynamo_plugin, deepspeed_plugin, fsdp_plugin, *args, **kwargs)
        if fresh and fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            PartialState._shared_state["distributed_type"] = self.distributed_type

    AcceleratorState.__init__ = __init__


class Evidence(TrainerCallback):
    """Records, at the first step, how the prepared model is wrapped; written at the end of training."""

    def __init__(self, folder: Path):
        self.folder, self.found, self.compute_dtypes, self.generated = folder, None, set(), []
        self.record_generation()

    def record_generation(self) -> None:
        """The accuracy probe's generation (training/accuracy.py calls sftkit.evaluation.generate): its prompts,
        whether it synced the ranks, and the texts."""
        from sftkit import evaluation

        real = evaluation.generate

        def generate(model, tokenizer, prompts, **kwargs):
            outs = real(model, tokenizer, prompts, **kwargs)
            texts = [o[0].text for o in outs]
            self.generated.append({"prompts": prompts, "texts": texts, "synced_gpus": kwargs.get("synced_gpus")})
            return outs

        evaluation.generate = generate

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.found is None:
            self.found = describe(model)
            layer = next(m for n, m in model.named_modules() if n.endswith("mlp.down_proj"))
            layer.register_forward_pre_hook(lambda mod, inputs: self.compute_dtypes.add(str(inputs[0].dtype)))

    def on_train_end(self, args, state, control, **kwargs):
        self.write()

    def write(self) -> None:
        rank = int(os.environ["RANK"])
        found = dict(self.found or {}, compute_dtypes=sorted(self.compute_dtypes), generated=self.generated)
        (self.folder / f"rank{rank}.json").write_text(json.dumps(found, indent=1))


def describe(model) -> dict:
    from accelerate.state import AcceleratorState
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    params = dict(model.named_parameters())
    sharded = {n: p for n, p in params.items() if isinstance(p, DTensor)}
    plugin = getattr(AcceleratorState(), "fsdp_plugin", None)
    policy = getattr(plugin, "mixed_precision_policy", None)
    return {
        "model_class": type(model).__name__,
        "fsdp_module": isinstance(model, FSDPModule),
        "fsdp_submodules": sum(isinstance(m, FSDPModule) for m in model.modules()),
        "distributed_type": str(AcceleratorState().distributed_type),
        "params": len(params),
        "dtensor_params": len(sharded),
        "placements": sorted({str(p.placements) for p in sharded.values()}),
        "local_numel": sum(p.to_local().numel() for p in sharded.values()),
        "full_numel": sum(p.numel() for p in sharded.values()),
        "trainable": sum(p.requires_grad for p in params.values()),
        "param_dtype": str(getattr(policy, "param_dtype", None)),
        "world_size": torch.distributed.get_world_size(),
    }


def main(argv: list[str]) -> int:
    folder, args = Path(argv[0]), argv[1:]
    folder.mkdir(parents=True, exist_ok=True)
    patch_accelerate()
    from sftkit import dist
    from sftkit.config.plan import plan_run
    from sftkit.config.recipe_arg import split_config
    from sftkit.dist import user_errors
    from sftkit.train import run

    evidence = Evidence(folder)

    @user_errors
    def train() -> int:
        recipe, rest = split_config(args)
        trainer = run(plan_run(recipe, rest), callbacks=[evidence])
        dist.close()
        return 75 if trainer.preempted else 0

    return train()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main(sys.argv[1:]))
