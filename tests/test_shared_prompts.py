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


def test_repeats_sends_only_micro_batches_with_a_repeated_prompt_to_the_packed_path():
    assert shared_prompts.repeats([example(P, [20]), example(Q, [30]), example(P, [21])])
    assert not shared_prompts.repeats([example(P, [20]), example(Q, [30])])
    # a one-token prompt (nothing to share) and a prompt with no response are never shared
    assert not shared_prompts.repeats([example([5], [20]), example([5], [21])])
    assert not shared_prompts.repeats([example(P, []), example(P, [])])


def test_a_step_of_packed_and_plain_micro_batches_has_the_losses_and_gradients_of_unshared_training():
    """A step cut into a micro-batch with repeated prompts (one also alone) and one without: the first is packed,
    the second takes the plain padded path (TRL's collator) under the same attention function; together they give
    the per-token losses, the mean and the gradients of unshared training."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    R = [40, 41, 42, 43, 44, 45, 46]
    packed_part = [example(P, [20, 21]), example(Q, [30]), example(P, [22, 23, 24]), example(R, [47])]
    plain_part = [example(Q, [31, 32, 33]), example(R, [48, 49])]
    assert shared_prompts.repeats(packed_part) and not shared_prompts.repeats(plain_part)
    exs = packed_part + plain_part
    model = tiny_model(64)
    n = sum(sum(x != IGNORE for x in e["labels"][1:]) for e in exs)
    single = torch.cat([token_losses(model, {k: torch.tensor([v]) for k, v in e.items()}) for e in exs])
    (single.sum() / n).backward()
    expected = grads(model)
    shared_prompts.setup(model, "sdpa")
    row = shared_prompts.pack(packed_part)
    padded = DataCollatorForLanguageModeling(pad_token_id=0)([dict(e) for e in plain_part])
    logits = model(**{k: v for k, v in padded.items() if k != "labels"}, use_cache=False).logits[:, :-1]
    target = padded["labels"][:, 1:]
    plain = torch.nn.functional.cross_entropy(logits[target != IGNORE], target[target != IGNORE], reduction="none")
    packed = token_losses(model, row)
    assert packed.numel() + plain.numel() == n
    order = [sum(sum(x != IGNORE for x in e["labels"][1:]) for e in exs[:i]) for i in range(len(exs) + 1)]
    per_example = [single[a:b] for a, b in zip(order[:-1], order[1:])]
    want = torch.cat([per_example[i] for i in row["shared_layout"].order] + per_example[len(packed_part) :])
    torch.testing.assert_close(torch.cat([packed, plain]), want, atol=2e-5, rtol=0)
    (torch.cat([packed, plain]).sum() / n).backward()
    got = grads(model)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=1e-4, msg=key)


def test_prompt_groups_ids_repeated_prompts_the_same_way_in_any_slice_and_none_without_repeats():
    from datasets import Dataset

    exs = [example(P, [20]), example(Q, [30, 31]), example(P, [21, 22]), example(P + [10], [23]), example(Q, [32])]
    data = Dataset.from_list(exs)
    groups = shared_prompts.prompt_groups(data, batch=2)  # batches cut between a prompt's solutions
    assert groups[0] == groups[2] and groups[1] == groups[4] and len(set(groups.tolist())) == 3
    # a selected (index-mapped) view and a shuffled one give each example the same id
    picked = shared_prompts.prompt_groups(data.select([4, 2, 1, 0]))
    assert picked.tolist() == [groups[i] for i in (4, 2, 1, 0)]
    assert shared_prompts.prompt_groups(Dataset.from_list([exs[0], exs[1], exs[3]])) is None


def test_default_shares_where_the_kernel_and_layout_allow_and_an_explicit_true_is_checked():
    assert shared_prompts.resolve(None, "sdpa", 1, "default") is True
    assert shared_prompts.resolve(None, "flex_attention", 1, "default") is True
    assert shared_prompts.resolve(None, "flash_attention_2", 1, "default") is False  # not refused: off
    assert shared_prompts.resolve(None, "sdpa", 2, "default") is False
    assert shared_prompts.resolve(False, "sdpa", 1, "command line") is False
    with pytest.raises(SftkitError, match="flash_attention_2"):
        shared_prompts.resolve(True, "flash_attention_2", 1, "command line")


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
    train(assets, tmp_path / "plain", share_prompts="false", **extra)
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
    train(assets, tmp_path / "one", share_prompts="false", **extra)
    launch("torchrun", overrides(assets, tmp_path / "two", share_prompts="true", **extra))
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert a.keys() == b.keys() == {1, 2, 3}
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-5), step


@pytest.mark.extended
def test_default_training_packs_only_micro_batches_with_repeated_prompts_and_keeps_the_losses(
    assets, tmp_path, monkeypatch
):
    """Prompts with one solution and with several, micro-batches of 4 in file order: some micro-batches hold a
    repeated prompt (packed), some do not (plain path); the losses are those of share_prompts=false."""
    from _train_utils import losses, train

    rows = [json.loads(line) for line in open("data/sample/solutions_0.jsonl")]
    ks = [1, 1, 1, 1, 2, 2, 2, 1, 1, 3, 1, 1, 1, 1, 1]  # micro-batches: 4 alone | 2+2 | 2+1+1 | 3+1 | 4 alone ...
    data = tmp_path / "mixed.jsonl"
    lines = [{"prompt": r["prompt"], "generated_solution": r["generated_solution"] + " !" * j}
             for r, k in zip(rows, ks) for j in range(k)]  # fmt: skip
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    packed = []
    original = shared_prompts.pack
    monkeypatch.setattr(shared_prompts, "pack", lambda exs: packed.append(original(exs)) or packed[-1])
    extra = dict(train_files=f"[{data}]", val_files="[]", max_steps=2, save_steps=0, eval_steps=0,
                 train_sampling_strategy="sequential", max_length=256)  # fmt: skip
    train(assets, tmp_path / "plain", share_prompts="false", **extra)
    assert not packed
    train(assets, tmp_path / "default", **extra)
    assert 0 < len(packed) < 4  # of the 4 micro-batches: some plain (the first, all alone), some packed ...
    assert any(len(g.continuations) == 1 for r in packed for g in r["shared_layout"].groups)  # ... with one alone
    a, b = losses(tmp_path / "plain"), losses(tmp_path / "default")
    assert a.keys() == b.keys() == {1, 2}
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-5), step
