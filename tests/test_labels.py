"""The labels contract (docs/contracts.md §4), token by token, for the three kinds of tokenizer; truncation; files ->
dataset.

Trained text: the chat template's user turn with the generation prompt (labels -100), then the response and the
end-of-turn `<|im_end|>` (trained), and nothing after it (not Qwen's trailing newline). Without a chat template:
prompt (-100), response + EOS `<|endoftext|>` (trained).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit.data.dataset import build_dataset
from sftkit.data.labels import IGNORE, Encoder, Rejected, frame
from sftkit.errors import SftkitError
from sftkit.tiny import QWEN_SYSTEM, build_tokenizer

# The three in-memory tiny tokenizers, and the tiny model folder's tokenizer as the trainer loads it.
TEMPLATES = ("qwen2.5", "chatml", "none", "tiny-model")
CHAT = ("qwen2.5", "chatml", "tiny-model")
END_TEXT = {"qwen2.5": "<|im_end|>", "chatml": "<|im_end|>", "none": "<|endoftext|>", "tiny-model": "<|im_end|>"}
GENERATION_PROMPT = "<|im_start|>assistant\n"

# (prompt, response): plain, template-like text inside the response, unicode and LaTeX, whitespace and newlines.
CASES = {
    "plain": ("What is 1+1?", "1+1 = 2.\nThe answer is \\boxed{2}."),
    "unicode": ("Résumé: 数学 🤖?", "答案是 🎉 $\\boxed{\\frac{1}{2}}$ — done ✓ ∑ᵢ xᵢ² Ω"),
    "latex": (
        "Compute $\\int_0^1 x\\,dx$.",
        "$$\\int_0^1 x\\,dx = \\left[\\tfrac{x^2}{2}\\right]_0^1$$ \\boxed{\\frac{1}{2}}",
    ),
    "whitespace": ("  spaced prompt \n", "  leading and trailing spaces  "),
    "newlines": ("q", "\n\nstarts and ends with newlines\n\n"),
    "tabs_code": ("Write code.", "```python\n\tdef f():\n\t    return 1\n```\n"),
    "one_char": ("?", "7"),
}
CASE_IDS = list(CASES)


@pytest.fixture
def toks(tokenizers, tiny_model_tokenizer) -> dict:
    return {**tokenizers, "tiny-model": tiny_model_tokenizer}


def render(tok, prompt: str, response: str | None = None) -> str:
    """What the template writes: the user turn + generation prompt, or the whole conversation with the answer."""
    messages = [{"role": "user", "content": prompt}]
    if response is None:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    messages.append({"role": "assistant", "content": response})
    return tok.apply_chat_template(messages, tokenize=False)


def decode(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def split(example) -> tuple[list[int], list[int]]:
    """(prompt ids, trained ids): the labels must be -100 then a copy of input_ids to the end."""
    n_prompt = next((i for i, label in enumerate(example.labels) if label != IGNORE), len(example.labels))
    return example.input_ids[:n_prompt], example.input_ids[n_prompt:]


def encode_case(toks, template: str, case: str, **kwargs):
    tok = toks[template]
    prompt, response = CASES[case]
    return tok, prompt, response, Encoder(tok).encode(prompt, response, **kwargs)


# ---- the contract, token by token ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_labels_are_prompt_masked_then_a_copy_of_the_ids(toks, template, case):
    _, _, _, ex = encode_case(toks, template, case)
    assert len(ex.input_ids) == len(ex.labels)
    n_prompt = len(split(ex)[0])
    assert n_prompt > 0
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt  # every prompt token masked
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]  # then every token trained, to the end
    assert ex.truncated is False


@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_trained_tokens_are_exactly_response_and_end(toks, template, case):
    tok, _, response, ex = encode_case(toks, template, case)
    _, trained = split(ex)
    assert decode(tok, trained) == response + END_TEXT[template]
    end_id = tok.convert_tokens_to_ids(END_TEXT[template])
    assert trained[-1] == end_id and ex.labels[-1] == end_id  # the end-of-turn / EOS is trained ...
    assert ex.input_ids[-1] == end_id  # ... and is the last token: nothing after it


@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_prompt_tokens_are_the_rendered_prompt(toks, template, case):
    tok, prompt, _, ex = encode_case(toks, template, case)
    prompt_ids, _ = split(ex)
    if template == "none":
        assert decode(tok, prompt_ids) == prompt
        return
    text = decode(tok, prompt_ids)
    assert text == render(tok, prompt)  # system prompt (if any), user turn and generation prompt: all -100
    assert text.endswith(f"<|im_start|>user\n{prompt}<|im_end|>\n{GENERATION_PROMPT}")
    n_gen = len(tok(GENERATION_PROMPT, add_special_tokens=False)["input_ids"])
    assert decode(tok, prompt_ids[-n_gen:]) == GENERATION_PROMPT  # the generation prompt is never trained


def test_system_prompt_only_where_the_template_writes_one(toks):
    qwen = Encoder(toks["qwen2.5"])
    chatml = Encoder(toks["chatml"])
    qwen_prompt = decode(qwen.tokenizer, qwen.prompt_ids("Hi"))
    chatml_prompt = decode(chatml.tokenizer, chatml.prompt_ids("Hi"))
    system = f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n"
    assert qwen_prompt == f"{system}<|im_start|>user\nHi<|im_end|>\n{GENERATION_PROMPT}"
    saved = Encoder(toks["tiny-model"])  # the tiny model folder keeps the Qwen2.5 template
    assert decode(saved.tokenizer, saved.prompt_ids("Hi")) == qwen_prompt
    assert chatml_prompt == f"<|im_start|>user\nHi<|im_end|>\n{GENERATION_PROMPT}"
    assert "system" not in chatml_prompt and QWEN_SYSTEM not in chatml_prompt
    ex = qwen.encode("Hi", "Hello")
    n_system = len(qwen.tokenizer(system)["input_ids"])
    assert ex.labels[:n_system] == [IGNORE] * n_system


@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize("template", CHAT)
def test_chat_sequence_is_the_rendered_conversation_without_the_trailing_newline(toks, template, case):
    tok, prompt, response, ex = encode_case(toks, template, case)
    full = render(tok, prompt, response)
    assert full.endswith("<|im_end|>\n")  # what the template writes after the assistant message ...
    assert decode(tok, ex.input_ids) == full[:-1]  # ... up to and including <|im_end|>, not the newline
    # The tiny byte-level BPE tokenizes all these cases prefix-consistently: the ids are those of the full text.
    assert ex.input_ids == tok(full[:-1], add_special_tokens=False)["input_ids"]
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    assert tok(full, add_special_tokens=False)["input_ids"] == ex.input_ids + newline


@pytest.mark.parametrize("case", CASE_IDS)
def test_plain_sequence_is_prompt_response_eos(plain_tokenizer, case):
    tok = plain_tokenizer
    prompt, response = CASES[case]
    ex = Encoder(tok).encode(prompt, response)
    assert decode(tok, ex.input_ids) == prompt + response + "<|endoftext|>"
    assert ex.input_ids == tok(prompt + response + "<|endoftext|>", add_special_tokens=False)["input_ids"]
    assert ex.input_ids[-1] == tok.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")


def test_plain_prompt_and_response_are_tokenized_apart(plain_tokenizer):
    """Without a template nothing separates them, and BPE would merge across the boundary ("hello"+"world"):
    the prompt/response boundary stays exact because the two are tokenized separately."""
    tok = plain_tokenizer
    ex = Encoder(tok).encode("hello", "world")
    parts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("hello", "world")]
    assert ex.input_ids == parts[0] + parts[1] + [tok.eos_token_id]
    assert ex.labels == [IGNORE] * len(parts[0]) + parts[1] + [tok.eos_token_id]
    assert decode(tok, ex.input_ids) == "helloworld<|endoftext|>"


# A response holding a token that ends a turn (end-of-turn, EOS, pad) would teach the model to stop mid-answer.
CHAT_TEMPLATES = {"qwen2.5", "chatml", "tiny-model"}
STOP_CASES = {
    "im_end_literal": ("The marker is <|im_end|> and it is not the end.", {"qwen2.5", "chatml", "tiny-model"}),
    "quoted_chat": (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello",
        {"qwen2.5", "chatml", "tiny-model"},
    ),
    "endoftext_literal": ("<|endoftext|> is the pad and base EOS", set(TEMPLATES)),
}


@pytest.mark.parametrize("template", TEMPLATES)
def test_response_with_a_special_token_of_the_chat_format_is_rejected(toks, template):
    """`<|im_start|>user` inside an answer would teach the model to open a fake user turn."""
    ex = Encoder(toks[template]).encode("Quote a chat.", "<|im_start|>user\nhi\n<|im_start|>assistant\nhello")
    assert isinstance(ex, Rejected) and ex.kind == "special token in response" and "<|im_start|>" in ex.reason


def test_special_tokens_the_template_writes_in_a_turn_are_allowed():
    """A template whose assistant turn holds its own special tokens (as reasoning formats do) still trains."""
    tok = build_tokenizer("chatml")
    tok.chat_template = (
        "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' }}"
        "{%- if m.role == 'assistant' %}{{- '<|im_start|>' }}{%- endif %}"
        "{{- m.content + '<|im_end|>\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    ex = Encoder(tok).encode("q", "a")
    assert not isinstance(ex, Rejected) and decode(tok, split(ex)[1]) == "<|im_start|>a<|im_end|>"


@pytest.mark.parametrize("case", sorted(STOP_CASES))
@pytest.mark.parametrize("template", TEMPLATES)
def test_response_with_a_stop_token_is_rejected_never_trained(toks, template, case):
    response, rejected_for = STOP_CASES[case]
    ex = Encoder(toks[template]).encode("p", response)
    if template in rejected_for:
        assert isinstance(ex, Rejected) and ex.kind == "end of turn in response"
        assert "<|" in ex.reason and "ends a turn" in ex.reason
    else:  # <|im_end|> for a base tokenizer without chat template: not its stop token, still a special token
        assert isinstance(ex, Rejected) and ex.kind == "special token in response"


def test_saved_tiny_model_tokenizer_tokenizes_like_build_tokenizer(tiny_model_tokenizer, qwen_tokenizer):
    text = "What is 1+1? 123 apples"
    assert tiny_model_tokenizer(text)["input_ids"] == qwen_tokenizer(text)["input_ids"]


def test_encoder_end_tokens(toks):
    for template in TEMPLATES:
        tok = toks[template]
        enc = Encoder(tok)
        assert enc.chat is (template != "none")
        assert enc.turn_suffix == ("<|im_end|>\n" if enc.chat else "")  # the newline after it is never trained
        assert enc.end_ids == [tok.convert_tokens_to_ids(END_TEXT[template])]
        assert enc.end_ids[0] in enc.stop_ids and tok.pad_token_id in enc.stop_ids


def test_tokenizer_without_template_or_eos_is_an_error():
    tok = build_tokenizer("none")  # a fresh one: the fixtures are shared
    tok.eos_token = None
    with pytest.raises(SftkitError, match="EOS"):
        Encoder(tok)


def test_template_text_before_the_answer_is_trained():
    """A template that writes text before the assistant content that its generation prompt lacks (as Qwen3's
    empty think block): that text belongs to the response, so it is trained and the prompt ids stay a prefix."""
    tok = build_tokenizer("chatml")
    tok.chat_template = (
        "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' }}"
        "{%- if m.role == 'assistant' %}{{- '<think></think>' }}{%- endif %}"
        "{{- m.content + '<|im_end|>\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    enc = Encoder(tok)
    ex = enc.encode("q", "a")
    assert decode(tok, split(ex)[1]) == "<think></think>a<|im_end|>"
    assert decode(tok, ex.input_ids) == render(tok, "q", "a")[:-1]


def test_template_whose_generation_prompt_is_not_a_prefix_rejects_the_row():
    tok = build_tokenizer("chatml")
    tok.chat_template = (
        "{%- for m in messages %}{{- '<|im_start|>' + m.role + ':' + m.content + '<|im_end|>' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    ex = Encoder(tok).encode("q", "a")
    assert isinstance(ex, Rejected) and ex.kind == "template mismatch" and "chat template" in ex.reason


def test_template_that_never_writes_the_answer_is_an_error():
    tok = build_tokenizer("chatml")
    tok.chat_template = "{%- for m in messages %}{{- m.role }}{%- endfor %}"
    with pytest.raises(SftkitError, match="chat template"):
        Encoder(tok)


# ---- truncation -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_example(tokenizers):
    """(encoder, prompt ids, response ids + end) of a chat example whose response has 20+ tokens."""
    enc = Encoder(tokenizers["qwen2.5"])
    prompt, response = "Count.", " ".join(str(i) for i in range(30))
    p, r = enc.prompt_ids(prompt), enc.trained_ids(prompt, response)
    assert len(r) > 20 and r[-1] == enc.end_ids[0]
    return enc, prompt, response, p, r


def test_fits_exactly_is_not_truncated(long_example):
    enc, prompt, response, p, r = long_example
    ex = enc.encode(prompt, response, max_length=len(p) + len(r), truncation="error")
    assert ex.input_ids == p + r and ex.truncated is False and ex.labels[-1] == enc.end_ids[0]


def test_right_truncation_keeps_the_prompt_and_cuts_the_response(long_example):
    enc, prompt, response, p, r = long_example
    ex = enc.encode(prompt, response, max_length=len(p) + 5, truncation="right")
    assert ex.truncated is True
    assert ex.input_ids == p + r[:5]
    assert ex.labels == [IGNORE] * len(p) + r[:5]
    assert enc.end_ids[0] not in ex.labels  # the end-of-turn was cut: not trained
    # one token short: the whole response fits but its end-of-turn does not
    ex = enc.encode(prompt, response, max_length=len(p) + len(r) - 1)  # right is the default
    assert ex.truncated is True and ex.input_ids == p + r[:-1] and enc.end_ids[0] not in ex.labels


@pytest.mark.parametrize("room", [0, -1, -10])
def test_right_truncation_with_no_response_token_left_is_dropped(long_example, room):
    enc, prompt, response, p, _ = long_example
    ex = enc.encode(prompt, response, max_length=len(p) + room, truncation="right")
    assert isinstance(ex, Rejected) and ex.kind == "dropped"


def test_left_truncation_cuts_the_prompt_start_and_keeps_the_response(long_example):
    enc, prompt, response, p, r = long_example
    ex = enc.encode(prompt, response, max_length=len(r) + 3, truncation="left")
    assert ex.truncated is True
    assert ex.input_ids == p[-3:] + r  # the prompt's end (the generation prompt) survives
    assert ex.labels == [IGNORE] * 3 + r  # the remaining prompt tokens are still masked
    assert ex.labels[-1] == enc.end_ids[0]
    assert decode(enc.tokenizer, ex.input_ids[:3]) == decode(enc.tokenizer, p[-3:])


def test_left_truncation_of_an_over_long_response_keeps_one_prompt_token_and_cuts_it_on_the_right(long_example):
    """The first trained token needs a token before it to be predicted from: one prompt token always stays."""
    enc, prompt, response, p, r = long_example
    ex = enc.encode(prompt, response, max_length=len(r) - 2, truncation="left")
    assert ex.input_ids == p[-1:] + r[:-3] and ex.labels == [IGNORE] + r[:-3] and ex.truncated is True


@pytest.mark.parametrize("template", TEMPLATES)
def test_left_truncation_for_each_tokenizer(toks, template):
    enc = Encoder(toks[template])
    prompt, response = "A long prompt with many words " * 5, "short answer"
    p, r = enc.prompt_ids(prompt), enc.trained_ids(prompt, response)
    ex = enc.encode(prompt, response, max_length=len(r) + 2, truncation="left")
    assert ex.input_ids == p[-2:] + r and ex.labels == [IGNORE, IGNORE] + r
    assert decode(enc.tokenizer, split(ex)[1]) == response + END_TEXT[template]


def test_error_truncation_names_the_example_and_max_length(long_example):
    enc, prompt, response, p, r = long_example
    ex = enc.encode(prompt, response, max_length=len(p) + 3, truncation="error", example_id="gsm8k-17")
    assert isinstance(ex, Rejected) and ex.kind == "too long"
    message = ex.reason
    assert "gsm8k-17" in message and f"max_length={len(p) + 3}" in message and str(len(p) + len(r)) in message


def test_frame_without_max_length_never_truncates():
    ex = frame([1, 2], [3, 4], None, "error")
    assert ex.input_ids == [1, 2, 3, 4] and ex.labels == [IGNORE, IGNORE, 3, 4] and ex.truncated is False


# ---- data/dataset.py: files -> tokenized examples -----------------------------------------------------------
def test_build_counts_truncated_and_dropped_and_error_names_the_row(tmp_path, tokenizers):
    enc = Encoder(tokenizers["qwen2.5"])
    n_prompt = len(enc.prompt_ids("short"))
    rows = [
        {"id": "fits", "prompt": "short", "generated_solution": "ok"},
        {"id": "cut", "prompt": "short", "generated_solution": "a long response " * 20},
        {"id": "gone", "prompt": "a very long prompt " * 20, "generated_solution": "never seen"},
    ]
    path = str(write_jsonl(tmp_path / "rows.jsonl", rows))
    split = build_dataset([path], enc, "prompt", "generated_solution", n_prompt + 10, "right", cache_dir=tmp_path)
    assert (split.stats.truncated, split.stats.dropped, split.stats.dropped_ids) == (1, 1, ["gone"])
    assert set(split.dataset.column_names) == {"input_ids", "labels", "length", "trained"}
    assert len(split) == 2 and split.dataset["length"] == [len(ids) for ids in split.dataset["input_ids"]]
    assert max(split.dataset["length"]) == n_prompt + 10
    with pytest.raises(SftkitError, match=r"rows.jsonl:2: example 'cut'"):
        build_dataset([path], enc, "prompt", "generated_solution", n_prompt + 10, "error", cache_dir=tmp_path)


@pytest.mark.parametrize("template", TEMPLATES)
def test_built_examples_are_the_encoder_s(toks, template, tmp_path):
    """The batched, cached build gives exactly what Encoder.encode gives one by one."""
    enc = Encoder(toks[template])
    rows = [{"id": k, "prompt": p, "generated_solution": r} for k, (p, r) in CASES.items()]
    path = str(write_jsonl(tmp_path / "cases.jsonl", rows))
    for max_length, truncation in [(None, "right"), (24, "right"), (24, "left"), (60, "right")]:
        expected = [enc.encode(p, r, max_length, truncation) for p, r in CASES.values()]
        kept = [e for e in expected if not isinstance(e, Rejected)]
        if not kept:  # e.g. the Qwen2.5 system prompt alone is longer than 24 tokens
            with pytest.raises(SftkitError, match="every example was dropped"):
                build_dataset([path], enc, "prompt", "generated_solution", max_length, truncation, cache_dir=tmp_path)
            continue
        split = build_dataset([path], enc, "prompt", "generated_solution", max_length, truncation, cache_dir=tmp_path)
        assert split.dataset["input_ids"] == [e.input_ids for e in kept]
        assert split.dataset["labels"] == [e.labels for e in kept]
        assert split.dataset["trained"] == [sum(x != IGNORE for x in e.labels) for e in kept]
        assert split.stats.dropped == len(expected) - len(kept)
        assert split.stats.truncated == sum(e.truncated for e in kept)


def test_build_dataset_on_the_sample(sample_parquet, qwen_tokenizer, tmp_path):
    enc = Encoder(qwen_tokenizer)
    split = build_dataset([str(sample_parquet.train)], enc, "prompt", "generated_solution", 2048, "right")
    ds, report = split.dataset, split.report
    assert len(ds) == 540 and report.n_bad == 0
    assert (split.stats.truncated, split.stats.dropped) == (0, 0)
    rows = pq.read_table(sample_parquet.train).to_pylist()
    for i in (0, 1, 539):
        ex = ds[i]
        assert ex["length"] == len(ex["input_ids"]) == len(ex["labels"])
        trained = [t for t in ex["labels"] if t != IGNORE]
        assert decode(qwen_tokenizer, trained) == rows[i]["generated_solution"] + "<|im_end|>"
        assert ex["input_ids"] == enc.encode(rows[i]["prompt"], rows[i]["generated_solution"]).input_ids


def test_build_dataset_counts_truncation(sample_parquet, qwen_tokenizer, capsys):
    enc = Encoder(qwen_tokenizer)
    rows = pq.read_table(sample_parquet.val).to_pylist()
    lengths = sorted(len(enc.prompt_ids(row["prompt"])) for row in rows)
    max_length = lengths[len(lengths) // 2]  # half the prompts fill it: no response token left, dropped
    split = build_dataset([str(sample_parquet.val)], enc, "prompt", "generated_solution", max_length, "right")
    stats = split.stats
    assert stats.dropped == sum(n >= max_length for n in lengths) > 0
    assert len(split) == 60 - stats.dropped > 0
    full = [len(enc.encode(row["prompt"], row["generated_solution"]).input_ids) for row in rows]
    assert stats.truncated == sum(n > max_length for n in full) - stats.dropped  # kept ones that lost tokens
    assert max(split.dataset["length"]) <= max_length
    assert f"{stats.dropped} dropped" in capsys.readouterr().out
    with pytest.raises(SftkitError, match="every example was dropped"):
        build_dataset([str(sample_parquet.val)], enc, "prompt", "generated_solution", lengths[0], "right")


def test_rows_with_a_stop_token_are_counted_bad_rows_with_file_and_line(tmp_path, qwen_tokenizer, capsys):
    rows = [
        {"id": 1, "prompt": "p", "generated_solution": "fine"},
        {"id": 2, "prompt": "p", "generated_solution": "quoting <|im_end|> inside"},
        {"id": 3, "prompt": "p", "generated_solution": "also fine"},
    ]
    path = str(write_jsonl(tmp_path / "stops.jsonl", rows))
    enc = Encoder(qwen_tokenizer)
    split = build_dataset([path], enc, "prompt", "generated_solution", 64, "right", cache_dir=tmp_path)
    assert len(split) == 2 and split.report.bad["end of turn in response"] == 1 and split.report.rows_ok == 2
    assert any(f"{path}:2" in str(bad) and "<|im_end|>" in str(bad) for bad in split.report.examples)
    assert f"{path}:2" in capsys.readouterr().out
    for ids, labels in zip(split.dataset["input_ids"], split.dataset["labels"]):  # one end-of-turn, at the end
        trained = [x for x in labels if x != IGNORE]
        assert trained.count(enc.end_ids[0]) == 1 and ids[-1] == enc.end_ids[0]
    with pytest.raises(SftkitError, match="stops.jsonl:2"):
        build_dataset([path], enc, "prompt", "generated_solution", 64, "right", strict=True, cache_dir=tmp_path)


def write_parquet(path, columns: dict):
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_parquet_with_a_response_column(tmp_path, chatml_tokenizer, capsys):
    path = write_parquet(tmp_path / "r.parquet", {"id": ["a", "b"], "prompt": ["p1", "p2"], "response": ["r1", "r2"]})
    split = build_dataset([path], Encoder(chatml_tokenizer), "prompt", "generated_solution", 64, "right")
    ds, report = split.dataset, split.report
    assert len(ds) == 2 and report.n_bad == 0
    assert decode(chatml_tokenizer, [t for t in ds[1]["labels"] if t != IGNORE]) == "r2<|im_end|>"
    assert "'response'" in capsys.readouterr().out  # the choice is logged


def test_missing_prompt_column_lists_the_columns_found(tmp_path, qwen_tokenizer):
    path = write_parquet(tmp_path / "x.parquet", {"question": ["q"], "generated_solution": ["s"], "extra": [1]})
    with pytest.raises(SftkitError) as info:
        build_dataset([path], Encoder(qwen_tokenizer), "prompt", "generated_solution", 64, "right")
    message = str(info.value)
    assert "'prompt'" in message and "question" in message and "generated_solution" in message and "extra" in message


def test_missing_response_column_lists_the_columns_found(tmp_path, qwen_tokenizer):
    path = write_parquet(tmp_path / "x.parquet", {"prompt": ["q"], "answer": ["s"]})
    with pytest.raises(SftkitError, match="generated_solution.*prompt, answer"):
        build_dataset([path], Encoder(qwen_tokenizer), "prompt", "generated_solution", 64, "right")
    with pytest.raises(SftkitError, match="'solution'"):
        build_dataset([path], Encoder(qwen_tokenizer), "prompt", "solution", 64, "right")


def test_bad_rows_are_counted_not_fatal_and_fatal_with_strict(tmp_path, qwen_tokenizer):
    path = write_parquet(
        tmp_path / "bad.parquet",
        {"id": [1, 2, 3, 4], "prompt": ["p1", "p2", "p3", "  "], "generated_solution": ["ok", "", None, "r4"]},
    )
    enc = Encoder(qwen_tokenizer)
    split = build_dataset([path], enc, "prompt", "generated_solution", 64, "right")
    ds, report = split.dataset, split.report
    assert len(ds) == 1 and report.rows_read == 4 and report.n_bad == 3
    assert report.bad["empty field"] == 2 and report.bad["non-string field"] == 1
    assert any(f"{path}:2" in str(bad) for bad in report.examples)  # shown with file:row
    with pytest.raises(SftkitError, match="bad.parquet:2"):
        build_dataset([path], enc, "prompt", "generated_solution", 64, "right", strict=True)


def test_jsonl_bad_rows_and_ids(tmp_path, qwen_tokenizer):
    long = "a long prompt " * 40  # dropped by max_length below: the report names dropped rows by id
    lines = [
        json.dumps({"id": "x1", "prompt": long, "generated_solution": "r"}),
        "{not json",
        json.dumps({"prompt": "p", "generated_solution": None}),
        json.dumps({"prompt": long, "generated_solution": "r2"}),
        json.dumps({"prompt": "p", "generated_solution": "kept"}),
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    enc = Encoder(qwen_tokenizer)
    max_length = len(enc.prompt_ids("p")) + 5
    split = build_dataset([str(path)], enc, "prompt", "generated_solution", max_length, "right")
    assert len(split) == 1
    assert split.stats.dropped_ids == ["x1", "rows.jsonl:4"]  # rows without an id are named by file:line
    assert split.report.bad["malformed JSON"] == 1 and split.report.bad["non-string field"] == 1


def test_no_usable_row_is_an_error(tmp_path, qwen_tokenizer):
    path = write_parquet(tmp_path / "empty.parquet", {"prompt": ["p"], "generated_solution": [""]})
    with pytest.raises(SftkitError, match="no usable row"):
        build_dataset([path], Encoder(qwen_tokenizer), "prompt", "generated_solution", 64, "right")
    with pytest.raises(SftkitError, match="no data file"):
        build_dataset([str(tmp_path / "missing.parquet")], Encoder(qwen_tokenizer), "prompt", "x", 64, "right")


def test_jsonl_first_row_missing_the_response_is_a_bad_row_not_fatal(tmp_path, qwen_tokenizer):
    path = tmp_path / "rows.jsonl"
    rows = [{"id": 1, "prompt": "p1"}, {"id": 2, "prompt": "p2", "generated_solution": "r2"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    split = build_dataset([str(path)], Encoder(qwen_tokenizer), "prompt", "generated_solution", 64, "right")
    assert len(split) == 1 and split.report.bad["missing field"] == 1
