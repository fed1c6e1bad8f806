"""FUSE passthrough (backing files): the kernel reads the backing file
directly, the read handler is never called.  Needs libfuse >= 3.17 at build
time and Linux >= 6.9 with CAP_SYS_ADMIN; the matrix runs it on 3.17/3.18."""
from __future__ import annotations

import asyncio
import errno
import os
import stat

import pytest

import fuseshim
from fuseshim import EntryAttributes, FUSEError, ROOT_INODE

from startup_helpers import force_unmount, mounted_at

pytestmark = pytest.mark.skipif(not fuseshim.build_features()['passthrough'],
                                reason='needs a fuseshim built against libfuse >= 3.17')


class BackedFS(fuseshim.Operations):
    enable_passthrough = True

    def __init__(self, backing):
        self.backing = backing
        self.handler_reads = 0

    def _attr(self, inode):
        if inode == ROOT_INODE:
            a = EntryAttributes()
            a.st_ino, a.st_mode = ROOT_INODE, stat.S_IFDIR | 0o755
            return a
        a = EntryAttributes.from_stat(os.stat(self.backing))
        a.st_ino = 2
        return a

    def getattr(self, inode, ctx):
        return self._attr(inode)

    def lookup(self, parent_inode, name, ctx):
        if name != b'file':
            raise FUSEError(errno.ENOENT)
        return self._attr(2)

    def open(self, inode, flags, ctx):
        fd = os.open(self.backing, os.O_RDONLY)
        return fuseshim.FileInfo(fh=fd, backing_fd=fd)

    def read(self, fh, off, size):
        self.handler_reads += 1
        return os.pread(fh, size, off)

    def release(self, fh):
        os.close(fh)


class AsyncBackedFS(BackedFS):
    async def open(self, inode, flags, ctx):
        await asyncio.sleep(0)   # suspends: answered later, from a Task
        return super().open(inode, flags, ctx)


@pytest.mark.parametrize('fs_class', [BackedFS, AsyncBackedFS], ids=['sync', 'async-open'])
def test_reads_bypass_the_daemon(fs_class, tmp_path):
    backing = tmp_path / 'backing'
    backing.write_bytes(os.urandom(1 << 20))
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    ops = fs_class(str(backing))
    with fuseshim.mount(ops, mnt) as m:
        assert m.granted.get('passthrough'), m.granted
        assert (mnt / 'file').read_bytes() == backing.read_bytes()
        assert ops.handler_reads == 0
    force_unmount(str(mnt))
    assert not mounted_at(str(mnt))
