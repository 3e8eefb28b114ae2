"""`sftkit tiny-model OUT_DIR`: a small, deterministic, offline Qwen2-style model folder.

The demo and the tests use it; nothing is downloaded. The tokenizer is a byte-level BPE shipped in `assets/`
with Qwen2.5's special tokens and chat template, so the labels contract is exercised exactly as with real Qwen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sftkit.dist import user_errors

ASSETS = Path(__file__).parent / "assets"
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# ChatML without a default system prompt: the "chat tokenizer without system prompt" case of the labels tests.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TEMPLATES = {
    "qwen2.5": lambda: (ASSETS / "qwen2_5_chat_template.jinja").read_text(),
    "chatml": lambda: CHATML_TEMPLATE,
    "none": lambda: None,
}


def build_tokenizer(template: str = "qwen2.5"):
    """The tiny tokenizer, a Qwen2Tokenizer (so a saved folder loads back identical): Qwen2.5 special tokens, pad
    `<|endoftext|>`, EOS `<|im_end|>` (or `<|endoftext|>` without a chat template, as for a base model)."""
    import json

    from transformers import Qwen2Tokenizer

    model = json.loads((ASSETS / "tiny_tokenizer.json").read_text())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    chat_template = TEMPLATES[template]()
    tok = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        eos_token="<|im_end|>" if chat_template else "<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=4096,
    )
    tok.chat_template = chat_template
    return tok


# Real architectures with random weights, for speed and memory checks where no hub is reachable.
# (hidden, intermediate, layers, heads, kv heads, vocab) from the Qwen2.5 config.json files.
SHAPES = {
    "tiny": (64, 128, 2, 4, 2, None),
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936),
    "qwen2.5-1.5b": (1536, 8960, 28, 12, 2, 151936),
}


def build_model(tokenizer, hidden_size: int = 64, layers: int = 2, seed: int = 0, shape: str | None = None):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    hidden, inter, n_layers, heads, kv, vocab = (
        SHAPES[shape] if shape else (hidden_size, hidden_size * 2, layers, 4, 2, None)
    )
    config = Qwen2Config(
        vocab_size=vocab or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=n_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    eos_ids = sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")})
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, bos_token_id=None, max_new_tokens=64
    )
    return model


def write_tiny_model(
    out_dir: str | Path,
    template: str = "qwen2.5",
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
    shape: str | None = None,
) -> Path:
    out = Path(out_dir)
    tokenizer = build_tokenizer(template)
    model = build_model(tokenizer, hidden_size, layers, seed, shape)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sftkit tiny-model", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="folder to write (config.json, model.safetensors, tokenizer files)")
    p.add_argument(
        "--template",
        choices=sorted(TEMPLATES),
        default="qwen2.5",
        help="chat template: qwen2.5 (default system prompt, as Qwen2.5-Instruct), chatml (no system "
        "prompt), none (no chat template: prompt + response + EOS)",
    )
    p.add_argument("--hidden-size", type=int, default=64, help="hidden size (intermediate = 2x); default 64")
    p.add_argument("--layers", type=int, default=2, help="number of decoder layers; default 2")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights; same seed, same weights")
    p.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default=None,
        help="a real architecture with random weights and the tiny tokenizer (qwen2.5-0.5b, qwen2.5-1.5b: their "
        "config numbers, vocab 151936) for speed/memory checks offline; overrides --hidden-size/--layers",
    )
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    out = write_tiny_model(args.out_dir, args.template, args.hidden_size, args.layers, args.seed, args.shape)
    print(f"tiny model written to {out} (loads with AutoModelForCausalLM/AutoTokenizer.from_pretrained)")
    return 0
