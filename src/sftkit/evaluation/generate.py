"""Generation with transformers, on a model already in memory: the CLI's CPU/GPU backend and the trainer's API.

The prompt is exactly what training conditioned the response on (`Encoder.prompt_ids_batch`: one user turn and
the generation prompt, or the raw prompt + BOS without a chat template), and generation stops at the trained
end-of-turn (any of `Encoder.stop_ids`: end-of-turn, EOS, pad). Batches are left-padded, prompts sorted by length
so that little padding is computed. Sampling is exactly the settings given, as vLLM's SamplingParams would apply
them: the model's own generation config (Qwen's top_k=20, repetition_penalty=1.05...) and transformers' default
top_k=50 are overridden. Temperature 0 is greedy decoding; K greedy samples are one generation copied K times.

`num_tokens` counts the generated tokens, the end-of-turn included when the model wrote it (what vLLM reports);
the text is the tokens before it, special tokens skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sftkit.data.labels import Encoder
from sftkit.errors import SftkitError

DEFAULT_MAX_NEW_TOKENS = 1024
DEFAULT_BATCH_SIZE = 64  # sequences generated together (problems x samples)


@dataclass(frozen=True)
class Generated:
    text: str  # the response, without the end-of-turn and anything after it
    num_tokens: int  # generated tokens, the end-of-turn included
    finished: bool = True  # ended with the end-of-turn; False: cut at max_new_tokens


@dataclass(frozen=True)
class Sampling:
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def check(self) -> Sampling:
        """Self, or a SftkitError naming the flag with a value that cannot be sampled with."""
        problems = [
            (self.samples < 1, f"--samples {self.samples}: give 1 or more samples per problem"),
            (self.temperature < 0, f"--temperature {self.temperature}: give 0 (greedy) or more"),
            (not 0 < self.top_p <= 1, f"--top-p {self.top_p}: give a probability mass in (0, 1]"),
            (self.max_new_tokens < 1, f"--max-new-tokens {self.max_new_tokens}: give 1 or more"),
        ]
        for bad, message in problems:
            if bad:
                raise SftkitError(message)
        return self


def generation_config(encoder: Encoder, sampling: Sampling):
    """Every setting that changes which tokens are drawn, explicit (None would be filled from the model's)."""
    from transformers import GenerationConfig

    tok = encoder.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else encoder.stop_ids[0]
    settings = dict(
        max_new_tokens=sampling.max_new_tokens, eos_token_id=list(encoder.stop_ids), pad_token_id=pad,
        do_sample=not sampling.greedy, num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0,
        min_length=0, use_cache=True, bad_words_ids=None, suppress_tokens=None,
    )  # fmt: skip
    if sampling.greedy:  # unused by greedy search; transformers' defaults, so no "flag ignored" warning
        settings |= dict(temperature=1.0, top_p=1.0, top_k=50)
    else:
        settings |= dict(
            temperature=sampling.temperature, top_p=sampling.top_p, top_k=0, min_p=0.0, typical_p=1.0,
            epsilon_cutoff=0.0, eta_cutoff=0.0, num_return_sequences=sampling.samples,
        )  # fmt: skip
    return GenerationConfig(**settings)


def cut(tokens: Sequence[int], stops: set[int]) -> tuple[list[int], int, bool]:
    """(response tokens, tokens generated, finished): everything from the first stop token on is dropped."""
    for i, token in enumerate(tokens):
        if token in stops:
            return list(tokens[:i]), i + 1, True
    return list(tokens), len(tokens), False


def _batch(model, encoder: Encoder, prompt_ids: list[list[int]], config, device, logits_processor, synced) -> list:
    """One left-padded batch -> a list of Generated per prompt (num_return_sequences each)."""
    import torch

    width = max(map(len, prompt_ids))
    pad = config.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompt_ids], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=device)
    out = model.generate(
        input_ids=ids, attention_mask=mask, generation_config=config, logits_processor=logits_processor,
        synced_gpus=synced,
    )  # fmt: skip
    stops = set(encoder.stop_ids)
    pieces = [cut(row, stops) for row in out[:, width:].tolist()]
    texts = encoder.tokenizer.batch_decode([p[0] for p in pieces], skip_special_tokens=True)
    flat = [Generated(t, n, done) for t, (_, n, done) in zip(texts, pieces)]
    per = len(flat) // len(prompt_ids)
    return [flat[i * per : (i + 1) * per] for i in range(len(prompt_ids))]


def generate_ids(
    model,
    encoder: Encoder,
    prompt_ids: list[list[int]],
    sampling: Sampling,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    logits_processor=None,
    synced_gpus: bool = False,
) -> list[list[Generated]]:
    """`sampling.samples` Generated per prompt (given as token ids), in order. The model is put in eval mode and
    back into the mode it was in; the global RNG states are restored (the seed applies only inside).
    `synced_gpus`: every rank keeps stepping until all are done (FSDP-sharded models; every rank must then call
    this with as many prompts)."""
    import torch
    from tqdm import tqdm

    if batch_size < 1:
        raise SftkitError(f"--batch-size {batch_size}: give 1 or more sequences per batch")
    sampling.check()
    config = generation_config(encoder, sampling)
    per_batch = max(1, batch_size // (1 if sampling.greedy else sampling.samples))
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))  # similar lengths: little padding
    results: list[list[Generated]] = [[] for _ in prompt_ids]
    device = next(model.parameters()).device
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    bar = tqdm(total=len(prompt_ids), desc="generating", unit="problem", file=sys.stderr, disable=not progress)
    modes = [(m, m.training) for m in model.modules()]  # each module's own mode: some may be frozen in eval
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(sampling.seed)
            for start in range(0, len(order), per_batch):
                chunk = order[start : start + per_batch]
                batch = [prompt_ids[i] for i in chunk]
                outputs = _batch(model, encoder, batch, config, device, logits_processor, synced_gpus)
                for i, out in zip(chunk, outputs):
                    results[i] = out * sampling.samples if sampling.greedy else out
                bar.update(len(chunk))
    finally:
        for module, training in modes:
            module.training = training
        bar.close()
    return results


def generate(
    model,
    tokenizer,
    prompts: list[str],
    samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    progress: bool = False,
    logits_processor=None,
    synced_gpus: bool = False,
) -> list[list[Generated]]:
    """`samples` responses per prompt from a loaded model (a PreTrainedModel or PEFT model), prompts framed as in
    training. Leaves the model's train/eval mode and the RNG states as they were. See the module docstring."""
    encoder = Encoder(tokenizer)
    sampling = Sampling(samples, temperature, top_p, max_new_tokens, seed).check()
    prompt_ids = encoder.prompt_ids_batch(list(prompts)) if prompts else []
    return generate_ids(model, encoder, prompt_ids, sampling, batch_size, progress, logits_processor, synced_gpus)
