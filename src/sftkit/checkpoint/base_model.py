"""A cheap fingerprint of the base model's weights, recorded in every checkpoint and compared on resume
(docs/contracts.md §5): a base rebuilt or replaced at the same path (other weights) is a different run, while the same
weights moved to another path are not.

What it reads: for every weight file of the folder (*.safetensors, *.bin, *.pt, *.pth), its name and size, the
whole safetensors header (tensor names, dtypes, shapes, offsets: 30-100 KB for an 8B model), and SAMPLES slices of
SLICE bytes spread evenly over the tensor data. About 8 KB of data per file: a few milliseconds for an 8B model, where
hashing its 16 GB would take a minute. It sees any change of shapes or names and any re-initialisation or training
of the weights (every slice changes); an edit confined to a few tensors between the slices may pass unseen.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")
SAMPLES = 32
SLICE = 256
MAX_HEADER = 100 << 20  # safetensors caps its header at 100 MB


def _folder(name_or_path: str) -> Path | None:
    """The local folder of a model: the path itself, or the hub cache's snapshot of a hub id (no download)."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(str(name_or_path), "config.json")
    except Exception:  # not a valid hub id: nothing to fingerprint
        return None
    return Path(config).parent if isinstance(config, str) else None


def _file(digest, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as fh:
        start = 0
        if path.suffix == ".safetensors" and size >= 8:
            length = int.from_bytes(fh.read(8), "little")
            if length <= min(MAX_HEADER, size - 8):
                digest.update(fh.read(length))
                start = 8 + length
        span = max(size - start - SLICE, 0)
        for i in range(SAMPLES):
            fh.seek(start + span * i // (SAMPLES - 1))
            digest.update(fh.read(SLICE))


def fingerprint(name_or_path: str | None) -> str | None:
    """blake2b-128 over the sampled bytes of the model's weight files; None when there is no local copy to read
    (then only the path is compared)."""
    folder = _folder(name_or_path) if name_or_path else None
    if folder is None:
        return None
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHTS and p.is_file())
    if not files:
        return None
    digest = hashlib.blake2b(digest_size=16)
    try:
        for path in files:
            _file(digest, path)
    except OSError:
        return None
    return digest.hexdigest()
