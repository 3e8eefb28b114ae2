"""The generation backends of `sftkit eval`: vLLM where it is installed and a CUDA GPU is present, else transformers.

Both take the prompts as token ids (`Encoder.prompt_ids_batch`: exactly the training prompt), sample with the same
settings (temperature, top-p, K samples, max new tokens, seed; no top-k, no repetition penalty) and stop at any of
`Encoder.stop_ids`. A backend is any object with `name` and `generate(prompt_ids, sampling, batch_size)`; the tests
swap in their own through `open_backend`.

The vLLM backend is written against vLLM's offline API (`LLM.generate` with `TokensPrompt`s and one
`SamplingParams` per problem, seeded seed + problem index) but is not exercised by the test suite, which runs on CPU.
"""

from __future__ import annotations

import importlib.util
from contextlib import ExitStack
from typing import Protocol

from sftkit.data.labels import Encoder
from sftkit.errors import SftkitError
from sftkit.evaluation.generate import Generated, Sampling, generate_ids
from sftkit.evaluation.source import ModelSource, load_model, merged_folder

CHOICES = ("auto", "transformers", "vllm")


class Backend(Protocol):
    name: str

    def generate(self, prompt_ids: list[list[int]], sampling: Sampling, batch_size: int) -> list[list[Generated]]:
        """`sampling.samples` Generated per prompt, in the order of the prompts."""
        ...


class TransformersBackend:
    """transformers `generate`, left-padded batches (`generate.generate_ids`); GPU if there is one, else CPU."""

    name = "transformers"

    def __init__(self, source: ModelSource, encoder: Encoder):
        self.model, self.encoder = load_model(source), encoder
        self.device = str(next(self.model.parameters()).device)

    def generate(self, prompt_ids: list[list[int]], sampling: Sampling, batch_size: int) -> list[list[Generated]]:
        return generate_ids(self.model, self.encoder, prompt_ids, sampling, batch_size, progress=True)


class VllmBackend:
    """vLLM's offline engine on the GPU; a LoRA adapter is merged into its base first (one model, no LoRA kernels).
    Untested here (no GPU in the test suite)."""

    name = "vllm"
    device = "cuda"

    def __init__(self, source: ModelSource, encoder: Encoder, stack: ExitStack, seed: int):
        from vllm import LLM

        self.encoder = encoder
        self.llm = LLM(model=merged_folder(source, stack), tokenizer=source.tokenizer, seed=seed, dtype="auto")

    def generate(self, prompt_ids: list[list[int]], sampling: Sampling, batch_size: int) -> list[list[Generated]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        n = 1 if sampling.greedy else sampling.samples  # K greedy samples: one generation, copied
        # Explicit SamplingParams: vLLM's defaults (no top-k, min-p or penalties), not the model's generation config
        params = [
            SamplingParams(
                n=n,
                temperature=sampling.temperature,
                top_p=1.0 if sampling.greedy else sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                stop_token_ids=list(self.encoder.stop_ids),
                seed=sampling.seed + i,
                skip_special_tokens=True,
            )
            for i in range(len(prompt_ids))
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=True)
        results = []
        for out in outputs:  # vLLM returns them in the order of the prompts
            done = [Generated(c.text, len(c.token_ids), c.finish_reason == "stop") for c in out.outputs]
            results.append(done * sampling.samples if sampling.greedy else done)
        return results


def vllm_unavailable() -> str | None:
    """Why vLLM cannot run here, or None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install 'sftkit[vllm]')"
    import torch

    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and none is visible"
    return None


def open_backend(name: str, source: ModelSource, encoder: Encoder, stack: ExitStack, seed: int) -> Backend:
    """The backend `--backend` names; "auto": vLLM when it can run here, else transformers."""
    if name not in CHOICES:
        raise SftkitError(f"--backend {name}: choose one of {', '.join(CHOICES)}")
    why_not = vllm_unavailable() if name in ("auto", "vllm") else None
    if name == "vllm" and why_not:
        raise SftkitError(f"--backend vllm: {why_not}. Use --backend transformers (or auto).")
    if name == "vllm" or (name == "auto" and why_not is None):
        return VllmBackend(source, encoder, stack, seed)
    return TransformersBackend(source, encoder)
