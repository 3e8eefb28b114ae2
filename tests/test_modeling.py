"""Checks before the model loads (training/modeling.py): a token budget (data.use_dynamic_bsz) that the examples
do not fit (§3.10 of issue 20: a budget smaller than every example trained with no word)."""

from __future__ import annotations

import numpy as np
import pytest

from _train_utils import assert_user_error, overrides, train
from sftkit.errors import SftkitError
from sftkit.training.batching import budget_problem


def test_budget_that_no_example_fits_is_an_error_some_a_warning():
    lengths = np.array([50, 60, 300])
    assert budget_problem(lengths, 400) == (None, None) and budget_problem(lengths, None) == (None, None)
    error, warning = budget_problem(lengths, 100)
    assert error is None and "1 of 3 training examples are longer than data.max_token_len_per_gpu=100" in warning
    error, warning = budget_problem(lengths, 40)
    assert warning is None and "every training example is longer than data.max_token_len_per_gpu=40" in error
    assert "shortest has 50 tokens" in error and "longest example (300 tokens)" in error
    error, _ = budget_problem(lengths, 20 * 2, sp_size=2)  # the key counts one GPU's tokens, 1/sp of a row
    assert "data.max_token_len_per_gpu=20 " in error


@pytest.mark.slow
def test_training_with_a_budget_no_example_fits_stops_before_the_model_loads(assets, tmp_path):
    with pytest.raises(SftkitError, match="every training example is longer than data.max_token_len_per_gpu=8 "):
        train(assets, tmp_path / "run", use_dynamic_bsz="true", max_token_len_per_gpu=8)
    assert not list((tmp_path / "run").glob("global_step_*"))


@pytest.mark.slow
def test_lora_target_modules_that_match_nothing(assets, tmp_path, sftkit):
    proc = sftkit("train", *overrides(assets, tmp_path / "o", lora_rank=4, target_modules="[q_proj,qkv_proj]"))
    assert_user_error(proc, "['qkv_proj'] match no linear layer", "q_proj", "v_proj")
