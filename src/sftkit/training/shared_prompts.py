"""Shared-prompt packing (`data.share_prompts`, docs/contracts.md §7): the solutions of one prompt in a micro-batch are
computed as one prefix and N continuations, in one padding-free row.

Rejection-sampled data has several solutions behind the same prompt; unshared, every one of them recomputes the
prompt. Here examples whose prompt tokens (the labels' leading -100s) are identical are packed as
    prefix = prompt[:-1]                               positions 0 .. n-2, labels -100
    continuation_i = [prompt[-1], response_i..., eot]  positions n-1 .., labels as unshared (first one -100)
Each continuation attends to the prefix and causally to itself only, with the positions it has alone, so every
position sees exactly the context it sees unshared: the same logits, the same per-token losses. Repeating the last
prompt token keeps the prompt -> first-response-token prediction (it is the continuation's first position), and
the row's one-step label shift never crosses a segment wrongly (every segment starts with a -100 label). The loss's
denominator is untouched (the trained tokens of the step, counted on the examples). A prompt seen once in a
packed micro-batch (or shorter than 2 tokens) is a plain causal segment.

Where it applies (the default, `data.share_prompts` unset): a kernel below, no sequence parallelism (`resolve`) and
a training set where some prompt has several solutions (`prompt_groups`); then only a micro-batch that holds a
repeated prompt is packed (`repeats`), any other takes the plain path (TRL's collator, padded or padding-free), so
data with one solution per prompt trains exactly as without this module (benchmarks/RESULTS.md).

Kernels: the attention function registered here as `sftkit_shared` (transformers' AttentionInterface, as
ulysses.py does) runs
- `sdpa` (any device; the CPU path): one SDPA call per prefix and per continuation (prefix + its own keys, a
  small [len, prefix + len] mask), never a row x row mask;
- `flex_attention` (GPU): one call over the row with a block mask built from the layout (prefix/segment ids);
- any other kernel (flash_attention_2/3 varlen and others) is refused by `check_kernel` with a message: varlen
  kernels cannot express "the prefix, then causal" without gathering the prefix per continuation.
Not combined with sequence parallelism (refused in the plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sftkit.data.labels import IGNORE
from sftkit.errors import SftkitError

NAME = "sftkit_shared"
KERNELS = ("sdpa", "flex_attention")


@dataclass
class Group:
    """One prefix (possibly empty) and its continuations, as [start, end) spans of the packed row."""

    prefix: tuple[int, int]
    continuations: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Layout:
    """The packed row's segments; passed to the model with the batch (`shared_layout`) and on to attention."""

    groups: list[Group]
    length: int
    order: list[int]  # the examples' indices in row order (one per continuation)
    _flex: object = None  # the block mask, built once per row (every layer reuses it)


def prompt_length(labels) -> int:
    """Leading -100 labels: the prompt (system prompt and generation prompt included)."""
    for i, x in enumerate(labels):
        if x != IGNORE:
            return i
    return len(labels)


def _key(ex: dict, i: int) -> tuple:
    """The prompt tokens an example can share (at least 2, and a response after them), else a key of its own."""
    n = prompt_length(ex["labels"])
    return tuple(ex["input_ids"][:n]) if 2 <= n < len(ex["input_ids"]) else ("alone", i)


def repeats(examples: list[dict]) -> bool:
    """Whether some prompt appears twice in the micro-batch (only then is it packed; others take the plain path)."""
    keys = [_key(ex, i) for i, ex in enumerate(examples)]
    return len(set(keys)) < len(keys)


