"""src/sftkit/training/lm_head.py: TRL's fused LM head scores trained positions only on CPU, with the same loss and
gradients as scoring every position."""

from __future__ import annotations

import torch
import trl.trainer.utils as trl_utils
from trl.trainer.utils import add_fused_lm_head

from sftkit.data.labels import IGNORE
from sftkit.training.lm_head import score_trained_positions_only


def tiny_model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True, attn_implementation="sdpa")  # fmt: skip
    model = Qwen2ForCausalLM(cfg).float()
    add_fused_lm_head(model)
    return model


def loss_grads_and_rows(model, batch, monkeypatch) -> tuple[torch.Tensor, dict, list[int]]:
    rows = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def counting(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting)
    loss = model(**batch, fused_lm_head=True, num_items_in_batch=torch.tensor(7)).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", apply)
    return loss.detach(), grads, rows


def test_cpu_scores_only_trained_positions_with_the_same_loss_and_gradients(monkeypatch):
    model = tiny_model()
    torch.manual_seed(1)
    ids = torch.randint(1, 97, (2, 9))
    labels = ids.clone()
    labels[0, :6] = IGNORE  # a prompt of 6, 3 trained tokens
    labels[1, :4] = IGNORE
    labels[1, 8:] = IGNORE  # 4 trained (right padding after them)
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    upstream = getattr(trl_utils._use_triton, "sftkit_upstream", trl_utils._use_triton)  # an earlier run widened it
    monkeypatch.setattr(trl_utils, "_use_triton", upstream)  # restored after the test
    full_loss, full_grads, full_rows = loss_grads_and_rows(model, batch, monkeypatch)
    score_trained_positions_only()
    score_trained_positions_only()  # idempotent
    loss, grads, rows = loss_grads_and_rows(model, batch, monkeypatch)
    assert full_rows == [2 * 8] and rows == [7]  # every shifted position before, the trained ones now
    torch.testing.assert_close(loss, full_loss, atol=1e-6, rtol=1e-6)
    for name, grad in full_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
