"""The labels contract (SPEC §4): prompt/response -> `input_ids` + `labels`.

Text trained on: the chat template applied to the prompt as one user turn with the generation prompt, then the
response, then the end-of-turn the template writes after an assistant message (`<|im_end|>` for Qwen) — and
nothing after it (Qwen's trailing newline is neither kept nor trained). Without a chat template: prompt, response,
EOS. Labels are -100 on every prompt token and the token id on every response token and on the end-of-turn.

Why not TRL's own prompt-completion path: with the Qwen2.5 template it trains the newline after `<|im_end|>`
(the last label is `\\n`), and verl's dataset trains the last prompt token and never the EOS. So we build the
examples here and hand `input_ids`/`labels` to SFTTrainer, which passes them through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sftkit.errors import SftkitError

IGNORE = -100
_SENTINEL = "\u2063SFTKIT_RESPONSE\u2063"


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


@dataclass
class TruncationStats:
    truncated: int = 0
    dropped: int = 0
    dropped_ids: list = field(default_factory=list)


class Encoder:
    """Frames prompt/response pairs for one tokenizer. The end-of-turn tokens are found once, from the template."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        if self.chat:
            self.response_prefix, self.end_ids = self._template_frame()
        else:
            if tokenizer.eos_token_id is None:
                raise SftkitError(
                    "the tokenizer has neither a chat template nor an EOS token, so the model could never learn to "
                    "stop. Use a tokenizer with eos_token set (or a chat template)."
                )
            self.response_prefix, self.end_ids = "", [tokenizer.eos_token_id]

    def _render(self, messages, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _template_frame(self) -> tuple[str, list[int]]:
        """What the template writes around an assistant message: text before the content that the generation
        prompt lacks (trained as part of the response), and the end-of-turn tokens after it (up to and including
        the first special token; whatever follows, such as Qwen's newline, is cut)."""
        user = [{"role": "user", "content": "1"}]
        prompt = self._render(user, True)
        full = self._render(user + [{"role": "assistant", "content": _SENTINEL}], False)
        if not full.startswith(prompt) or _SENTINEL not in full:
            raise SftkitError(
                "the chat template does not render a user turn with the generation prompt as a prefix of the same "
                "turn followed by the assistant's answer, so prompt and response cannot be separated. Use a "
                "standard chat template (tokenizer.chat_template) or a tokenizer without one."
            )
        prefix, suffix = full[len(prompt) :].split(_SENTINEL, 1)
        ids = self.tokenizer(suffix, add_special_tokens=False)["input_ids"]
        special = set(self.tokenizer.all_special_ids)
        for i, tok in enumerate(ids):
            if tok in special:
                return prefix, ids[: i + 1]
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise SftkitError("the chat template writes no special end-of-turn token and the tokenizer has no EOS.")
        return prefix, self.tokenizer(suffix.rstrip(), add_special_tokens=False)["input_ids"] + [eos]

    def prompt_ids_batch(self, prompts: list[str]) -> list[list[int]]:
        if self.chat:
            texts = [self._render([{"role": "user", "content": p}], True) for p in prompts]
            return self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return self.tokenizer(prompts, add_special_tokens=True)["input_ids"]

    def trained_ids_batch(self, responses: list[str]) -> list[list[int]]:
        """Response (after what the template writes before an answer) + end of turn: the tokens with labels."""
        ids = self.tokenizer([self.response_prefix + r for r in responses], add_special_tokens=False)["input_ids"]
        return [r + self.end_ids for r in ids]

    def encode_batch(
        self,
        prompts: list[str],
        responses: list[str],
        max_length: int | None = None,
        truncation: str = "right",
        example_ids=None,
    ) -> list[Encoded | None]:
        """Examples, batched through the fast tokenizer; None where truncation leaves no trained token."""
        ids = example_ids if example_ids is not None else [None] * len(prompts)
        pairs = zip(self.prompt_ids_batch(prompts), self.trained_ids_batch(responses), ids)
        return [frame(p, r, max_length, truncation, i) for p, r, i in pairs]

    def encode(
        self, prompt: str, response: str, max_length: int | None = None, truncation: str = "right", example_id=None
    ) -> Encoded | None:
        """One example; None when truncation leaves no trained token (the caller counts it)."""
        return self.encode_batch([prompt], [response], max_length, truncation, [example_id])[0]

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.prompt_ids_batch([prompt])[0]

    def response_ids(self, response: str) -> list[int]:
        """The response's tokens alone (without the end of turn)."""
        return self.tokenizer(self.response_prefix + response, add_special_tokens=False)["input_ids"]


def frame(p: list[int], r: list[int], max_length: int | None, truncation: str, example_id=None) -> Encoded | None:
    """Prompt ids + trained ids (response and end-of-turn) -> example, cut to max_length by the truncation mode."""
    truncated = max_length is not None and len(p) + len(r) > max_length
    if truncated:
        if truncation == "error":
            raise SftkitError(
                f"example {example_id!r} has {len(p) + len(r)} tokens (prompt {len(p)}) > max_length={max_length}. "
                "Raise data.max_length, or use data.truncation=right (cut the response) or left (cut the prompt)."
            )
        if truncation == "left":
            p = p[max(0, len(p) - max(0, max_length - len(r))) :]
        p, r = p[:max_length], r[: max(0, max_length - len(p))]
    if not r:
        return None
    return Encoded(p + r, [IGNORE] * len(p) + r, truncated)