def pack(examples: list[dict]) -> dict:
    """Examples -> one row: input_ids/position_ids/labels [1, T] and the `shared_layout`. Examples keep their order;
    the solutions of one prompt are gathered at its first occurrence."""
    by_prompt: dict[tuple, list[int]] = {}
    for i, ex in enumerate(examples):
        by_prompt.setdefault(_key(ex, i), []).append(i)
    ids: list[int] = []
    pos: list[int] = []
    labels: list[int] = []
    groups = []
    for key, members in by_prompt.items():
        if len(members) == 1:
            ex = examples[members[0]]
            start = len(ids)
            ids += ex["input_ids"]
            labels += ex["labels"]
            pos += range(len(ex["input_ids"]))
            groups.append(Group((start, start), [(start, len(ids))]))
            continue
        n = len(key)
        start = len(ids)
        ids += key[:-1]
        labels += [IGNORE] * (n - 1)
        pos += range(n - 1)
        group = Group((start, len(ids)))
        for i in members:
            ex = examples[i]
            begin = len(ids)
            ids += ex["input_ids"][n - 1 :]
            labels += ex["labels"][n - 1 :]
            pos += range(n - 1, len(ex["input_ids"]))
            group.continuations.append((begin, len(ids)))
        groups.append(group)
    return {
        "input_ids": torch.tensor([ids]),
        "position_ids": torch.tensor([pos]),
        "labels": torch.tensor([labels]),
        "shared_layout": Layout(groups, len(ids), [i for members in by_prompt.values() for i in members]),
    }


def prompt_groups(dataset, batch: int = 20_000):
    """A prompt id per example of the training set (xxh3 of its prompt tokens: the same on every rank, unlike
    Python's salted bytes hash), or None when no prompt repeats (sharing then never applies): the sampler draws
    each prompt's solutions together. A collision only groups two prompts in batching; `pack` compares the tokens
    themselves. Vectorised over Arrow batches (10^6 examples in a few seconds)."""
    import numpy as np
    import xxhash

    out = np.empty(len(dataset), dtype=np.int64)
    table = dataset.select_columns(["input_ids", "labels"]).with_format("arrow")
    for start in range(0, len(dataset), batch):
        rows = table[start : start + batch]
        ids, labels = (rows.column(c).combine_chunks() for c in ("input_ids", "labels"))
        offsets = ids.offsets.to_numpy() - ids.offsets[0].as_py()  # flatten() drops a slice's leading values
        flat_ids, trained = ids.flatten().to_numpy(), labels.flatten().to_numpy() != IGNORE
        # the prompt: up to the first trained label of each row (the whole row when none is trained)
        first = np.full(len(offsets) - 1, -1, dtype=np.int64)
        hits = np.flatnonzero(trained)
        rows_of = np.searchsorted(offsets, hits, side="right") - 1
        keep = np.unique(rows_of, return_index=True)
        first[keep[0]] = hits[keep[1]]
        ends = np.where(first >= 0, first, offsets[1:])
        for j, (a, b) in enumerate(zip(offsets[:-1].tolist(), ends.tolist())):
            out[start + j] = xxhash.xxh3_64_intdigest(flat_ids[a:b].tobytes()) - 2**63
    return out if len(np.unique(out)) < len(out) else None


def resolve(value: bool | None, kernel: str, sp: int, origin: str) -> bool:
    """data.share_prompts as the plan runs it: unset = where the kernel and the layout allow it; true = required
    (refused with a message where it cannot run); false = never."""
    if value is None:
        return kernel in KERNELS and sp == 1
    if value:
        check_plan(kernel, sp, origin)
    return bool(value)


# ---- attention ---------------------------------------------------------------------------------------------------
def _sdpa(q, k, v, layout: Layout, dropout: float, scaling) -> torch.Tensor:
    """[1, H, T, D] (k/v already repeated to H heads) -> [1, T, H, D]: SDPA per prefix and per continuation."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = torch.empty_like(q)
    for g in layout.groups:
        ps, pe = g.prefix
        if pe > ps:
            out[:, :, ps:pe] = sdpa(q[:, :, ps:pe], k[:, :, ps:pe], v[:, :, ps:pe], is_causal=True, dropout_p=dropout,
                                    scale=scaling)  # fmt: skip
        for cs, ce in g.continuations:
            n, m = pe - ps, ce - cs
            if n == 0:
                out[:, :, cs:ce] = sdpa(q[:, :, cs:ce], k[:, :, cs:ce], v[:, :, cs:ce], is_causal=True,
                                        dropout_p=dropout, scale=scaling)  # fmt: skip
                continue
            keys = torch.cat([k[:, :, ps:pe], k[:, :, cs:ce]], dim=2)
            values = torch.cat([v[:, :, ps:pe], v[:, :, cs:ce]], dim=2)
            # the prefix, then causal within the continuation (SDPA's is_causal aligns top-left: not this)
            mask = torch.ones(m, n + m, dtype=torch.bool, device=q.device).tril(diagonal=n)
            out[:, :, cs:ce] = sdpa(q[:, :, cs:ce], keys, values, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2)


def segment_ids(layout: Layout, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per position: its group, its segment (prefix or continuation) and whether it is a prefix token."""
    group = torch.zeros(layout.length, dtype=torch.int32)
    segment = torch.zeros(layout.length, dtype=torch.int32)
    prefix = torch.zeros(layout.length, dtype=torch.bool)
    s = 0
    for gi, g in enumerate(layout.groups):
        for a, b in [g.prefix, *g.continuations]:
            group[a:b], segment[a:b] = gi, s
            s += 1
        prefix[g.prefix[0] : g.prefix[1]] = True
    return group.to(device), segment.to(device), prefix.to(device)


