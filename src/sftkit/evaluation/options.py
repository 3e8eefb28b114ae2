"""The options of `sftkit eval` (flag -> argparse keywords, each explained in --help) and its parser: read by the
command (evaluation/command.py) and by `sftkit rounds`, which checks a recipe's generate/evaluate sections with
the same parser."""

from __future__ import annotations

import argparse

from sftkit.errors import SftkitError
from sftkit.evaluation import backends
from sftkit.evaluation.generate import DEFAULT_BATCH_SIZE, DEFAULT_MAX_NEW_TOKENS, Sampling

DEFAULT_SAMPLED_TEMPERATURE = 0.7  # with --samples > 1 and no --temperature: greedy samples would all be equal

OPTIONS = {  # flag -> argparse keywords; every option explained in --help
    "--problems": dict(required=True, metavar="FILE", help="JSONL or Parquet with an id and a prompt per problem "
                       "(a prepared train/val.parquet works: rows of one problem count once)"),
    "--metadata-file": dict(metavar="M", help="JSONL with each problem's id and gold answer, as for `sftkit filter` "
                            "(default: the problems file's own 'gold_answer' or --answer-key column)"),
    "--samples": dict(type=int, default=1, metavar="K", help="solutions generated per problem (default 1); with "
                      "K > 1 the report adds pass@k and majority vote"),
    "--temperature": dict(type=float, metavar="T", help="sampling temperature; 0 = greedy (default: 0 with one "
                          f"sample, {DEFAULT_SAMPLED_TEMPERATURE} with several)"),
    "--top-p": dict(type=float, default=1.0, metavar="P", help="nucleus sampling mass (default 1.0: off)"),
    "--max-new-tokens": dict(type=int, default=DEFAULT_MAX_NEW_TOKENS, metavar="N", help="generation stops after N "
                             f"tokens if the end-of-turn has not come (default {DEFAULT_MAX_NEW_TOKENS})"),
    "--output": dict(metavar="OUT.jsonl", help="where to write the solutions (default: outputs/<model>_<problems>"
                     ".jsonl)"),
    "--batch-size": dict(type=int, default=DEFAULT_BATCH_SIZE, metavar="B", help="sequences generated together, "
                         f"problems x samples (transformers backend; default {DEFAULT_BATCH_SIZE})"),
    "--prompt-key": dict(default="prompt", metavar="KEY", help="field of the problems file holding the prompt "
                         "(default: prompt); it is framed as in training (one user turn of the chat template)"),
    "--id-key": dict(default="id", metavar="KEY", help="field holding the problem id, in the problems and the "
                     "metadata (default: id)"),
    "--answer-key": dict(default="answer", metavar="KEY", help="field holding the gold answer (default: answer)"),
    "--limit": dict(type=int, metavar="N", help="only the first N problems of the file"),
    "--seed": dict(type=int, default=0, metavar="S", help="sampling seed (default 0)"),
    "--report-json": dict(metavar="R", help="also write the report's numbers to this JSON file"),
    "--overwrite": dict(action="store_true", help="replace output files that exist already (an output that is "
                        "one of the inputs is refused even so)"),
    "--backend": dict(choices=backends.CHOICES, default="auto", help="auto (default): vLLM when it is installed "
                      "and a CUDA GPU is present, else transformers"),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sftkit eval",
        description="Generate solutions with a model or checkpoint, grade them as `sftkit filter` does (accuracy, "
        "pass@k, majority vote) and write them as seed-format JSONL: the next round's data.",
        epilog="example: %(prog)s runs/tiny/global_step_final --problems data/sft/val.parquet "
        "--metadata-file data/sample/metadata.jsonl --samples 4 --output outputs/round1.jsonl",
    )
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT", help="a Hugging Face model folder or hub id, a LoRA "
                   "adapter folder, a global_step_* checkpoint or a run folder (its newest checkpoint)")  # fmt: skip
    for flag, keywords in OPTIONS.items():
        p.add_argument(flag, **keywords)
    return p


def sampling_of(args) -> Sampling:
    """The sampling settings of the parsed options, checked (`sftkit eval`; `sftkit rounds` before any stage)."""
    temperature = args.temperature
    if temperature is None:
        temperature = 0.0 if args.samples == 1 else DEFAULT_SAMPLED_TEMPERATURE
    elif temperature == 0 and args.samples > 1:
        print(f"note: --temperature 0 is greedy: the {args.samples} samples of a problem will be the same")
    if args.batch_size < 1:
        raise SftkitError(f"--batch-size {args.batch_size}: give 1 or more sequences per batch")
    if args.limit is not None and args.limit < 1:
        raise SftkitError(f"--limit {args.limit}: give 1 or more problems")
    return Sampling(args.samples, temperature, args.top_p, args.max_new_tokens, args.seed).check()
