"""The Operations base class: one method per low-level FUSE request (per row
of operations_table.py; compat_tests/test_operations_table.py checks it).

Override what your filesystem supports; every method may be a plain function
(run on a worker thread) or an ``async def`` coroutine (run on the event
loop).  Methods left as they are here are not registered with libfuse, so
the kernel gets ENOSYS once and stops asking (or falls back to its own
behaviour, e.g. local POSIX locks).  Signatures follow pyfuse3's; operations
pyfuse3 lacks take the inode, the file handle and what the request carries.
"""
from __future__ import annotations

import errno
import stat

from ._core import FUSEError, OP_NAMES


class Operations:
    #: Let the kernel cache writes (FUSE_CAP_WRITEBACK_CACHE).
    enable_writeback_cache = False
    #: Let the kernel enforce POSIX ACLs stored in system.posix_acl_* xattrs.
    enable_acl = False
    #: Answer READDIRPLUS (entries with attributes, each counted as a lookup)
    #: as well as plain READDIR; the kernel picks per directory.
    enable_readdirplus = True
    #: Ask for FUSE passthrough (FileInfo.backing_fd); needs libfuse >= 3.17.
    enable_passthrough = False
    #: Receive requests through a pipe (splice): pays off only for large writes.
    enable_splice_read = False
    #: Let FdRange read replies move file data through a pipe (splice) instead
    #: of copying it; other replies are unaffected.
    enable_splice_write = True
    #: pyfuse3 compatibility: "." and ".." are looked up by the filesystem.
    supports_dot_lookup = True
    #: The filesystem clears S_ISUID/S_ISGID itself when a request says so
    #: (FUSE_HANDLE_KILLPRIV_V2), instead of the kernel sending a chmod with
    #: the writer's credentials first.  With it, ``write`` takes a fourth
    #: argument, the writer's RequestContext; ``ctx.kill_suidgid`` (write,
    #: open, create, setattr) and ``SetattrFields.kill_suidgid`` carry the
    #: request's flag; see ``mode_after_kill_suidgid``.  Off when ``write``
    #: cannot take the fourth argument; not with ``enable_splice_read``.  ``Mount.granted['handle_killpriv_v2']``
    #: tells whether the kernel and libfuse (>= 3.13) agreed.
    enable_killpriv = False

    def init(self): pass
    def destroy(self): pass

    def lookup(self, parent_inode, name, ctx): raise FUSEError(errno.ENOSYS)
    def forget(self, inode_list): pass
    def getattr(self, inode, ctx): raise FUSEError(errno.ENOSYS)
    def setattr(self, inode, attr, fields, fh, ctx): raise FUSEError(errno.ENOSYS)
    def readlink(self, inode, ctx): raise FUSEError(errno.ENOSYS)
    def mknod(self, parent_inode, name, mode, rdev, ctx): raise FUSEError(errno.ENOSYS)
    def mkdir(self, parent_inode, name, mode, ctx): raise FUSEError(errno.ENOSYS)
    def unlink(self, parent_inode, name, ctx): raise FUSEError(errno.ENOSYS)
    def rmdir(self, parent_inode, name, ctx): raise FUSEError(errno.ENOSYS)
    def symlink(self, parent_inode, name, target, ctx): raise FUSEError(errno.ENOSYS)
    def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        raise FUSEError(errno.ENOSYS)
    def link(self, inode, new_parent_inode, new_name, ctx): raise FUSEError(errno.ENOSYS)
    def open(self, inode, flags, ctx): raise FUSEError(errno.ENOSYS)
    def read(self, fh, off, size): raise FUSEError(errno.ENOSYS)
    def write(self, fh, off, buf): raise FUSEError(errno.ENOSYS)
    def flush(self, fh): raise FUSEError(errno.ENOSYS)
    def release(self, fh): raise FUSEError(errno.ENOSYS)
    def fsync(self, fh, datasync): raise FUSEError(errno.ENOSYS)
    def opendir(self, inode, ctx): raise FUSEError(errno.ENOSYS)
    def readdir(self, fh, start_id, token): raise FUSEError(errno.ENOSYS)
    def releasedir(self, fh): raise FUSEError(errno.ENOSYS)
    def fsyncdir(self, fh, datasync): raise FUSEError(errno.ENOSYS)
    def statfs(self, ctx): raise FUSEError(errno.ENOSYS)
    def setxattr(self, inode, name, value, ctx): raise FUSEError(errno.ENOSYS)
    def getxattr(self, inode, name, ctx): raise FUSEError(errno.ENOSYS)
    def listxattr(self, inode, ctx): raise FUSEError(errno.ENOSYS)
    def removexattr(self, inode, name, ctx): raise FUSEError(errno.ENOSYS)
    def access(self, inode, mode, ctx): raise FUSEError(errno.ENOSYS)
    def create(self, parent_inode, name, mode, flags, ctx): raise FUSEError(errno.ENOSYS)
    # lock = (l_type, start, end or -1, pid); getlk returns such a tuple
    def getlk(self, inode, fh, owner, lock, ctx): raise FUSEError(errno.ENOSYS)
    def setlk(self, inode, fh, owner, lock, sleep, ctx): raise FUSEError(errno.ENOSYS)
    def flock(self, inode, fh, owner, op, ctx): raise FUSEError(errno.ENOSYS)
    def bmap(self, inode, blocksize, idx): raise FUSEError(errno.ENOSYS)
    # returns output bytes, or (result, output bytes)
    def ioctl(self, inode, fh, cmd, arg, in_data, out_size, flags, ctx):
        raise FUSEError(errno.ENOSYS)
    # returns the ready events; keep ``handle`` (may be None) to notify later
    def poll(self, inode, fh, events, handle): raise FUSEError(errno.ENOSYS)
    def retrieve_reply(self, cookie, inode, offset, data): pass
    def fallocate(self, fh, mode, off, length): raise FUSEError(errno.ENOSYS)
    def copy_file_range(self, fh_in, off_in, fh_out, off_out, length, flags):
        raise FUSEError(errno.ENOSYS)
    def lseek(self, fh, off, whence): raise FUSEError(errno.ENOSYS)


