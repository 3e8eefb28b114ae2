"""Stop signals where nothing can be saved (sftkit/stopping.py): real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from sftkit.stopping import Stopped, signals_held, stop_at_once


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_signal_raises_stopped_and_the_handlers_are_given_back(sig):
    before = signal.getsignal(sig)
    with pytest.raises(Stopped) as info, stop_at_once():
        os.kill(os.getpid(), sig)
    assert info.value.signum == sig and str(info.value) == signal.Signals(sig).name
    assert signal.getsignal(sig) is before
    assert not isinstance(info.value, Exception)  # no library's `except Exception` swallows it


def test_disarm_gives_the_signals_back_early():
    with stop_at_once() as disarm:
        disarm()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_caller_that_handles_sigterm_keeps_its_handlers():
    """`sftkit rounds` runs prepare in its own process and stops it its own way."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with stop_at_once(unless_handled=True):
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_held_signals_wait_until_the_block_is_done():
    done = []
    with pytest.raises(Stopped), stop_at_once():
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("after the signal")
        done.append("not reached")
    assert done == ["after the signal"]
