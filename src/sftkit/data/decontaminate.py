"""`prepare --decontaminate FILE...`: training prompts that share a word n-gram with an evaluation problem.

As open-r1's decontamination: the eval problems' n-grams (default 8 words, after `normalize.words`) go into a
table; a training prompt sharing any of them is contaminated. Each distinct prompt is checked once (the many
solutions of a problem share it). An n-gram found in more than `max(2, 1%)` of the eval problems is template text
("Solve the following math problem step by step...") and is ignored with every n-gram that touches it (else one
shared instruction, or the instruction and a first name, would drop unrelated rows); a leaked problem still shares
the n-grams of its own text. The eval problems are counted once each (an eval file with several solutions per
problem repeats it: counted per row, its own n-grams would look like template text). A problem shorter than N words
has no n-gram: it matches a training prompt that is the same text (after normalisation), and the summary says how
many such problems there are. Every eval file must exist, and its bad rows are counted and shown (fatal under
--strict): a silently skipped eval problem is a leak nobody sees. Memory: one table entry per distinct eval n-gram
(MATH's 5,000 test problems: about 300k entries, ~40 MB), and one per distinct training prompt checked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sftkit.data.normalize import words
from sftkit.data.rows import RowReport, expand_inputs, iter_rows
from sftkit.errors import SftkitError

NGRAM = 8  # words per n-gram, as open-r1
KEYS = ("problem", "question", "prompt")  # detected in this order when --decontaminate-key is not given
SHOW = 5


@dataclass(frozen=True)
class EvalProblem:
    where: str  # file:line
    text: str


@dataclass
class Match:
    train: str  # file:line of the first training row with that prompt
    prompt: str
    problem: EvalProblem
    ngram: str


def _short(text: str, width: int = 80, near: str = "") -> str:
    """One line of `text`, from a little before the words of `near` when given (a prompt's opening is often a
    shared instruction that says nothing)."""
    text = " ".join(text.split())
    found = re.search(r"\W+".join(map(re.escape, near.split())), text, re.IGNORECASE) if near else None
    if found and found.end() > width - 3:
        text = "..." + text[max(0, found.start() - 20) :]
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class Decontaminator:
    n: int
    problems: list[EvalProblem]
    table: dict[int, int]  # hash of an n-gram -> index of the first eval problem that has it
    files: list[str]
    whole: dict[str, int] = field(default_factory=dict)  # a problem shorter than n words (normalised) -> index
    rows: RowReport = field(default_factory=RowReport)  # the eval files' rows: read, usable, bad
    ignored: list[str] = field(default_factory=list)  # template n-grams (a few shown)
    n_ignored: int = 0
    checked: dict[int, int] = field(default_factory=dict)  # prompt id -> index in `matches`, or -1
    matches: list[Match] = field(default_factory=list)

    def check(self, prompt_id: int, prompt: str, where: str) -> bool:
        """True when the prompt shares an n-gram with an eval problem (each distinct prompt computed once)."""
        found = self.checked.get(prompt_id)
        if found is None:
            found = -1
            tokens = words(prompt)
            short = self._whole_problem(tokens, prompt)
            if short is not None:
                self.matches.append(Match(where, _short(prompt), self.problems[short], self.problems[short].text))
                found = len(self.matches) - 1
            for i in range(len(tokens) - self.n + 1 if found < 0 else 0):
                gram = " ".join(tokens[i : i + self.n])
                hit = self.table.get(hash(gram))
                if hit is not None:
                    self.matches.append(Match(where, _short(prompt, near=gram), self.problems[hit], gram))
                    found = len(self.matches) - 1
                    break
            self.checked[prompt_id] = found
        return found >= 0

    def _whole_problem(self, tokens: list[str], prompt: str) -> int | None:
        """A problem shorter than n words that is the prompt, or opens or closes it (an instruction before or after
        it): the same words, and the same text at that end of the prompt (so "What is $1+1$?" is not found in
        "What is $1+1+1$?")."""
        text = " ".join(prompt.split())
        for size in self.short_sizes:
            for part, at_start in ((tokens[:size], True), (tokens[-size:], False)):
                index = self.whole.get(" ".join(part)) if len(tokens) >= size else None
                if index is None:
                    continue
                problem = " ".join(self.problems[index].text.split())
                if len(tokens) == size or (text.startswith(problem) if at_start else text.endswith(problem)):
                    return index
        return None

    @functools.cached_property
    def short_sizes(self) -> list[int]:
        return sorted({len(key.split()) for key in self.whole})

    def report(self) -> dict:
        hit = {m.problem.where for m in self.matches}
        return {
            "files": self.files, "ngram_words": self.n, "eval_rows": self.rows.rows_read,
            "eval_rows_bad": self.rows.n_bad, "eval_rows_bad_first": [str(b) for b in self.rows.examples],
            "eval_problems": len(self.problems), "eval_problems_short": len(self.whole),
            "template_ngrams_ignored": self.n_ignored, "template_ngrams_first": self.ignored,
            "prompts_dropped": len(self.matches), "eval_problems_matched": len(hit),
            "first_matches": [
                {"train": m.train, "prompt": m.prompt, "eval": m.problem.where,
                 "eval_problem": _short(m.problem.text, near=m.ngram), "shared": m.ngram}
                for m in self.matches[:SHOW]
            ],
        }  # fmt: skip


def _text(row: dict, key: str | None) -> str | None:
    if key is not None:
        value = row.get(key)
        return value if isinstance(value, str) and value.strip() else None
    return next((row[k] for k in KEYS if isinstance(row.get(k), str) and row[k].strip()), None)


def eval_files(patterns: Sequence[str], suffixes: Sequence[str]) -> list[Path]:
    """The eval files of the patterns; a missing file or an empty glob is an error (the user believes the data is
    checked against it)."""
    report = RowReport()
    files = expand_inputs(patterns, report, suffixes)
    if report.n_bad:
        raise SftkitError(f"--decontaminate: every evaluation file must exist.\n{report.summary()}")
    return files


def read_problems(
    patterns: Sequence[str], key: str | None, suffixes: Sequence[str], strict: bool = False
) -> tuple[list[EvalProblem], list[Path], RowReport]:
    """The distinct eval problems of the files (the first row of each), the files, and their rows' report. A missing
    file or an empty glob is an error (the user believes the data was checked against it), as is a file without
    any problem; a bad row is counted and shown (fatal with `strict`)."""
    report = RowReport(strict=strict)
    files = eval_files(patterns, suffixes)
    problems: list[EvalProblem] = []
    seen: set[str] = set()
    for path in files:
        usable_before, read_before = report.rows_ok, report.rows_read
        for _, line, row in iter_rows([path], report):
            text = _text(row, key)
            if text is None:
                wanted = repr(key) if key else " or ".join(KEYS)
                report.reject_accepted(f"{path}:{line}", f"no problem text ({wanted})", "no problem text")
                continue
            normal = " ".join(words(text))
            if normal not in seen:
                seen.add(normal)
                problems.append(EvalProblem(f"{path}:{line}", text))
        if report.rows_ok == usable_before:
            wanted = f"a {key!r} column" if key else f"a column named {', '.join(KEYS)}"
            raise SftkitError(
                f"--decontaminate {path}: no row with {wanted} among its {report.rows_read - read_before} rows "
                f"(columns found: {report.columns_found()}). Name the eval problems' column with --decontaminate-key."
            )
    return problems, files, report


def _grams(tokens: list[str], n: int) -> list[int]:
    return [hash(" ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1)]  # salted, used in-process only


def build(
    patterns: Sequence[str], n: int, key: str | None, suffixes: Sequence[str], strict: bool = False
) -> Decontaminator:
    """The n-gram table of the eval files' problems, without the n-grams that touch template text."""
    if n < 1:
        raise SftkitError(f"--decontaminate-ngram {n}: give 1 or more words")
    problems, files, rows = read_problems(patterns, key, suffixes, strict)
    tokens = [words(problem.text) for problem in problems]
    grams = [_grams(t, n) for t in tokens]
    count: dict[int, int] = {}
    for hashes in grams:
        for h in set(hashes):
            count[h] = count.get(h, 0) + 1
    limit = max(2, len(problems) // 100)
    template = {h for h, c in count.items() if c > limit}
    table: dict[int, int] = {}
    shown: set[str] = set()
    for index, hashes in enumerate(grams):
        covered = bytearray(len(hashes) + n)  # words inside a template n-gram
        for i, h in enumerate(hashes):
            if h in template:
                covered[i : i + n] = b"\x01" * n
                shown.add(" ".join(tokens[index][i : i + n]))
        for i, h in enumerate(hashes):
            if not any(covered[i : i + n]):  # "...in \boxed{}. James" would match every James problem
                table.setdefault(h, index)
    whole = {" ".join(t): i for i, t in enumerate(tokens) if 0 < len(t) < n}
    return Decontaminator(
        n, problems, table, [str(f) for f in files], whole, rows, sorted(shown)[:SHOW], len(template)
    )
