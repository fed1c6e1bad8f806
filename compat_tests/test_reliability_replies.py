"""Every request is answered, whatever fails before its handler runs.

fuseshim builds each handler's Python arguments (names as bytes, the request
context, the forget list, the data of a write, ...) in the libfuse callback.
If that raises (MemoryError, say), the request must still get an errno --
otherwise the caller waits until the connection dies.  A test-only hook
(``_core._test_only_inject_faults``) makes argument conversion raise for one
operation; for EVERY operation in ``_core.OP_NAMES`` a client process triggers
that operation on a real mount and must get EIO (within a timeout: a hang is
detected and the connection aborted), the handler must not have run, no
request may stay waiting in the kernel, and the same action succeeds once the
hook is off.  FORGET, RELEASE(DIR) and the NOTIFY_REPLY of retrieve_reply
have nobody waiting for an errno: there the hook must have fired, the kernel
must count no waiting request, and the mount must still work.

The same hook fails open/create replies (read_fd and backing id released)
and the data copy of retrieve_reply (the handler gets the OSError).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fuseshim
from conftest import mounted
from fuseshim import FUSEError, FileInfo, kernel
from fuseshim._core import (OP_NAMES, Session, _read_fd_handles, _test_only_faults_fired,
                            _test_only_inject_faults)
from fuseshim._core import sys_mount, sys_umount
from fuseshim.examples.memfs import MemFS
from fuseshim.operations import implemented_operations
from fuseshim.options import parse_options

CLIENT_TIMEOUT = 10.0
IOCTL_CMD = (2 << 30) | (4 << 16) | (ord('Z') << 8) | 1     # _IOR('Z', 1, 4 bytes)
FIBMAP = 1


class EveryOpFS(MemFS):
    """memfs plus the operations it lacks, with no attribute or entry
    caching, so that every client action reaches the daemon."""

    def _attr(self, node):
        a = super()._attr(node)
        a.entry_timeout = a.attr_timeout = 0
        return a

    def _count(self, name):
        with self._lock:
            self.calls[name] += 1

    def getlk(self, inode, fh, owner, lock, ctx):
        self._count('getlk')
        return (2, lock[1], lock[2], 0)          # F_UNLCK: nobody holds it

    def setlk(self, inode, fh, owner, lock, sleep, ctx):
        self._count('setlk')

    def flock(self, inode, fh, owner, op, ctx):
        self._count('flock')

    def bmap(self, inode, blocksize, idx):
        self._count('bmap')
        return 4242

    def ioctl(self, inode, fh, cmd, arg, in_data, out_size, flags, ctx):
        self._count('ioctl')
        if cmd != IOCTL_CMD:
            raise FUSEError(errno.ENOTTY)
        return b'ok!\0'

    def poll(self, inode, fh, events, handle):
        self._count('poll')
        return events & (0x001 | 0x004)          # POLLIN | POLLOUT: always ready

    def retrieve_reply(self, cookie, inode, offset, data):
        self._count('retrieve_reply')
        self.retrieved.append(data)

    retrieved: list


# The client: one action per operation, run in a child process; prints the
# errno it got (0: success).  Files are prepared by prepare() below.
CLIENT = textwrap.dedent('''
    import ctypes, errno, fcntl, json, os, select, struct, sys
    op, mnt, n = sys.argv[1], sys.argv[2], sys.argv[3]
    p = lambda name: os.path.join(mnt, name)

    def opened(name='f', flags=os.O_RDONLY):
        return os.open(p(name), flags)

    def read():
        fd = opened()
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)   # the next read asks the daemon
        os.pread(fd, 10, 0)

    def access():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.access(p('f').encode(), os.R_OK) != 0:
            raise OSError(ctypes.get_errno(), 'access')

    def getlk():
        lock = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0)
        fcntl.fcntl(opened('f', os.O_RDWR), fcntl.F_GETLK, lock)

    def poll():
        poller = select.poll()
        poller.register(opened(), select.POLLIN)
        events = poller.poll(5000)
        if not events:
            raise OSError(errno.ETIMEDOUT, 'poll timed out')
        if events[0][1] & select.POLLERR:     # how the kernel reports a failed POLL
            raise OSError(errno.EIO, 'POLLERR')

    def ioctl():
        out = fcntl.ioctl(opened(), %(IOCTL_CMD)d, bytes(4))
        assert out == b'ok!' + bytes(1), out

    def bmap():
        out = fcntl.ioctl(opened(), %(FIBMAP)d, struct.pack('i', 0))
        print(json.dumps({'block': struct.unpack('i', out)[0]}))

    def forget():
        os.close(os.open(p('victim' + n), os.O_CREAT | os.O_WRONLY, 0o644))
        os.unlink(p('victim' + n))    # the kernel drops the inode: FORGET

    ACTIONS = {
        'lookup': lambda: os.lstat(p('f')),
        'forget': forget,
        'getattr': lambda: os.fstat(opened()),
        'setattr': lambda: os.chmod(p('f'), 0o640),
        'readlink': lambda: os.readlink(p('l')),
        'mknod': lambda: os.mkfifo(p('fifo' + n)),
        'mkdir': lambda: os.mkdir(p('dir' + n)),
        'unlink': lambda: os.unlink(p('u')),
        'rmdir': lambda: os.rmdir(p('rd')),
        'symlink': lambda: os.symlink('target', p('sym' + n)),
        'rename': lambda: os.rename(p('r1'), p('r2')),
        'link': lambda: os.link(p('f'), p('hard' + n)),
        'open': lambda: opened(),
        'read': read,
        'write': lambda: os.pwrite(opened('f', os.O_WRONLY), b'w', 0),
        'flush': lambda: os.close(opened()),
        'release': lambda: os.close(opened()),
        'fsync': lambda: os.fsync(opened('f', os.O_WRONLY)),
        'opendir': lambda: os.listdir(p('d')),
        'readdir': lambda: os.listdir(p('d')),
        'releasedir': lambda: os.listdir(p('d')),
        'fsyncdir': lambda: os.fsync(os.open(p('d'), os.O_RDONLY | os.O_DIRECTORY)),
        'statfs': lambda: os.statvfs(mnt),
        'setxattr': lambda: os.setxattr(p('f'), 'user.set', b'v'),
        'getxattr': lambda: os.getxattr(p('f'), 'user.a'),
        'listxattr': lambda: os.listxattr(p('f')),
        'removexattr': lambda: os.removexattr(p('f'), 'user.r'),
        'access': access,
        'create': lambda: os.open(p('new' + n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644),
        'getlk': getlk,
        'setlk': lambda: fcntl.lockf(opened(), fcntl.LOCK_SH | fcntl.LOCK_NB),
        'flock': lambda: fcntl.flock(opened(), fcntl.LOCK_SH | fcntl.LOCK_NB),
        'bmap': bmap,
        'ioctl': ioctl,
        'poll': poll,
        'fallocate': lambda: os.posix_fallocate(opened('f', os.O_WRONLY), 0, 8192),
        'copy_file_range': lambda: os.copy_file_range(opened(), opened('g', os.O_WRONLY), 10),
        'lseek': lambda: os.lseek(opened(), 0, os.SEEK_DATA),
        # the daemon asks (notify_retrieve): the client only fills the page cache
        'retrieve_reply': lambda: os.pread(opened(), 10, 0),
    }
    try:
        ACTIONS[op]()
    except OSError as e:
        print(json.dumps({'errno': e.errno}))
    else:
        print(json.dumps({'errno': 0}))
''' % {'IOCTL_CMD': IOCTL_CMD, 'FIBMAP': FIBMAP})

# Requests nobody waits for an errno of: the kernel sends them and moves on
# (FORGET, the RELEASEs of a close(), NOTIFY_REPLY), or turns every error into
# a value (BMAP: block 0).  For these the hook must have fired and no request
# may be left waiting.
NO_ERRNO = {'forget', 'release', 'releasedir', 'retrieve_reply', 'bmap'}


def prepare(mnt):
    """The files the client actions use (made with the hook off)."""
    p = lambda name: os.path.join(mnt, name)  # noqa: E731
    for name in ('f', 'g', 'u', 'r1'):
        with open(p(name), 'wb') as f:
            f.write(b'0123456789' * 100)
    os.mkdir(p('d'))
    os.mkdir(p('rd'))
    os.symlink('f', p('l'))
    os.setxattr(p('f'), 'user.a', b'value')
    os.setxattr(p('f'), 'user.r', b'remove me')


def waiting(minor):
    """Requests of connection ``minor`` the kernel still waits an answer for."""
    with open(f'/sys/fs/fuse/connections/{minor}/waiting') as f:
        return int(f.read())


def wait_nothing_waiting(minor, timeout=5.0):
    deadline = time.monotonic() + timeout
    while waiting(minor) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waiting(minor) == 0, f'{waiting(minor)} request(s) never answered'


def run_client(op, mnt, minor, n):
    """Run the client action for ``op``; -> its JSON result.  A client that
    hangs is a failure: our connection is aborted so that it can end."""
    proc = subprocess.Popen([sys.executable, '-c', CLIENT, op, mnt, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        kernel.abort_connection(minor)      # ours only: the client waits on it
        proc.kill()
        proc.communicate()
        pytest.fail(f'the {op} client hung for {CLIENT_TIMEOUT} s: a request was never answered',
                    pytrace=False)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    result = {}
    for line in lines:
        result.update(json.loads(line))
    return result


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


@contextlib.contextmanager
def fuseblk_mounted(ops, mnt, tmp_path):
    """The kernel sends BMAP only to fuseblk mounts (a block device as the
    source), which fuseshim.mount() does not make: mount one from the same
    parts (a Session serving an adopted /dev/fuse fd, mount(2)) on a loop
    device of our own.  -> the connection number."""
    image = tmp_path / 'blk.img'
    image.write_bytes(bytes(1 << 20))
    loopdev = subprocess.run(['losetup', '--find', '--show', str(image)], check=True,
                             capture_output=True, text=True).stdout.strip()
    try:
        s = Session(ops, implemented_operations(ops), parse_options(()).libfuse_argv())
        fd = os.open('/dev/fuse', os.O_RDWR | os.O_CLOEXEC)
        s.adopt_fd(fd)
        sys_mount(loopdev, mnt, 'fuseblk', 0,
                  f'fd={fd},rootmode=40000,user_id=0,group_id=0,blksize=4096')
        worker = threading.Thread(target=s.serve, daemon=True)
        worker.start()
        try:
            assert s.init_event.wait(5), 'INIT not answered'
            yield kernel.fd_connection(fd)
        finally:
            sys_umount(mnt, 2)            # MNT_DETACH
            worker.join(5)
            s.destroy()
    finally:
        subprocess.run(['losetup', '-d', loopdev], check=False)


@contextlib.contextmanager
def every_op_mount(op, mnt, tmp_path):
    """-> (filesystem, mount or None, connection number)."""
    fs = EveryOpFS()
    fs.retrieved = []
    if op == 'bmap':
        with fuseblk_mounted(fs, mnt, tmp_path) as minor:
            yield fs, None, minor
        return
    with mounted(fs, mnt, workers=2, allow_errors=True) as m:
        yield fs, m, m.conn_minor


@pytest.mark.expected_errors
@pytest.mark.parametrize('op', OP_NAMES)
def test_every_request_is_answered_when_building_its_arguments_fails(mnt, tmp_path, op):
    # OP_NAMES is the binding's own list: a new operation fails here until
    # the client knows how to trigger it
    assert f"'{op}':" in CLIENT, f'no client action triggers {op}: add one to CLIENT'
    with every_op_mount(op, mnt, tmp_path) as (fs, m, minor):
        prepare(mnt)
        if op == 'retrieve_reply':
            run_client(op, mnt, minor, 0)          # data in the page cache to retrieve
        calls_before = fs.calls[op]
        _test_only_inject_faults(args=[op])
        try:
            result = run_client(op, mnt, minor, 1)
            if op == 'retrieve_reply':
                m.notify_retrieve(os.stat(os.path.join(mnt, 'f')).st_ino, 0, 10, 7)
            # a request nobody waits for may arrive after the client ended
            wait_for(lambda: _test_only_faults_fired().get(('args', op)))
        finally:
            fired = _test_only_inject_faults()
        assert fired.get(('args', op)), f'the client action never made a {op} request'
        assert fs.calls[op] == calls_before, f'the {op} handler ran although its arguments failed'
        if op == 'bmap':
            assert result == {'errno': 0, 'block': 0}   # the kernel's value for a failed BMAP
        elif op in NO_ERRNO:
            assert result == {'errno': 0}
        else:
            assert result == {'errno': errno.EIO}
        wait_nothing_waiting(minor)

        # the mount still works: the same action, hook off, reaches the handler
        result = run_client(op, mnt, minor, 2)
        if op == 'retrieve_reply':
            m.notify_retrieve(os.stat(os.path.join(mnt, 'f')).st_ino, 0, 10, 7)
        assert wait_for(lambda: fs.calls[op] > calls_before), f'{op} handler not called'
        assert result == ({'errno': 0, 'block': 4242} if op == 'bmap' else {'errno': 0})
        if op == 'retrieve_reply':
            assert fs.retrieved == [b'0123456789']
        wait_nothing_waiting(minor)


# ---------------------------------------------------------------- failed open replies

class ReadFdFS(EveryOpFS):
    """Opens and creates answer their reads from an fd (FileInfo.read_fd),
    or with ``backing`` pass the fd through (FileInfo.backing_fd)."""
    backing = False

    def __init__(self, tmp_path):
        super().__init__()
        self.data_path = tmp_path / 'data'
        self.data_path.write_bytes(b'0123456789' * 100)
        self.fds = {}

    @property
    def enable_passthrough(self):
        return self.backing

    def _with_fd(self, fi):
        fd = os.open(self.data_path, os.O_RDWR)
        self.fds[fi.fh] = fd
        if self.backing:
            fi.backing_fd = fd
        else:
            fi.read_fd = fd
        return fi

    def open(self, inode, flags, ctx):
        return self._with_fd(super().open(inode, flags, ctx))

    def create(self, parent_inode, name, mode, flags, ctx):
        fi, attr = super().create(parent_inode, name, mode, flags, ctx)
        return self._with_fd(fi), attr

    def release(self, fh):
        os.close(self.fds.pop(fh))
        super().release(fh)


# open(2) through libc: Python's os.open would retry on EINTR (PEP 475)
OPEN_CLIENT = textwrap.dedent('''
    import ctypes, json, os, sys
    path, create = sys.argv[1], sys.argv[2] == 'create'
    libc = ctypes.CDLL(None, use_errno=True)
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR if create else os.O_RDONLY
    fd = libc.open(path.encode(), flags, 0o644)
    if fd < 0:
        print(json.dumps({'errno': ctypes.get_errno()}))
    else:
        data = os.pread(fd, 10, 0)
        os.close(fd)
        print(json.dumps({'errno': 0, 'data': data.decode()}))
''')


def open_client(path, how):
    out = subprocess.run([sys.executable, '-c', OPEN_CLIENT, path, how], capture_output=True,
                         text=True, timeout=CLIENT_TIMEOUT, check=True).stdout
    return json.loads(out)


PASSTHROUGH_MISSING = (None if fuseshim.features()['passthrough'] else
                       'FUSE passthrough needs libfuse >= 3.17 (this build: '
                       f"{fuseshim.features()['libfuse_build_version']})")


@pytest.mark.parametrize('how', ['open', 'create'])
@pytest.mark.parametrize('kind', [
    'read_fd',
    pytest.param('backing_fd', marks=pytest.mark.skipif(PASSTHROUGH_MISSING is not None,
                                                         reason=str(PASSTHROUGH_MISSING)))])
def test_failed_open_reply_releases_what_the_handle_registered(mnt, tmp_path, how, kind):
    """The kernel never got the handle (our reply failed: the request was
    interrupted meanwhile), so no RELEASE will come for it: fuseshim takes
    back what it registered for the handle itself -- the read_fd (else its
    READs would be answered from a stale fd), the passthrough backing id
    (else the kernel keeps the backing file open)."""
    fs = ReadFdFS(tmp_path)
    fs.backing = kind == 'backing_fd'
    with mounted(fs, mnt, workers=2) as m:
        if fs.backing and not m.granted.get('passthrough'):
            pytest.skip('the kernel did not grant passthrough (needs Linux >= 6.9 and root)')
        registered = (lambda: m.session.backing_handles) if fs.backing else _read_fd_handles
        with open(os.path.join(mnt, 'f'), 'wb') as f:
            f.write(b'not what the fd holds')
        wait_nothing_waiting(m.conn_minor)         # its RELEASE is answered
        baseline = registered()
        _test_only_inject_faults(reply=[how])
        try:
            assert open_client(os.path.join(mnt, 'x' if how == 'create' else 'f'), how) == \
                {'errno': errno.EINTR}
        finally:
            fired = _test_only_inject_faults()
        assert fired == {('reply', how): 1}
        assert fs.calls['release'] == 1               # only the write's own handle above
        assert registered() == baseline, 'a handle the kernel never got stays registered'
        # the handle works normally once replies succeed again: passthrough
        # reads the backing file (the write above went there too), read_fd
        # serves the fd's bytes up to the file's size (a new file is empty)
        expected = (fs.data_path.read_bytes()[:10].decode() if fs.backing else
                    '' if how == 'create' else '0123456789')
        assert open_client(os.path.join(mnt, 'y' if how == 'create' else 'f'), how) == \
            {'errno': 0, 'data': expected}
        wait_nothing_waiting(m.conn_minor)
        assert wait_for(lambda: registered() == baseline)


# ---------------------------------------------------------------- failed data copies

@pytest.mark.expected_errors
def test_failed_copy_of_retrieved_data_reaches_the_handler_as_an_error(mnt):
    """retrieve_reply gets the OSError of a failed copy, never a buffer the
    copy did not fill."""
    fs = EveryOpFS()
    fs.retrieved = []
    with mounted(fs, mnt, allow_errors=True) as m:
        prepare(mnt)
        ino = os.stat(os.path.join(mnt, 'f')).st_ino
        run_client('retrieve_reply', mnt, m.conn_minor, 0)     # the page cache holds f
        _test_only_inject_faults(buf_copy=['retrieve_reply'])
        try:
            m.notify_retrieve(ino, 0, 10, 7)
            assert wait_for(lambda: fs.retrieved)
        finally:
            fired = _test_only_inject_faults()
        assert fired == {('buf_copy', 'retrieve_reply'): 1}
        [data] = fs.retrieved
        assert isinstance(data, OSError) and data.errno == errno.EIO, data
        m.notify_retrieve(ino, 0, 10, 8)
        assert wait_for(lambda: len(fs.retrieved) == 2)
        assert fs.retrieved[1] == b'0123456789'


def test_failed_copy_of_written_data_answers_the_writer(mnt):
    fs = EveryOpFS()
    with mounted(fs, mnt) as m:
        prepare(mnt)
        writes = fs.calls['write']
        _test_only_inject_faults(buf_copy=['write'])
        try:
            assert run_client('write', mnt, m.conn_minor, 1) == {'errno': errno.EIO}
        finally:
            fired = _test_only_inject_faults()
        assert fired == {('buf_copy', 'write'): 1}
        assert fs.calls['write'] == writes
        assert run_client('write', mnt, m.conn_minor, 2) == {'errno': 0}
