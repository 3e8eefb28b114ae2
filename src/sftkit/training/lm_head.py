"""The LM head scores trained positions only, on every device (issue 26).

TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`) projects only the positions whose next-token label is
trained on Triton devices (CUDA, XPU), and every position elsewhere, CPU included: there the number of positions
changes from batch to batch, which recompiles on graph devices such as Neuron. Eager CPU has no such cost, and the
prompt positions (about half of a GSM8K-shaped example) are projected over the whole vocabulary for nothing. The
compact path is TRL's own (`hidden_states[mask]`, then `masked_scatter` back): the same per-token log-probabilities
of the trained positions, so the same loss. Only the decision is widened, through the module-level `_use_triton`
name `add_fused_lm_head` reads (pinned in tests/test_upstream.py); the kernel choice inside
`trl.kernels.chunked_logprob` is left as it is.
"""

from __future__ import annotations


def score_trained_positions_only() -> None:
    """Make TRL's fused LM head compact (trained positions only) on CPU too. Idempotent."""
    import trl.trainer.utils as trl_utils

    triton = trl_utils._use_triton
    if getattr(triton, "sftkit_compact", False):
        return

    def compact(device) -> bool:
        return device.type == "cpu" or triton(device)

    compact.sftkit_compact = True
    compact.sftkit_upstream = triton  # TRL's own decision, for tests that need it back
    trl_utils._use_triton = compact
