"""Run by tests/test_fsdp.py under `torchrun --nproc_per_node 2`: FSDP2 (fully_shard) over gloo on CPU.

Gather a sharded model + optimizer with sftkit's checkpoint code, save, load into a differently sharded model,
and check every tensor; rank 0 also loads the files into a plain (1-process) model.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM

from sftkit.checkpoint import layout as checkpoint
from sftkit.checkpoint import state as ckpt_state


def sharded(model_dir, per_layer: bool):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if per_layer:
        for layer in model.model.layers:
            fully_shard(layer)
    fully_shard(model)
    return model


def step(model, optim):
    ids = torch.arange(1, 33).reshape(2, 16) + dist.get_rank()
    model(input_ids=ids, labels=ids).loss.backward()
    optim.step()
    optim.zero_grad()


def main(model_dir: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, out = dist.get_rank(), Path(out)
    model = sharded(model_dir, per_layer=True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    step(model, optim)
    msd = ckpt_state.trained_state_dict(model, lora=False)
    osd = ckpt_state.gather_optimizer(model, optim)
    assert (len(msd) > 0) == (rank == 0), "full state gathered to rank 0 only (cpu_offload)"
    if rank == 0:
        assert all(t.device.type == "cpu" and not hasattr(t, "placements") for t in msd.values())
        checkpoint.write_checkpoint(
            out, "global_step_1", {"model.pt": msd, "optimizer.pt": osd, "scheduler.pt": {}, "train_state.pt": {}}
        )
    dist.barrier()
    # Load into another sharding (root only) and compare the regathered tensors with what was saved.
    other = sharded(model_dir, per_layer=False)
    other_optim = torch.optim.AdamW(other.parameters(), lr=1e-2)
    ckpt_state.load_model(other, out / "global_step_1", lora=False)
    step(other, other_optim)  # creates optimizer state to overwrite
    ckpt_state.load_model(other, out / "global_step_1", lora=False)
    ckpt_state.load_optimizer(other, other_optim, out / "global_step_1")
    again = ckpt_state.trained_state_dict(other, lora=False)
    again_optim = ckpt_state.gather_optimizer(other, other_optim)
    if rank == 0:
        saved = torch.load(out / "global_step_1" / "model.pt", weights_only=True)
        saved_optim = torch.load(out / "global_step_1" / "optimizer.pt", weights_only=True)
        for k in saved:
            torch.testing.assert_close(again[k], saved[k], atol=0, rtol=0)
        for k, state in saved_optim["state"].items():
            for name in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(again_optim["state"][k][name], state[name], atol=0, rtol=0)
        plain = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        plain.load_state_dict(saved)
        for k, v in plain.state_dict().items():
            torch.testing.assert_close(v, saved[k], atol=0, rtol=0)
        print("FSDP2 gather/load OK:", len(saved), "tensors")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
