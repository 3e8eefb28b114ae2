"""Final answers, in one import: where a solution states one (`extract`), whether it equals the gold answer
(`judge`), and many judgements on worker processes within a time limit (`pool`)."""

from sftkit.grading.extract import MARKER, PROSE, ROUTES, Final, extract_answer, final_answer
from sftkit.grading.judge import CORRECT, NO_ANSWER, TIMEOUT, UNPARSEABLE, VERDICTS, WRONG, clean, judge, parse_math
from sftkit.grading.pool import grade_pairs, judge_in_time

__all__ = [
    "CORRECT", "MARKER", "NO_ANSWER", "PROSE", "ROUTES", "TIMEOUT", "UNPARSEABLE", "VERDICTS", "WRONG", "Final",
    "clean", "extract_answer", "final_answer", "grade_pairs", "judge", "judge_in_time", "parse_math",
]  # fmt: skip
