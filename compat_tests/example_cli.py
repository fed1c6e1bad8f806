"""Running an example's command line (python -m fuseshim.examples.X) in a test."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import time

from child_signals import default_signals
from conftest import mounted_paths


def wait_catching_sigterm(proc, timeout=10.0):
    """Wait until ``proc`` has a SIGTERM handler installed (SigCgt)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(f'/proc/{proc.pid}/status') as f:
            caught = int(next(ln for ln in f if ln.startswith('SigCgt:')).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        assert time.monotonic() < deadline, 'no SIGTERM handler installed'
        time.sleep(0.01)


@contextlib.contextmanager
def serving(argv, mnt, *, startup_path=None, preexec_fn=default_signals):
    """Start the command line, check its "mounted MNT via PATH startup"
    banner and yield the process; then stop it with SIGTERM, which must end
    it with status 0 and nothing left mounted."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)
    try:
        line = proc.stdout.readline()
        banner = f'mounted {mnt}' + (f' via {startup_path} startup' if startup_path else '')
        assert line.startswith(banner), (line, proc.stderr.read())
        yield proc
        wait_catching_sigterm(proc)    # _cli.run prints its banner first
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        leftover = str(mnt) in mounted_paths()
        if leftover:
            subprocess.run(['umount', '-l', str(mnt)], check=False)
    assert not leftover, 'the command line left its mount behind'
