"""read() answering with a fuseshim.FdRange (zero-copy reply through
fuse_reply_data on the file descriptor), through real mounts and the kernel:
whole files, short reads at EOF, offsets past EOF, sparse files read at
offsets beyond 4 GiB, ranges mapped into another file, and bad ranges.

Each runs with plain and ``async def`` handlers, and with the connection's
splice_write capability on (libfuse splices file -> pipe -> /dev/fuse) and
off (fuseshim preads into a buffer itself)."""
from __future__ import annotations

import errno
import os
import stat

import pytest

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FdRange, FileInfo, FUSEError

from conftest import mounted

FILE_INO = 2
GiB = 1 << 30


class RangeFS(fuseshim.Operations):
    """One file, ``file``: its data is ``size`` bytes of ``backing`` starting
    at ``base``; ``mode`` picks what read() returns."""

    def __init__(self, backing, size, base=0, direct_io=True):
        self.backing = backing
        self.size = size
        self.base = base
        self.direct_io = direct_io
        self.mode = 'range'
        self.calls = 0

    def _attr(self, inode):
        a = EntryAttributes()
        a.entry_timeout = a.attr_timeout = 0
        if inode == ROOT_INODE:
            a.st_ino, a.st_mode = ROOT_INODE, stat.S_IFDIR | 0o755
        else:
            a.st_ino, a.st_mode, a.st_size = FILE_INO, stat.S_IFREG | 0o644, self.size
        return a

    def getattr(self, inode, ctx):
        return self._attr(inode)

    def lookup(self, parent_inode, name, ctx):
        if parent_inode != ROOT_INODE or name != b'file':
            raise FUSEError(errno.ENOENT)
        return self._attr(FILE_INO)

    def open(self, inode, flags, ctx):
        fd = os.open(self.backing, os.O_RDONLY)
        return FileInfo(fh=fd, direct_io=self.direct_io, keep_cache=False)

    def _read(self, fh, off, size):
        self.calls += 1
        if self.mode == 'range':
            # what a passthrough does: the range of the file, EOF left to the kernel
            # (base > 0: the data lives inside a larger file)
            end = self.base + self.size
            start = self.base + off
            return FdRange(fh, start, max(0, min(size, end - start)))
        if self.mode == 'raw':            # no clamping: short reads come from pread
            return FdRange(fh, off, size)
        if self.mode == 'closed-fd':
            fd = os.open(self.backing, os.O_RDONLY)
            os.close(fd)
            return FdRange(fd, off, size)
        if self.mode == 'write-only-fd':
            self.wfd = os.open(self.backing, os.O_WRONLY)
            return FdRange(self.wfd, off, size)
        if self.mode == 'too-long':
            return FdRange(fh, off, size + 1)
        if self.mode == 'bytes':
            return os.pread(fh, size, self.base + off)
        raise AssertionError(self.mode)

    def read(self, fh, off, size):
        return self._read(fh, off, size)

    def release(self, fh):
        os.close(fh)


class AsyncRangeFS(RangeFS):
    async def read(self, fh, off, size):
        return self._read(fh, off, size)


@pytest.fixture(params=['sync', 'async'])
def handlers(request):
    return request.param


@pytest.fixture(params=['splice', 'copy'])
def splice(request):
    """With splice_write/splice_move (Mount's default) or without them
    (``enable_splice_write = False``)."""
    return request.param


def _fs(handlers, *args, splice='splice', **kw):
    fs = (AsyncRangeFS if handlers == 'async' else RangeFS)(*args, **kw)
    fs.enable_splice_write = splice == 'splice'
    return fs


def _check_granted(m, splice):
    assert m.granted.get('splice_write') == (splice == 'splice'), m.granted


@pytest.mark.parametrize('direct_io', [True, False], ids=['direct_io', 'page_cache'])
def test_whole_file(tmp_path, mnt, handlers, splice, direct_io):
    data = os.urandom(3 * (1 << 20) + 12345)      # not a multiple of a page: EOF mid-page
    backing = tmp_path / 'backing'
    backing.write_bytes(data)
    ops = _fs(handlers, str(backing), len(data), direct_io=direct_io, splice=splice)
    with mounted(ops, mnt) as m:
        _check_granted(m, splice)
        with open(os.path.join(mnt, 'file'), 'rb', buffering=0) as f:
            got = bytearray()
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                got += chunk
        assert bytes(got) == data
    assert ops.calls > 0


