"""The labels contract (docs/contracts.md §4) on real assets: the Qwen2.5 and Qwen3 vocabularies and chat templates,
and the Llama 3.1 template (tests/real_tokenizers.py rebuilds them offline).

What is trained is the assistant turn exactly as the template renders it for this response, up to and including
its end-of-turn token — Qwen3 moves `<think>…</think>` into its own think block, adds an empty one where there is
none and strips leading newlines; Llama 3 trims the content — tokenized apart from the prompt, which is the
template's user turn with the generation prompt, tokenized as at inference.
"""

from __future__ import annotations

import pytest

from sftkit.data.labels import IGNORE, Encoder, Rejected

THINK = "<think>\nLet me add: 2 + 2 = 4.\n</think>\n\nThe answer is $\\boxed{4}$."
RESPONSES = {
    "thinking": THINK,
    "plain": "The answer is $\\boxed{4}$.",
    "leading_newlines": "\n\nThe answer is 4.",
    "trailing_space": "The answer is 4.   ",
    "unicode": "Réponse : 数学 🤖 ∑ xᵢ² = 4 — done ✓",
    "think_without_newlines": "<think>short</think>4",
    "latex_code": "```python\nprint(2+2)\n```\n$$\\frac{8}{2} = 4$$",
}
PROMPT = "What is 2 + 2?"


def split(ex):
    n = next(i for i, x in enumerate(ex.labels) if x != IGNORE)
    return ex.input_ids[:n], ex.input_ids[n:]


def rendered_turn(tok, prompt: str, response: str, end: str) -> str:
    """The template's own text of the assistant turn: the whole conversation minus the rendered prompt, up to and
    including the end-of-turn (what follows it, Qwen's newline, is not part of the example)."""
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    full = tok.apply_chat_template(messages, tokenize=False)
    prompt_text = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert full.startswith(prompt_text)
    turn = full[len(prompt_text) :]
    return turn[: turn.index(end) + len(end)]


@pytest.fixture
def real(request, real_qwen25, real_qwen3, real_llama3):
    return {"qwen2.5": (real_qwen25, "<|im_end|>"), "qwen3": (real_qwen3, "<|im_end|>"),
            "llama3": (real_llama3, "<|eot_id|>")}[request.param]  # fmt: skip


@pytest.mark.parametrize("case", sorted(RESPONSES))
@pytest.mark.parametrize("real", ["qwen2.5", "qwen3", "llama3"], indirect=True)
def test_trained_tokens_are_the_template_s_rendering_of_the_turn(real, case):
    tok, end = real
    ex = Encoder(tok).encode(PROMPT, RESPONSES[case])
    prompt_ids, trained = split(ex)
    turn = rendered_turn(tok, PROMPT, RESPONSES[case], end)
    assert tok.decode(trained) == turn
    assert trained == tok(turn, add_special_tokens=False)["input_ids"]  # tokenized apart from the prompt
    prompt_text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                          add_generation_prompt=True)  # fmt: skip
    assert prompt_ids == tok(prompt_text, add_special_tokens=False)["input_ids"]
    end_id = tok.convert_tokens_to_ids(end)
    assert ex.input_ids[-1] == ex.labels[-1] == end_id and trained.count(end_id) == 1
    assert ex.labels == [IGNORE] * len(prompt_ids) + trained


def test_qwen3_thinking_response_has_one_think_block(real_qwen3):
    """The bug this replaces: the template's empty think block was pasted before the response's own one."""
    tok = real_qwen3
    _, trained = split(Encoder(tok).encode(PROMPT, THINK))
    text = tok.decode(trained)
    assert text.count("<think>") == 1 and text.count("</think>") == 1
    assert text == THINK + "<|im_end|>"
    think, close = tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")
    assert trained[0] == think and trained.count(close) == 1


def test_qwen3_plain_response_gets_the_template_s_empty_think_block(real_qwen3):
    _, trained = split(Encoder(real_qwen3).encode(PROMPT, "\n\nThe answer is 4."))
    assert real_qwen3.decode(trained) == "<think>\n\n</think>\n\nThe answer is 4.<|im_end|>"  # leading \n stripped


def test_qwen3_prompt_is_the_thinking_generation_prompt(real_qwen3):
    prompt_ids, _ = split(Encoder(real_qwen3).encode(PROMPT, THINK))
    assert real_qwen3.decode(prompt_ids).endswith(
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_trims_the_response_and_keeps_one_bos(real_llama3):
    tok = real_llama3
    ex = Encoder(tok).encode(PROMPT, "  4  ")
    prompt_ids, trained = split(ex)
    assert tok.decode(trained) == "4<|eot_id|>"
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert ex.input_ids.count(bos) == 1 and ex.input_ids[0] == bos  # from the template, not added twice


def test_qwen25_response_is_kept_verbatim(real_qwen25):
    response = "  spaced\n\n"
    _, trained = split(Encoder(real_qwen25).encode(PROMPT, response))
    assert real_qwen25.decode(trained) == response + "<|im_end|>"


@pytest.mark.parametrize("real", ["qwen2.5", "qwen3", "llama3"], indirect=True)
def test_response_containing_the_end_of_turn_is_a_bad_row(real):
    tok, end = real
    ex = Encoder(tok).encode(PROMPT, f"quoting {end} in the middle")
    assert isinstance(ex, Rejected) and ex.kind == "end of turn in response" and end in ex.reason


def test_base_model_eos_and_pad_are_stop_tokens(real_qwen25_base):
    enc = Encoder(real_qwen25_base)
    assert enc.end_ids == [real_qwen25_base.convert_tokens_to_ids("<|im_end|>")]
    assert real_qwen25_base.convert_tokens_to_ids("<|endoftext|>") in enc.stop_ids
    assert isinstance(enc.encode(PROMPT, "a <|endoftext|> b"), Rejected)


def test_real_vocabulary_dataset_build_on_the_sample(real_qwen3, sample_parquet, tmp_path):
    """The cached build on real data with the Qwen3 template: every example ends with exactly one <|im_end|>,
    starts its trained part with the think block, and is the template's own rendering."""
    from sftkit.data.dataset import build_dataset

    split_ = build_dataset([str(sample_parquet.val)], Encoder(real_qwen3), "prompt", "generated_solution", 4096,
                           "right", cache_dir=tmp_path)  # fmt: skip
    im_end, think = real_qwen3.convert_tokens_to_ids("<|im_end|>"), real_qwen3.convert_tokens_to_ids("<think>")
    assert len(split_) == 60
    for labels in split_.dataset["labels"]:
        trained = [x for x in labels if x != IGNORE]
        assert trained[0] == think and trained[-1] == im_end and trained.count(im_end) == 1
        assert real_qwen3.decode(trained).startswith("<think>\n\n</think>\n\n")


def test_plain_text_end_of_turn_with_a_bos_adding_tokenizer(real_llama3):
    """A template whose end-of-turn is plain text, with a tokenizer that adds BOS: the end ids must not start with
    BOS."""
    from real_tokenizers import llama3_style
    from sftkit.data.labels import Encoded

    tok = llama3_style()
    tok.chat_template = (
        "{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] + '\\n### end\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
    )
    enc = Encoder(tok)
    assert tok.bos_token_id not in enc.end_ids
    assert isinstance(enc.encode("What is 2+2?", "It is 4."), Encoded)