def block_mask(layout: Layout, device):
    """flex attention's block mask for the row: same group and (same segment, causal) or (a prefix key seen from
    one of its continuations; prefixes come first in the row, so the key is earlier)."""
    from torch.nn.attention.flex_attention import create_block_mask

    if layout._flex is None:
        group, segment, prefix = segment_ids(layout, device)

        def mask_mod(b, h, q, kv):
            same_group = group[q] == group[kv]
            own = (segment[q] == segment[kv]) & (kv <= q)
            return same_group & (own | (prefix[kv] & ~prefix[q]))

        n = layout.length
        layout._flex = create_block_mask(mask_mod, None, None, n, n, device=device)
    return layout._flex


def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, shared_layout=None, **kwargs):
    """The `sftkit_shared` attention function: a packed shared-prompt row, or (generation, validation batches)
    plain SDPA."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if shared_layout is None:
        return ALL_ATTENTION_FUNCTIONS[_KERNEL](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    dropout = dropout if module.training else 0.0
    if _KERNEL == "flex_attention":
        from torch.nn.attention.flex_attention import flex_attention

        mask = block_mask(shared_layout, query.device)
        out = flex_attention(query, key, value, block_mask=mask, scale=scaling, enable_gqa=True)
        return out.transpose(1, 2).contiguous(), None
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    return _sdpa(query, key, value, shared_layout, dropout, scaling), None


def _mask(*args, **kwargs):
    """No mask from the model for a packed row (the attention function builds its own, so no row x row mask is
    made); a plain batch gets the kernel's usual one."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    if _ROW is not None:
        return None
    return ALL_MASK_ATTENTION_FUNCTIONS[_KERNEL](*args, **kwargs)


_KERNEL = "sdpa"
_ROW: Layout | None = None  # the layout of the forward running now (transformers builds masks without the kwargs)


def _enter(module, args, kwargs):
    global _ROW
    _ROW = kwargs.get("shared_layout")


def _leave(module, args, kwargs, output):
    global _ROW
    _ROW = None


def check_plan(kernel: str, sp: int, origin: str) -> None:
    if sp > 1:
        raise SftkitError(
            f"data.share_prompts=true ({origin}) with ulysses_sequence_parallel_size={sp}: a shared prompt and its "
            "continuations would be cut across ranks, which the sequence-parallel attention does not handle. Use "
            "one of them: data.share_prompts=false, or ulysses_sequence_parallel_size=1."
        )
    check_kernel(kernel)


def check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise SftkitError(
            f"data.share_prompts=true runs with attn_implementation sdpa or flex_attention, not {kernel!r}: a "
            "continuation attends to its prompt, then causally to itself, which the varlen kernels cannot express. "
            "Set attn_implementation=flex_attention (GPU) or sdpa, or data.share_prompts=false."
        )


def setup(model, kernel: str) -> None:
    """Register `sftkit_shared` (wrapping `kernel`) and set it on the model."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    global _KERNEL
    check_kernel(kernel)
    _KERNEL = kernel
    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, _mask)
    model.set_attn_implementation(NAME)
    model.register_forward_pre_hook(_enter, with_kwargs=True)
    model.register_forward_hook(_leave, with_kwargs=True)
