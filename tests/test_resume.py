"""Which checkpoint a run resumes from and whether its run matches this one (checkpoint/resume.py): another run's
data, examples built another way or another model are refused with the differences listed; the output folder is
checked before any work."""

from __future__ import annotations

import pytest

from sftkit.checkpoint import resume
from sftkit.errors import SftkitError


def test_resume_refuses_examples_built_another_way(tmp_path):
    """Same files, examples built with another chat template / tokenizer / labels version: refused."""
    saved = {"config": {}, "data": {"files_digest": "f", "rows": 540, "examples": 540, "key": "examples-key-A"}}
    now = {"files_digest": "f", "rows": 540, "examples": 540, "key": "examples-key-B"}  # same files, other template
    with pytest.raises(SftkitError):
        resume.check_compatible(tmp_path, saved, {}, now, ignore=False)
