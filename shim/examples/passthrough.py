"""Mirror a directory: python -m fuseshim.examples.passthrough SRC MNT

Inode-based, like libfuse's passthrough_ll: each inode the kernel knows is an
O_PATH file descriptor of the backing file (one per backing inode, so hard
links share one kernel inode), dropped when the kernel forgets it.  Reads,
writes, fallocate, copy_file_range and lseek go to real file descriptors of
the backing files; locks are left to the kernel.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import errno
import functools
import os
import stat
import sys
import threading

import fuseshim
from fuseshim import EntryAttributes, FileInfo, FUSEError, ROOT_INODE, StatvfsData
from fuseshim.examples import _cli

TIMEOUT = 1.0        # kernel cache timeout for entries and attributes
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
UTIME_OMIT = (1 << 30) - 2
# As in memfs: answer READDIRPLUS only when the binding says which requests
# are READDIRPLUS (their entries count as lookups, plain READDIR ones do not).
READDIRPLUS_USABLE = hasattr(fuseshim.ReaddirToken, 'plus')

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_libc.fchownat.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                           ctypes.c_int)


class _Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


_libc.utimensat.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec),
                            ctypes.c_int)


def _check(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def _proc(fd) -> str:
    return f'/proc/self/fd/{fd}'


class _Inode:
    __slots__ = ('fd', 'key', 'lookups', 'is_symlink')

    def __init__(self, fd, key, is_symlink):
        self.fd = fd               # O_PATH | O_NOFOLLOW
        self.key = key             # (st_dev, st_ino) of the backing inode
        self.lookups = 0
        self.is_symlink = is_symlink


class _DirHandle:
    __slots__ = ('fd', 'ino', 'listing')

    def __init__(self, fd, ino):
        self.fd = fd
        self.ino = ino
        self.listing = None        # [(name, attr or None)] read at offset 0


def _op(fn):
    """Count the call and answer OSErrors from the backing fs with their errno."""
    name = fn.__name__

    @functools.wraps(fn)
    def handler(self, *args):
        self.calls[name] += 1
        try:
            return fn(self, *args)
        except OSError as e:
            raise FUSEError(e.errno or errno.EIO) from None
    return handler


class PassthroughFS(fuseshim.Operations):
    enable_readdirplus = READDIRPLUS_USABLE

    def __init__(self, source):
        self.source = os.path.realpath(source)
        fd = os.open(self.source, os.O_PATH | os.O_DIRECTORY)
        st = os.fstat(fd)
        root = _Inode(fd, (st.st_dev, st.st_ino), False)
        self._lock = threading.Lock()
        self._inodes: dict[int, _Inode] = {ROOT_INODE: root}
        self._by_key: dict[tuple, int] = {root.key: ROOT_INODE}
        self._next_ino = ROOT_INODE + 1
        self._dirs: dict[int, _DirHandle] = {}
        self._next_dir_fh = 1
        self._files: set[int] = set()      # open backing fds (the file handles)
        self.calls = collections.Counter()
        self.anomalies: list[str] = []

    # ------------------------------------------------------------ inode table

    def _fd(self, ino) -> int:
        try:
            return self._inodes[ino].fd
        except KeyError:
            raise FUSEError(errno.ESTALE) from None

    def _attr(self, ino, st) -> EntryAttributes:
        a = EntryAttributes.from_stat(st, entry_timeout=TIMEOUT, attr_timeout=TIMEOUT)
        a.st_ino = ino
        return a

    def _lookup(self, parent_inode, name) -> EntryAttributes:
        """Look ``name`` up in the backing directory and count one lookup."""
        if name == b'.' or (name == b'..' and parent_inode == ROOT_INODE):
            with self._lock:
                node = self._inodes[parent_inode]
                node.lookups += 1
            return self._attr(parent_inode, os.fstat(node.fd))
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=self._fd(parent_inode))
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        key = (st.st_dev, st.st_ino)
        with self._lock:
            ino = self._by_key.get(key)
            if ino is None:
                ino = self._next_ino
                self._next_ino += 1
                node = self._inodes[ino] = _Inode(fd, key, stat.S_ISLNK(st.st_mode))
                self._by_key[key] = ino
                fd = -1
            else:
                node = self._inodes[ino]
            node.lookups += 1
        if fd >= 0:
            os.close(fd)
        return self._attr(ino, st)

    def _forget_one(self, ino, nlookup):
        """Drop ``nlookup`` lookups (called with the lock held)."""
        node = self._inodes.get(ino)
        if node is None:
            self.anomalies.append(f'forget({ino}, {nlookup}) of an unknown inode')
            return
        if nlookup > node.lookups:
            self.anomalies.append(f'forget({ino}, {nlookup}) exceeds its lookup count '
                                  f'{node.lookups}')
            nlookup = node.lookups
        node.lookups -= nlookup
        if node.lookups == 0 and ino != ROOT_INODE:
            del self._inodes[ino]
            del self._by_key[node.key]
            os.close(node.fd)

    def destroy(self):
        """Unmounted: the kernel forgot every inode and closed every file
        (RELEASE requests still queued at unmount are dropped by the kernel),
        so close all backing fds but the root's."""
        with self._lock:
            for fd in self._files:
                os.close(fd)
            self._files.clear()
            for ino, node in list(self._inodes.items()):
                if ino != ROOT_INODE:
                    del self._inodes[ino]
                    del self._by_key[node.key]
                    os.close(node.fd)
            self._inodes[ROOT_INODE].lookups = 0
            for h in self._dirs.values():
                os.close(h.fd)
            self._dirs.clear()

    def lookup_counts(self) -> dict[int, int]:
        """inode -> lookup count of every inode held open for the kernel."""
        with self._lock:
            return {ino: n.lookups for ino, n in self._inodes.items() if n.lookups}

    def check_consistency(self) -> list[str]:
        """Problems in the inode table (empty: fine)."""
        with self._lock:
            problems = list(self.anomalies)
            if len(self._by_key) != len(self._inodes):
                problems.append(f'{len(self._inodes)} inodes but {len(self._by_key)} keys')
            for ino, node in self._inodes.items():
                if self._by_key.get(node.key) != ino:
                    problems.append(f'inode {ino}: key {node.key} maps elsewhere')
                if node.lookups < 0:
                    problems.append(f'inode {ino}: negative lookup count')
                if ino != ROOT_INODE and node.lookups == 0:
                    problems.append(f'inode {ino}: no lookups left, but still open')
                try:
                    st = os.fstat(node.fd)
                except OSError as e:
                    problems.append(f'inode {ino}: fd {node.fd} is unusable: {e}')
                else:
                    if (st.st_dev, st.st_ino) != node.key:
                        problems.append(f'inode {ino}: fd {node.fd} is another file now')
            return problems

    # ------------------------------------------------------------ names

    @_op
    def lookup(self, parent_inode, name, ctx=None):
        return self._lookup(parent_inode, name)

    @_op
    def forget(self, inode_list):
        with self._lock:
            for ino, nlookup in inode_list:
                self._forget_one(ino, nlookup)

    @_op
    def getattr(self, inode, ctx=None):
        return self._attr(inode, os.fstat(self._fd(inode)))

    @_op
    def setattr(self, inode, attr, fields, fh, ctx):
        with self._lock:
            node = self._inodes.get(inode)
        if node is None:
            raise FUSEError(errno.ESTALE)
        path = _proc(node.fd)
        if fields.update_mode:
            if node.is_symlink:
                raise FUSEError(errno.EOPNOTSUPP)
            mode = stat.S_IMODE(attr.st_mode)
            if fh is not None:
                os.fchmod(fh, mode)
            else:
                os.chmod(path, mode)
        if fields.update_uid or fields.update_gid:
            uid = attr.st_uid if fields.update_uid else 0xffffffff
            gid = attr.st_gid if fields.update_gid else 0xffffffff
            _check(_libc.fchownat(node.fd, b'', uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
        if fields.update_size:
            if fh is not None:
                os.ftruncate(fh, attr.st_size)
            else:
                os.truncate(path, attr.st_size)
        if fields.update_atime or fields.update_mtime:
            ts = (_Timespec * 2)()
            for i, (update, ns) in enumerate(((fields.update_atime, attr.st_atime_ns),
                                              (fields.update_mtime, attr.st_mtime_ns))):
                if update:
                    ts[i].tv_sec, ts[i].tv_nsec = divmod(ns, 1_000_000_000)
                else:
                    ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_OMIT
            if node.is_symlink:
                rc = _libc.utimensat(node.fd, b'', ts, AT_EMPTY_PATH)
                if rc < 0 and ctypes.get_errno() == errno.EINVAL:
                    raise FUSEError(errno.EPERM)   # no race-free way on old kernels
            else:
                rc = _libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0)
            _check(rc)
        return self._attr(inode, os.fstat(node.fd))

    @_op
    def readlink(self, inode, ctx):
        return os.readlink(b'', dir_fd=self._fd(inode))

    @_op
    def mknod(self, parent_inode, name, mode, rdev, ctx):
        os.mknod(name, mode, rdev, dir_fd=self._fd(parent_inode))
        return self._lookup(parent_inode, name)

    @_op
    def mkdir(self, parent_inode, name, mode, ctx):
        os.mkdir(name, mode, dir_fd=self._fd(parent_inode))
        return self._lookup(parent_inode, name)

    @_op
    def symlink(self, parent_inode, name, target, ctx):
        os.symlink(target, name, dir_fd=self._fd(parent_inode))
        return self._lookup(parent_inode, name)

    @_op
    def unlink(self, parent_inode, name, ctx):
        os.unlink(name, dir_fd=self._fd(parent_inode))

    @_op
    def rmdir(self, parent_inode, name, ctx):
        os.rmdir(name, dir_fd=self._fd(parent_inode))

    @_op
    def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        _check(_libc.renameat2(self._fd(parent_inode_old), name_old,
                               self._fd(parent_inode_new), name_new, flags))

    @_op
    def link(self, inode, new_parent_inode, new_name, ctx):
        os.link(os.fsencode(_proc(self._fd(inode))), new_name,
                dst_dir_fd=self._fd(new_parent_inode), follow_symlinks=True)
        return self._lookup(new_parent_inode, new_name)

    # ------------------------------------------------------------ files

    @_op
    def open(self, inode, flags, ctx):
        fd = os.open(_proc(self._fd(inode)), flags & ~(os.O_NOFOLLOW | os.O_CREAT | os.O_EXCL))
        with self._lock:
            self._files.add(fd)
        return FileInfo(fh=fd, keep_cache=False)

    @_op
    def create(self, parent_inode, name, mode, flags, ctx):
        fd = os.open(name, (flags | os.O_CREAT) & ~os.O_NOFOLLOW, mode,
                     dir_fd=self._fd(parent_inode))
        try:
            attr = self._lookup(parent_inode, name)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            self._files.add(fd)
        return FileInfo(fh=fd, keep_cache=False), attr

    @_op
    def read(self, fh, off, size):
        return os.pread(fh, size, off)

    @_op
    def write(self, fh, off, buf):
        return os.pwrite(fh, buf, off)

    @_op
    def flush(self, fh):
        # close() of a duplicate is what close(2) on the backing file would do
        os.close(os.dup(fh))

    @_op
    def release(self, fh):
        with self._lock:
            if fh not in self._files:
                raise FUSEError(errno.EBADF)
            self._files.discard(fh)
        os.close(fh)

    @_op
    def fsync(self, fh, datasync):
        (os.fdatasync if datasync else os.fsync)(fh)

    @_op
    def fallocate(self, fh, mode, off, length):
        _check(_libc.fallocate(fh, mode, off, length))

    @_op
    def copy_file_range(self, fh_in, off_in, fh_out, off_out, length, flags):
        if flags:
            raise FUSEError(errno.EINVAL)
        return os.copy_file_range(fh_in, fh_out, length, off_in, off_out)

    @_op
    def lseek(self, fh, off, whence):
        return os.lseek(fh, off, whence)

    # ------------------------------------------------------------ directories

    @_op
    def opendir(self, inode, ctx):
        fd = os.open('.', os.O_RDONLY | os.O_DIRECTORY, dir_fd=self._fd(inode))
        with self._lock:
            fh = self._next_dir_fh
            self._next_dir_fh += 1
            self._dirs[fh] = _DirHandle(fd, inode)
        return fh

    def _listing(self, h: _DirHandle):
        """Snapshot of the backing directory: [(name, plain-readdir attr)]."""
        def plain(ino_, mode):
            a = EntryAttributes()
            a.st_ino = ino_
            a.st_mode = mode
            return a
        with self._lock:
            known = dict(self._by_key)
        dev = os.fstat(h.fd).st_dev
        parent = os.stat('..', dir_fd=h.fd)
        listing = [(b'.', plain(h.ino, stat.S_IFDIR)),
                   (b'..', plain(known.get((parent.st_dev, parent.st_ino), parent.st_ino),
                                 stat.S_IFDIR))]
        with os.scandir(os.fsencode(_proc(h.fd))) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    mode = stat.S_IFDIR
                elif e.is_file(follow_symlinks=False):
                    mode = stat.S_IFREG
                elif e.is_symlink():
                    mode = stat.S_IFLNK
                else:
                    try:
                        mode = stat.S_IFMT(e.stat(follow_symlinks=False).st_mode)
                    except OSError:
                        continue
                # d_ino: ours where the kernel knows the inode, else the backing one
                listing.append((e.name, plain(known.get((dev, e.inode()), e.inode()), mode)))
        return listing

    @_op
    def readdir(self, fh, start_id, token):
        h = self._dirs.get(fh)
        if h is None:
            raise FUSEError(errno.EBADF)
        if start_id == 0 or h.listing is None:
            h.listing = self._listing(h)   # offsets index this snapshot
        plus = bool(getattr(token, 'plus', False))
        listing = h.listing
        for i in range(start_id, len(listing)):
            name, attr = listing[i]
            if plus and name not in (b'.', b'..'):
                try:
                    attr = self._lookup(h.ino, name)
                except OSError:
                    continue               # removed meanwhile
                if not fuseshim.readdir_reply(token, name, attr, i + 1):
                    with self._lock:
                        self._forget_one(attr.st_ino, 1)   # not sent after all
                    break
            elif not fuseshim.readdir_reply(token, name, attr, i + 1):
                break

    @_op
    def releasedir(self, fh):
        with self._lock:
            h = self._dirs.pop(fh, None)
        if h is not None:
            os.close(h.fd)

    @_op
    def fsyncdir(self, fh, datasync):
        h = self._dirs.get(fh)
        if h is None:
            raise FUSEError(errno.EBADF)
        (os.fdatasync if datasync else os.fsync)(h.fd)

    @_op
    def statfs(self, ctx):
        return StatvfsData.from_statvfs(os.statvfs(self._fd(ROOT_INODE)))

    # ------------------------------------------------------------ xattrs, access

    @_op
    def setxattr(self, inode, name, value, ctx):
        # XATTR_CREATE/XATTR_REPLACE are not passed on by the binding.
        os.setxattr(_proc(self._fd(inode)), name, value)

    @_op
    def getxattr(self, inode, name, ctx):
        return os.getxattr(_proc(self._fd(inode)), name)

    @_op
    def listxattr(self, inode, ctx):
        return [os.fsencode(n) for n in os.listxattr(_proc(self._fd(inode)))]

    @_op
    def removexattr(self, inode, name, ctx):
        os.removexattr(_proc(self._fd(inode)), name)

    @_op
    def access(self, inode, mode, ctx):
        return os.access(_proc(self._fd(inode)), mode)


HANDLERS = ('lookup', 'forget', 'getattr', 'setattr', 'readlink', 'mknod', 'mkdir',
            'unlink', 'rmdir', 'symlink', 'rename', 'link', 'open', 'create', 'read',
            'write', 'flush', 'release', 'fsync', 'fallocate', 'copy_file_range', 'lseek',
            'opendir', 'readdir', 'releasedir', 'fsyncdir', 'statfs', 'setxattr',
            'getxattr', 'listxattr', 'removexattr', 'access', 'destroy')


def async_variant(cls, names=HANDLERS):
    """A subclass of ``cls`` whose handlers are ``async def`` coroutines
    running the synchronous ones (same behaviour, served on the event loop)."""
    def wrap(name):
        sync = getattr(cls, name)

        async def handler(self, *args):
            await asyncio.sleep(0)
            return sync(self, *args)
        handler.__name__ = name
        handler.__qualname__ = f'Async{cls.__name__}.{name}'
        handler.__doc__ = sync.__doc__
        return handler
    return type(f'Async{cls.__name__}', (cls,),
                {'__doc__': f'{cls.__name__} with async def handlers.',
                 '__module__': cls.__module__, **{n: wrap(n) for n in names}})


AsyncPassthroughFS = async_variant(PassthroughFS)


def main(argv=None) -> int:
    src = argparse.ArgumentParser(add_help=False)
    src.add_argument('source', metavar='SRC', help='directory to mirror')
    p = argparse.ArgumentParser(description=__doc__, add_help=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[src, _cli.parser(__doc__)])
    p.add_argument('--async', dest='use_async', action='store_true',
                   help='serve with async def handlers (on an asyncio loop)')
    args = p.parse_args(argv)
    if not os.path.isdir(args.source):
        p.error(f'{args.source}: not a directory')
    cls = AsyncPassthroughFS if args.use_async else PassthroughFS
    return _cli.run(cls(args.source), args)


if __name__ == '__main__':
    sys.exit(main())
