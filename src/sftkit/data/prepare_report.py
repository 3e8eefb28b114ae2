"""`sftkit prepare`'s numbers: one dict, written as `prepare_report.json` and printed from the same dict, so the
console and the file always agree."""

from __future__ import annotations

import numpy as np

from sftkit.data.curate import Curated, Rows
from sftkit.data.rows import RowReport

FILE_PROBLEMS = ("missing file", "no match", "empty file", "unreadable file")  # report kinds that are not rows


def _side(rows: Rows, written: np.ndarray, path) -> dict:
    return {"rows": int(written.sum()), "problems": len(np.unique(rows.prompt[written > 0])), "path": str(path)}


def sources_report(sources: list[dict], rows: Rows, curated: Curated) -> list[dict]:
    total = int(curated.counts.sum())
    out = []
    for index, source in enumerate(sources):
        mine = rows.source == index
        entry = {**source, "rows_usable": int(mine.sum())}
        entry |= {step: int((mask & mine).sum()) for step, mask in curated.steps.items()}
        entry["rows_out"] = int(curated.counts[mine].sum())
        entry["share"] = round(entry["rows_out"] / total, 4) if total else 0.0
        out.append(entry)
    return out


def build(args, report: RowReport, inputs: dict, rows: Rows, curated: Curated, val, paths) -> dict:
    """Every number `prepare` prints (see `format_report`). `inputs`: files, keys, columns, notes, sources (see
    `sources_report`) and decontamination (`Decontaminator.report()` or None)."""
    counts = curated.counts
    train, val_rows = np.where(val, 0, counts), np.where(val, counts, 0)
    both = np.intersect1d(np.unique(rows.prompt[train > 0]), np.unique(rows.prompt[val_rows > 0]))
    capped = curated.steps["capped"]
    return {
        "inputs": [str(f) for f in inputs["files"]],
        "rows": {
            "read": report.rows_read, "usable": report.rows_ok, "dropped": report.rows_read - report.rows_ok,
            "bad": {k: n for k, n in sorted(report.bad.items()) if k not in FILE_PROBLEMS},
            "input_problems": {k: n for k, n in sorted(report.bad.items()) if k in FILE_PROBLEMS},
            "first_problems": [str(x) for x in report.examples],
        },
        "keys": {"prompt": inputs["keys"][0], "response": inputs["keys"][1]},
        "columns": list(inputs["columns"]),
        "notes": inputs["notes"],
        "duplicates_held": curated.duplicates_held,
        "curation": {
            "dedup": args.dedup, "duplicates_dropped": int(curated.steps["duplicates"].sum()),
            "max_per_prompt": args.max_per_prompt, "rows_capped": int(capped.sum()),
            "prompts_capped": len(np.unique(rows.prompt[capped])),
            "rows_decontaminated": int(curated.steps["decontaminated"].sum()),
            "decontamination": inputs["decontamination"],
        },
        "sources": inputs["sources"],
        "split": {
            "by": args.split_by, "val_split": args.val_split, "seed": args.seed,
            "problems": len(np.unique(rows.prompt[counts > 0])), "problems_on_both_sides": len(both),
            "train": _side(rows, train, paths["train"]), "val": _side(rows, val_rows, paths["val"]),
        },
    }  # fmt: skip


def _curation_lines(r: dict) -> list[str]:
    c, held = r["curation"], r["duplicates_held"]
    lines = [
        f"duplicates held (same prompt and solution): {held['exact']} exact, {held['normalized']} after "
        f"normalisation; --dedup {c['dedup']}: {c['duplicates_dropped']} dropped"
    ]
    if c["max_per_prompt"] is not None:
        lines.append(
            f"--max-per-prompt {c['max_per_prompt']}: {c['rows_capped']} rows capped in {c['prompts_capped']} problems"
        )
    d = c["decontamination"]
    if d is not None:
        lines.append(
            f"decontamination ({d['ngram_words']}-word n-grams, {d['eval_problems']} distinct eval problems in "
            f"{d['eval_rows']} rows of {len(d['files'])} files): {c['rows_decontaminated']} rows dropped, "
            f"{d['prompts_dropped']} training problems, {d['eval_problems_matched']} of the eval problems matched"
        )
        if d["eval_problems_short"]:
            lines.append(
                f"  {d['eval_problems_short']} eval problems shorter than {d['ngram_words']} words: matched only by a "
                "training prompt that is, opens or closes with the same text"
            )
        if d["eval_rows_bad"]:
            lines.append(f"  warning: {d['eval_rows_bad']} eval rows without a readable problem (not checked):")
            lines += [f"    {bad}" for bad in d["eval_rows_bad_first"]]
        if d["template_ngrams_ignored"]:
            lines.append(
                f"  {d['template_ngrams_ignored']} n-grams shared by many eval problems ignored as template text, "
                f"e.g. {d['template_ngrams_first'][0]!r}"
            )
        for m in d["first_matches"]:
            lines.append(f"  {m['train']} {m['prompt']!r}\n    ~ {m['eval']} {m['eval_problem']!r} ({m['shared']!r})")
    if len(r["sources"]) > 1 or r["sources"][0]["weight"] != 1:
        for s in r["sources"]:
            lines.append(
                f"source {s['name']} (weight {s['weight']:g}, {len(s['files'])} files): {s['rows_usable']} usable, "
                f"{s['decontaminated']} decontaminated, {s['duplicates']} duplicates, {s['capped']} capped -> "
                f"{s['rows_out']} rows ({s['share']:.1%} of the output)"
            )
    return lines


def format_report(r: dict) -> str:
    files = r["inputs"]
    shown = ", ".join(files[:5]) + (f", ... ({len(files) - 5} more)" if len(files) > 5 else "")
    rows = r["rows"]
    lines = [f"inputs: {len(files)} files: {shown}"]
    lines.append(f"rows read: {rows['read']}, usable: {rows['usable']}, dropped: {rows['dropped']}")
    lines += [f"  dropped ({kind}): {n}" for kind, n in rows["bad"].items()]
    lines += [f"  input problem ({kind}): {n}" for kind, n in rows["input_problems"].items()]
    if rows["first_problems"]:
        lines.append(f"first {len(rows['first_problems'])} problems (--strict makes them fatal):")
        lines += [f"  {example}" for example in rows["first_problems"]]
    lines.append(
        f"prompt key: {r['keys']['prompt']!r}, response key: {r['keys']['response']!r}; "
        f"columns kept: {', '.join(r['columns'])}"
    )
    lines += r["notes"]
    lines += _curation_lines(r)
    s = r["split"]
    lines.append(
        f"problems (unique prompts): {s['problems']}; split by {s['by']}, val fraction {s['val_split']}, "
        f"seed {s['seed']}"
    )
    lines.append(f"  train: {s['train']['rows']} rows, {s['train']['problems']} problems -> {s['train']['path']}")
    lines.append(f"  val:   {s['val']['rows']} rows, {s['val']['problems']} problems -> {s['val']['path']}")
    if s["problems_on_both_sides"]:
        lines.append(
            f"  {s['problems_on_both_sides']} problems are on both sides (--split-by row); "
            "--split-by prompt keeps them apart"
        )
    if s["val_split"] == 0:
        lines.append("  val.parquet is empty (--val-split 0): train on everything, no validation")
    elif not s["val"]["rows"]:
        lines.append("  val is empty: the split needs at least 2 problems (or rows, with --split-by row)")
    return "\n".join(lines)
