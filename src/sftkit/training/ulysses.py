"""Ulysses sequence parallelism (verl's `ulysses_sequence_parallel_size`): S ranks share each packed sequence.

The processes form a (dp = world / S) x (sp = S) grid; the S ranks of a group get the same examples (loader.py
shards over dp only). Each micro-batch is the padding-free concatenation of its examples, padded to a multiple of
S and cut into S consecutive slices, one per rank (`Group.slice`): every rank embeds, projects and runs the MLP for
its slice only, which is where activation memory goes. Attention needs the whole sequence: the function
registered by `setup` (transformers' AttentionInterface) exchanges, with one all-to-all, the slice of every
head for all the sequence of a few heads, runs the real kernel (sdpa, flash_attention_2 or flex_attention) on
full sequences, and exchanges back. transformers looks attention functions up by name in a process-wide registry
(the model's attn_implementation): `setup` registers this group's own functions, with the group bound to them,
under a name of their own (`ulysses_<id>`), and sets that name on the model, so no module global holds a group and
two models set up in one process keep their own. The labels are shifted before slicing, so each token is scored
once, on the rank that holds it, and the loss (TRL's, over `shift_labels`) is the token mean of the step as without
sp.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sftkit.data.labels import IGNORE
from sftkit.errors import SftkitError

NAME = "ulysses"


def check_heads(config, sp: int) -> None:
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    if heads % sp or (kv % sp and sp % kv):
        raise SftkitError(
            f"ulysses_sequence_parallel_size={sp} does not fit this model's attention heads ({heads} query heads, "
            f"{kv} key/value heads): the query heads must be a multiple of {sp}, and the key/value heads a multiple "
            f"or a divisor of it. Use a sequence-parallel size such as "
            f"{', '.join(str(s) for s in range(2, 9) if heads % s == 0 and (kv % s == 0 or s % kv == 0))}."
        )


class _AllToAll(torch.autograd.Function):
    """all_to_all_single over the group, equal chunks along dim 0. Its own inverse, so also its backward."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        x = x.contiguous()  # (empty_like of a permuted view would keep its strides: the chunks would interleave)
        out = torch.empty_like(x)
        dist.all_to_all_single(out, x, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        out = torch.empty_like(grad)
        dist.all_to_all_single(out, grad, group=ctx.group)
        return out, None


def seq_to_heads(x: torch.Tensor, sp: int, group) -> torch.Tensor:
    """[B, H, T/S, D] (all heads, my slice) -> [B, H/S, T, D] (my heads, the whole sequence)."""
    b, h, t, d = x.shape
    x = x.reshape(b, sp, h // sp, t, d).permute(1, 0, 2, 3, 4)
    x = _AllToAll.apply(x, group)  # chunk i now holds rank i's slice of my heads
    return x.permute(1, 2, 0, 3, 4).reshape(b, h // sp, sp * t, d)


def heads_to_seq(y: torch.Tensor, sp: int, group) -> torch.Tensor:
    """[B, T, H/S, D] (attention output of my heads) -> [B, T/S, H, D] (all heads, my slice)."""
    b, t, h, d = y.shape
    y = y.reshape(b, sp, t // sp, h, d).permute(1, 0, 2, 3, 4)
    y = _AllToAll.apply(y, group)  # chunk i now holds rank i's heads for my slice
    return y.permute(1, 2, 0, 3, 4).reshape(b, t // sp, sp * h, d)


@dataclass
class Group:
    """This rank's sequence-parallel group, and whether a forward is running sequence-parallel now."""

    sp: int
    rank: int  # rank within the group
    group: object  # torch process group of the S ranks
    kernel: str  # the attention kernel that runs on the whole sequences
    pad_id: int
    active: bool = False

    @contextlib.contextmanager
    def running(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def slice(self, batch: dict) -> dict:
        """A padding-free batch (one row) -> this rank's slice; labels shifted first (`shift_labels`), boundaries of
        the whole row kept for the attention kernel."""
        ids, pos, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
        pad = (-ids.shape[1]) % self.sp
        if pad:  # a last, separate "sequence" of padding (positions from 0, no label)
            ids = torch.cat([ids, torch.full((1, pad), self.pad_id, dtype=ids.dtype)], dim=1)
            pos = torch.cat([pos, torch.arange(pad, dtype=pos.dtype)[None]], dim=1)
            labels = torch.cat([labels, torch.full((1, pad), IGNORE, dtype=labels.dtype)], dim=1)
        shift = torch.cat([labels[:, 1:], torch.full((1, 1), IGNORE, dtype=labels.dtype)], dim=1)
        starts = (pos[0] == 0).nonzero().flatten()
        cu = torch.cat([starts, torch.tensor([pos.shape[1]])]).to(torch.int32)
        n = ids.shape[1] // self.sp
        part = slice(self.rank * n, (self.rank + 1) * n)
        return {
            "input_ids": ids[:, part],
            "position_ids": pos[:, part],
            "shift_labels": shift[:, part],
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "max_length_q": int(cu.diff().max()),
            "max_length_k": int(cu.diff().max()),
        }


def causal_per_document(q, k, v, cu, dropout: float, scaling) -> torch.Tensor:
    """sdpa on each packed sequence with is_causal (no T x T mask: memory grows with the longest sequence, not the
    row); [B, H, T, D] in, [B, T, H, D] out."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    bounds = cu.tolist()
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], is_causal=True, dropout_p=dropout, scale=scaling
        )
        for s, e in zip(bounds[:-1], bounds[1:])
        if e > s
    ]
    return torch.cat(parts, dim=2).transpose(1, 2)


def attention(g: Group, module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The attention function of group `g`: all-to-all, the real kernel on whole sequences, all-to-all back."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if not g.active:  # generation, or a forward outside training/validation: the plain kernel
        return ALL_ATTENTION_FUNCTIONS[g.kernel](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if key.shape[1] < g.sp:  # fewer key/value heads than ranks: repeat them (as verl does)
        key = key.repeat_interleave(g.sp // key.shape[1], dim=1)
        value = value.repeat_interleave(g.sp // value.shape[1], dim=1)
    q, k, v = (seq_to_heads(x, g.sp, g.group) for x in (query, key, value))
    cu = kwargs["cu_seq_lens_q"]
    if g.kernel == "sdpa":
        out = causal_per_document(q, k, v, cu, dropout if module.training else 0.0, scaling)
    else:  # flash_attention_2 / flex_attention read the whole-row boundaries from the kwargs
        kwargs = {**kwargs, "position_ids": None}
        out, _ = ALL_ATTENTION_FUNCTIONS[g.kernel](module, q, k, v, None, dropout=dropout, scaling=scaling, **kwargs)
    return heads_to_seq(out.contiguous(), g.sp, g.group), None


def _mask(g: Group, *args, **kwargs):
    """No mask from the model: the attention function above builds its own for the whole packed row."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    if g.active:
        return None
    return ALL_MASK_ATTENTION_FUNCTIONS[g.kernel](*args, **kwargs)


def setup(plan, model) -> Group:
    """The (dp, sp) grid's sp groups (every rank creates every group, as torch requires); this rank's group's
    attention and mask functions registered under their own name and set on the model."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    sp, world, rank = plan.sp_size, dist.get_world_size(), dist.get_rank()
    mine = None
    for start in range(0, world, sp):
        group = dist.new_group(list(range(start, start + sp)))
        if start <= rank < start + sp:
            mine = group
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    g = Group(sp, rank % sp, mine, plan.attn_implementation, pad)
    name = f"{NAME}_{id(g):x}"
    AttentionInterface.register(name, functools.partial(attention, g))
    AttentionMaskInterface.register(name, functools.partial(_mask, g))
    model.set_attn_implementation(name)
    return g
