"""Faults: a daemon killed mid-I/O, signals with files open, handlers that
block forever, raise on every call, return the wrong types, or (async)
never finish.  Each test ends with no hung process and nothing left in
/proc/self/mounts.

Startup failures (init raising, INIT never answered, mount(2) failing,
200 mount/unmount cycles) are covered by test_failures.py.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fuseshim
from child_signals import popen
from conftest import mounted
from fuseshim import EntryAttributes, FUSEError, ROOT_INODE
from fuseshim.examples.memfs import AsyncMemFS, MemFS, HANDLERS as MEMFS_HANDLERS
from reliability_helpers import (DEAD_DAEMON_ERRNOS, Daemon, is_mounted, lazy_unmount,
                                 process_state, reaped, wait_unmounted)
from startup_helpers import fuseshim_threads

PATHS = ['sync', 'classic']

# A client looping over one kind of I/O until it fails; it reports the errno
# and when (monotonic) it saw it.
IO_CLIENT = textwrap.dedent('''
    import errno, json, os, sys, time
    path, mode = sys.argv[1], sys.argv[2]
    if mode == 'list':
        # listed through an fd: once auto_unmount detached the dead mount, the
        # path would name the empty directory underneath and never fail
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        os.pwrite(fd, b'x' * (1 << 20), 0)
    print('ready', flush=True)
    buf = b'y' * 65536
    n = 0
    while True:
        try:
            if mode == 'write':
                os.pwrite(fd, buf, (n % 16) * 65536)
            elif mode == 'read':
                os.pread(fd, 65536, (n % 16) * 65536)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # next read: the daemon
            else:
                os.listdir(fd)
            n += 1
        except OSError as e:
            print(json.dumps({'errno': e.errno, 'name': errno.errorcode.get(e.errno),
                              't': time.monotonic(), 'ops': n}), flush=True)
            break
''')


def _start_io_clients(mnt):
    clients = {}
    for mode in ('write', 'read', 'list'):
        target = mnt if mode == 'list' else os.path.join(mnt, f'file-{mode}')
        p = popen([sys.executable, '-c', IO_CLIENT, target, mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        clients[mode] = p
    for mode, p in clients.items():
        line = p.stdout.readline()
        assert line.strip() == 'ready', (mode, line, p.stderr.read() if p.poll() else '')
    return clients


def _collect(clients, killed_at, timeout=10.0):
    """-> {mode: (errno, seconds after the kill)}; every client must have
    exited by itself within ``timeout`` (none hangs)."""
    seen = {}
    for mode, p in clients.items():
        out, err = p.communicate(timeout=timeout)
        report = json.loads(out.strip().splitlines()[-1])
        seen[mode] = (report['errno'], report['t'] - killed_at, report['ops'])
    return seen


# ------------------------------------------------------------ SIGKILL

@pytest.mark.parametrize('cleanup', ['umount -l', 'fusermount3 -u -z'])
@pytest.mark.parametrize('startup', PATHS)
def test_daemon_sigkilled_mid_io(tmp_path, startup, cleanup, record_property):
    """SIGKILL while clients read, write and list: every client gets
    ENOTCONN/ECONNABORTED within a second; the dead mount stays listed,
    answers ENOTCONN, and fuseshim.mount() on it says so; after the
    documented cleanup the directory mounts again."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    mnt = str(mnt)
    daemon = Daemon('memfs', mnt, '--startup', startup, '--workers', '2', mountpoint=mnt)
    with daemon:
        clients = _start_io_clients(mnt)
        with reaped(*clients.values()):
            time.sleep(0.3)                      # all three are busy in the mount
            killed_at = time.monotonic()
            os.kill(daemon.pid, signal.SIGKILL)
            seen = _collect(clients, killed_at)
        for mode, (err, after, ops) in seen.items():
            assert err in DEAD_DAEMON_ERRNOS, f'{mode}: {errno.errorcode.get(err, err)}'
            assert after < 1.0, f'{mode} client noticed only after {after:.2f} s'
            assert ops > 0
        record_property('errnos', {m: errno.errorcode[e] for m, (e, _, _) in seen.items()})
        daemon.wait(10)
        # the dead mount: still listed, every access ENOTCONN
        assert is_mounted(mnt)
        with pytest.raises(OSError) as info:
            os.stat(mnt)
        assert info.value.errno == errno.ENOTCONN
        with pytest.raises(fuseshim.MountError, match='dead FUSE mount') as info:
            fuseshim.mount(MemFS(), mnt)
        assert info.value.errno == errno.ENOTCONN
        assert 'umount -l' in str(info.value) and 'fusermount3 -u' in str(info.value)
        # the documented cleanup
        res = subprocess.run(cleanup.split() + [mnt], capture_output=True, text=True,
                             timeout=30)
        assert res.returncode == 0, res.stderr
        assert wait_unmounted(mnt, 5)
    # and the directory is usable again
    ops = MemFS()
    with mounted(ops, mnt, startup=startup) as m:
        with open(os.path.join(m.mountpoint, 'again'), 'wb') as f:
            f.write(b'served again')
        assert open(os.path.join(mnt, 'again'), 'rb').read() == b'served again'
    assert not is_mounted(mnt)


