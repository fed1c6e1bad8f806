"""Small helpers shared by the runner's stages."""
from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import threading
import time


class StageError(RuntimeError):
    """A stage failed; the message says what and where its log is."""


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 16), b''):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> str:
    d = os.environ.get('FUSESHIM_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'fuseshim')
    return os.path.abspath(d)


class Log:
    """Append-only log file for one cell or stage (and optional echo)."""

    def __init__(self, path: str | None):
        self.path = path
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(self, text: str):
        if not self.path:
            return
        with open(self.path, 'a', encoding='utf-8', errors='replace') as f:
            f.write(text if text.endswith('\n') else text + '\n')

    def section(self, title: str):
        self.write(f'\n===== {title} ({time.strftime("%H:%M:%S")}) =====')


def run(cmd, *, cwd=None, env=None, log: Log | None = None, timeout=None, check=True,
        capture=False) -> subprocess.CompletedProcess:
    """Run a command, its output appended to ``log``.  On a time-out the whole
    process group is killed.  StageError when it fails and ``check``."""
    cmd = [str(c) for c in cmd]
    if log:
        log.write(f'$ {shlex.join(cmd)}' + (f'    (in {cwd})' if cwd else ''))
    t0 = time.monotonic()
    if _stopping.is_set():
        raise StageError(f'{shlex.join(cmd[:3])}... not started: the run was interrupted')
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, text=True, errors='replace')
    with _children_lock:
        _children.add(proc)
    try:
        if _stopping.is_set():          # interrupted while it started
            _interrupt_group(proc)
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        if log:
            log.write(out or '')
            log.write(f'!! timed out after {timeout} s; killed')
        raise StageError(f'{shlex.join(cmd[:3])}... timed out after {timeout} s') from None
    except BaseException:
        _interrupt_group(proc)
        raise
    finally:
        with _children_lock:
            _children.discard(proc)
    if _stopping.is_set():
        if log:
            log.write(out or '')
            log.write('!! interrupted')
        raise StageError(f'{shlex.join(cmd[:3])}... interrupted')
    if log:
        log.write(out or '')
        log.write(f'-> exit {proc.returncode} after {time.monotonic() - t0:.1f} s')
    cp = subprocess.CompletedProcess(cmd, proc.returncode, out if capture else None, None)
    cp.output_text = out
    if check and proc.returncode != 0:
        tail = '\n'.join((out or '').strip().splitlines()[-8:])
        raise StageError(f'{shlex.join(cmd[:4])}{" ..." if len(cmd) > 4 else ""} exited '
                         f'{proc.returncode}' + (f':\n{tail}' if tail else ''))
    return cp


# Every child runs in its own session (so a terminal's Ctrl-C reaches only
# the runner, which decides): these are the ones running now.  On Ctrl-C or
# SIGTERM the runner calls stop_children(): nothing new starts, and every
# running child is interrupted the way a terminal would, so that a pytest
# child tears its fixtures down (unmounts) before it is killed.
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()
INTERRUPT_GRACE = 15.0      # seconds for a child to finish its teardown


def stop_children() -> None:
    _stopping.set()
    with _children_lock:
        procs = list(_children)
    threads = [threading.Thread(target=_interrupt_group, args=(p,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _interrupt_group(proc) -> None:
    """SIGINT to the child's group, then as _kill_group if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(INTERRUPT_GRACE)
        return
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc)


def _kill_group(proc):
    """Kill the process group of a child this runner started (and only that)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def write_json(path, data):
    import json
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def read_json(path, default=None):
    import json
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return default
