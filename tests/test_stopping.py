"""Stop signals where nothing can be saved (sftkit/stopping.py): real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from sftkit.stopping import Stopped, signals_deferred, stop_at_once


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


def test_deferred_signals_wait_until_the_block_is_done_then_take_their_course():
    """Sent from another thread too (pyarrow's threads take a signal sent to the process): the block finishes,
    then the previous handler runs."""
    import threading

    done = []
    with pytest.raises(Stopped), stop_at_once():
        with signals_deferred():
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
            sender.start()
            sender.join()
            os.kill(os.getpid(), signal.SIGINT)
            done.append("after the signals")
        done.append("not reached")
    assert done == ["after the signals"]


def test_an_ignored_signal_stays_ignored():
    """A background job or `nohup` ignores SIGINT/SIGHUP: stop_at_once must not make it stop on them."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_at_once():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # nothing happens
        with signals_deferred():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
