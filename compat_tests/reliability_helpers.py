"""Helpers for the reliability tests (compat_tests/test_reliability_*.py):
example daemons in subprocesses, clients running as other users, fio,
cache dropping, process resource figures.

Everything here is bounded: every wait has a timeout, every process started
is killed on the way out, every mount is lazily unmounted if still there.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from child_signals import popen
from conftest import mounted_paths

#: The opt-in switch for the long variants (fio >= 10 GiB, 1000 cycles, ...).
LONG = os.environ.get('FUSESHIM_LONG') == '1'
long_only = pytest.mark.skipif(not LONG, reason='long variant: set FUSESHIM_LONG=1 to run it')

#: errnos a client may see once its daemon died: requests in flight end with
#: ECONNABORTED (fuse_abort_conn), later ones with ENOTCONN.
DEAD_DAEMON_ERRNOS = {errno.ENOTCONN, errno.ECONNABORTED, errno.EIO}


# ------------------------------------------------------------ mounts

def is_mounted(path) -> bool:
    return os.path.realpath(path) in mounted_paths()


def lazy_unmount(path, timeout=5.0) -> None:
    """umount -l, then wait until /proc/self/mounts no longer lists ``path``."""
    path = os.path.realpath(path)
    if path not in mounted_paths():
        return
    subprocess.run(['umount', '-l', path], check=False, capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while path in mounted_paths():
        assert time.monotonic() < deadline, f'{path} still mounted after umount -l'
        time.sleep(0.02)


def wait_unmounted(path, timeout) -> bool:
    path = os.path.realpath(path)
    deadline = time.monotonic() + timeout
    while path in mounted_paths():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def drop_caches_until(done, timeout=15.0, level='3') -> None:
    """Drop the kernel's caches (forcing FORGETs) until ``done()``."""
    deadline = time.monotonic() + timeout
    while True:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write(level)
        time.sleep(0.05)
        if done():
            return
        assert time.monotonic() < deadline, 'the kernel did not forget its inodes in time'


@pytest.fixture
def public_dir():
    """A fresh directory under /tmp that other users may enter (pytest's
    tmp_path lives below a 0700 directory)."""
    d = tempfile.mkdtemp(prefix='fuseshim-rel-')
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for dirpath, dirnames, _ in os.walk(d):
            for n in dirnames:
                p = os.path.join(dirpath, n)
                if is_mounted(p):
                    lazy_unmount(p)
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------ daemons

class Daemon:
    """``python -m fuseshim.examples.<example> ...`` in a subprocess.

    start() waits for its "mounted ..." line; stop(sig) signals it and
    waits; close() kills whatever is left and lazily unmounts."""

    def __init__(self, example, *args, mountpoint, env=None):
        self.mountpoint = os.path.realpath(mountpoint)
        self.argv = [sys.executable, '-m', f'fuseshim.examples.{example}', *map(str, args)]
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.banner = ''
        self.stderr = ''

    def start(self, timeout=30.0) -> 'Daemon':
        # binary pipes read with os.read: no buffering hides a line from select()
        self.proc = popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.env, start_new_session=True)
        self.banner = self._readline(timeout)
        if not self.banner.startswith('mounted '):
            self.close()
            raise AssertionError(f'daemon did not mount: {self.banner!r}\n{self.stderr}')
        self._wait_handlers(timeout)
        return self

    def _readline(self, timeout) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        line = b''
        while not line.endswith(b'\n'):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([fd], [], [], min(left, 0.1))[0]:
                ch = os.read(fd, 1)
                if not ch:
                    break
                line += ch
        return line.decode(errors='replace')

    def _wait_handlers(self, timeout):
        """The banner is printed after the SIGINT/SIGTERM handlers exist, but
        be sure: wait until /proc says both are caught."""
        deadline = time.monotonic() + timeout
        want = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
        while time.monotonic() < deadline:
            try:
                with open(f'/proc/{self.proc.pid}/status') as f:
                    caught = int(next(ln for ln in f if ln.startswith('SigCgt:')).split()[1], 16)
            except (OSError, StopIteration):
                return
            if caught & want == want:
                return
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=30.0) -> int:
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout) -> int:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f'daemon did not exit within {timeout} s') from None
        self.stderr += (err or b'').decode(errors='replace')
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                _, err = self.proc.communicate(timeout=10)
                self.stderr += (err or b'').decode(errors='replace')
            except (subprocess.TimeoutExpired, ValueError):
                pass

    def close(self) -> None:
        self.kill()
        lazy_unmount(self.mountpoint)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------ other users

def as_user(uid, cmd, *, gid=None, groups=(), umask=None, timeout=30.0, cwd='/'):
    """Run ``sh -c cmd`` as uid/gid with exactly ``groups`` as supplementary
    groups (setpriv; no capabilities).  -> CompletedProcess (text)."""
    gid = uid if gid is None else gid
    grp = ['--groups=' + ','.join(map(str, groups))] if groups else ['--clear-groups']
    if umask is not None:
        cmd = f'umask {umask:03o}; {cmd}'
    return subprocess.run(['setpriv', f'--reuid={uid}', f'--regid={gid}', *grp,
                           '--inh-caps=-all', 'sh', '-c', cmd],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


# ------------------------------------------------------------ fio

def fio_available() -> bool:
    return shutil.which('fio') is not None


needs_fio = pytest.mark.skipif(not fio_available(), reason='needs fio (apt-get install fio)')


def run_fio(directory, *, size_mib, numjobs=4, loops=1, direct=1, rwmixwrite=50,
            timeout=600, name='integrity', extra=()):
    """fio random read/write with crc32c verification in ``directory``.
    -> (parsed JSON, CompletedProcess)."""
    argv = ['fio', f'--name={name}', f'--directory={directory}', '--rw=randrw',
            f'--rwmixwrite={rwmixwrite}', '--bssplit=4k/40:16k/20:64k/20:256k/10:1m/10',
            f'--size={size_mib}m', f'--numjobs={numjobs}', f'--loops={loops}',
            '--verify=crc32c', '--verify_fatal=1', '--ioengine=psync', f'--direct={direct}',
            '--randrepeat=0', '--verify_state_save=0', '--output-format=json', *extra]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    out = res.stdout
    try:
        data = json.loads(out[out.index('{'):])
    except ValueError:
        raise AssertionError(f'fio gave no JSON (rc {res.returncode}):\n{out}\n{res.stderr}')
    return data, res


def fio_totals(data) -> dict:
    """Sum the per-job figures; ``verified`` is what the verify phases read
    back and checked (fio verifies every block it wrote: in randrw mode a
    loop's reads are size - written, and its verify phase reads the rest)."""
    jobs = data['jobs']
    t = {'jobs': len(jobs), 'errors': [j['error'] for j in jobs if j['error']],
         'written': sum(j['write']['io_bytes'] for j in jobs),
         'read': sum(j['read']['io_bytes'] for j in jobs)}
    return t


# ------------------------------------------------------------ process figures

def proc_figures(pid='self') -> dict:
    """threads, open fds and RSS (KiB) of a process."""
    with open(f'/proc/{pid}/status') as f:
        st = dict(line.split(':', 1) for line in f if ':' in line)
    return {'threads': int(st['Threads']), 'fds': len(os.listdir(f'/proc/{pid}/fd')),
            'rss_kib': int(st['VmRSS'].split()[0])}


def process_state(pid) -> str:
    """R, S, D, Z, ... ('' once gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return ''


@contextlib.contextmanager
def reaped(*procs, timeout=10.0):
    """Kill (SIGKILL) and reap the given Popen objects on the way out."""
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
