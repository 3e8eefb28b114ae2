"""Regenerate src/sftkit/assets/tiny_tokenizer.json: a byte-level BPE (like Qwen's) trained on the bundled sample.

Not needed at run time: the output is committed, so `sftkit tiny-model` is deterministic and offline.
Usage: python scripts/build_tiny_tokenizer.py
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

ROOT = Path(__file__).resolve().parents[1]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 2048


def texts():
    for path in sorted((ROOT / "data" / "sample").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            yield from (str(v) for k, v in row.items() if k in ("prompt", "generated_solution", "question"))
    yield "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\nsystem user assistant"


def main() -> None:
    # Qwen2's own pipeline (NFC, its split regex: digits one by one, then byte-level), so the folder that
    # `sftkit tiny-model` writes loads as a Qwen2Tokenizer that tokenizes exactly like `tiny.build_tokenizer()`.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    out = ROOT / "src" / "sftkit" / "assets" / "tiny_tokenizer.json"
    tok.save(str(out))
    print(f"wrote {out} ({tok.get_vocab_size()} tokens)")


if __name__ == "__main__":
    main()
