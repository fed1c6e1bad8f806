"""fuseshim.current_request_ids() / current_operations(): which request the
calling thread is handling, in every plain handler (also those without a
ctx argument), through real mounts."""
from __future__ import annotations

import errno
import os
import stat

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FileInfo, FUSEError

from conftest import mounted


class WhoFS(fuseshim.Operations):
    """One file whose contents are the (uid, gid, pid) that read() saw."""

    def __init__(self):
        self.seen = {}

    def init(self):
        self.seen['init'] = (fuseshim.current_request_ids(), fuseshim.current_operations())

    def getattr(self, inode, ctx):
        a = EntryAttributes()
        a.st_ino = inode
        a.st_mode = stat.S_IFDIR | 0o755 if inode == ROOT_INODE else stat.S_IFREG | 0o644
        a.st_size = 64
        return a

    def lookup(self, parent_inode, name, ctx):
        if name != b'who':
            raise FUSEError(errno.ENOENT)
        self.seen['lookup'] = (fuseshim.current_request_ids(), (ctx.uid, ctx.gid, ctx.pid))
        return self.getattr(2, ctx)

    def open(self, inode, flags, ctx):
        return FileInfo(fh=1, direct_io=True)

    def read(self, fh, off, size):
        self.seen['read_ops'] = fuseshim.current_operations()
        return repr(fuseshim.current_request_ids()).encode().ljust(64)[off:off + size]

    def release(self, fh):
        self.seen['release'] = fuseshim.current_request_ids()


def test_ids_of_the_reading_process_in_any_handler(mnt):
    ops = WhoFS()
    assert fuseshim.current_request_ids() is None
    assert fuseshim.current_operations() is None
    with mounted(ops, mnt):
        assert ops.seen['init'] == (None, ops)        # no request, but the Operations
        fd = os.open(os.path.join(mnt, 'who'), os.O_RDONLY)
        try:
            ids, from_ctx = ops.seen['lookup']
            assert ids == from_ctx == (os.getuid(), os.getgid(), os.getpid())
            child = os.fork()
            if child == 0:   # reads through the parent's handle
                try:
                    seen = os.pread(fd, 64, 0).rstrip()
                    os._exit(0 if seen == repr((os.getuid(), os.getgid(), os.getpid())).encode()
                             else 1)
                except BaseException:
                    os._exit(2)
            assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
            assert ops.seen['read_ops'] is ops
        finally:
            os.close(fd)
    assert ops.seen['release'] is not None
    assert fuseshim.current_request_ids() is None     # nothing leaks out of a handler
