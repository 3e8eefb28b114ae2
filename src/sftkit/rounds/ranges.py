"""The checks a stage's command makes of its values before its work (`samples` >= 1, `max_per_prompt` >= 1, a
`mix` weight > 0, ...), made here before any stage runs: a bad value is an error at once, not after the stages
before it ran. Each calls the command's own check where it has one, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import io

from sftkit.errors import SftkitError


def _evaluation(args: argparse.Namespace, given: set[str]) -> None:
    from sftkit.evaluation.options import sampling_of

    with contextlib.redirect_stdout(io.StringIO()):  # its note on greedy samples is printed when the stage runs
        sampling_of(args)


def _filter(args: argparse.Namespace, given: set[str]) -> None:
    from sftkit.grading.filter import check_timeout, workers

    workers(args.workers)
    check_timeout(args.timeout)


def _prepare(args: argparse.Namespace, given: set[str]) -> None:
    from sftkit.data.prepare_options import check_args, mix_source

    check_args(args, given)
    for spec in args.mix or []:
        mix_source(spec)
    if args.decontaminate and args.decontaminate_ngram < 1:  # checked by decontaminate.build, which reads the files
        raise SftkitError(f"--decontaminate-ngram {args.decontaminate_ngram}: give 1 or more words")


CHECKS = {"generate": _evaluation, "evaluate": _evaluation, "filter": _filter, "prepare": _prepare}


def check(section: str, args: argparse.Namespace, given: set[str]) -> None:
    """SftkitError `SECTION: <the command's own message>` for a value out of range (`given`: the options the section
    sets, as the command's `dest` names)."""
    try:
        CHECKS[section](args, given)
    except SftkitError as exc:
        raise SftkitError(f"{section}: {exc}") from None
