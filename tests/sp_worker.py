"""Worker for test_sequence_parallel.py, run with `torchrun --nproc_per_node 2`: the Ulysses attention path
against the plain model on the same packed batch — logits, summed loss and gradients — for a model with as many
key/value heads as ranks and one with fewer (repeated, as verl does); each model keeps its own group after the
next one is set up in the same process."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from sftkit.tiny import build_model, build_tokenizer
from sftkit.training import ulysses


def packed_batch():
    torch.manual_seed(1)
    lengths = (17, 10, 24)  # 51 tokens: not a multiple of 2, so the slice pads
    examples = []
    for n in lengths:
        ids = torch.randint(5, 500, (n,)).tolist()
        examples.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    return DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)


def summed_loss(logits, shift_labels):
    return torch.nn.functional.cross_entropy(logits[0], shift_labels[0], ignore_index=-100, reduction="sum")


def check(kv_heads: int):
    rank = dist.get_rank()
    tok = build_tokenizer()
    model = build_model(tok, hidden_size=64, layers=2)
    if kv_heads != model.config.num_key_value_heads:  # same weights' shapes need a fresh model
        model.config.num_key_value_heads = kv_heads
        torch.manual_seed(0)
        model = type(model)(model.config)
    model.config._attn_implementation = "sdpa"
    batch = packed_batch()
    labels = batch["labels"]
    shift = torch.cat([labels[:, 1:], torch.full((1, 1), -100)], dim=1)
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "seq_idx")}
    full = model(**inputs, use_cache=False).logits
    summed_loss(full, shift).backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    group = ulysses.setup(SimpleNamespace(sp_size=2, attn_implementation="sdpa"), model)
    part = group.slice(batch)
    with group.running():
        logits = model(**{k: v for k, v in part.items() if k != "shift_labels"}, use_cache=False).logits
        loss = summed_loss(logits, part["shift_labels"])
        loss.backward()
    n = part["input_ids"].shape[1]
    mine = full[:, rank * n : (rank + 1) * n]
    torch.testing.assert_close(logits[:, : mine.shape[1]], mine, atol=1e-5, rtol=0)
    total = loss.detach().clone()
    dist.all_reduce(total)
    torch.testing.assert_close(total, summed_loss(full, shift).detach(), atol=1e-4, rtol=1e-6)
    for name, p in model.named_parameters():
        grad = p.grad.clone()
        dist.all_reduce(grad)  # what DDP's average does, times the world size
        torch.testing.assert_close(grad, reference[name], atol=1e-5, rtol=1e-4, msg=name)
    # outside a training/validation forward the model attends plainly (generation)
    with torch.no_grad():
        plain = model(input_ids=batch["input_ids"][:, :17], use_cache=False).logits  # the first sequence
        torch.testing.assert_close(plain, full[:, :17].detach(), atol=1e-5, rtol=0)
    print(f"rank {rank}: kv_heads={kv_heads} ok", flush=True)

    def again() -> None:  # the sequence-parallel forward once more, after other models were set up
        with torch.no_grad(), group.running():
            logits = model(**{k: v for k, v in part.items() if k != "shift_labels"}, use_cache=False).logits
        torch.testing.assert_close(logits[:, : mine.shape[1]], mine, atol=1e-5, rtol=0)

    return again


if __name__ == "__main__":
    dist.init_process_group("gloo")
    checks = [check(kv) for kv in map(int, sys.argv[1:])]
    for again in checks:
        again()
    dist.destroy_process_group()
