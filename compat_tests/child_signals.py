"""Signal dispositions for the processes the tests start.

A test runner started from ``nohup`` inherits SIGHUP ignored, a background
job of a non-interactive shell SIGINT and SIGQUIT ignored, and every child
inherits that (an ignored signal stays ignored across exec; Python keeps an
inherited SIG_IGN for SIGINT too).  A test that stops a filesystem with
SIGHUP, or interrupts a client with SIGINT, would then test nothing.  So
every process a test starts and may signal gets the default dispositions
and an empty signal mask, whatever the runner had: pass
``preexec_fn=default_signals`` (or use ``popen``).
"""
from __future__ import annotations

import signal
import subprocess

# the signals the tests send to the processes they start (SIGKILL and
# SIGSTOP cannot be ignored)
SENT_BY_TESTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                 signal.SIGUSR1, signal.SIGUSR2)


def default_signals() -> None:
    """``preexec_fn``: run in the child between fork and exec."""
    for sig in SENT_BY_TESTS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def popen(argv, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` with the default signal dispositions in the child."""
    return subprocess.Popen(argv, preexec_fn=default_signals, **kwargs)


def ignoring(*sigs: signal.Signals):
    """A ``preexec_fn`` that starts the child with ``sigs`` ignored, as
    ``nohup`` or a non-interactive shell's background job would."""
    def preexec() -> None:
        for sig in sigs:
            signal.signal(sig, signal.SIG_IGN)
    return preexec
