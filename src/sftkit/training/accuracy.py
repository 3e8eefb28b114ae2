"""`val_accuracy` during training (`eval_accuracy_samples=N`): greedy generation for N distinct validation problems
at every validation and at the end, graded as `sftkit filter` grades, so a round's progress shows in the run itself.

The problems are the first N distinct prompts of the validation files that have a gold answer (the `gold_answer`
column `sftkit filter` writes, or `data.metadata_file`). Each data-parallel rank generates for its share and the
counts are summed, so it costs 1/world of the time; every rank runs the same number of generation batches, and
under FSDP generation is synced across ranks (`synced_gpus`), as sharded forwards need all ranks. Its time is
not training time (tokens/s excludes it).
"""

from __future__ import annotations

import torch

from sftkit import dist
from sftkit.errors import SftkitError


def validation_problems(plan) -> list[tuple[str, str]]:
    """(prompt, gold) of the first N distinct validation problems that have a gold answer."""
    from sftkit.data.dataset import split_files
    from sftkit.data.rows import RowReport, expand_inputs
    from sftkit.evaluation.problems import load_problems

    d, n = plan.data, plan.train.eval_accuracy_samples
    files = expand_inputs(split_files(d.val_files, "val", verbose=False), RowReport(), (".parquet", ".jsonl"))
    found: dict[str, str] = {}
    for path in files:
        try:
            problems = load_problems(path, d.prompt_key, metadata_file=d.metadata_file)
        except SftkitError as exc:
            raise SftkitError(
                f"eval_accuracy_samples={n}: {exc} (gold answers come from the validation rows' gold_answer column, "
                "which `sftkit filter` writes, or from data.metadata_file)"
            ) from None
        for p in problems.items:
            if p.gold is not None and p.prompt not in found:
                found[p.prompt] = p.gold
            if len(found) == n:
                return list(found.items())
    if not found:
        raise SftkitError(f"eval_accuracy_samples={n}: no validation problem with a gold answer in {d.val_files}")
    return list(found.items())


class AccuracyProbe:
    def __init__(self, plan, tokenizer):
        self.plan, self.tokenizer = plan, tokenizer
        self.problems = validation_problems(plan)
        dist.print0(f"val_accuracy: greedy generation on {len(self.problems)} validation problems at each validation")

    def __call__(self, trainer) -> float:
        from sftkit.evaluation import generate, grade

        rank, world = trainer.dp_rank, self.plan.dp_size
        mine = self.problems[rank::world]
        per_rank = -(-len(self.problems) // world)
        prompts = [p for p, _ in mine] + [self.problems[0][0]] * (per_rank - len(mine))  # same batches everywhere
        fsdp = trainer.is_fsdp_enabled
        model = trainer.model_wrapped if fsdp else trainer.accelerator.unwrap_model(trainer.model)
        outs = generate(
            model, self.tokenizer, prompts, max_new_tokens=self.plan.train.eval_accuracy_max_new_tokens,
            batch_size=self.plan.train.per_device_eval_batch_size, synced_gpus=fsdp and self.plan.world_size > 1,
        )  # fmt: skip
        outs = outs[: len(mine)]
        texts, finished = [o[0].text for o in outs], [o[0].finished for o in outs]
        correct = grade([g for _, g in mine], texts, finished=finished, questions=[p for p, _ in mine])
        counts = torch.tensor([float(sum(correct)), float(len(mine))], device=trainer.args.device)
        if dist.distributed():
            torch.distributed.all_reduce(counts)
        counts /= self.plan.sp_size  # the ranks of a sequence-parallel group generated the same problems
        return (counts[0] / counts[1].clamp(min=1)).item()
