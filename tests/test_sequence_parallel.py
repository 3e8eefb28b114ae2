"""Ulysses sequence parallelism (`ulysses_sequence_parallel_size`, docs/contracts.md §7) on CPU over gloo: the same
loss per step and the same weights as one process on the same examples, with dp x sp grids, and checkpoints that resume
without it. The attention path itself (logits, loss, gradients; key/value heads fewer than ranks) is checked in
tests/sp_worker.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from _train_utils import BIN, ROOT, free_port, launch, losses, model_pt, overrides
from sftkit.checkpoint import layout
from sftkit.config.plan import plan_run
from sftkit.errors import SftkitError

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def args(assets, out, **extra):
    # padding-free (required by sp), global batch 8, 4 steps, a save at step 2, validation at 2 and the end; no
    # shared-prompt packing (not with sp: the one-process run would draw each prompt's solutions together)
    settings = {"max_steps": 4, "save_steps": 2, "eval_steps": 2, "use_remove_padding": "true",
                "share_prompts": "false", **extra}  # fmt: skip
    return overrides(assets, out, **settings)


def assert_same_run(a, b, loss_rel=1e-4, weight_rel=1e-3):
    la, lb = losses(a), losses(b)
    assert sorted(la) == sorted(lb)
    for step in la:
        assert lb[step] == pytest.approx(la[step], rel=loss_rel), step
    wa, wb = model_pt(a / "global_step_final"), model_pt(b / "global_step_final")
    for key in wa:
        assert (wa[key] - wb[key]).norm() <= weight_rel * wa[key].norm(), key


@pytest.mark.extended  # 2-process runs (default suite budget)
def test_attention_logits_loss_and_gradients_match_the_plain_model():
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(ROOT / "tests/sp_worker.py"), "2", "1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("ok") == 4  # 2 ranks x (kv heads = sp, kv heads < sp)


@pytest.mark.extended  # 2-process runs (default suite budget)
def test_sp2_matches_one_process_and_resumes_without_sp(assets, tmp_path):
    one, sp = tmp_path / "one", tmp_path / "sp"
    launch("single", args(assets, one))
    proc = launch("torchrun", args(assets, sp, ulysses_sequence_parallel_size=2))
    assert "world_size: 2 (dp 1 x sp 2)" in proc.stdout
    assert_same_run(one, sp)
    val = lambda out: [r for r in (out / "metrics.jsonl").read_text().splitlines() if "val_loss" in r]  # noqa: E731
    assert len(val(sp)) == 2
    # a checkpoint written with sp=2 resumes in one process (layout and data position are the same)
    assert layout.load_state(sp / "global_step_2")["config"]["sp_size"] == 2
    resumed = tmp_path / "resumed"
    launch("single", args(assets, resumed, resume_from_checkpoint=sp / "global_step_2"))
    lr, lo = losses(resumed), losses(one)
    assert sorted(lr) == [3, 4]
    for step in lr:
        assert lr[step] == pytest.approx(lo[step], rel=1e-4), step


@pytest.mark.extended
def test_sp2_times_dp2_on_four_processes_matches_one(assets, tmp_path):
    one, grid = tmp_path / "one", tmp_path / "grid"
    launch("single", args(assets, one, eval_steps=0))
    proc = launch("torchrun", args(assets, grid, eval_steps=0, ulysses_sequence_parallel_size=2), nproc=4)
    assert "world_size: 4 (dp 2 x sp 2)" in proc.stdout
    assert_same_run(one, grid)


def test_plan_checks_for_sequence_parallelism():
    base = ["model_name_or_path=m", "train_files=[t.parquet]", "ulysses_sequence_parallel_size=2"]
    plan = plan_run(None, base, environ={}, world_size=4)
    assert (plan.dp_size, plan.sp_size, plan.padding_free) == (2, 2, True)  # padding-free by default with sp
    with pytest.raises(SftkitError, match="use_remove_padding=false"):
        plan_run(None, [*base, "use_remove_padding=false"], environ={}, world_size=2)
    with pytest.raises(SftkitError, match="divide the number of processes"):
        plan_run(None, base, environ={}, world_size=3)


def test_heads_that_do_not_divide_are_a_clear_error():
    from types import SimpleNamespace

    from sftkit.training.ulysses import check_heads

    check_heads(SimpleNamespace(num_attention_heads=14, num_key_value_heads=2), 2)  # Qwen2.5-0.5B, sp=2: fine
    check_heads(SimpleNamespace(num_attention_heads=12, num_key_value_heads=2), 4)  # kv < sp: repeated
    with pytest.raises(SftkitError, match=r"14 query heads, 2 key/value heads.*such as 2\."):
        check_heads(SimpleNamespace(num_attention_heads=14, num_key_value_heads=2), 4)


def test_inspect_shows_tokens_per_rank(assets):
    import numpy as np

    from sftkit.dry_run import epoch_report

    base = [f"model_name_or_path={assets['model']}", f"train_files=[{assets['train']}]", "train_batch_size=8"]
    plan = plan_run(None, [*base, "ulysses_sequence_parallel_size=2"], environ={}, world_size=2)
    lengths = np.array([51] * 16)  # micro-batches of 4 packed examples: 204 tokens, 102 on each of the 2 ranks
    report = epoch_report(lengths, lengths // 2, plan)
    sp = report["sequence_parallel"]
    assert sp["sp_size"] == 2 and sp["tokens_per_rank"] == {"p50": 102, "p90": 102, "p99": 102, "max": 102}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
