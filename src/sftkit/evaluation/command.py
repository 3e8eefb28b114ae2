"""`sftkit eval MODEL_OR_CHECKPOINT --problems FILE`: generate solutions, grade them, write the next round's data.

Problems (`problems.py`) -> the model (`source.py`: a folder, hub id, adapter or checkpoint) -> K samples per
problem from the backend (`backends.py`: vLLM on a GPU, else transformers) -> graded as `sftkit filter` grades
(`grade.py`) -> seed-format JSONL rows (`id`, `prompt`, `generated_solution`, `num_tokens`, plus `sample`,
`correct`, `extracted_answer`), written atomically, ready for `sftkit filter` / `sftkit prepare` -> accuracy
(pass@1, the mean over samples), pass@k and majority vote with K > 1 (`grading.report.summarize`).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from pathlib import Path

from sftkit import dist
from sftkit.dist import user_errors
from sftkit.evaluation import backends
from sftkit.evaluation.generate import Generated, Sampling
from sftkit.evaluation.grade import DEFAULT_TIMEOUT, Graded, grade_texts
from sftkit.evaluation.options import build_parser, sampling_of
from sftkit.evaluation.problems import Problems, load_problems
from sftkit.evaluation.report import format_summary, make_summary
from sftkit.grading.judge import CORRECT


def _outputs(args) -> tuple[Path, Path | None]:
    """The output paths, checked before any work (`sftkit.outputs`: not an input, existing only with --overwrite,
    a folder that cannot be written is an error now, not after an hour of generation)."""
    from sftkit.evaluation.source import label_of
    from sftkit.outputs import check_output, distinct

    output = args.output or f"outputs/{label_of(args.model)}_{Path(args.problems).stem}.jsonl"
    distinct({"--output": Path(output), **({"--report-json": Path(args.report_json)} if args.report_json else {})})
    inputs = [Path(p) for p in (args.problems, args.metadata_file) if p]
    out = check_output(output, "--output", ".jsonl", inputs, args.overwrite)
    report = None
    if args.report_json:
        report = check_output(args.report_json, "--report-json", None, inputs, args.overwrite)
    return out, report


def _rows(problems: Problems, generations: list[list[Generated]], graded: list[Graded]) -> list[dict]:
    rows, flat = [], iter(graded)
    for problem, samples in zip(problems.items, generations):
        for k, gen in enumerate(samples):
            g = next(flat)
            correct = None if problem.gold is None else g.outcome == CORRECT
            rows.append({
                "id": problem.id, "prompt": problem.prompt, "generated_solution": gen.text,
                "num_tokens": gen.num_tokens, "sample": k, "correct": correct, "extracted_answer": g.answer,
                "finished": gen.finished,  # False: cut at max_new_tokens (filter and training leave it out)
            })  # fmt: skip
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """All the rows or none: written next to `path`, flushed to disk, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _generate(args, problems: Problems, sampling: Sampling, stack: ExitStack):
    """Load the model, generate: (source, backend, generations, seconds)."""
    from sftkit.data.labels import Encoder
    from sftkit.evaluation.source import resolve
    from sftkit.training.modeling import load_tokenizer

    source = resolve(args.model, stack)
    print(source.description, flush=True)
    encoder = Encoder(load_tokenizer(source.tokenizer))
    prompt_ids = encoder.prompt_ids_batch([p.prompt for p in problems.items])
    backend = backends.open_backend(args.backend, source, encoder, stack, sampling.seed)
    start = time.perf_counter()
    generations = backend.generate(prompt_ids, sampling, args.batch_size)
    if [len(g) for g in generations] != [sampling.samples] * len(prompt_ids):
        raise RuntimeError(f"backend {backend.name} did not return {sampling.samples} samples for each prompt")
    return source, backend, generations, time.perf_counter() - start


def _describe(problems: Problems, args, sampling: Sampling) -> str:
    repeated = f", {problems.repeated_rows} repeated rows skipped" if problems.repeated_rows else ""
    mode = "greedy" if sampling.greedy else f"temperature {sampling.temperature}, top-p {sampling.top_p}"
    return (
        f"problems: {len(problems.items)} from {args.problems}{repeated}; gold answers: {problems.gold_source}\n"
        f"sampling: {sampling.samples} per problem, {mode}, at most {sampling.max_new_tokens} new tokens, "
        f"seed {sampling.seed}"
    )


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sampling = sampling_of(args)
    output, report_path = _outputs(args)
    problems = load_problems(args.problems, args.prompt_key, args.id_key, args.answer_key, args.metadata_file,
                             args.limit)  # fmt: skip
    print(_describe(problems, args, sampling), flush=True)
    with ExitStack() as stack:  # temporary exports live until the generation is done
        source, backend, generations, seconds = _generate(args, problems, sampling, stack)
    golds = [p.gold for p in problems.items for _ in range(sampling.samples)]
    why = [p.missing for p in problems.items for _ in range(sampling.samples)]
    texts = [g.text for samples in generations for g in samples]
    done = [g.finished for samples in generations for g in samples]
    asked = [p.prompt for p in problems.items for _ in range(sampling.samples)]  # whether a list's order matters
    graded = grade_texts(
        golds, texts, DEFAULT_TIMEOUT, dist.cores(), progress=True, ungraded=why, finished=done, questions=asked
    )
    write_jsonl(output, _rows(problems, generations, graded))
    summary = make_summary(problems, generations, graded, output, sampling)
    summary["generation"] = _generation_info(backend, generations, seconds, sampling, source.description)
    print(format_summary(summary))
    print(f"wrote {len(texts)} solutions -> {output}")
    if report_path is not None:
        report_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _generation_info(backend, generations, seconds: float, sampling: Sampling, model: str) -> dict:
    tokens = sum(g.num_tokens for samples in generations for g in samples)
    unfinished = sum(not g.finished for samples in generations for g in samples)
    return {
        "model": model, "backend": backend.name, "device": getattr(backend, "device", None),
        "seconds": round(seconds, 3), "tokens": tokens, "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
        "cut_at_max_new_tokens": unfinished, "samples": sampling.samples, "temperature": sampling.temperature,
        "top_p": sampling.top_p, "max_new_tokens": sampling.max_new_tokens, "seed": sampling.seed,
    }  # fmt: skip
