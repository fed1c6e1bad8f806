"""FileInfo.read_fd: fuseshim answers a handle's READs from a file descriptor
in C, without calling read(), through real mounts: whole
files, short reads at EOF, many handles at once (the table grows and
shrinks), handles without read_fd still reaching read(), a handle's entry
gone at release, a create() handle, and an fd closed too early (EBADF).

Each runs with plain and ``async def`` open handlers, and with splice_write
on (libfuse splices the file into /dev/fuse) and off (libfuse reads it into
its buffer)."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import time

import pytest

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FileInfo, FUSEError
from fuseshim._core import _read_fd_handles

from conftest import mounted


class FdFS(fuseshim.Operations):
    """Files ``f0``..``fN`` mirroring the backing directory ``src``; open()
    hands out the backing fd as read_fd unless the name starts with ``py``
    (then read() answers) or ``mode`` says otherwise."""

    def __init__(self, src):
        self.src = src
        self.names = {}          # inode -> name
        self.handler_reads = 0
        self.mode = 'read_fd'
        self.released = []

    def _attr(self, inode):
        a = EntryAttributes()
        a.entry_timeout = a.attr_timeout = 0
        if inode == ROOT_INODE:
            a.st_ino, a.st_mode = ROOT_INODE, stat.S_IFDIR | 0o755
            return a
        st = os.stat(os.path.join(self.src, self.names[inode]))
        a.st_ino, a.st_mode, a.st_size = inode, stat.S_IFREG | 0o644, st.st_size
        return a

    def _inode(self, name):
        ino = os.stat(os.path.join(self.src, name)).st_ino + 10
        self.names[ino] = name
        return ino

    def getattr(self, inode, ctx):
        return self._attr(inode)

    def lookup(self, parent_inode, name, ctx):
        try:
            return self._attr(self._inode(os.fsdecode(name)))
        except FileNotFoundError:
            raise FUSEError(errno.ENOENT) from None

    def _handle(self, inode, fd):
        if self.names[inode].startswith('py'):
            return FileInfo(fh=fd, keep_cache=False)
        if self.mode == 'closed-fd':
            dead = os.open(os.path.join(self.src, self.names[inode]), os.O_RDONLY)
            os.close(dead)
            return FileInfo(fh=fd, keep_cache=False, read_fd=dead)
        # a separate fh: the table maps handles, not fds
        return FileInfo(fh=fd + 100000, keep_cache=False, read_fd=fd)

    def open(self, inode, flags, ctx):
        fd = os.open(os.path.join(self.src, self.names[inode]), os.O_RDONLY)
        return self._handle(inode, fd)

    def create(self, parent_inode, name, mode, flags, ctx):
        path = os.path.join(self.src, os.fsdecode(name))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
        return self._handle(self._inode(os.fsdecode(name)), fd), self._attr(self._inode(os.fsdecode(name)))

    def read(self, fh, off, size):
        self.handler_reads += 1
        return os.pread(fh % 100000, size, off)

    def write(self, fh, off, buf):
        return os.pwrite(fh % 100000, buf, off)

    def release(self, fh):
        self.released.append(fh)
        os.close(fh % 100000)


class AsyncOpenFdFS(FdFS):
    async def open(self, inode, flags, ctx):
        return super().open(inode, flags, ctx)


@pytest.fixture(params=['sync', 'async'])
def fs_class(request):
    return AsyncOpenFdFS if request.param == 'async' else FdFS


@pytest.fixture(params=['splice', 'copy'])
def splice(request):
    return request.param


def _fs(fs_class, src, splice):
    fs = fs_class(str(src))
    fs.enable_splice_write = splice == 'splice'
    return fs


def _settles_to(count, timeout=5.0):
    """The kernel sends RELEASE after close() has returned: wait for it."""
    deadline = time.monotonic() + timeout
    while _read_fd_handles() != count and time.monotonic() < deadline:
        time.sleep(0.01)
    return _read_fd_handles() == count


def _read_all(path, chunk=1 << 20):
    got = bytearray()
    with open(path, 'rb', buffering=0) as f:
        while True:
            b = f.read(chunk)
            if not b:
                return bytes(got)
            got += b


def test_reads_never_reach_the_handler(tmp_path, mnt, fs_class, splice):
    src = tmp_path / 'src'
    src.mkdir()
    data = os.urandom(3 * (1 << 20) + 12345)      # EOF mid-page
    (src / 'f0').write_bytes(data)
    ops = _fs(fs_class, src, splice)
    before = _read_fd_handles()
    with mounted(ops, mnt) as m:
        assert m.granted.get('splice_write') == (splice == 'splice')
        assert _read_all(os.path.join(mnt, 'f0')) == data
        with open(os.path.join(mnt, 'f0'), 'rb', buffering=0) as f:
            assert os.pread(f.fileno(), 100, len(data) - 40) == data[-40:]   # short at EOF
            assert os.pread(f.fileno(), 100, len(data) + 4096) == b''       # past EOF
            assert os.pread(f.fileno(), 0, 10) == b''
            assert _read_fd_handles() == before + 1
        assert ops.handler_reads == 0
        assert _settles_to(before)     # gone at release
    assert ops.released


def test_many_handles_and_handler_reads_mixed(tmp_path, mnt, fs_class, splice):
    """200 files open at once (the table grows, then empties again at
    release), interleaved with handles whose reads go to read()."""
    src = tmp_path / 'src'
    src.mkdir()
    blobs = {}
    for i in range(200):
        name = f'py{i}' if i % 10 == 0 else f'f{i}'
        blobs[name] = os.urandom(5000 + i)
        (src / name).write_bytes(blobs[name])
    ops = _fs(fs_class, src, splice)
    before = _read_fd_handles()
    with mounted(ops, mnt):
        files = {n: open(os.path.join(mnt, n), 'rb', buffering=0) for n in blobs}
        try:
            assert _read_fd_handles() == before + 180
            for n, f in files.items():
                assert f.read() == blobs[n], n
        finally:
            for f in files.values():
                f.close()
        assert _settles_to(before)
        # the py* files went through read(), the others never did
        assert 20 <= ops.handler_reads


def test_create_handle_reads_from_its_fd(tmp_path, mnt, splice):
    src = tmp_path / 'src'
    src.mkdir()
    ops = _fs(FdFS, src, splice)
    with mounted(ops, mnt):
        path = os.path.join(mnt, 'new')
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        try:
            os.pwrite(fd, b'written through FUSE' + b'\0' * 4076, 0)
            assert os.pread(fd, 20, 0) == b'written through FUSE'
        finally:
            os.close(fd)
        assert ops.handler_reads == 0


@pytest.mark.expected_errors
def test_fd_closed_too_early_answers_ebadf(tmp_path, mnt, splice):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'f0').write_bytes(b'x' * 10000)
    ops = _fs(FdFS, src, splice)
    ops.mode = 'closed-fd'
    with mounted(ops, mnt):
        with open(os.path.join(mnt, 'f0'), 'rb', buffering=0) as f:
            with pytest.raises(OSError) as e:
                f.read(4096)
            assert e.value.errno == errno.EBADF
    assert ops.handler_reads == 0


def test_session_end_drops_unreleased_handles(tmp_path, mnt):
    """A handle still open when the filesystem goes away never sees a
    RELEASE: its entry must go with the session (a later session may get
    the same address and the same fh values)."""
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'f0').write_bytes(b'data')
    ops = _fs(FdFS, src, 'splice')
    before = _read_fd_handles()
    m = fuseshim.mount(ops, mnt)
    try:
        f = open(os.path.join(mnt, 'f0'), 'rb', buffering=0)
        assert f.read() == b'data'
        assert _read_fd_handles() == before + 1
    finally:
        m.close()           # lazy unmount: f keeps the dead mount open
    try:
        assert _read_fd_handles() == before
    finally:
        with contextlib.suppress(OSError):   # ENOTCONN: the connection was aborted
            f.close()


def test_attribute_and_default():
    assert FileInfo().read_fd == -1
    assert FileInfo(fh=7, read_fd=3).read_fd == 3
