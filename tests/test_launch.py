"""src/sftkit/launch.py: `sftkit launch` is `accelerate launch` that keeps the exit code of the process that
failed first (75 pre-empted, 2 user error, 3 diverged, 128+N killed) and prints one line instead of torch
elastic's ChildFailedError traceback; a user error in a 2-process training ends cleanly (no SIGABRT)."""

from __future__ import annotations

import os
import shutil
import signal
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
if how == "until_stopped":  # as the trainer does: check the stop file at each step, exit 75 when it is there
    print(f"rank {rank} ready", flush=True)
    while not os.path.exists(os.environ["SFTKIT_STOP_FILE"]):
        time.sleep(0.05)
    sys.exit(75)
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


@pytest.mark.parametrize(
    ("how", "code"),
    [("exit75", 75), pytest.param("killed", 128 + 9, marks=pytest.mark.extended),
     pytest.param("ok", 0, marks=pytest.mark.extended)],
)  # fmt: skip
def test_the_exit_code_of_the_process_that_failed_first_is_kept(tmp_path, how, code):
    (tmp_path / "child.py").write_text(CHILD)
    proc = sftkit_launch("child.py", how, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
    if code:
        assert f"stopped first, with exit code {code}" in proc.stderr


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, *(pytest.param(s, marks=pytest.mark.extended) for s in (signal.SIGUSR1, signal.SIGINT))]
)
def test_a_stop_signal_to_the_launcher_stops_every_rank_through_the_stop_file_and_exits_75(tmp_path, sig):
    """scancel/SLURM signal the launcher: torch's agent would kill the workers and exit 143; here the signal
    becomes the stop file, every rank saves and exits 75, and so does `sftkit launch`."""
    (tmp_path / "child.py").write_text(CHILD)
    config = str(resources.accelerate_config("cpu_ddp"))
    cmd = [sys.executable, "-m", "sftkit", "launch", "--config_file", config, "--num_processes", "2",
           "--main_process_port", str(free_port()), "child.py", "until_stopped"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("SFTKIT_STOP_FILE", "SFTKIT_SUPERVISED")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""  # both ranks write to one pipe: their lines may interleave ("rank 1 readyrank 0 ready\n\n")
    while not all(f"rank {r} ready" in seen for r in (0, 1)):
        line = proc.stdout.readline()
        assert line, seen
        seen += line
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err[-3000:]
    assert "the training stops after its next optimizer step" in err and "Traceback" not in err


def test_a_config_file_that_does_not_exist_is_a_message_and_a_shipped_name_is_found(capsys):
    from sftkit.launch import accelerate_launch, config_file

    assert accelerate_launch(["--config_file", "nope.yaml", "child.py"]) == 2
    err = capsys.readouterr().err
    assert "--config_file nope.yaml: no such file" in err and "cpu_ddp" in err  # was a FileNotFoundError traceback
    assert config_file("fsdp4") == str(resources.accelerate_config("fsdp4"))


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
