"""An in-memory read-write filesystem implementing all common operations.

Everything lives in a Python dict of inodes; nothing survives unmounting.
Inodes are freed once they have neither links, nor kernel lookups, nor open
handles; check_consistency() audits the table (tests call it after unmount).
"""
from __future__ import annotations

import asyncio
import collections
import errno
import functools
import os
import stat
import sys
import threading
import time

import fuseshim
from fuseshim import EntryAttributes, FileInfo, FUSEError, ROOT_INODE, StatvfsData
from fuseshim.examples import _cli

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
SEEK_DATA = 3
SEEK_HOLE = 4

#: Kernel cache timeout for entries and attributes (seconds).  The tree only
#: changes through the kernel, so the kernel's caches never go stale.
TIMEOUT = 1.0
BLOCK_SIZE = 4096
TOTAL_BLOCKS = 1 << 20          # what statfs reports: 4 GiB
TOTAL_INODES = 1 << 20
#: Files are dense in memory: none may grow beyond the capacity statfs
#: reports (EFBIG, as a filesystem with a smaller s_maxbytes answers).
MAX_FILE_SIZE = TOTAL_BLOCKS * BLOCK_SIZE
NAME_MAX = 255

#: READDIRPLUS entries count as lookups, so the filesystem must know which
#: kind of request a readdir() call answers.  The binding tells it through
#: ``token.plus``; where the token does not say, answer plain READDIR only
#: (counting entries the kernel did not count would leak inodes, and not
#: counting ones it did would free inodes the kernel still uses).
READDIRPLUS_USABLE = hasattr(fuseshim.ReaddirToken, 'plus')


class Inode:
    """One file, directory, symlink or special file."""
    __slots__ = ('ino', 'mode', 'uid', 'gid', 'rdev', 'nlink', 'lookups', 'opens',
                 'data', 'target', 'entries', 'parent', 'xattrs',
                 'atime_ns', 'mtime_ns', 'ctime_ns')

    def __init__(self, ino, mode, uid, gid, rdev=0):
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        # Directories hold one link for their own "."; names add the rest.
        self.nlink = 1 if stat.S_ISDIR(mode) else 0
        self.lookups = 0          # what the kernel will forget() eventually
        self.opens = 0            # open file and directory handles
        self.data = bytearray() if stat.S_ISREG(mode) else None
        self.target = None        # symlink target (bytes)
        self.entries = {} if stat.S_ISDIR(mode) else None   # name -> ino
        self.parent = None        # directories only
        self.xattrs = {}
        self.atime_ns = self.mtime_ns = self.ctime_ns = time.time_ns()

    @property
    def is_dir(self):
        return self.entries is not None

    @property
    def size(self):
        if self.data is not None:
            return len(self.data)
        if self.target is not None:
            return len(self.target)
        if self.entries is not None:
            return BLOCK_SIZE
        return 0

    def __repr__(self):
        return (f'<Inode {self.ino} mode={self.mode:o} nlink={self.nlink} '
                f'lookups={self.lookups} opens={self.opens}>')


class _DirHandle:
    __slots__ = ('ino', 'listing')

    def __init__(self, ino):
        self.ino = ino
        self.listing = None   # [(name, ino)] taken when reading from offset 0


def _op(fn):
    """Serialise the handler on the filesystem lock and count its calls."""
    name = fn.__name__

    @functools.wraps(fn)
    def handler(self, *args):
        with self._lock:
            self.calls[name] += 1
            return fn(self, *args)
    return handler


def _now():
    return time.time_ns()


