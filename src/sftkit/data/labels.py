"""The labels contract (docs/contracts.md §4): prompt/response -> `input_ids` + `labels`.

Text trained on: the chat template applied to the prompt as one user turn with the generation prompt (tokenized on
its own, as at inference; labels -100), then the assistant turn exactly as the template renders it for this
response, up to and including its end-of-turn token (`<|im_end|>` for Qwen; labels = the ids), and nothing after
it (Qwen's trailing newline is neither kept nor trained). "As the template renders it": Qwen3-style templates
move a response's `<think>…</think>` into their own think block, add an empty one where there is none and strip
leading newlines; Llama 3 trims the content. So the assistant turn is taken from the template's rendering of the
whole conversation, minus the rendered prompt — never built by pasting the raw response after the prompt.
Without a chat template: prompt (with the tokenizer's BOS, if any), response, EOS.

A response whose tokens contain a token that ends a turn (the end-of-turn, EOS or pad token: e.g. a literal
`<|im_end|>` in the text) is rejected — a counted bad row — rather than trained with a stop in its middle; so is one
holding another special token of the chat format that the template does not itself write in an assistant turn
(`<|im_start|>`, which would open a fake turn).

Why not TRL's own prompt-completion path: with the Qwen2.5 template it trains the newline after `<|im_end|>`,
and verl's dataset trains the last prompt token and never the EOS. So the examples are built here and handed to
SFTTrainer as `input_ids`/`labels`, which it passes through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftkit.errors import SftkitError

IGNORE = -100
_SENTINEL = "\u2063SFTKIT_RESPONSE\u2063"


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


@dataclass
class Rejected:
    """An example that is not trained: `kind` "dropped" (truncation left no response token), "too long"
    (truncation=error) or a bad-row kind."""

    kind: str
    reason: str


class Encoder:
    """Frames prompt/response pairs for one tokenizer. What ends a turn is found once, from the template."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        if self.chat:
            self.turn_suffix, self.end_ids = self._template_end()
        else:
            if tokenizer.eos_token_id is None:
                raise SftkitError(
                    "the tokenizer has neither a chat template nor an EOS token, so the model could never learn to "
                    "stop. Use a tokenizer with eos_token set (or a chat template)."
                )
            self.turn_suffix, self.end_ids = "", [tokenizer.eos_token_id]
        extra = [tokenizer.eos_token_id, tokenizer.pad_token_id]
        self.stop_ids = list(dict.fromkeys(self.end_ids + [t for t in extra if t is not None]))
        self._stops = frozenset(self.stop_ids)
        self._specials = frozenset(tokenizer.all_special_ids)
        # Special tokens a response may hold: those the template itself writes in an assistant turn (a thinking
        # template's markers, say). Any other (`<|im_start|>` opening a fake user turn) is the chat format's, not
        # the answer's.
        self._allowed_specials = self._frame_specials() - self._stops

    def _render(self, messages, generation_prompt: bool):
        """One conversation -> its text; a list of conversations -> their texts (one call: transformers prepares
        the template's inputs once per call, a third of the cost per conversation)."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _template_end(self) -> tuple[str, list[int]]:
        """What the template writes after an assistant message's content (`<|im_end|>\\n`), and the ids of the part
        of it that is trained (up to and including the first special token: `<|im_end|>`)."""
        user = [{"role": "user", "content": "1"}]
        full = self._render(user + [{"role": "assistant", "content": _SENTINEL}], False)
        if _SENTINEL not in full:
            raise SftkitError(
                "the chat template does not write the assistant's message, so prompt and response cannot be "
                "separated. Use a standard chat template (tokenizer.chat_template) or a tokenizer without one."
            )
        suffix = full.split(_SENTINEL, 1)[1]
        ids = self.tokenizer(suffix, add_special_tokens=False)["input_ids"]
        special = set(self.tokenizer.all_special_ids)
        for i, tok in enumerate(ids):
            if tok in special:
                end_ids = ids[: i + 1]
                return suffix, end_ids
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise SftkitError("the chat template writes no special end-of-turn token and the tokenizer has no EOS.")
        end = self.tokenizer(suffix.rstrip(), add_special_tokens=False)["input_ids"] + [eos]
        return suffix, end

    def _frame_specials(self) -> frozenset[int]:
        if not self.chat:
            return frozenset()
        user = [{"role": "user", "content": "1"}]
        prompt = self._render(user, True)
        full = self._render(user + [{"role": "assistant", "content": _SENTINEL}], False)
        frame = full[len(prompt) :] if full.startswith(prompt) else full
        ids = self.tokenizer(frame.replace(_SENTINEL, " "), add_special_tokens=False)["input_ids"]
        return frozenset(ids) & frozenset(self.tokenizer.all_special_ids)

    # ---- text ------------------------------------------------------------------------------------------------
    def prompt_texts(self, prompts: list[str]) -> list[str]:
        """The prompt as the model sees it at inference: one user turn and the generation prompt."""
        if not self.chat or not prompts:
            return list(prompts)
        return list(self._render([[{"role": "user", "content": p}] for p in prompts], True))

    def turn_texts(self, prompt_texts: list[str], prompts: list[str], responses: list[str]) -> list[str | Rejected]:
        """The assistant turn as the template renders it for each response, without its end-of-turn (whose ids,
        `end_ids`, are appended after tokenizing: a plain-text end marker must not merge with the answer's last
        characters)."""
        if not self.chat:
            return list(responses)
        if not prompts:
            return []
        conversations = [
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}] for p, r in zip(prompts, responses)
        ]
        return [self._cut(full, text) for full, text in zip(self._render(conversations, False), prompt_texts)]

    def _cut(self, full: str, prompt_text: str) -> str | Rejected:
        if not full.startswith(prompt_text) or not full.endswith(self.turn_suffix):
            return Rejected(
                "template mismatch",
                "the chat template renders this conversation without the prompt as its start or without its "
                "end-of-turn at the end, so the response cannot be cut out of it",
            )
        return full[len(prompt_text) : len(full) - len(self.turn_suffix)]

    def turn_text(self, prompt_text: str, prompt: str, response: str) -> str | Rejected:
        return self.turn_texts([prompt_text], [prompt], [response])[0]

    # ---- ids -------------------------------------------------------------------------------------------------
    def prompt_ids_batch(self, prompts: list[str]) -> list[list[int]]:
        return self._tokenize_prompts(self.prompt_texts(prompts))

    def _tokenize_prompts(self, texts: list[str]) -> list[list[int]]:
        """Rendered prompts -> ids: a chat template writes its own special tokens; a base model gets the
        tokenizer's (a BOS, for Llama-style tokenizers)."""
        return self.tokenizer(texts, add_special_tokens=not self.chat)["input_ids"]

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.prompt_ids_batch([prompt])[0]

    def trained_ids_batch(self, turns: list[str]) -> list[list[int]]:
        """A turn's tokens and the end-of-turn ids: what the labels train."""
        return [ids + self.end_ids for ids in self.tokenizer(turns, add_special_tokens=False)["input_ids"]]

    def trained_ids(self, prompt: str, response: str) -> list[int]:
        """The tokens of the assistant turn, end-of-turn included (what the labels train), untruncated."""
        turn = self.turn_text(self.prompt_texts([prompt])[0], prompt, response)
        if isinstance(turn, Rejected):
            raise SftkitError(turn.reason)
        return self.trained_ids_batch([turn])[0]

    def _check_stops(self, ids: list[int]) -> Rejected | None:
        """The end-of-turn (and EOS, pad) may only appear as the last tokens: one in the middle is a stop the model
        would learn to emit mid-answer. Other special tokens of the chat format (`<|im_start|>`) neither."""
        inner = ids[: len(ids) - len(self.end_ids)]
        if not self._stops.isdisjoint(inner):
            first = next(t for t in inner if t in self._stops)
            text = self.tokenizer.convert_ids_to_tokens(first)
            return Rejected(
                "end of turn in response",
                f"the response contains {text!r}, a token that ends a turn: the model would learn to stop there",
            )
        specials = self._specials.intersection(inner) - self._allowed_specials
        if specials:
            text = self.tokenizer.convert_ids_to_tokens(min(specials))
            return Rejected(
                "special token in response",
                f"the response contains {text!r}, a special token of the chat format: the model would learn to "
                "write it inside an answer",
            )
        return None

    def encode_batch(
        self,
        prompts: list[str],
        responses: list[str],
        max_length: int | None = None,
        truncation: str = "right",
        example_ids=None,
    ) -> list[Encoded | Rejected]:
        """Examples, batched through the fast tokenizer; a Rejected where the pair cannot be trained."""
        ids = example_ids if example_ids is not None else [None] * len(prompts)
        # Rejection-sampling data repeats each prompt many times: render and tokenize each distinct one once.
        distinct = list(dict.fromkeys(prompts))
        texts = dict(zip(distinct, self.prompt_texts(distinct)))
        turns = self.turn_texts([texts[p] for p in prompts], prompts, responses)
        ok = [i for i, t in enumerate(turns) if isinstance(t, str)]
        if not ok:
            return list(turns)
        kept = list(dict.fromkeys(prompts[i] for i in ok))
        prompt_ids = dict(zip(kept, self._tokenize_prompts([texts[p] for p in kept])))
        trained_ids = self.trained_ids_batch([turns[i] for i in ok])
        out: list[Encoded | Rejected] = list(turns)
        for i, r in zip(ok, trained_ids):
            out[i] = self._check_stops(r) or frame(list(prompt_ids[prompts[i]]), r, max_length, truncation, ids[i])
        return out

    def encode(
        self, prompt: str, response: str, max_length: int | None = None, truncation: str = "right", example_id=None
    ) -> Encoded | Rejected:
        return self.encode_batch([prompt], [response], max_length, truncation, [example_id])[0]


def frame(p: list[int], r: list[int], max_length: int | None, truncation: str, example_id=None) -> Encoded | Rejected:
    """Prompt ids + trained ids (response and end-of-turn) -> example, cut to max_length by the truncation mode.
    At least one prompt token is always kept: the first trained token needs one before it to be predicted from."""
    truncated = max_length is not None and len(p) + len(r) > max_length
    if truncated:
        if truncation == "error":
            return Rejected(
                "too long",
                f"example {example_id!r} has {len(p) + len(r)} tokens (prompt {len(p)}) > max_length={max_length}. "
                "Raise data.max_length, or use data.truncation=right (cut the response) or left (cut the prompt).",
            )
        if truncation == "left":
            p = p[len(p) - max(1, min(len(p), max_length - len(r))) :]
        r = r[: max(0, max_length - len(p))]
    if not r:
        return Rejected("dropped", f"no response token left within max_length={max_length}")
    return Encoded(p + r, [IGNORE] * len(p) + r, truncated)
