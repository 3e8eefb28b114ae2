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

LABELS_VERSION = 3  # bump when data/labels.py or the cache's files change what an example is or where it lies
PROBE = "<|im_start|>user\n1 + 1 = ?<|im_end|>\n<|endoftext|> <think> é 数学 1234 \\boxed{2}"
CHUNK = 1 << 20
TEXT_SETTINGS = ("split_special_tokens", "add_bos_token", "add_eos_token", "add_prefix_space", "do_lower_case",
                 "clean_up_tokenization_spaces", "legacy")  # fmt: skip


def files_digest(paths: Iterable[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        h.update(b"\x00file\x00")
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """The vocabulary and pipeline, the special tokens, the chat template, the settings that change how text is
    split (split_special_tokens, BOS/EOS adding...), and the ids of a probe text as a last check of behaviour."""
    h = hashlib.blake2b(digest_size=16)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer.get_vocab())).encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(str(getattr(tokenizer, "chat_template", None)).encode())
    h.update(str(type(tokenizer).__name__).encode())
    settings = {k: v for k, v in getattr(tokenizer, "init_kwargs", {}).items() if k in TEXT_SETTINGS}
    settings["split_special_tokens"] = getattr(tokenizer, "split_special_tokens", False)
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for add in (False, True):
        h.update(str(tokenizer(PROBE, add_special_tokens=add)["input_ids"]).encode())
    return h.hexdigest()


def examples_key(data_digest: str, tokenizer: str, **settings) -> str:
    text = json.dumps(
        {"data": data_digest, "tokenizer": tokenizer, "labels": LABELS_VERSION, **settings}, sort_keys=True
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
