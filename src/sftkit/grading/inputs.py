"""`sftkit filter`'s inputs: the metadata's gold answer per problem id, and each solution's id and final answer.

One metadata answer per id: solutions sharing an id must be solutions of one problem. Where the solution rows have
a `prompt`, an id whose solutions have different prompts is a user error (they would all be graded against one
answer, correct solutions marked wrong), never silent.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

from sftkit.data.parquet import kind_of
from sftkit.data.rows import RowReport, iter_rows
from sftkit.errors import SftkitError
from sftkit.grading.extract import extract_answer, final_answer
from sftkit.grading.judge import clean, relevant_question

SHOW_IDS = 5
PROMPT_KEY = "prompt"


class Solution(NamedTuple):
    file: int  # index in the list of input files
    line: int
    id: str
    answer: str | None  # the final answer's text, cleaned; None when the solution states none
    route: str | None  # how the answer was found: extract.MARKER, extract.PROSE, or None
    question: str | None = None  # the row's prompt as text (one object per id) where the judge reads it, else None


class Metadata(NamedTuple):
    golds: dict[str, str]  # id -> gold answer text
    without_answer: set[str]  # ids whose metadata rows have no usable answer
    info: dict  # numbers for the report
    report: RowReport


def normalize_id(value) -> str | None:
    """Ids compare as text: 7, 7.0 and "7" are the same problem. None for a missing or unusable id."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def gold_answer(row: dict, answer_key: str) -> str | None:
    """`answer_key`'s text (the final answer of a worked one: GSM8K's "... #### 72" gives "72"), else the final
    answer of a `solution` field (MATH's last \\boxed{}); None if there is neither."""
    answer, solution = row.get(answer_key), row.get("solution")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return str(answer)
    if isinstance(answer, str) and answer.strip():
        worked = "####" in answer or "\\boxed" in answer
        return (extract_answer(answer) or answer) if worked else answer.strip()
    return (extract_answer(solution) or None) if isinstance(solution, str) else None


def load_metadata(path: Path, id_key: str, answer_key: str, strict: bool) -> Metadata:
    """{id: gold answer text} from the metadata file, the ids without an answer, and the file's report."""
    if not path.is_file():
        raise SftkitError(
            f"metadata file not found: {path}. Pass --metadata-file with a JSONL of "
            f'{{"{id_key}": ..., "{answer_key}": ...}} rows, one per problem.'
        )
    report, golds, without_answer, duplicates, conflicts = RowReport(strict=strict), {}, set(), [], 0
    for _, line, row in iter_rows([path], report):
        key, where = normalize_id(row.get(id_key)), f"{path}:{line}"
        answer = gold_answer(row, answer_key)
        if key is None:
            report.reject_accepted(where, f"no usable {id_key!r} field (fields: {', '.join(row)})", "missing id")
        elif not answer:
            without_answer.add(key)
            report.reject_accepted(
                where, f"no {answer_key!r} (nor a 'solution' with a \\boxed{{}} answer)", "missing answer"
            )
        elif key in golds:
            if strict:
                raise SftkitError(f"{where}: duplicate id {key!r} in the metadata (--strict)")
            duplicates.append(key)
            conflicts += clean(golds[key]) != clean(answer)
        else:
            golds[key] = answer
    if not golds:
        raise SftkitError(
            f"no usable row in the metadata file {path}.\n{report.summary()}\n"
            f"columns found: {report.columns_found()} (use --id-key / --answer-key)"
        )
    info = {"problems": len(golds), "duplicate_ids": len(duplicates), "conflicting_duplicates": conflicts}
    info |= {"first_duplicates": duplicates[:SHOW_IDS], "bad_rows": report.n_bad}
    return Metadata(golds, without_answer - golds.keys(), info, report)


def stated_answer(text: str, require_marker: bool = False) -> tuple[str | None, str | None]:
    """(answer, route) of a solution text: its final answer, cleaned (None when it states none), and how it was
    found (extract.MARKER, extract.PROSE; None without an answer). `sftkit eval` grades its texts through this too."""
    found = final_answer(text, require_marker)
    answer = (clean(found.text) or None) if found.text else None  # "" (extract.UNCLEAR): no answer
    return answer, (found.route if answer else None)


def question_text(prompt) -> str | None:
    """The problem's text in a solution row's prompt: the prompt itself, or the contents of a chat prompt's user
    turns ([{"role": "user", "content": ...}]); None for anything else."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        turns = [t for t in prompt if isinstance(t, dict) and isinstance(t.get("content"), str)]
        user = [t["content"] for t in turns if t.get("role", "user") == "user"]
        return "\n\n".join(user) or None
    return None


def _short(prompt: str, width: int = 60) -> str:
    prompt = " ".join(prompt.split())
    return repr(prompt if len(prompt) <= width else prompt[: width - 3] + "...")


class _Prompts:
    """The first prompt seen for each id (a digest, where, and its opening), to catch an id shared by problems."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[bytes, str, str]] = {}

    def check(self, key: str, prompt, where: str) -> None:
        text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)
        digest = hashlib.blake2b(text.strip().encode(), digest_size=16).digest()
        seen = self.first.setdefault(key, (digest, where, text))
        if seen[0] != digest:
            raise SftkitError(
                f"id {key!r} is shared by solutions to different prompts: {seen[1]} {_short(seen[2])} and "
                f"{where} {_short(text)}. The metadata has one answer per id, so they cannot all be graded: give "
                f"each problem its own id (or name the right id field with --id-key)."
            )


def read_solutions(
    files: list[Path], report: RowReport, response_key: str, id_key: str, require_marker: bool = False
) -> tuple[list[Solution], dict]:
    """Every usable row -> Solution (the final answer extracted here: cheap), and the column types seen."""
    solutions, kinds, index, prompts = [], defaultdict(Counter), {path: i for i, path in enumerate(files)}, _Prompts()
    questions: dict[str, str | None] = {}  # id -> its prompt's text for the judge, once (an id has one prompt)
    for path, line, row in iter_rows(files, report, required=(response_key,)):
        key = normalize_id(row.get(id_key))
        if key is None:
            reason = f"no usable {id_key!r} field (fields: {', '.join(row)}); use --id-key to name the id field"
            report.reject_accepted(f"{path}:{line}", reason, "missing id")
            continue
        if row.get(PROMPT_KEY) is not None:
            prompts.check(key, row[PROMPT_KEY], f"{path}:{line}")
            if key not in questions:
                questions[key] = relevant_question(question_text(row[PROMPT_KEY]))
        for name, value in row.items():
            kinds[name][kind_of(value)] += 1
        answer, route = stated_answer(row[response_key], require_marker)
        if row.get("finished") is False:  # `sftkit eval` marks a generation cut at max_new_tokens: no final answer
            answer, route = None, None
        solutions.append(Solution(index[path], line, key, answer, route, questions.get(key)))
    return solutions, kinds
