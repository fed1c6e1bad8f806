"""Operations most filesystems leave to the kernel: ioctl, poll (with a
later wakeup), filesystem-implemented locks, notify_retrieve."""
from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import struct
import threading
import time

import pytest

import fuseshim
from fuseshim import EntryAttributes, FUSEError, ROOT_INODE

from startup_helpers import force_unmount, mounted_at

# _IOR('E', 1, u64): a "restricted" ioctl the kernel forwards with an 8-byte out buffer
IOCTL_GET_COUNTER = (2 << 30) | (8 << 16) | (ord('E') << 8) | 1
FILE_INODE = 2


class DeviceLikeFS(fuseshim.Operations):
    def __init__(self):
        self.counter = 41
        self.handle = None
        self.ready = False
        self.locks = []
        self.retrieved = threading.Event()
        self.retrieved_data = None

    def _attr(self, inode):
        a = EntryAttributes()
        a.st_ino = inode
        a.st_mode = (stat.S_IFDIR | 0o755) if inode == ROOT_INODE else (stat.S_IFREG | 0o644)
        a.st_size = 0 if inode == ROOT_INODE else 4096
        return a

    def getattr(self, inode, ctx):
        return self._attr(inode)

    def lookup(self, parent_inode, name, ctx):
        if name != b'dev':
            raise FUSEError(errno.ENOENT)
        return self._attr(FILE_INODE)

    def open(self, inode, flags, ctx):
        return fuseshim.FileInfo(fh=7, keep_cache=True)

    def read(self, fh, off, size):
        return bytes([65 + (off // 4096) % 26]) * min(size, max(0, 4096 - off))

    def ioctl(self, inode, fh, cmd, arg, in_data, out_size, flags, ctx):
        if cmd != IOCTL_GET_COUNTER:
            raise FUSEError(errno.ENOTTY)
        self.counter += 1
        return struct.pack('<Q', self.counter)[:out_size]

    def poll(self, inode, fh, events, handle):
        if handle is not None:
            self.handle = handle
        return select.POLLIN if self.ready else 0

    def getlk(self, inode, fh, owner, lock, ctx):
        for (o, (typ, start, end, pid)) in self.locks:
            if o != owner:
                return (typ, start, end, pid)
        return (fcntl.F_UNLCK, lock[1], lock[2], 0)

    def setlk(self, inode, fh, owner, lock, sleep, ctx):
        typ = lock[0]
        if typ == fcntl.F_UNLCK:
            self.locks = [l for l in self.locks if l[0] != owner]
        elif any(o != owner for o, _ in self.locks):
            raise FUSEError(errno.EAGAIN)
        else:
            self.locks.append((owner, lock))

    def retrieve_reply(self, cookie, inode, offset, data):
        self.retrieved_data = (cookie, inode, offset, data)
        self.retrieved.set()


@pytest.fixture
def mounted(tmp_path):
    path = tmp_path / 'mnt'
    path.mkdir()
    ops = DeviceLikeFS()
    m = fuseshim.mount(ops, path, workers=2)
    try:
        yield ops, m, str(path / 'dev')
    finally:
        m.close()
        force_unmount(str(path))
    assert not mounted_at(str(path))


def test_ioctl_round_trip(mounted):
    ops, _, path = mounted
    with open(path, 'rb') as f:
        buf = bytearray(8)
        assert fcntl.ioctl(f.fileno(), IOCTL_GET_COUNTER, buf) == 0
        assert struct.unpack('<Q', buf)[0] == 42
        with pytest.raises(OSError) as info:
            fcntl.ioctl(f.fileno(), (2 << 30) | (8 << 16) | (ord('E') << 8) | 2, bytearray(8))
        assert info.value.errno == errno.ENOTTY


def test_poll_wakeup_through_the_handle(mounted):
    ops, _, path = mounted
    with open(path, 'rb') as f:
        p = select.poll()
        p.register(f.fileno(), select.POLLIN)
        assert p.poll(0) == []  # a non-blocking poll asks for no wakeup handle

        def later():  # once the blocking poll below handed over its handle
            deadline = time.monotonic() + 10
            while ops.handle is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            ops.ready = True
            ops.handle.notify()
        threading.Thread(target=later).start()
        t0 = time.monotonic()
        events = p.poll(10_000)
        assert events and events[0][1] & select.POLLIN
        assert time.monotonic() - t0 < 5


def test_filesystem_implemented_posix_locks(mounted):
    ops, _, path = mounted
    with open(path, 'rb') as f:
        fcntl.lockf(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 0)
        assert ops.locks, 'setlk reached the filesystem'
        pid = os.fork()
        if pid == 0:  # this fs grants one owner at a time, even for shared locks
            try:
                with open(path, 'rb') as g:
                    fcntl.lockf(g.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 0)
                os._exit(1)
            except OSError as e:
                os._exit(0 if e.errno in (errno.EAGAIN, errno.EACCES) else 2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        fcntl.lockf(f.fileno(), fcntl.LOCK_UN, 10, 0)


def test_notify_retrieve_returns_cached_data(mounted):
    ops, m, path = mounted
    with open(path, 'rb') as f:
        assert f.read(4096) == b'A' * 4096  # now in the page cache
        m.notify_retrieve(FILE_INODE, 0, 4096, cookie=99)
        assert ops.retrieved.wait(10)
        cookie, inode, offset, data = ops.retrieved_data
        assert (cookie, inode, offset) == (99, FILE_INODE, 0)
        assert data == b'A' * 4096