class MemFS(fuseshim.Operations):
    """In-memory filesystem; the root belongs to the mounting user."""

    enable_readdirplus = READDIRPLUS_USABLE
    # S_ISUID/S_ISGID are cleared here, as ext4 clears them, when the kernel
    # flags a write, truncate, O_TRUNC open or chown (FUSE_HANDLE_KILLPRIV_V2);
    # where it cannot be negotiated the kernel sends a chmod first instead
    enable_killpriv = True
    #: the largest file (EFBIG beyond)
    max_file_size = MAX_FILE_SIZE

    def __init__(self, root_mode=0o755, uid=None, gid=None):
        self._lock = threading.RLock()
        self.inodes: dict[int, Inode] = {}
        self.files: dict[int, int] = {}            # fh -> ino
        self.dirs: dict[int, _DirHandle] = {}      # fh -> handle
        self.calls = collections.Counter()         # handler name -> calls
        self.anomalies: list[str] = []             # protocol violations seen
        self.destroyed = False
        self._next_ino = ROOT_INODE + 1
        self._next_fh = 1
        root = Inode(ROOT_INODE, stat.S_IFDIR | root_mode,
                     os.getuid() if uid is None else uid, os.getgid() if gid is None else gid)
        root.nlink = 2        # its "." and its name in the parent mount
        root.parent = ROOT_INODE
        self.inodes[ROOT_INODE] = root

    # ------------------------------------------------------------ helpers

    def _node(self, ino) -> Inode:
        try:
            return self.inodes[ino]
        except KeyError:
            raise FUSEError(errno.ENOENT) from None

    def _dir(self, ino) -> Inode:
        node = self._node(ino)
        if not node.is_dir:
            raise FUSEError(errno.ENOTDIR)
        return node

    def _file(self, fh) -> Inode:
        try:
            return self.inodes[self.files[fh]]
        except KeyError:
            raise FUSEError(errno.EBADF) from None

    def _attr(self, node: Inode) -> EntryAttributes:
        a = EntryAttributes()
        a.st_ino = node.ino
        a.st_mode = node.mode
        a.st_nlink = node.nlink
        a.st_uid = node.uid
        a.st_gid = node.gid
        a.st_rdev = node.rdev
        a.st_size = node.size
        a.st_blksize = BLOCK_SIZE
        a.st_blocks = self._blocks(node) * (BLOCK_SIZE // 512)
        a.st_atime_ns = node.atime_ns
        a.st_mtime_ns = node.mtime_ns
        a.st_ctime_ns = node.ctime_ns
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        return a

    @staticmethod
    def _blocks(node: Inode) -> int:
        return -(-node.size // BLOCK_SIZE) if node.data is not None else 0

    @staticmethod
    def _check_name(name):
        if len(name) > NAME_MAX:
            raise FUSEError(errno.ENAMETOOLONG)
        if not name or name in (b'.', b'..') or b'/' in name:
            raise FUSEError(errno.EINVAL)

    def _link(self, parent: Inode, name, child: Inode):
        parent.entries[name] = child.ino
        child.nlink += 1
        if child.is_dir:
            parent.nlink += 1         # the child's ".."
            child.parent = parent.ino

    def _unlink(self, parent: Inode, name) -> Inode:
        child = self.inodes[parent.entries.pop(name)]
        child.nlink -= 1
        if child.is_dir:
            parent.nlink -= 1
        return child

    def _maybe_free(self, node: Inode):
        if (node.ino != ROOT_INODE and node.nlink <= 0 and node.lookups <= 0
                and node.opens <= 0):
            del self.inodes[node.ino]

    def _new_node(self, parent: Inode, name, mode, ctx, rdev=0) -> Inode:
        """Create, link under ``parent`` and count the lookup the reply makes."""
        self._check_name(name)
        if name in parent.entries:
            raise FUSEError(errno.EEXIST)
        if parent.nlink == 0:         # removed while the kernel still had it
            raise FUSEError(errno.ENOENT)
        uid = ctx.uid if ctx is not None else os.getuid()
        gid = ctx.gid if ctx is not None else os.getgid()
        if parent.mode & stat.S_ISGID:    # BSD group semantics on setgid dirs
            gid = parent.gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        node = Inode(self._next_ino, mode, uid, gid, rdev)
        self._next_ino += 1
        self.inodes[node.ino] = node
        self._link(parent, name, node)
        node.lookups += 1
        parent.mtime_ns = parent.ctime_ns = node.ctime_ns
        return node

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _is_ancestor(self, anc: Inode, node: Inode) -> bool:
        """True when ``anc`` is ``node`` or one of its ancestors."""
        ino = node.ino
        while True:
            if ino == anc.ino:
                return True
            node = self.inodes.get(ino)
            if ino == ROOT_INODE or node is None:
                return False
            ino = node.parent

    def _grow_check(self, end):
        """Refuse sizes beyond max_file_size before allocating anything."""
        if end > self.max_file_size:
            raise FUSEError(errno.EFBIG)

    def _write_at(self, node: Inode, off, buf):
        self._grow_check(off + len(buf))
        data = node.data
        try:
            if off > len(data):
                data.extend(bytes(off - len(data)))
            data[off:off + len(buf)] = buf
        except MemoryError:
            raise FUSEError(errno.ENOSPC) from None

    # ------------------------------------------------------------ lifecycle

    def destroy(self):
        """Unmounted: the kernel forgot every inode and closed every handle."""
        with self._lock:
            self.destroyed = True
            self.files.clear()
            self.dirs.clear()
            for node in list(self.inodes.values()):
                node.lookups = 0
                node.opens = 0
                self._maybe_free(node)

    # ------------------------------------------------------------ names

    @_op
    def lookup(self, parent_inode, name, ctx=None):
        parent = self._dir(parent_inode)
        if name == b'.':
            node = parent
        elif name == b'..':
            node = self._node(parent.parent)
        else:
            if len(name) > NAME_MAX:
                raise FUSEError(errno.ENAMETOOLONG)
            try:
                node = self.inodes[parent.entries[name]]
            except KeyError:
                raise FUSEError(errno.ENOENT) from None
        node.lookups += 1
        return self._attr(node)

    @_op
    def forget(self, inode_list):
        for ino, nlookup in inode_list:
            node = self.inodes.get(ino)
            if node is None:
                self.anomalies.append(f'forget({ino}, {nlookup}) of an unknown inode')
                continue
            if nlookup > node.lookups:
                self.anomalies.append(f'forget({ino}, {nlookup}) exceeds its lookup '
                                      f'count {node.lookups}')
                node.lookups = 0
            else:
                node.lookups -= nlookup
            self._maybe_free(node)

    @_op
    def getattr(self, inode, ctx=None):
        return self._attr(self._node(inode))

    @staticmethod
    def _kill_suidgid(node: Inode, ctx, chown=False):
        """Clear S_ISUID/S_ISGID if the request says so (ctx.kill_suidgid)."""
        if ctx is not None and getattr(ctx, 'kill_suidgid', False):
            node.mode = fuseshim.mode_after_kill_suidgid(node.mode, node.gid, ctx, chown=chown)

    @_op
    def setattr(self, inode, attr, fields, fh, ctx):
        node = self._node(inode)
        now = _now()
        # a truncate or chown flagged kill_suidgid: judged by the group the
        # file has before the chown, as the kernel does
        self._kill_suidgid(node, ctx, chown=fields.update_uid or fields.update_gid)
        if fields.update_size:
            if node.data is None:
                raise FUSEError(errno.EISDIR if node.is_dir else errno.EINVAL)
            size = attr.st_size
            self._grow_check(size)
            if size < len(node.data):
                del node.data[size:]
            else:
                try:
                    node.data.extend(bytes(size - len(node.data)))
                except MemoryError:
                    raise FUSEError(errno.ENOSPC) from None
            node.mtime_ns = now
        if fields.update_mode:
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(attr.st_mode)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.atime_ns = attr.st_atime_ns
        if fields.update_mtime:
            node.mtime_ns = attr.st_mtime_ns
        node.ctime_ns = attr.st_ctime_ns if fields.update_ctime else now
        return self._attr(node)

    @_op
    def readlink(self, inode, ctx):
        node = self._node(inode)
        if node.target is None:
            raise FUSEError(errno.EINVAL)
        node.atime_ns = _now()
        return node.target

    @_op
    def mknod(self, parent_inode, name, mode, rdev, ctx):
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFREG
        if stat.S_IFMT(mode) == stat.S_IFDIR:
            raise FUSEError(errno.EINVAL)
        return self._attr(self._new_node(self._dir(parent_inode), name, mode, ctx, rdev))

    @_op
    def mkdir(self, parent_inode, name, mode, ctx):
        mode = stat.S_IFDIR | (mode & 0o7777)
        return self._attr(self._new_node(self._dir(parent_inode), name, mode, ctx))

    @_op
    def symlink(self, parent_inode, name, target, ctx):
        node = self._new_node(self._dir(parent_inode), name, stat.S_IFLNK | 0o777, ctx)
        node.target = bytes(target)
        return self._attr(node)

    @_op
    def unlink(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        ino = parent.entries.get(name)
        if ino is None:
            raise FUSEError(errno.ENOENT)
        if self.inodes[ino].is_dir:
            raise FUSEError(errno.EISDIR)
        node = self._unlink(parent, name)
        node.ctime_ns = parent.mtime_ns = parent.ctime_ns = _now()
        self._maybe_free(node)

    @_op
    def rmdir(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        if name == b'.':
            raise FUSEError(errno.EINVAL)
        if name == b'..':
            raise FUSEError(errno.ENOTEMPTY)
        ino = parent.entries.get(name)
        if ino is None:
            raise FUSEError(errno.ENOENT)
        node = self.inodes[ino]
        if not node.is_dir:
            raise FUSEError(errno.ENOTDIR)
        if node.entries:
            raise FUSEError(errno.ENOTEMPTY)
        self._unlink(parent, name)
        node.nlink -= 1               # its "." goes too
        node.ctime_ns = parent.mtime_ns = parent.ctime_ns = _now()
        self._maybe_free(node)

    @_op
    def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or \
                flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            raise FUSEError(errno.EINVAL)
        old_parent = self._dir(parent_inode_old)
        new_parent = self._dir(parent_inode_new)
        self._check_name(name_new)
        src_ino = old_parent.entries.get(name_old)
        if src_ino is None:
            raise FUSEError(errno.ENOENT)
        src = self.inodes[src_ino]
        dst_ino = new_parent.entries.get(name_new)
        dst = self.inodes[dst_ino] if dst_ino is not None else None
        now = _now()

        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise FUSEError(errno.ENOENT)
            if (src.is_dir and self._is_ancestor(src, new_parent)) or \
                    (dst.is_dir and self._is_ancestor(dst, old_parent)):
                raise FUSEError(errno.EINVAL)
            old_parent.entries[name_old] = dst.ino
            new_parent.entries[name_new] = src.ino
            if old_parent is not new_parent:
                if src.is_dir:
                    old_parent.nlink -= 1
                    new_parent.nlink += 1
                    src.parent = new_parent.ino
                if dst.is_dir:
                    new_parent.nlink -= 1
                    old_parent.nlink += 1
                    dst.parent = old_parent.ino
            src.ctime_ns = dst.ctime_ns = now
            old_parent.mtime_ns = old_parent.ctime_ns = now
            new_parent.mtime_ns = new_parent.ctime_ns = now
            return

        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise FUSEError(errno.EEXIST)
            if dst is src:            # two names of one inode: nothing to do
                return
            if src.is_dir:
                if not dst.is_dir:
                    raise FUSEError(errno.ENOTDIR)
                if dst.entries:
                    raise FUSEError(errno.ENOTEMPTY)
            elif dst.is_dir:
                raise FUSEError(errno.EISDIR)
        if src.is_dir and self._is_ancestor(src, new_parent):
            raise FUSEError(errno.EINVAL)
        if dst is not None:
            self._unlink(new_parent, name_new)
            if dst.is_dir:
                dst.nlink -= 1
            dst.ctime_ns = now
            self._maybe_free(dst)
        self._unlink(old_parent, name_old)
        self._link(new_parent, name_new, src)
        src.ctime_ns = now
        old_parent.mtime_ns = old_parent.ctime_ns = now
        new_parent.mtime_ns = new_parent.ctime_ns = now

    @_op
    def link(self, inode, new_parent_inode, new_name, ctx):
        node = self._node(inode)
        parent = self._dir(new_parent_inode)
        if node.is_dir:
            raise FUSEError(errno.EPERM)
        self._check_name(new_name)
        if new_name in parent.entries:
            raise FUSEError(errno.EEXIST)
        if parent.nlink == 0:
            raise FUSEError(errno.ENOENT)
        self._link(parent, new_name, node)
        node.lookups += 1
        node.ctime_ns = parent.mtime_ns = parent.ctime_ns = _now()
        return self._attr(node)

    # ------------------------------------------------------------ files

    def _open_node(self, node: Inode, flags, ctx=None) -> FileInfo:
        if node.is_dir:
            raise FUSEError(errno.EISDIR)
        if node.data is None:
            raise FUSEError(errno.EINVAL)   # the kernel opens special files itself
        if flags & os.O_TRUNC:
            node.data.clear()
            node.mtime_ns = node.ctime_ns = _now()
            self._kill_suidgid(node, ctx)
        fh = self._new_fh()
        self.files[fh] = node.ino
        node.opens += 1
        return FileInfo(fh=fh)

    @_op
    def open(self, inode, flags, ctx):
        return self._open_node(self._node(inode), flags, ctx)

    @_op
    def create(self, parent_inode, name, mode, flags, ctx):
        parent = self._dir(parent_inode)
        ino = parent.entries.get(name)
        if ino is not None:          # created meanwhile by someone else
            if flags & os.O_EXCL:
                raise FUSEError(errno.EEXIST)
            node = self.inodes[ino]
            fi = self._open_node(node, flags, ctx)
            node.lookups += 1
        else:
            node = self._new_node(parent, name, stat.S_IFREG | (mode & 0o7777), ctx)
            fi = self._open_node(node, 0)
        return fi, self._attr(node)

    @_op
    def read(self, fh, off, size):
        node = self._file(fh)
        node.atime_ns = _now()
        return bytes(node.data[off:off + size])

    @_op
    def write(self, fh, off, buf, ctx=None):
        node = self._file(fh)
        self._write_at(node, off, buf)
        self._kill_suidgid(node, ctx)
        node.mtime_ns = node.ctime_ns = _now()
        return len(buf)

    @_op
    def flush(self, fh):
        self._file(fh)

    @_op
    def release(self, fh):
        ino = self.files.pop(fh, None)
        if ino is None:
            if not self.destroyed:
                self.anomalies.append(f'release of unknown file handle {fh}')
            return
        node = self.inodes[ino]
        node.opens -= 1
        self._maybe_free(node)

    @_op
    def fsync(self, fh, datasync):
        self._file(fh)

    @_op
    def fallocate(self, fh, mode, off, length):
        node = self._file(fh)
        if off < 0 or length <= 0:
            raise FUSEError(errno.EINVAL)
        end = off + length
        size = len(node.data)
        if not mode & FALLOC_FL_KEEP_SIZE:
            self._grow_check(end)
        if mode & FALLOC_FL_PUNCH_HOLE:
            if mode != FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
                raise FUSEError(errno.EOPNOTSUPP)
            stop = min(end, size)
            if off < stop:
                node.data[off:stop] = bytes(stop - off)
        elif mode & FALLOC_FL_ZERO_RANGE:
            if mode & ~(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE):
                raise FUSEError(errno.EOPNOTSUPP)
            stop = min(end, size)
            if off < stop:
                node.data[off:stop] = bytes(stop - off)
            if not mode & FALLOC_FL_KEEP_SIZE and end > size:
                node.data.extend(bytes(end - max(size, stop)))
        elif mode & ~FALLOC_FL_KEEP_SIZE:
            raise FUSEError(errno.EOPNOTSUPP)
        elif not mode & FALLOC_FL_KEEP_SIZE and end > size:
            node.data.extend(bytes(end - size))
        node.mtime_ns = node.ctime_ns = _now()

    @_op
    def copy_file_range(self, fh_in, off_in, fh_out, off_out, length, flags):
        if flags:
            raise FUSEError(errno.EINVAL)
        src, dst = self._file(fh_in), self._file(fh_out)
        chunk = bytes(src.data[off_in:off_in + length])
        if chunk:
            self._write_at(dst, off_out, chunk)
            dst.mtime_ns = dst.ctime_ns = _now()
        return len(chunk)

    @_op
    def lseek(self, fh, off, whence):
        # No holes are kept: all of the file is data, the hole starts at EOF.
        size = len(self._file(fh).data)
        if whence not in (SEEK_DATA, SEEK_HOLE):
            raise FUSEError(errno.EINVAL)
        if off < 0 or off >= size:
            raise FUSEError(errno.ENXIO)
        return off if whence == SEEK_DATA else size

    # ------------------------------------------------------------ directories

    @_op
    def opendir(self, inode, ctx):
        node = self._dir(inode)
        fh = self._new_fh()
        self.dirs[fh] = _DirHandle(node.ino)
        node.opens += 1
        return fh

    @_op
    def readdir(self, fh, start_id, token):
        try:
            handle = self.dirs[fh]
        except KeyError:
            raise FUSEError(errno.EBADF) from None
        node = self.inodes[handle.ino]
        if start_id == 0 or handle.listing is None:
            # Offsets index this snapshot, so they stay valid however the
            # directory changes between calls (rewinding takes a new one).
            handle.listing = [(b'.', node.ino), (b'..', node.parent)]
            handle.listing += node.entries.items()
        plus = bool(getattr(token, 'plus', False))
        listing = handle.listing
        for i in range(start_id, len(listing)):
            name, ino = listing[i]
            child = self.inodes.get(ino)
            if child is None:         # gone since the snapshot
                continue
            if not fuseshim.readdir_reply(token, name, self._attr(child), i + 1):
                break
            if plus and name not in (b'.', b'..'):
                child.lookups += 1

    @_op
    def releasedir(self, fh):
        handle = self.dirs.pop(fh, None)
        if handle is None:
            if not self.destroyed:
                self.anomalies.append(f'releasedir of unknown handle {fh}')
            return
        node = self.inodes[handle.ino]
        node.opens -= 1
        self._maybe_free(node)

    @_op
    def fsyncdir(self, fh, datasync):
        if fh not in self.dirs:
            raise FUSEError(errno.EBADF)

    @_op
    def statfs(self, ctx):
        s = StatvfsData()
        used = sum(self._blocks(n) for n in self.inodes.values())
        s.f_bsize = s.f_frsize = BLOCK_SIZE
        s.f_blocks = TOTAL_BLOCKS
        s.f_bfree = s.f_bavail = max(0, TOTAL_BLOCKS - used)
        s.f_files = TOTAL_INODES
        s.f_ffree = s.f_favail = max(0, TOTAL_INODES - len(self.inodes))
        s.f_namemax = NAME_MAX
        return s

    # ------------------------------------------------------------ xattrs, access

    @_op
    def setxattr(self, inode, name, value, ctx):
        # The request's XATTR_CREATE/XATTR_REPLACE flags are not passed on
        # (pyfuse3's signature), so this always creates or replaces.
        node = self._node(inode)
        if not name:
            raise FUSEError(errno.EINVAL)
        node.xattrs[bytes(name)] = bytes(value)
        node.ctime_ns = _now()

    @_op
    def getxattr(self, inode, name, ctx):
        try:
            return self._node(inode).xattrs[name]
        except KeyError:
            raise FUSEError(errno.ENODATA) from None

    @_op
    def listxattr(self, inode, ctx):
        return list(self._node(inode).xattrs)

    @_op
    def removexattr(self, inode, name, ctx):
        node = self._node(inode)
        try:
            del node.xattrs[name]
        except KeyError:
            raise FUSEError(errno.ENODATA) from None
        node.ctime_ns = _now()

    @_op
    def access(self, inode, mode, ctx):
        node = self._node(inode)
        if mode == os.F_OK:
            return True
        uid = ctx.uid if ctx is not None else 0
        if uid == 0:
            # root may do anything, but execute only what someone may execute
            return not (mode & os.X_OK) or node.is_dir or bool(node.mode & 0o111)
        if uid == node.uid:
            bits = (node.mode >> 6) & 7
        elif node.gid == ctx.gid or node.gid in ctx.groups():
            bits = (node.mode >> 3) & 7
        else:
            bits = node.mode & 7
        return (mode & 7) & ~bits == 0

    # ------------------------------------------------------------ auditing

    def check_consistency(self) -> list[str]:
        """Audit the inode table; returns the problems found (empty: fine).

        Checks link counts against directory entries, parent pointers,
        reachability, handle bookkeeping, negative counters, protocol
        anomalies seen (e.g. forgets beyond the lookup count) and inodes that
        should have been freed (no links, lookups or open handles left)."""
        with self._lock:
            problems = list(self.anomalies)
            inodes = self.inodes
            if ROOT_INODE not in inodes:
                return problems + ['the root inode is missing']
            names = collections.Counter()
            subdirs = collections.Counter()
            for node in inodes.values():
                if not node.is_dir:
                    continue
                for name, ino in node.entries.items():
                    child = inodes.get(ino)
                    if child is None:
                        problems.append(f'directory {node.ino}: entry {name!r} points to '
                                        f'missing inode {ino}')
                        continue
                    if not name or name in (b'.', b'..') or b'/' in name:
                        problems.append(f'directory {node.ino}: bad entry name {name!r}')
                    names[ino] += 1
                    if child.is_dir:
                        subdirs[node.ino] += 1
                        if child.parent != node.ino:
                            problems.append(f'directory {ino} ({name!r}) has parent '
                                            f'{child.parent}, but is listed in {node.ino}')
            opens = collections.Counter(self.files.values())
            opens.update(h.ino for h in self.dirs.values())
            for fh, ino in list(self.files.items()) + [(fh, h.ino) for fh, h in self.dirs.items()]:
                if ino not in inodes:
                    problems.append(f'handle {fh} refers to missing inode {ino}')
            for ino, node in inodes.items():
                kinds = (node.data is not None, node.target is not None, node.is_dir)
                if kinds != (stat.S_ISREG(node.mode), stat.S_ISLNK(node.mode),
                             stat.S_ISDIR(node.mode)):
                    problems.append(f'inode {ino}: contents do not fit mode {node.mode:o}')
                if node.is_dir:
                    if names[ino] > 1:
                        problems.append(f'directory {ino} has {names[ino]} names')
                    linked = names[ino] + (1 if ino == ROOT_INODE else 0)
                    expected = (linked + 1 + subdirs[ino]) if linked else 0
                    if not linked and node.entries:
                        problems.append(f'removed directory {ino} still has entries')
                else:
                    expected = names[ino]
                if node.nlink != expected:
                    problems.append(f'inode {ino}: st_nlink {node.nlink}, but {expected} '
                                    'links exist')
                if node.lookups < 0:
                    problems.append(f'inode {ino}: negative lookup count {node.lookups}')
                if node.opens != opens[ino]:
                    problems.append(f'inode {ino}: open count {node.opens}, but '
                                    f'{opens[ino]} handles refer to it')
                if ino != ROOT_INODE and node.nlink <= 0 and node.lookups <= 0 \
                        and node.opens <= 0:
                    problems.append(f'inode {ino}: no links, lookups or handles left, '
                                    'but still present')
                if ino >= self._next_ino:
                    problems.append(f'inode {ino} beyond the allocator ({self._next_ino})')
            seen, todo = {ROOT_INODE}, [ROOT_INODE]
            while todo:
                for ino in inodes[todo.pop()].entries.values():
                    child = inodes.get(ino)
                    if child is not None and ino not in seen:
                        seen.add(ino)
                        if child.is_dir:
                            todo.append(ino)
            for ino, node in inodes.items():
                if node.nlink > 0 and ino not in seen:
                    problems.append(f'inode {ino} has links but is unreachable from the root')
            return problems

    def lookup_counts(self) -> dict[int, int]:
        """inode -> lookup count, for every inode the kernel may still know."""
        with self._lock:
            return {ino: n.lookups for ino, n in self.inodes.items() if n.lookups}


# Every request handler MemFS implements (for the async variant).
HANDLERS = ('lookup', 'forget', 'getattr', 'setattr', 'readlink', 'mknod', 'mkdir',
            'unlink', 'rmdir', 'symlink', 'rename', 'link', 'open', 'create', 'read',
            'write', 'flush', 'release', 'fsync', 'fallocate', 'copy_file_range', 'lseek',
            'opendir', 'readdir', 'releasedir', 'fsyncdir', 'statfs', 'setxattr',
            'getxattr', 'listxattr', 'removexattr', 'access', 'destroy')


def async_variant(cls, names=HANDLERS):
    """A subclass of ``cls`` whose handlers ``names`` are ``async def``
    coroutines running the synchronous ones (same behaviour, served on the
    event loop instead of worker threads)."""
    def wrap(name):
        sync = getattr(cls, name)

        async def handler(self, *args):
            await asyncio.sleep(0)    # yield once, as real async handlers do
            return sync(self, *args)
        handler.__name__ = name
        handler.__qualname__ = f'Async{cls.__name__}.{name}'
        handler.__doc__ = sync.__doc__
        return handler
    return type(f'Async{cls.__name__}', (cls,),
                {'__doc__': f'{cls.__name__} with async def handlers.',
                 '__module__': cls.__module__, **{n: wrap(n) for n in names}})


AsyncMemFS = async_variant(MemFS)


def main(argv=None) -> int:
    p = _cli.parser(__doc__)
    p.add_argument('--async', dest='use_async', action='store_true',
                   help='serve with async def handlers (on an asyncio loop)')
    args = p.parse_args(argv)
    return _cli.run(AsyncMemFS() if args.use_async else MemFS(), args)


if __name__ == '__main__':
    sys.exit(main())
