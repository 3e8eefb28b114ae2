"""Fingerprints: what identifies the training data and the examples built from it.

- `files_digest`: the files' content, in the order they are read (not their names or times): the same rows moved
  or renamed give the same digest; one changed byte gives another.
- `tokenizer_digest`: everything of the tokenizer that changes the examples: vocabulary, merges, normalisation,
  added and special tokens, the chat template.
- `examples_key`: both, plus the settings that shape the examples (keys, max_length, truncation, strictness) and
  the version of the labels code. It names the tokenized cache (dataset.py) and is recorded in train_state.pt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

LABELS_VERSION = 2  # bump when data/labels.py or the cached columns change what an example is
CHUNK = 1 << 20


def files_digest(paths: Iterable[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        h.update(b"\x00file\x00")
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    h = hashlib.blake2b(digest_size=16)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer.get_vocab())).encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(str(getattr(tokenizer, "chat_template", None)).encode())
    h.update(str(type(tokenizer).__name__).encode())
    return h.hexdigest()


def examples_key(data_digest: str, tokenizer: str, **settings) -> str:
    text = json.dumps(
        {"data": data_digest, "tokenizer": tokenizer, "labels": LABELS_VERSION, **settings}, sort_keys=True
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
