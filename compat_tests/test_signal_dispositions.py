"""The suite does not depend on the signal dispositions it inherits.

A runner started from ``nohup`` (SIGHUP ignored) or as a background job of a
non-interactive shell (SIGINT, SIGQUIT ignored) passes those on to every
child.  The processes the tests start and signal get the default
dispositions from ``child_signals``; this proves it, once for a child
directly and once by running signal-sending tests under a runner that
ignores SIGINT, SIGQUIT and SIGHUP.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from child_signals import SENT_BY_TESTS, ignoring
from test_compat_fusepy import _peer_available

HERE = os.path.dirname(os.path.abspath(__file__))
IGNORED = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def _mask(sigs) -> int:
    return sum(1 << (s - 1) for s in sigs)


def test_children_get_default_dispositions_under_an_ignoring_parent():
    """A parent that ignores SIGINT/SIGQUIT/SIGHUP starts a child through
    child_signals.popen: the child ignores none of the signals tests send."""
    code = textwrap.dedent('''
        import subprocess, sys
        sys.path.insert(0, sys.argv[1])
        from child_signals import popen
        probe = [sys.executable, '-c',
                 "print(next(l for l in open('/proc/self/status') if l.startswith('SigIgn')).split()[1])"]
        p = popen(probe, stdout=subprocess.PIPE, text=True)
        print(p.communicate()[0].strip())
        print(subprocess.run(probe, capture_output=True, text=True).stdout.strip())
    ''')
    r = subprocess.run([sys.executable, '-c', code, HERE], capture_output=True, text=True,
                       preexec_fn=ignoring(*IGNORED), timeout=60)
    assert r.returncode == 0, r.stderr
    via_popen, plain = (int(x, 16) for x in r.stdout.split())
    # the control: a plain subprocess really inherits the ignored signals
    assert plain & _mask(IGNORED) == _mask(IGNORED), hex(plain)
    assert via_popen & _mask(SENT_BY_TESTS) == 0, hex(via_popen)


def test_signal_tests_pass_under_an_ignoring_runner():
    """Tests that stop a filesystem with SIGHUP and interrupt a client with
    SIGINT pass when the runner itself was started with SIGINT, SIGQUIT and
    SIGHUP ignored."""
    cases = [
        'test_reliability_faults.py::test_blocking_handler_is_interrupted_and_close_is_bounded'
        '[sync-sync]',
        'test_reliability_faults.py::test_signal_without_open_files_exits_at_once[SIGINT]',
    ]
    # SIGHUP: the fusepy comparison needs the real fusepy (a wheel's test venv
    # has no peers); it would skip inside, and a skip proves nothing here
    if _peer_available('fusepy')[0]:
        cases.append('test_compat_fusepy.py::test_stopping[fusepy-SIGHUP-classic]')
    r = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
                        *(os.path.join(HERE, c) for c in cases)],
                       capture_output=True, text=True, cwd=os.path.dirname(HERE),
                       preexec_fn=ignoring(*IGNORED), timeout=600)
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''
    assert r.returncode == 0 and f'{len(cases)} passed' in summary, r.stdout[-3000:] + r.stderr
