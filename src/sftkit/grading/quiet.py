"""math-verify's warnings silenced while it runs, never at import (see `_QuietMathVerify`)."""

from __future__ import annotations

import contextlib
import logging
import threading


class _QuietMathVerify:
    """math-verify's own time limits use signal.alarm and cancel any alarm on return, which would cancel ours: we
    turn them off (None) and bound the whole judgement instead (`pool.py`), and math-verify then warns "timeout is
    disabled" on every call. Its logger is set to ERROR while it runs and given back its level afterwards (the
    outermost of nested or concurrent uses restores it): importing or using sftkit changes no logging setting."""

    def __init__(self) -> None:
        self.lock, self.depth, self.level = threading.Lock(), 0, logging.NOTSET

    @contextlib.contextmanager
    def __call__(self):
        logger = logging.getLogger("math_verify")
        with self.lock:
            if self.depth == 0:
                self.level = logger.level
                logger.setLevel(logging.ERROR)
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0:
                    logger.setLevel(self.level)


quiet_math_verify = _QuietMathVerify()
