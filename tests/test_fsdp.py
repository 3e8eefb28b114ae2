"""FSDP2 checkpoint gather/load on CPU (torch fully_shard over gloo, 2 processes): see fsdp_worker.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sftkit import tiny

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


@pytest.mark.extended  # raw fully_shard, 9 s; the default suite runs the real FSDP2 path (test_fsdp2_accelerate.py)
def test_fsdp2_gather_save_and_load_into_another_sharding(tmp_path):
    model_dir = tiny.write_tiny_model(tmp_path / "tiny")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = Path(__file__).with_name("fsdp_worker.py")
    cmd = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        str(worker),
        str(model_dir),
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FSDP2 gather/load OK" in proc.stdout