def implemented_operations(ops) -> set[str]:
    """Names of the request handlers ``ops`` overrides (plus the pseudo-op
    "readdirplus" when it answers READDIRPLUS too)."""
    cls = type(ops)
    names = set()
    for name in OP_NAMES:
        impl = getattr(cls, name, None)
        if impl is None or getattr(Operations, name, None) is impl:
            continue
        names.add(name)
    if 'readdir' in names and getattr(ops, 'enable_readdirplus', True):
        names.add('readdirplus')
    return names


def mode_after_kill_suidgid(mode: int, file_gid: int, ctx, *, chown: bool = False) -> int:
    """The mode a file keeps when a request flagged ``kill_suidgid`` by
    ``ctx``'s caller changes it, by Linux's own rule (the VFS's
    setattr_should_drop_suidgid, which ext4 and tmpfs follow): S_ISUID goes;
    S_ISGID goes if the file is group-executable, or if the caller is not in
    the file's group ``file_gid``.  The kernel flags writes, truncates and
    O_TRUNC opens only for callers without CAP_FSETID, but every chown of a
    non-directory; for ``chown=True`` a caller with uid 0 counts as having
    CAP_FSETID (it keeps a non-executable S_ISGID, as on ext4)."""
    if stat.S_ISDIR(mode) or not mode & (stat.S_ISUID | stat.S_ISGID):
        return mode
    mode &= ~stat.S_ISUID
    if mode & stat.S_ISGID:
        exempt = (not mode & stat.S_IXGRP
                  and ((chown and ctx.uid == 0)
                       or ctx.gid == file_gid or file_gid in ctx.groups()))
        if not exempt:
            mode &= ~stat.S_ISGID
    return mode
