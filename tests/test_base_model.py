"""The base model's fingerprint (checkpoint/base_model.py), compared on resume: the same weights anywhere give the
same fingerprint, other weights at the same path another one, and it costs a few KB of reads even for an 8B model."""

from __future__ import annotations

import json
import shutil
import time

from sftkit.checkpoint.base_model import fingerprint
from sftkit.tiny import write_tiny_model


def test_same_weights_same_fingerprint_other_weights_another(tmp_path, tiny_model_dir):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "moved")
    assert fingerprint(str(tiny_model_dir)) == fingerprint(str(copy)) is not None
    write_tiny_model(copy, seed=1)  # rebuilt at the same path: same shapes and header, other weights
    assert fingerprint(str(copy)) != fingerprint(str(tiny_model_dir))
    assert fingerprint(str(tmp_path / "nowhere")) is None and fingerprint(None) is None
    assert fingerprint("Qwen/not-in-any-cache-here") is None  # a hub id without a local copy: path compared only


def test_an_8b_sized_model_is_fingerprinted_from_a_few_kb(tmp_path):
    """Four sparse 4 GB safetensors shards (16 GB, as an 8B model in bf16): reading them would take seconds."""
    folder = tmp_path / "big"
    folder.mkdir()
    for shard in range(4):
        header = json.dumps(
            {f"layer.{shard}.weight": {"dtype": "BF16", "shape": [2 << 30], "data_offsets": [0, 4 << 30]}}
        )
        path = folder / f"model-0000{shard + 1}-of-00004.safetensors"
        with open(path, "wb") as fh:
            fh.write(len(header).to_bytes(8, "little") + header.encode())
            fh.truncate(8 + len(header) + (4 << 30))  # a hole: no disk used
    start = time.perf_counter()
    first = fingerprint(str(folder))
    assert first is not None and time.perf_counter() - start < 1.0
    renamed = folder / "model-00004-of-00004.safetensors"
    header = json.dumps({"lm_head.weight": {"dtype": "BF16", "shape": [2 << 30], "data_offsets": [0, 4 << 30]}})
    with open(renamed, "r+b") as fh:  # another tensor name (the header is read whole)
        fh.write(len(header).to_bytes(8, "little") + header.encode())
    assert fingerprint(str(folder)) != first
