"""Grading generated texts exactly as `sftkit filter` grades solution rows, so both give the same accuracy.

The same steps as the filter's (`grading.inputs.read_solutions` then `grading.filter._records`): the final answer
of the text (`inputs.stated_answer`, the filter's own: after the last marker, else from the concluding statement,
cleaned), then each distinct (gold, answer) pair judged once with math-verify within a time limit on worker
processes (`pool.grade_pairs`). The test suite runs `sftkit filter` on `sftkit eval`'s output and checks the two
agree, so a change of the filter's pipeline that is not mirrored here fails a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sftkit.grading.inputs import stated_answer
from sftkit.grading.judge import CORRECT, relevant_question
from sftkit.grading.pool import grade_pairs
from sftkit.grading.report import NO_GOLD

DEFAULT_TIMEOUT = 5.0  # seconds per answer: `sftkit filter`'s default


class Graded(NamedTuple):
    outcome: str  # a verdict (judge.VERDICTS), or why it was not graded (report.NO_GOLD / NO_METADATA)
    answer: str | None  # the final answer found, cleaned; None when the text states none
    route: str | None  # extract.MARKER, extract.PROSE or None


def grade_texts(
    golds: Sequence[str | None],
    texts: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 1,
    progress: bool = False,
    ungraded: Sequence[str | None] | None = None,
    finished: Sequence[bool] | None = None,
    questions: Sequence[str | None] | None = None,
) -> list[Graded]:
    """A Graded per text against the gold answer at the same index; a None gold is not graded (outcome
    `ungraded[i]`, default report.NO_GOLD). A generation cut at max_new_tokens (`finished[i]` False) states no
    final answer, as `sftkit filter` reads a row with `"finished": false`: it is never kept as correct.
    `questions[i]`, the problem's text (the prompt), tells the judge whether a list's order matters, as `sftkit
    filter` reads it from the row's prompt."""
    if len(golds) != len(texts):
        raise ValueError(f"{len(golds)} gold answers for {len(texts)} texts: give one gold answer per text")
    if questions is not None and len(questions) != len(texts):
        raise ValueError(f"{len(questions)} questions for {len(texts)} texts: give one question (or None) per text")
    done = finished if finished is not None else [True] * len(texts)
    finals = [stated_answer(t) if ok else (None, None) for t, ok in zip(texts, done)]
    asked = [relevant_question(q) for q in questions] if questions else [None] * len(texts)
    pairs = list(dict.fromkeys((g, a, q) for g, (a, _), q in zip(golds, finals, asked) if g is not None))
    verdict_of = dict(zip(pairs, grade_pairs(pairs, timeout, workers, progress=progress)))
    why = ungraded or [None] * len(texts)
    return [
        Graded(verdict_of[g, a, q] if g is not None else (w or NO_GOLD), a, r)
        for g, (a, r), w, q in zip(golds, finals, why, asked)
    ]


def grade(
    golds: Sequence[str],
    texts: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 1,
    finished: Sequence[bool] | None = None,
    questions: Sequence[str | None] | None = None,
) -> list[bool]:
    """Whether each text's final answer equals the gold answer at the same index (`sftkit filter`'s verdict
    "correct"; a generation cut at max_new_tokens never is; a list in order where the question asks for one). For
    the trainer: one process by default (no workers forked from a process holding a model)."""
    graded = grade_texts(golds, texts, timeout, workers, finished=finished, questions=questions)
    return [g.outcome == CORRECT for g in graded]
