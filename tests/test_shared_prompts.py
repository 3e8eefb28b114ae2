"""Shared-prompt packing (data.share_prompts, src/sftkit/training/shared_prompts.py): one prompt prefix + N
continuations give the per-token losses, the denominator and the gradients of unshared training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sftkit.data.labels import IGNORE, Encoder
from sftkit.errors import SftkitError
from sftkit.training import batching, shared_prompts

P, Q = [5, 6, 7, 8, 9], [11, 12, 13]


def example(prompt, response):
    return {"input_ids": prompt + response, "labels": [IGNORE] * len(prompt) + response}


def test_pack_builds_one_prefix_and_continuations_with_their_own_positions():
    exs = [example(P, [20, 21]), example(Q, [30]), example(P, [22, 23, 24])]
    row = shared_prompts.pack(exs)
    ids, pos, labels = (row[k][0].tolist() for k in ("input_ids", "position_ids", "labels"))
    # prefix P[:-1], then [P[-1], response] per solution of P; Q alone
    assert ids == [5, 6, 7, 8, 9, 20, 21, 9, 22, 23, 24, 11, 12, 13, 30]
    assert pos == [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 0, 1, 2, 3]
    assert labels == [IGNORE] * 5 + [20, 21, IGNORE, 22, 23, 24] + [IGNORE] * 3 + [30]
    layout = row["shared_layout"]
    assert layout.order == [0, 2, 1]
    assert [(g.prefix, g.continuations) for g in layout.groups] == [
        ((0, 4), [(4, 7), (7, 11)]),
        ((11, 11), [(11, 15)]),
    ]
    # the row's shifted labels train exactly the unshared tokens (every segment starts with a -100 label)
    assert sum(x != IGNORE for x in labels[1:]) == sum(sum(x != IGNORE for x in e["labels"][1:]) for e in exs)


def tiny_model(vocab: int, seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, attn_implementation="sdpa")  # fmt: skip
    return Qwen2ForCausalLM(cfg).float()


def token_losses(model, batch) -> torch.Tensor:
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**kwargs, use_cache=False).logits[0, :-1]
    target = batch["labels"][0, 1:]
    keep = target != IGNORE
    return torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="none")


def grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out


@pytest.mark.parametrize("name", ["real_qwen25", "real_qwen3"])
def test_shared_row_equals_unshared_training_on_real_templates(name, request):
    """Real Qwen2.5/Qwen3 vocabularies and templates, a truncated solution among them: per-token losses, the mean
    over the trained tokens and every gradient match one-example-at-a-time training."""
    tok = request.getfixturevalue(name)
    enc = Encoder(tok)
    prompts = ["What is 17 * 3? Think step by step.", "Solve x + 2 = 7."]
    solutions = [
        ["17 * 3 = 51. The answer is $\\boxed{51}$.", "10*3 + 7*3 = 30 + 21 = 51, so \\boxed{51}.",
         "Three times seventeen is fifty-one. " * 8],  # truncated at max_length
        ["x = 7 - 2 = 5. \\boxed{5}"],
    ]  # fmt: skip
    max_length = len(enc.encode(prompts[0], solutions[0][0]).input_ids) + 12
    exs = []
    for p, sols in zip(prompts, solutions):
        for s in sols:
            e = enc.encode(p, s, max_length, "right")
            exs.append({"input_ids": e.input_ids, "labels": e.labels})
    assert len(exs[2]["input_ids"]) == max_length  # truncation happened
    exs = [exs[0], exs[3], exs[1], exs[2]]  # solutions of one prompt apart in the micro-batch
    model = tiny_model(len(tok))
    n = sum(sum(x != IGNORE for x in e["labels"][1:]) for e in exs)
    single = []
    for e in exs:
        single.append(token_losses(model, {k: torch.tensor([v]) for k, v in e.items()}))
    (torch.cat(single).sum() / n).backward()
    expected = grads(model)
    shared_prompts.setup(model, "sdpa")
    row = shared_prompts.pack(exs)
    assert row["input_ids"].shape[1] < sum(len(e["input_ids"]) for e in exs)  # the prompt computed once
    packed = token_losses(model, row)
    assert packed.numel() == n
    torch.testing.assert_close(packed, torch.cat([single[i] for i in row["shared_layout"].order]), atol=2e-5, rtol=0)
    (packed.sum() / n).backward()
    got = grads(model)
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=1e-4, msg=key)


def test_flex_attention_block_mask_matches_sdpa_per_segment():
    """The GPU kernel's mask (flex attention) gives the SDPA path's output (checked here on CPU, eager)."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    exs = [example(P, [20, 21]), example(Q, [30, 31]), example(P, [22, 23, 24]), example(P, [25])]
    layout = shared_prompts.pack(exs)["shared_layout"]
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, layout.length, 8) for _ in range(3))
    want = shared_prompts._sdpa(q, k, v, layout, 0.0, None)
    group, segment, prefix = shared_prompts.segment_ids(layout, "cpu")
    allowed = (group[:, None] == group[None]) & (
        ((segment[:, None] == segment[None]) & torch.ones(layout.length, layout.length).tril().bool())
        | (prefix[None] & ~prefix[:, None])
    )
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2)
    torch.testing.assert_close(want, dense, atol=1e-5, rtol=0)


