"""The run plan (config/plan.py): everything derived once from the resolved settings, refused before any work when
it cannot run as written, and the one configuration object the trainer, the console and the checkpoint share."""

from __future__ import annotations

import pytest

from sftkit.config.plan import plan_run
from sftkit.errors import SftkitError

BASE = ["model_name_or_path=m", "train_files=[t.parquet]"]


def test_average_tokens_across_devices_false_is_refused():
    """It used to divide the loss and the gradients by the world size."""
    with pytest.raises(SftkitError, match="average_tokens_across_devices=false .* number of GPUs"):
        plan_run(None, [*BASE, "average_tokens_across_devices=false"], environ={})
