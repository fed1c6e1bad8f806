"""Helpers for the differential tests of fuseshim.compat (pyfuse3, fusepy,
mfusepy): peer downloads, the filesystem-in-a-subprocess fixture, and the
probes that turn a mounted tree into comparable observations.

Every filesystem runs in its own subprocess (compat_runner.py) so the real
peer and the compat layer never share a process (both keep global state).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from child_signals import popen
import peer_sources

HERE = Path(__file__).resolve().parent
RUNNER = HERE / 'compat_runner.py'
# $FUSESHIM_PEER_CACHE, else peers/ in the project cache ($FUSESHIM_CACHE, as
# the matrix and the benchmarks use it), else ~/.cache/fuseshim/peers
PEER_CACHE = Path(os.environ.get('FUSESHIM_PEER_CACHE')
                  or Path(os.environ.get('FUSESHIM_CACHE')
                          or Path.home() / '.cache' / 'fuseshim') / 'peers')
STARTUPS = ('sync', 'classic')

# Peer sdists the tests download: pyfuse3's examples, mfusepy's own tests
# (the API audit runs them against the layer).  fusepy's and mfusepy's sdists
# ship no examples: the matrix's clients stage runs real programs instead.
PYFUSE3_VERSION = '3.5.0'
MFUSEPY_VERSION = '3.1.1'


# ---------------------------------------------------------------- mounts

def mounted_paths() -> set[str]:
    with open('/proc/self/mounts') as f:
        return {line.split()[1].encode().decode('unicode_escape') for line in f}


def wait_mounted(path: str, proc: subprocess.Popen, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path in mounted_paths():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def force_unmount(path: str):
    """Last resort: lazy unmount (a dead FUSE mount, or one still busy)."""
    if path in mounted_paths():
        subprocess.run(['umount', '-l', path], check=False, capture_output=True)
    deadline = time.monotonic() + 5
    while path in mounted_paths() and time.monotonic() < deadline:
        time.sleep(0.05)


class FsProcess:
    """A filesystem served by a subprocess we started.  ``stop()`` unmounts
    it the way a user would (umount), waits for the process to exit, and
    makes sure nothing stays mounted."""

    def __init__(self, cmd, mnt, *, env=None, cwd=None, timeout=60.0):
        self.cmd = [str(c) for c in cmd]
        self.mnt = os.path.realpath(mnt)
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
        self.proc = None
        self.out = ''
        self.err = ''
        self.returncode = None
        self._timer = None

    def start(self, expect_mount=True):
        os.makedirs(self.mnt, exist_ok=True)
        self.proc = popen(self.cmd, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors='replace')
        self._readers = [threading.Thread(target=self._drain, args=(s, k), daemon=True)
                         for s, k in ((self.proc.stdout, 'out'), (self.proc.stderr, 'err'))]
        for t in self._readers:
            t.start()
        # A hung filesystem must not hang the test: kill our process after the
        # time limit (that aborts the connection, so blocked syscalls return).
        self._timer = threading.Timer(self.timeout, self._kill)
        self._timer.daemon = True
        self._timer.start()
        if expect_mount and not wait_mounted(self.mnt, self.proc):
            self.stop()
            raise AssertionError(f'{self.cmd} did not mount {self.mnt}:\n{self.err}')
        return self

    def _drain(self, stream, kind):
        chunks = []
        for line in stream:
            chunks.append(line)
            setattr(self, kind, ''.join(chunks))
        setattr(self, kind, ''.join(chunks))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def wait(self, timeout=15.0):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait(5)
        for t in self._readers:
            t.join(5)
        return self.returncode

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, how='umount'):
        """Unmount (``umount``) or signal the process, then reap it."""
        try:
            if self.proc.poll() is None:
                if how == 'umount':
                    if self.mnt in mounted_paths():
                        subprocess.run(['umount', self.mnt], check=False, capture_output=True)
                else:
                    self.proc.send_signal(how)
            self.wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            force_unmount(self.mnt)
        assert self.mnt not in mounted_paths(), f'{self.mnt} still mounted'
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.returncode is None:
            self.stop()
        else:
            force_unmount(self.mnt)


_SITE_DIR = None
_SITECUSTOMIZE = '''\
# Test hook (compat_helpers): report fuseshim's startup line on stderr even
# when the program under test configures no logging.
import logging, sys
_h = logging.StreamHandler(sys.stderr)
_h.setFormatter(logging.Formatter('[fuseshim-report] %(message)s'))
_h.addFilter(lambda r: 'startup (' in r.getMessage())
_l = logging.getLogger('fuseshim')
_l.addHandler(_h)
if _l.level == logging.NOTSET or _l.level > logging.INFO:
    _l.setLevel(logging.INFO)
'''


def _site_dir():
    global _SITE_DIR
    if _SITE_DIR is None:
        import tempfile
        _SITE_DIR = tempfile.mkdtemp(prefix='fuseshim-compat-site-')
        Path(_SITE_DIR, 'sitecustomize.py').write_text(_SITECUSTOMIZE)
    return _SITE_DIR


def runner_env(api: str, startup: str | None = None, extra=None):
    env = dict(os.environ)
    env.pop('FUSESHIM_STARTUP', None)
    if startup is not None:
        env['FUSESHIM_STARTUP'] = startup
    if api.startswith('mfusepy'):
        env['FUSE_LIBRARY_NAME'] = 'fuse3'   # else mfusepy may pick libfuse 2
    env['PYTHONPATH'] = os.pathsep.join([_site_dir(), str(HERE)] + [p for p in
                                                       env.get('PYTHONPATH', '').split(os.pathsep)
                                                       if p])
    env['PYTHONUNBUFFERED'] = '1'
    env['PYTHONWARNINGS'] = 'ignore::DeprecationWarning'
    if extra:
        env.update(extra)
    return env


def startup_logged(stderr: str) -> str | None:
    m = re.search(r'mounted \S+ via (sync|classic) startup', stderr)
    return m.group(1) if m else None


def run_fs(api, fs, mnt, body, *, startup=None, args=(), stop='umount', env=None,
           timeout=60.0):
    """Serve test filesystem ``fs`` (a factory in a test module) through
    ``api`` in a subprocess, run ``body(mnt)``, stop it; return
    (body result, FsProcess)."""
    cmd = [sys.executable, RUNNER, '--api', api, '--fs', fs, '--mnt', mnt, *args]
    return _serve_and_run(FsProcess(cmd, mnt, env=runner_env(api, startup, env), timeout=timeout),
                          body, stop)


def _serve_and_run(p: FsProcess, body, stop):
    """Run ``body(mnt)`` while ``p`` serves, then stop it (also when body fails)."""
    with p:
        try:
            result = body(p.mnt)
        except BaseException:
            p.stop()
            raise
        if stop is not None:
            p.stop(stop)
    return result, p


def check_compat_startup(p: FsProcess, startup: str):
    got = startup_logged(p.err)
    assert got == startup, f'expected the {startup} startup path, log says {got!r}:\n{p.err}'


# ---------------------------------------------------------------- peers

def peer_sdist(name: str, version: str) -> Path:
    """The unpacked sdist of a peer (fetched once into the peer cache); skips
    the test only when no package index is reachable at all."""
    try:
        return peer_sources.fetch_sdist(name, version, PEER_CACHE)
    except peer_sources.IndexUnreachable as e:
        pytest.skip(f'no package index reachable for the {name} {version} sdist: {e}')


def rewrite_imports(src: Path, dst: Path, rules) -> Path:
    """Copy an example with only its import lines rewritten (``rules``:
    (regex, replacement) applied to whole lines)."""
    text = src.read_text()
    out = []
    changed = 0
    for line in text.splitlines(keepends=True):
        new = line
        for pat, rep in rules:
            new = re.sub(pat, rep, new)
        changed += new != line
        out.append(new)
    assert changed, f'no import line of {src} matched {rules}'
    dst.write_text(''.join(out))
    return dst


PYFUSE3_RULES = [
    (r'^import pyfuse3\.asyncio$', 'import fuseshim.compat.pyfuse3_asyncio'),
    (r'^import pyfuse3$', 'import fuseshim.compat.pyfuse3 as pyfuse3'),
    (r'^from pyfuse3 import', 'from fuseshim.compat.pyfuse3 import'),
]
def run_example(script: Path, args, mnt, body, *, env_api, startup=None, stop='umount',
                cwd=None, timeout=60.0, env=None):
    cmd = [sys.executable, script, *args]
    return _serve_and_run(FsProcess(cmd, mnt, env=runner_env(env_api, startup, env), cwd=cwd,
                                    timeout=timeout), body, stop)


# ---------------------------------------------------------------- probes

def oserr(fn, *args, **kw):
    """fn(*args) -> ('ok', result) or ('err', errno name)."""
    try:
        return ['ok', fn(*args, **kw)]
    except OSError as e:
        return ['err', errno.errorcode.get(e.errno, e.errno)]


def stat_view(st, fields=('mode', 'nlink', 'uid', 'gid', 'size')):
    d = {}
    for f in fields:
        v = getattr(st, 'st_' + f)
        d[f] = oct(v) if f == 'mode' else v
    return d


class InoNames:
    """Inode numbers differ between runs only by allocation; compare the
    equalities between them by naming each new number in order of appearance."""

    def __init__(self):
        self.names = {}

    def __call__(self, ino):
        if ino not in self.names:
            self.names[ino] = f'ino{len(self.names)}'
        return self.names[ino]


def normalized(obj):
    """JSON round trip: tuples become lists, so results compare cleanly."""
    return json.loads(json.dumps(obj, default=str))


def settled_listdir(path, timeout=3.0):
    """os.listdir once no .fuse_hidden* file is left.  The kernel sends
    RELEASE asynchronously after close(), so an unlink right after a close
    may still find the file open (libfuse then hides it until the release):
    the hidden file is transient with the real peers too."""
    deadline = time.monotonic() + timeout
    while True:
        names = os.listdir(path)
        if not any(n.startswith('.fuse_hidden') for n in names) or time.monotonic() > deadline:
            return names
        time.sleep(0.02)


def drop_kernel_caches():
    """Make the kernel forget cached dentries and inodes (FORGETs follow)."""
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2')


def wait_gone(pid: int, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def scratch_dir(tmp_path, name):
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        force_unmount(str(d))