def test_grouped_steps_keep_each_prompt_s_solutions_together_and_cover_every_example_once():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 4)
    lengths = rng.integers(50, 300, len(groups))
    for order in ("grouped", "shuffled"):
        steps = batching.step_order(lengths, 16, seed=3, epoch=1, order=order, groups=groups)
        flat = np.concatenate(steps)
        assert sorted(flat.tolist()) == list(range(len(groups)))
        # each prompt's 4 solutions are contiguous in the epoch's order
        assert all(np.ptp(np.flatnonzero(groups[flat] == g)) == 3 for g in range(40))
        again = batching.step_order(lengths, 16, seed=3, epoch=1, order=order, groups=groups)
        assert all((a == b).all() for a, b in zip(steps, again))  # deterministic (exact resume)
        other = batching.step_order(lengths, 16, seed=3, epoch=2, order=order, groups=groups)
        assert any((a != b).any() for a, b in zip(steps, other))


def test_token_budget_micro_batches_keep_a_prompt_s_solutions_together():
    lengths = [100, 90, 300, 80, 110, 290]
    groups = [1, 1, 2, 1, 3, 2]
    parts = batching.micro_batches(lengths, None, 600, True, groups)
    assert sorted(i for p in parts for i in p) == list(range(6))
    assert [2, 5] in parts and any({0, 1, 3} <= set(p) for p in parts)


def test_refused_with_sequence_parallelism_and_varlen_kernels():
    with pytest.raises(SftkitError, match="ulysses_sequence_parallel_size=2"):
        shared_prompts.check_plan("sdpa", 2, "command line")
    with pytest.raises(SftkitError, match="flash_attention_2"):
        shared_prompts.check_plan("flash_attention_2", 1, "command line")


def rft_jsonl(path, problems: int = 12, k: int = 3):
    rows = [json.loads(line) for line in open("data/sample/solutions_0.jsonl")][:problems]
    with open(path, "w") as fh:
        for r in rows:
            for j in range(k):
                fh.write(json.dumps({"prompt": r["prompt"], "generated_solution": r["generated_solution"] + " !" * j}))
                fh.write("\n")
    return path


@pytest.mark.extended
@pytest.mark.parametrize("budget", [False, True])
def test_training_with_shared_prompts_has_the_losses_of_unshared_training(assets, tmp_path, budget, monkeypatch):
    """Same steps (sequential order), shared and unshared: the same loss at every step, and sharing really ran."""
    from _train_utils import losses, train

    data = rft_jsonl(tmp_path / "rft.jsonl")
    shared_rows = []
    original = shared_prompts.pack
    monkeypatch.setattr(shared_prompts, "pack", lambda exs: shared_rows.append(original(exs)) or shared_rows[-1])
    extra = dict(train_files=f"[{data}]", val_files="[]", max_steps=3, save_steps=0, eval_steps=0,
                 train_sampling_strategy="sequential", max_length=160)  # fmt: skip
    if budget:
        extra.update(use_dynamic_bsz="true", max_token_len_per_gpu=400)
    train(assets, tmp_path / "plain", **extra)
    train(assets, tmp_path / "shared", share_prompts="true", **extra)
    assert any(len(g.continuations) > 1 for r in shared_rows for g in r["shared_layout"].groups)
    a, b = losses(tmp_path / "plain"), losses(tmp_path / "shared")
    assert a.keys() == b.keys() == {1, 2, 3}
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-5), step


@pytest.mark.extended
def test_two_processes_with_shared_prompts_have_the_losses_of_one_unshared(assets, tmp_path):
    from _train_utils import launch, losses, overrides, train

    data = rft_jsonl(tmp_path / "rft.jsonl")
    extra = dict(train_files=f"[{data}]", val_files="[]", max_steps=3, save_steps=0, eval_steps=0,
                 train_sampling_strategy="sequential", max_length=160)  # fmt: skip
    train(assets, tmp_path / "one", **extra)
    launch("torchrun", overrides(assets, tmp_path / "two", share_prompts="true", **extra))
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert a.keys() == b.keys() == {1, 2, 3}
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-5), step
