"""Multi-process training on CPU (2 processes over gloo), as launched by users: `accelerate launch` with
accelerate_configs/cpu_ddp.yaml and `torchrun --nproc_per_node 2`. Same global batch -> same loss curve as one
process; checkpoints resume across a change of world size (2 -> 1 -> 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _train_utils import BIN, ROOT, free_port, launch, losses, overrides, train
from sftkit.checkpoint import layout

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


@pytest.fixture(scope="module")
def odd_val(assets, tmp_path_factory) -> Path:
    """61 validation examples: 2 processes cannot split them evenly (Accelerate repeated examples to even out)."""
    path = tmp_path_factory.mktemp("odd-val") / "val61.parquet"
    pq.write_table(pq.read_table(assets["train"]).slice(0, 61), path)
    return path


def common(assets, out, **extra):
    # micro batch 4, global batch 8: one process accumulates 2 micro-batches, two processes 1 each.
    return overrides(assets, out, max_steps=6, save_steps=2, eval_steps=3, max_length=512, **extra)


def val_losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}


@pytest.mark.extended  # 2-process runs (default suite budget)
def test_two_processes_match_one_and_resume_across_world_sizes(assets, odd_val, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    launch("single", common(assets, one, val_files=f"[{odd_val}]"))
    cache = tmp_path / "cache"
    proc = launch("accelerate", common(assets, two, val_files=f"[{odd_val}]"), env={"SFTKIT_CACHE_DIR": str(cache)})
    assert "world_size: 2 (dp 2 x sp 1)" in proc.stdout and "micro-batches per process: 4 x 1" in proc.stdout
    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in a:  # same examples per step, loss = mean over the step's trained tokens of both ranks
        assert b[step] == pytest.approx(a[step], rel=1e-5), step
    va, vb = val_losses(one), val_losses(two)  # each validation example counted once, whatever the processes
    assert sorted(va) == sorted(vb) == [3, 6]
    for step in va:
        assert vb[step] == pytest.approx(va[step], rel=1e-6), step
    # the examples were tokenized once (one process), for the train and the validation files
    builds = [json.loads(line) for line in (cache / "builds.log").read_text().splitlines()]
    assert len(builds) == 2 and len({b["pid"] for b in builds}) == 1
    # messages printed once, not once per rank
    assert proc.stdout.count("resolved config:") == 1 and proc.stdout.count("data: tokenized") == 2
    # Rank 0 alone writes: one line per step in metrics.jsonl, one rng state per rank in the checkpoint.
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in rows if "loss" in r]) == 6
    assert len(layout.load_state(two / "global_step_2")["rng_states"]) == 2
    assert layout.load_state(two / "global_step_2")["world_size"] == 2

    # 2 -> 1: resume the 2-process checkpoint in one process (same global batch) ...
    down = tmp_path / "down"
    launch("single", common(assets, down, resume_from_checkpoint=two / "global_step_2"))
    c = losses(down)
    assert sorted(c) == [3, 4, 5, 6]
    for step in c:
        assert c[step] == pytest.approx(b[step], rel=1e-4), step
    # ... and 1 -> 2 with torchrun.
    up = tmp_path / "up"
    launch("torchrun", common(assets, up, resume_from_checkpoint=down / "global_step_4"))
    d = losses(up)
    assert sorted(d) == [5, 6]
    for step in d:
        assert d[step] == pytest.approx(b[step], rel=1e-4), step


@pytest.mark.extended
def test_gpu_check_dry_run_on_cpu(tmp_path):
    """scripts/gpu_check.sh --cpu runs the GPU script's code paths that need no CUDA, end to end."""
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts/gpu_check.sh"),
            "--cpu",
            "--workdir",
            str(tmp_path / "runs"),
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = results.read_text()
    # the FSDP rows say what ran: one process on CPU, no sharding
    rows = ("tiny-full-1proc-cpu | ok | none", "tiny-lora-1proc-cpu | ok | none", "tiny-padding-free | ok | none")
    for check in (*rows, "save+resume+export | ok"):
        assert check in table


