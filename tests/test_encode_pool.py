"""The encoder worker pool (data/encode_pool.py): workers die with their parent. §3.2 of issue 20: a run killed
(SIGTERM, SIGKILL) while it tokenized left its forked workers alive (~390 MB each), holding the run's lock, and
the folder could not be used again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _train_utils import ROOT, sftkit_process

BUILDER = """
import sys
from sftkit.data.dataset import build_dataset
from sftkit.data.labels import Encoder
from sftkit.tiny import build_tokenizer
build_dataset([sys.argv[1]], Encoder(build_tokenizer("qwen2.5")), "prompt", "generated_solution", 512, "right",
              cache_dir=sys.argv[2], num_proc=2)
"""


def many_rows(path: Path, copies: int) -> Path:
    """The bundled sample, `copies` times over (distinct ids): enough rows that the build takes a while."""
    lines = [json.loads(line) for f in sorted((ROOT / "data" / "sample").glob("solutions_*.jsonl"))
             for line in f.read_text().splitlines()]  # fmt: skip
    with open(path, "w") as fh:
        for i in range(copies):
            for row in lines:
                fh.write(json.dumps({**row, "id": f"{i}-{row['id']}"}) + "\n")
    return path


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_mid_build(proc: subprocess.Popen, cache_dir: Path, sig: int, settle: float = 0.0) -> list[int]:
    """Wait until `proc` is building with its workers (and `settle` seconds more), send `sig`; returns the
    workers' pids."""
    deadline = time.time() + 120
    while time.time() < deadline:
        workers = children(proc.pid)
        if len(workers) >= 2 and list(cache_dir.glob(".tmp-examples-*")):
            break
        assert proc.poll() is None, "the process ended before the build started"
        time.sleep(0.05)
    else:
        pytest.fail("the build did not start in time")
    time.sleep(settle)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return workers


def assert_all_gone(pids: list[int], within: float = 10) -> None:
    deadline = time.time() + within
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.extended)], ids=["SIGKILL", "SIGTERM"]
)
def test_workers_die_with_their_parent(tmp_path, sig):
    """Long responses: each worker's batch takes seconds to encode, so a worker that merely noticed, once done,
    that its parent had gone (what the pool's pipes give) would still be there after a second."""
    data = tmp_path / "data.jsonl"
    text = "Natalia sold 48/2 = 24 clips in May. " * 500
    data.write_text("".join(json.dumps({"id": i, "prompt": f"What is {i}?", "generated_solution": text}) + "\n"
                            for i in range(3000)))  # fmt: skip
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(data), str(cache_dir)], cwd=ROOT)
    assert_all_gone(kill_mid_build(proc, cache_dir, sig, settle=0.5), within=1.5)  # each batch takes ~10 s


@pytest.mark.extended
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_run_killed_while_tokenizing_can_be_run_again(assets, tmp_path, sig):
    """The real command, stopped mid-build: no worker is left; a SIGTERM ends it at once with exit 75 and removes
    its temporary folder itself (nothing to save before training), a SIGKILL leaves the folder, and the rerun (auto
    resume) is not refused for a lock and removes it."""
    out, cache_dir = tmp_path / "run", tmp_path / "cache"
    common = [f"model_name_or_path={assets['model']}", f"output_dir={out}", "val_files=[]", "max_length=256",
              "train_batch_size=8", "per_device_train_batch_size=4", "logger=console", "save_steps=0",
              "eval_steps=0", "resume_from_checkpoint=auto"]  # fmt: skip
    env = {**os.environ, "SFTKIT_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    big = many_rows(tmp_path / "big.jsonl", 40)
    proc = subprocess.Popen([sys.executable, "-m", "sftkit", "train", *common, f"train_files=[{big}]",
                             "dataset_num_proc=2", "max_steps=1"], cwd=ROOT, env=env)  # fmt: skip
    workers = kill_mid_build(proc, cache_dir, sig)
    assert_all_gone(workers)
    stale = list(cache_dir.glob(".tmp-examples-*"))
    assert proc.returncode == (75 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert bool(stale) == (sig == signal.SIGKILL)  # what the killed build left; a stopped one cleans up
    again = sftkit_process("train", *common, f"train_files=[{assets['train']}]", "max_steps=1",
                           env={"SFTKIT_CACHE_DIR": str(cache_dir)})  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "another training is running" not in again.stderr
    assert not any(p.exists() for p in stale) and (out / "global_step_final").is_dir()


def blocked_signals(pid: int | str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_the_workers_leave_ctrl_c_to_the_parent_and_the_parent_keeps_its_signal_mask():
    """SIGINT is held back while the pool forks (a Ctrl-C then was lost in 1 of 4 tries) and stays blocked in the
    workers: a terminal's Ctrl-C reaches the parent, whose `with pool` ends them, instead of killing a worker
    mid-task (the pool would wait forever for that task)."""
    import multiprocessing as mp

    from sftkit.data import encode_pool
    from sftkit.data.labels import Encoder
    from sftkit.tiny import build_tokenizer

    rows = [{"id": str(i), "where": "x", "prompt": f"{i}+{i}?", "response": str(2 * i)} for i in range(40)]
    before = blocked_signals("self")
    tables = encode_pool.encoded_tables(encode_pool.batches_of(rows, 10), Encoder(build_tokenizer()), 64, "right", 2)
    first = next(tables)  # the pool exists now
    workers = [p.pid for p in mp.active_children()]
    assert workers and all(blocked_signals(pid) & (1 << (signal.SIGINT - 1)) for pid in workers)
    assert blocked_signals("self") == before
    assert first.num_rows + sum(t.num_rows for t in tables) == 40