def test_daemon_sigkilled_with_auto_unmount(tmp_path, record_property):
    """With -o auto_unmount (classic path: fusermount3 stays behind as a
    watchdog) a killed daemon's mount usually disappears by itself.

    fusermount3 (libfuse 3.14-3.18) races with the dying daemon: it wakes
    when its socket closes, which the kernel may do before it releases
    /dev/fuse; its open(mountpoint) then ends with ECONNABORTED instead of
    ENOTCONN and it leaves the dead mount alone.  So: five kills; each must
    end unmounted by fusermount3 or as a dead mount (ENOTCONN) that umount -l
    removes, and fusermount3 must have done it at least once."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    mnt = str(mnt)
    outcomes = []
    for attempt in range(5):
        with Daemon('memfs', mnt, '-o', 'auto_unmount', '--workers', '2',
                    mountpoint=mnt) as daemon:
            assert 'via classic startup (auto_unmount needs fusermount3' in daemon.banner
            clients = _start_io_clients(mnt)
            with reaped(*clients.values()):
                time.sleep(0.2)
                killed_at = time.monotonic()
                os.kill(daemon.pid, signal.SIGKILL)
                seen = _collect(clients, killed_at)
            assert all(err in DEAD_DAEMON_ERRNOS and after < 1.0
                       for err, after, _ in seen.values()), seen
            daemon.wait(10)
            if wait_unmounted(mnt, 3):
                outcomes.append('auto-unmounted')
            else:
                with pytest.raises(OSError) as info:
                    os.stat(mnt)
                assert info.value.errno == errno.ENOTCONN
                outcomes.append('dead, removed by umount -l')
                lazy_unmount(mnt)
        assert not is_mounted(mnt)
    record_property('auto_unmount', outcomes)
    assert 'auto-unmounted' in outcomes, outcomes


# ------------------------------------------------------------ SIGINT/SIGTERM

HOLDER = textwrap.dedent('''
    import errno, os, sys, time
    mnt = sys.argv[1]
    os.chdir(mnt)                                   # a cwd inside the mount
    w = os.open('held-w', os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(w, b'data')
    r = os.open('held-w', os.O_RDONLY)
    d = os.open('.', os.O_RDONLY | os.O_DIRECTORY)
    print('holding', flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.pwrite(w, b'more', 0)
            os.pread(r, 4, 0)
            os.fstat(d)
        except OSError as e:
            print(errno.errorcode.get(e.errno), flush=True)
            break
        time.sleep(0.01)
''')


@pytest.mark.parametrize('handlers', ['sync', 'async'])
@pytest.mark.parametrize('startup', PATHS)
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_signal_with_open_files_unmounts_cleanly(tmp_path, sig, startup, handlers):
    """The example daemon gets SIGINT/SIGTERM while a client holds files and
    its cwd open and keeps using them: the daemon unmounts, aborts the
    connection after --close-timeout, runs destroy and exits 0; the client
    gets an errno instead of hanging."""
    mnt, marker = tmp_path / 'mnt', tmp_path / 'destroyed'
    mnt.mkdir()
    mnt = str(mnt)
    argv = [mnt, '--startup', startup, '--workers', '2', '--close-timeout', '1',
            '--destroy-marker', marker] + (['--async'] if handlers == 'async' else [])
    with Daemon('memfs', *argv, mountpoint=mnt) as daemon:
        holder = popen([sys.executable, '-c', HOLDER, mnt], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        with reaped(holder):
            assert holder.stdout.readline().strip() == 'holding'
            t0 = time.monotonic()
            rc = daemon.stop(sig, timeout=20)
            took = time.monotonic() - t0
            assert rc == 0, daemon.stderr
            assert not is_mounted(mnt)
            assert marker.read_text() == 'destroyed\n'
            assert 'destroy handler called' in daemon.stderr
            assert f'unmounted {mnt}' in daemon.stderr
            assert took < 8, f'shutdown took {took:.1f} s'
            out, _ = holder.communicate(timeout=10)
            assert out.split()[-1] in ('ENOTCONN', 'ECONNABORTED', 'EIO'), out
        assert not any(line.startswith('ERROR') for line in daemon.stderr.splitlines()), \
            daemon.stderr


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_signal_without_open_files_exits_at_once(tmp_path, sig):
    mnt, marker = tmp_path / 'mnt', tmp_path / 'destroyed'
    mnt.mkdir()
    with Daemon('memfs', mnt, '--destroy-marker', marker, mountpoint=mnt) as daemon:
        (mnt / 'f').write_bytes(b'x')
        t0 = time.monotonic()
        assert daemon.stop(sig, timeout=20) == 0, daemon.stderr
        assert time.monotonic() - t0 < 2
        assert marker.read_text() == 'destroyed\n'
        assert not is_mounted(mnt)


# ------------------------------------------------------------ a handler that blocks

class _Blocking(fuseshim.Operations):
    """Root with 'hang' (getattr blocks until released, noting whether it
    saw the interrupt) and 'ok' (answers at once)."""
    NAMES = {b'hang': 2, b'ok': 3}

    def __init__(self):
        self.release = threading.Event()
        self.interrupted_after: float | None = None
        self.entered = threading.Event()
        self.entered_at = 0.0

    def _attr(self, ino):
        a = EntryAttributes()
        a.st_ino = ino
        a.st_mode = (stat.S_IFDIR | 0o755) if ino == ROOT_INODE else (stat.S_IFREG | 0o644)
        a.attr_timeout = a.entry_timeout = 0
        return a

    def lookup(self, parent_inode, name, ctx):
        if name not in self.NAMES:
            raise FUSEError(errno.ENOENT)
        return self._attr(self.NAMES[name])

    def _note(self, ctx):
        if ctx.interrupted and self.interrupted_after is None:
            self.interrupted_after = time.monotonic() - self.entered_at


class BlockingSync(_Blocking):
    def getattr(self, inode, ctx):
        if inode == 2:
            self.entered_at = time.monotonic()
            self.entered.set()
            while not self.release.wait(0.01):      # ignores the interrupt: blocks on
                self._note(ctx)
        return self._attr(inode)


class BlockingAsync(_Blocking):
    async def getattr(self, inode, ctx):
        if inode == 2:
            self.entered_at = time.monotonic()
            self.entered.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
                self._note(ctx)
        return self._attr(inode)


STAT_CLIENT = textwrap.dedent('''
    import errno, os, sys
    try:
        os.stat(sys.argv[1])
    except OSError as e:
        print(errno.errorcode.get(e.errno), flush=True)
    else:
        print('OK', flush=True)
''')


@pytest.mark.parametrize('handlers', ['sync', 'async'])
@pytest.mark.parametrize('startup', PATHS)
def test_blocking_handler_is_interrupted_and_close_is_bounded(mnt, startup, handlers, caplog):
    """The client's Ctrl-C reaches the handler as ctx.interrupted; the handler
    ignores it and blocks on, the other worker keeps serving, and close()
    still returns within about 2 x close_timeout: the connection is aborted,
    the client gets ECONNABORTED, nothing stays mounted."""
    ops = BlockingSync() if handlers == 'sync' else BlockingAsync()
    m = fuseshim.mount(ops, mnt, startup=startup, workers=2, close_timeout=1.0)
    client = popen([sys.executable, '-c', STAT_CLIENT, os.path.join(mnt, 'hang')],
                              stdout=subprocess.PIPE, text=True)
    try:
        with reaped(client):
            assert ops.entered.wait(10)
            client.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 5
            while ops.interrupted_after is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ops.interrupted_after is not None, 'the handler never saw the interrupt'
            # the request is in userspace: a fatal signal waits for the answer
            assert client.poll() is None and process_state(client.pid) == 'D'
            assert os.stat(os.path.join(mnt, 'ok')).st_ino == 3   # still serving
            t0 = time.monotonic()
            m.close()
            took = time.monotonic() - t0
            assert took < 2 * 1.0 + 2, f'close() took {took:.1f} s'
            client.wait(5)                         # released by the abort
            assert client.returncode != 0 or client.stdout.read().strip() == 'ECONNABORTED'
            assert not is_mounted(mnt)
    finally:
        ops.release.set()
        m.close()
    deadline = time.monotonic() + 10
    while fuseshim_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fuseshim_threads() == []
    if handlers == 'sync':
        assert any('still inside a handler' in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------ raising handlers

class RaisingMemFS(MemFS):
    """memfs whose every handler raises RuntimeError until ``healthy``."""
    healthy = False


def _raising(cls, names, make_async):
    def wrap(name):
        original = getattr(cls, name)
        if make_async:
            async def handler(self, *args):
                if not self.healthy:
                    raise RuntimeError(f'{name} is broken')
                return await original(self, *args)
        else:
            def handler(self, *args):
                if not self.healthy:
                    raise RuntimeError(f'{name} is broken')
                return original(self, *args)
        handler.__name__ = name
        return handler
    skip = {'destroy'}
    return type(f'Raising{cls.__name__}', (cls,),
                {'healthy': False, **{n: wrap(n) for n in names if n not in skip}})


RaisingSync = _raising(MemFS, MEMFS_HANDLERS, False)
RaisingAsync = _raising(AsyncMemFS, MEMFS_HANDLERS, True)


@pytest.mark.expected_errors
@pytest.mark.parametrize('handlers', ['sync', 'async'])
@pytest.mark.parametrize('startup', PATHS)
def test_handlers_raising_on_every_call(mnt, startup, handlers, caplog):
    """Every request answers EIO and logs '<op> handler raised; answering
    EIO' with the traceback; the daemon keeps serving (once the handlers
    are fixed, the same mount works)."""
    ops = (RaisingSync if handlers == 'sync' else RaisingAsync)()
    calls = {
        'getattr': lambda: os.stat(mnt),
        'opendir': lambda: os.listdir(mnt),
        'lookup': lambda: os.stat(os.path.join(mnt, 'x')),
        'statfs': lambda: os.statvfs(mnt),
    }
    with mounted(ops, mnt, startup=startup, workers=2, allow_errors=True):
        for _ in range(3):                          # again and again: still answering
            for op, call in calls.items():
                with pytest.raises(OSError) as info:
                    call()
                assert info.value.errno == errno.EIO, op
        ops.healthy = True
        os.mkdir(os.path.join(mnt, 'd'))
        assert os.listdir(mnt) == ['d']
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == 'fuseshim']
    for op in calls:
        hits = [r for r in logged if r.getMessage() == f'fuseshim: {op} handler raised; '
                'answering EIO']
        assert len(hits) >= 3, (op, [r.getMessage() for r in logged])
        assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) and
                   f'{op} is broken' in str(r.exc_info[1]) for r in hits)
    assert ops.check_consistency() == []


# ------------------------------------------------------------ wrong return types

class WrongTypesFS(MemFS):
    """memfs without kernel caching whose handlers return ``self.bad[op]``
    (a value, or a callable given the handler's arguments) instead of the
    real result."""
    bad: dict = {}

    def _attr(self, node):
        a = MemFS._attr(self, node)
        a.attr_timeout = a.entry_timeout = 0
        return a


def _wrong(name):
    original = getattr(MemFS, name)

    def handler(self, *args):
        if name in self.bad:
            b = self.bad[name]
            return b(*args) if callable(b) else b
        return original(self, *args)
    handler.__name__ = name
    return handler


for _n in ('getattr', 'lookup', 'read', 'write', 'statfs', 'listxattr', 'getxattr',
           'readlink', 'open', 'create', 'opendir', 'lseek', 'mkdir'):
    setattr(WrongTypesFS, _n, _wrong(_n))


def _async_variant(cls):
    def wrap(name):
        sync = getattr(cls, name)

        async def handler(self, *args):
            await asyncio.sleep(0)
            return sync(self, *args)
        handler.__name__ = name
        return handler
    return type('Async' + cls.__name__, (cls,), {n: wrap(n) for n in MEMFS_HANDLERS
                                                 if n != 'destroy'})


AsyncWrongTypesFS = _async_variant(WrongTypesFS)

# (label, handler, bad result, call given (mnt, file, fd)) -> the client gets EIO
WRONG_TYPES = [
    ('getattr None', 'getattr', None, lambda m, f, fd: os.stat(f)),
    ('getattr dict', 'getattr', {}, lambda m, f, fd: os.stat(f)),
    ('lookup str', 'lookup', 'entry', lambda m, f, fd: os.stat(m + '/other')),
    ('mkdir None', 'mkdir', None, lambda m, f, fd: os.mkdir(m + '/d')),
    ('read int', 'read', 5, lambda m, f, fd: os.pread(fd, 10, 0)),
    ('read str', 'read', 'text', lambda m, f, fd: os.pread(fd, 10, 0)),
    ('write str', 'write', 'x', lambda m, f, fd: os.pwrite(fd, b'abc', 0)),
    ('write negative', 'write', -5, lambda m, f, fd: os.pwrite(fd, b'abc', 0)),
    ('write 2**70', 'write', 2 ** 70, lambda m, f, fd: os.pwrite(fd, b'abc', 0)),
    ('write more than given', 'write', lambda fh, off, buf: len(buf) + 1000,
     lambda m, f, fd: os.pwrite(fd, b'abc', 0)),
    ('statfs None', 'statfs', None, lambda m, f, fd: os.statvfs(m)),
    ('listxattr int', 'listxattr', 5, lambda m, f, fd: os.listxattr(f)),
    ('readlink None', 'readlink', None, lambda m, f, fd: os.readlink(m + '/link')),
    ('open str', 'open', 'handle', lambda m, f, fd: os.close(os.open(f, os.O_RDONLY))),
    ('create 1-tuple', 'create', lambda *a: (fuseshim.FileInfo(fh=1),),
     lambda m, f, fd: os.close(os.open(m + '/new', os.O_CREAT | os.O_WRONLY))),
    ('opendir str', 'opendir', 'dir', lambda m, f, fd: os.listdir(m)),
    ('lseek str', 'lseek', 'here', lambda m, f, fd: os.lseek(fd, 0, os.SEEK_DATA)),
]


@pytest.mark.expected_errors
@pytest.mark.parametrize('handlers', ['sync', 'async'])
def test_wrong_return_types_answer_eio(mnt, handlers, caplog):
    """A handler returning the wrong type: the client gets EIO, the log names
    the handler (with the TypeError/ValueError behind it), the daemon keeps
    serving."""
    ops = (WrongTypesFS if handlers == 'sync' else AsyncWrongTypesFS)()
    with mounted(ops, mnt, workers=2, allow_errors=True):
        f = os.path.join(mnt, 'f')
        with open(f, 'wb') as fobj:
            fobj.write(b'hello')
        os.setxattr(f, 'user.a', b'v')
        os.symlink('f', os.path.join(mnt, 'link'))
        fd = os.open(f, os.O_RDWR | os.O_DIRECT)      # no page cache between
        try:
            results = {}
            for label, op, bad, call in WRONG_TYPES:
                caplog.clear()
                ops.bad = {op: bad}
                try:
                    call(mnt, f, fd)
                except OSError as e:
                    results[label] = errno.errorcode.get(e.errno)
                else:
                    results[label] = 'OK'
                finally:
                    ops.bad = {}
                assert os.stat(f).st_size == 5 and os.pread(fd, 5, 0) == b'hello', label
                assert any(r.levelno == logging.ERROR and f'{op} handler raised' in
                           r.getMessage() for r in caplog.records), label
            assert results == {label: 'EIO' for label, *_ in WRONG_TYPES}
        finally:
            os.close(fd)
    assert ops.check_consistency() == []


@pytest.mark.expected_errors
@pytest.mark.parametrize('case', ['read too long', 'write too long', 'getxattr int',
                                  'readlink int'])
def test_wrong_sizes_are_logged_as_errors(mnt, case, caplog):
    ops = WrongTypesFS()
    bad = {'read too long': ('read', lambda fh, off, size: b'x' * (size + 4096)),
           'write too long': ('write', lambda fh, off, buf: len(buf) + 1000),
           'getxattr int': ('getxattr', 5),
           'readlink int': ('readlink', 5)}[case]
    with mounted(ops, mnt, workers=2, allow_errors=True):
        f = os.path.join(mnt, 'f')
        with open(f, 'wb') as fobj:
            fobj.write(b'hello')
        os.setxattr(f, 'user.a', b'v')
        os.symlink('f', os.path.join(mnt, 'link'))
        fd = os.open(f, os.O_RDWR | os.O_DIRECT)
        try:
            ops.bad = dict([bad])
            call = {'read': lambda: os.pread(fd, 4096, 0),
                    'write': lambda: os.pwrite(fd, b'abc', 0),
                    'getxattr': lambda: os.getxattr(f, 'user.a'),
                    'readlink': lambda: os.readlink(os.path.join(mnt, 'link'))}[bad[0]]
            with pytest.raises(OSError) as info:
                call()
            ops.bad = {}
        finally:
            os.close(fd)
    assert info.value.errno == errno.EIO
    assert any(r.levelno == logging.ERROR and f'{bad[0]} handler' in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


class _LateReply(MemFS):
    """readdir keeps its token and tries to add entries after returning
    (the closest thing to replying twice the API allows)."""
    late_error = None

    def readdir(self, fh, start_id, token):
        MemFS.readdir(self, fh, start_id, token)
        self.kept = token

    def releasedir(self, fh):
        try:
            fuseshim.readdir_reply(self.kept, b'late', self._attr(self.inodes[ROOT_INODE]), 99)
        except RuntimeError as e:
            self.late_error = e
        return MemFS.releasedir(self, fh)


def test_readdir_reply_after_returning_is_refused(mnt):
    ops = _LateReply()
    with mounted(ops, mnt, workers=2):
        os.mkdir(os.path.join(mnt, 'd'))
        assert os.listdir(mnt) == ['d']
        assert os.listdir(mnt) == ['d']            # still serving, same answer
    assert 'called after readdir() returned' in str(ops.late_error)


# ------------------------------------------------------------ async handlers that never finish

class NeverFinishing(_Blocking):
    """getattr of 'hang' awaits forever (the coroutine never completes)."""
    async def getattr(self, inode, ctx):
        if inode == 2:
            self.entered_at = time.monotonic()
            self.entered.set()
            await asyncio.Event().wait()
        return self._attr(inode)


@pytest.mark.parametrize('startup', PATHS)
def test_async_handler_that_never_finishes(mnt, startup):
    """One worker is enough: the pending coroutine does not hold it, so the
    daemon keeps serving; close() aborts the connection after close_timeout
    and the waiting client gets ECONNABORTED; nothing stays mounted."""
    ops = NeverFinishing()
    m = fuseshim.mount(ops, mnt, startup=startup, workers=1, close_timeout=0.5)
    client = popen([sys.executable, '-c', STAT_CLIENT, os.path.join(mnt, 'hang')],
                              stdout=subprocess.PIPE, text=True)
    try:
        with reaped(client):
            assert ops.entered.wait(10)
            for _ in range(20):
                assert os.stat(os.path.join(mnt, 'ok')).st_ino == 3
            t0 = time.monotonic()
            m.close()
            assert time.monotonic() - t0 < 3
            out, _ = client.communicate(timeout=5)
            assert out.strip() == 'ECONNABORTED'
    finally:
        m.close()
    assert not is_mounted(mnt)
    assert fuseshim_threads() == []


PENDING_AT_CLOSE = textwrap.dedent('''
    import asyncio, errno, logging, os, stat, subprocess, sys, threading, time
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s %(message)s')
    import fuseshim
    from fuseshim import EntryAttributes, FUSEError
    mnt, own_loop = sys.argv[1], sys.argv[2] == 'own'

    class Slow(fuseshim.Operations):
        def _a(self, ino):
            a = EntryAttributes()
            a.st_ino = ino
            a.st_mode = (stat.S_IFDIR | 0o755) if ino == 1 else (stat.S_IFREG | 0o644)
            a.attr_timeout = a.entry_timeout = 0
            return a
        def lookup(self, parent, name, ctx):
            if name != b'slow':
                raise FUSEError(errno.ENOENT)
            return self._a(2)
        async def getattr(self, ino, ctx):
            if ino == 2:
                entered.set()
                await asyncio.sleep(1.5)      # finishes after close()
            return self._a(ino)

    entered = threading.Event()

    loop = None
    if not own_loop:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
    m = fuseshim.mount(Slow(), mnt, workers=1, close_timeout=0.3, loop=loop)
    c = subprocess.Popen([sys.executable, '-c', 'import os, sys\\ntry: os.stat(sys.argv[1])\\n'
                          'except OSError: pass', os.path.join(mnt, 'slow')])
    # close only once the handler runs (a fixed wait lost the race when the
    # client interpreter took longer than it to start, on a loaded machine)
    assert entered.wait(30), 'the client never reached getattr'
    m.close()
    print('closed', flush=True)
    time.sleep(2.5)                            # the coroutine finishes meanwhile
    c.wait(10)
    print('exit', flush=True)
''')


@pytest.mark.parametrize('loop', ['own', 'caller'])
def test_pending_async_handler_at_close_is_reported_and_never_replies(mnt, loop):
    res = subprocess.run([sys.executable, '-c', PENDING_AT_CLOSE, mnt, loop],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and 'exit' in res.stdout, res.stderr
    assert 'replying to getattr failed' not in res.stderr, res.stderr
    # expected: a WARNING/ERROR from fuseshim naming the pending handler
    assert any(line.startswith(('WARNING fuseshim', 'ERROR fuseshim')) and 'getattr' in line
               and 'pending' in line for line in res.stderr.splitlines()), res.stderr
    assert not is_mounted(mnt)