@pytest.mark.extended
def test_two_process_resume_in_a_later_epoch(assets, tmp_path):
    """A resumed later epoch with 2 processes draws that epoch's steps, not epoch 0's."""
    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(assets["train"]).slice(0, 40), small)  # 5 steps an epoch at global batch 8
    extra = dict(train_files=f"[{small}]", max_steps=-1, num_train_epochs=2, save_steps=7, eval_steps=0)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    launch("torchrun", overrides(assets, straight, **extra))
    launch("torchrun", overrides(assets, resumed, resume_from_checkpoint=straight / "global_step_7", **extra))
    a, b = losses(straight), losses(resumed)
    assert sorted(b) == [8, 9, 10]
    for step in b:
        assert b[step] == pytest.approx(a[step], rel=1e-5), step


@pytest.mark.extended
def test_token_budget_steps_match_across_world_sizes(assets, tmp_path):
    """use_dynamic_bsz: the same train_batch_size sequences per step on 1 and 2 processes (the micro-batches differ,
    the loss, a token mean of the step, does not)."""
    budget = dict(use_dynamic_bsz="true", max_token_len_per_gpu=1200, max_steps=4, eval_steps=0, save_steps=0)
    one, two = tmp_path / "one", tmp_path / "two"
    launch("single", overrides(assets, one, **budget))
    launch("torchrun", overrides(assets, two, **budget))
    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5), step


@pytest.mark.extended  # two processes, 11 s: CI runs it in make test-extended
def test_a_user_error_is_printed_once_and_every_rank_exits_non_zero(assets, tmp_path):
    proc = launch("torchrun", overrides(assets, tmp_path / "o", train_files=f"[{tmp_path / 'missing.parquet'}]"),
                  expect=1)  # fmt: skip
    assert proc.stderr.count("error: ") == 1 and "missing.parquet" in proc.stderr and "file not found" in proc.stderr
    assert "src/sftkit" not in proc.stderr  # no traceback from our code (torchrun prints its own ChildFailedError)


def test_rank0_chooses_the_checkpoint_and_a_rank_that_cannot_read_it_stops_all(assets, tmp_path):
    """Nodes without a shared file system: rank 0 finds a checkpoint that rank 1 cannot see. Before, rank 0 resumed
    and rank 1 started fresh; now every rank stops with one message naming the rank."""
    for rank in (0, 1):
        (tmp_path / f"node{rank}").mkdir()
    train(assets, tmp_path / "node0" / "run", max_steps=3, save_steps=2, eval_steps=0)
    import shutil

    shutil.rmtree(tmp_path / "node0" / "run" / "global_step_final")
    args = overrides(assets, Path("run"), max_steps=3, save_steps=2, eval_steps=0, resume_from_checkpoint="auto")
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(ROOT / "tests/patched_train.py"), "rank_cwd", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.count("error: ") == 1 and "(on rank 1) rank 0 resumes from run/global_step_2" in proc.stderr
    assert not (tmp_path / "node1" / "run" / "global_step_final").exists()


def workers_of(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(assets, tmp_path):
    out = tmp_path / "run"
    args = overrides(assets, out, max_steps=40, save_steps=100, eval_steps=0, learning_rate=1e-4)
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "sftkit.train",
           *args]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    metrics, deadline = out / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        lines = metrics.read_text().splitlines()[:-1] if metrics.exists() else []
        if any(json.loads(x).get("step", 0) >= 3 for x in lines):
            ranks = workers_of(proc.pid)
            assert len(ranks) == 2, ranks
            os.kill(max(ranks), signal.SIGTERM)  # one rank only (the younger process: rank 1 as a rule)
            break
        time.sleep(0.02)
    proc.communicate(timeout=300)
    saved = list(out.glob("global_step_*"))
    assert len(saved) == 1 and saved[0].name != "global_step_final", saved
    state = layout.load_state(saved[0])
    assert 3 <= state["global_step"] < 40 and len(state["rng_states"]) == 2  # both ranks took part in the save
    assert max(losses(out)) == state["global_step"]


@pytest.mark.extended  # 2-process runs (default suite budget)
def test_val_accuracy_is_the_same_on_two_processes(assets, tmp_path):
    from test_accuracy import numbered_val_file

    val = tmp_path / "val.parquet"
    numbered_val_file(val, 10)
    args = overrides(assets, tmp_path / "two", val_files=f"[{val}]", max_steps=2, eval_steps=0, save_steps=0,
                     eval_accuracy_samples=9)  # fmt: skip
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(ROOT / "tests/patched_train.py"), "accuracy_stub", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_accuracy"] for r in rows if "val_accuracy" in r] == [pytest.approx(3 / 9)]
