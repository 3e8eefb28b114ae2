"""src/sftkit/launch.py: `sftkit launch` is `accelerate launch` that keeps the exit code of the process that
failed first (75 pre-empted, 2 user error, 3 diverged, 128+N killed) and prints one line instead of torch
elastic's ChildFailedError traceback; a user error in a 2-process training ends cleanly (no SIGABRT)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sftkit import resources

pytestmark = pytest.mark.slow

CHILD = """
import os, signal, sys, time
rank = int(os.environ["RANK"])
how = sys.argv[1]
if how == "exit75":
    sys.exit(75 if rank == 0 else 0)
if how == "killed":
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(20)
sys.exit(0)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sftkit_launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    config = str(resources.accelerate_config("cpu_ddp"))
    cmd = [sys.executable, "-m", "sftkit", "launch", "--config_file", config, "--num_processes", "2",
           "--main_process_port", str(free_port()), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize(("how", "code"), [("exit75", 75), ("killed", 128 + 9), ("ok", 0)])
def test_the_exit_code_of_the_process_that_failed_first_is_kept(tmp_path, how, code):
    (tmp_path / "child.py").write_text(CHILD)
    proc = sftkit_launch("child.py", how, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
    if code:
        assert f"stopped first, with exit code {code}" in proc.stderr


def test_accelerate_launch_itself_turns_the_code_into_1(tmp_path):
    """Why `sftkit launch` exists: this fails when Accelerate starts keeping the code (then drop the wrapper)."""
    (tmp_path / "child.py").write_text(CHILD)
    config = str(resources.accelerate_config("cpu_ddp"))
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", config, "--num_processes", "2", "--main_process_port",
           str(free_port()), "child.py", "exit75"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1 and "ChildFailedError" in proc.stderr


@pytest.mark.extended
def test_a_user_error_in_a_two_process_training_exits_2_with_its_message_only(assets, finished_run, tmp_path):
    """An output folder that holds a run's checkpoints is refused on both ranks after the process group exists:
    each tears the group down before it exits. Exiting with the group alive aborted in C++ ("terminate called
    without an active exception", exit 134) in 1 of 3 such runs, so the refusal is tried three times."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    args = ["-m", "sftkit.train", "--config", str(resources.recipes() / "tiny.yaml"),
            f"model_name_or_path={assets['model']}", f"train_files=[{assets['train']}]",
            f"val_files=[{assets['val']}]", f"output_dir={out}", "max_steps=1"]  # fmt: skip
    for _ in range(3):
        proc = sftkit_launch(*args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stderr.count("already holds checkpoints") == 1
        for crash in ("Traceback", "terminate called", "ChildFailedError"):
            assert crash not in proc.stderr