def test_short_read_at_eof_and_past_it(tmp_path, mnt, handlers, splice):
    data = os.urandom(200_000)
    backing = tmp_path / 'backing'
    backing.write_bytes(data)
    ops = _fs(handlers, str(backing), len(data), splice=splice)
    ops.mode = 'raw'                           # the kernel asks past EOF; pread stops there
    with mounted(ops, mnt) as m:
        _check_granted(m, splice)
        fd = os.open(os.path.join(mnt, 'file'), os.O_RDONLY)
        try:
            assert os.pread(fd, 128 << 10, len(data) - 10) == data[-10:]
            assert os.pread(fd, 128 << 10, len(data) - 100_000) == data[-100_000:]
            assert os.pread(fd, 4096, len(data)) == b''
            assert os.pread(fd, 64 << 10, len(data) + 12345) == b''
            assert os.pread(fd, 1, 0) == data[:1]
        finally:
            os.close(fd)


def test_sparse_file_at_large_offsets(tmp_path, mnt, handlers, splice):
    """Offsets beyond 4 GiB (64-bit off_t all the way) and holes read as zeros."""
    backing = tmp_path / 'sparse'
    size = 6 * GiB
    marker = os.urandom(70_000)
    with open(backing, 'wb') as f:
        f.truncate(size)
        f.seek(5 * GiB - 1000)
        f.write(marker)
    ops = _fs(handlers, str(backing), size, splice=splice)
    with mounted(ops, mnt) as m:
        _check_granted(m, splice)
        assert os.stat(os.path.join(mnt, 'file')).st_size == size
        fd = os.open(os.path.join(mnt, 'file'), os.O_RDONLY)
        try:
            assert os.pread(fd, 80_000, 5 * GiB - 1000) == marker + bytes(10_000)
            assert os.pread(fd, 100_000, 4 * GiB + 7) == bytes(100_000)
            assert os.pread(fd, 8192, size - 4096) == bytes(4096)
        finally:
            os.close(fd)


def test_range_inside_another_file(tmp_path, mnt, handlers, splice):
    """The file is a window [base, base + size) of the backing file."""
    blob = os.urandom(1 << 20)
    base, size = 123_457, 500_000
    backing = tmp_path / 'container'
    backing.write_bytes(blob)
    ops = _fs(handlers, str(backing), size, base=base, direct_io=False, splice=splice)
    with mounted(ops, mnt) as m:
        _check_granted(m, splice)
        with open(os.path.join(mnt, 'file'), 'rb') as f:
            assert f.read() == blob[base:base + size]
            f.seek(size - 5)
            assert f.read(100) == blob[base + size - 5:base + size]


def test_bytes_replies_still_work(tmp_path, mnt, handlers, splice):
    data = os.urandom(300_000)
    backing = tmp_path / 'backing'
    backing.write_bytes(data)
    ops = _fs(handlers, str(backing), len(data), splice=splice)
    ops.mode = 'bytes'
    with mounted(ops, mnt):
        with open(os.path.join(mnt, 'file'), 'rb') as f:
            assert f.read() == data


@pytest.mark.expected_errors
@pytest.mark.parametrize('mode', ['closed-fd', 'write-only-fd', 'too-long'])
def test_bad_range_is_eio_and_logged(tmp_path, mnt, handlers, splice, mode, caplog):
    data = os.urandom(100_000)
    backing = tmp_path / 'backing'
    backing.write_bytes(data)
    ops = _fs(handlers, str(backing), len(data), splice=splice)
    ops.mode = mode
    with mounted(ops, mnt, allow_errors=True):
        fd = os.open(os.path.join(mnt, 'file'), os.O_RDONLY)
        try:
            with pytest.raises(OSError) as ei:
                os.pread(fd, 4096, 0)
            assert ei.value.errno == errno.EIO
            ops.mode = 'range'                 # the file stays usable
            assert os.pread(fd, 4096, 0) == data[:4096]
        finally:
            os.close(fd)
    if mode == 'write-only-fd':
        os.close(ops.wfd)
    logged = '\n'.join(r.getMessage() + str(r.exc_info and r.exc_info[1])
                       for r in caplog.records if r.name == 'fuseshim')
    assert 'read handler raised' in logged, logged
    assert 'FdRange' in logged, logged


@pytest.mark.parametrize('args, exc, text', [
    ((-1, 0, 10), ValueError, 'fd must be'),
    ((3, -1, 10), ValueError, 'offset must be'),
    ((3, 0, -1), ValueError, 'size must be'),
    ((3, 0, 1 << 31), ValueError, 'size must be'),
    ((3, 1 << 63, 1), ValueError, 'offset must be'),
    ((3.0, 0, 10), TypeError, 'fd must be an int'),
    ((3, '0', 10), TypeError, 'offset must be an int'),
    ((3, 0, True), TypeError, 'size must be an int'),
])
def test_constructor_validates(args, exc, text):
    with pytest.raises(exc, match=text):
        FdRange(*args)


def test_attributes_and_repr():
    r = FdRange(7, 5 * GiB, 4096)
    assert (r.fd, r.offset, r.size) == (7, 5 * GiB, 4096)
    assert repr(r) == f'FdRange(fd=7, offset={5 * GiB}, size=4096)'
    with pytest.raises(AttributeError):
        r.fd = 3
