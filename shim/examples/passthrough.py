"""Mirror a directory: python -m fuseshim.examples.passthrough SRC MNT

Inode-based, like libfuse's passthrough_ll: each inode the kernel knows is an
O_PATH file descriptor of the backing file (one per backing inode, so hard
links share one kernel inode), dropped when the kernel forgets it.  Reads,
writes, fallocate, copy_file_range and lseek go to real file descriptors of
the backing files; locks are left to the kernel.

Unlike passthrough_ll, a daemon running as root performs every request that
names or creates files with the caller's credentials: fsuid, fsgid and
supplementary groups are switched for the worker thread only (raw
setfsuid/setfsgid/setgroups system calls; glibc's wrappers change every
thread of the process), and restored afterwards.  So files created by other
users belong to them, and the backing filesystem applies its own permission,
sticky-bit and ownership rules exactly as for a local caller.  Mount with
``-o allow_other,default_permissions`` to share the mount.  Without
default_permissions two things are never asked of the daemon, so nothing
checks them: search permission on directories whose entries the kernel has
cached, and opening FIFOs -- the kernel opens those itself, so a FIFO the
caller may not open opens anyway (see
docs/reliability.md).  S_ISUID/S_ISGID go when another user writes,
truncates or chowns a file, as on ext4 (FUSE_HANDLE_KILLPRIV_V2, libfuse >=
3.13).  The async variant runs the requests acting as the caller on a small
thread pool of its own, so the credentials of the event loop's thread never
change.

``--fast-getattr`` (``fast_getattr=True``) declares each inode's O_PATH fd in
the lookup replies (EntryAttributes.path_fd): fuseshim then answers GETATTR
with fstatat() in C and getattr() runs only for inodes it does not know (the
root).  Off by default; nothing else changes.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import ctypes
import errno
import functools
import logging
import mmap
import os
import platform
import stat
import sys
import threading
import time

import fuseshim
from fuseshim import EntryAttributes, FdRange, FileInfo, FUSEError, ROOT_INODE, StatvfsData
from fuseshim.examples import _cli

TIMEOUT = 1.0        # kernel cache timeout for entries and attributes
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
FMODE_EXEC = 0o40     # __FMODE_EXEC: the open is execve()'s
UTIME_NOW = (1 << 30) - 1
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


# --------------------------------------------------------------- credentials

log = logging.getLogger('fuseshim.examples.passthrough')

#: (setgroups, setfsuid, setfsgid) system call numbers per architecture.
_CRED_SYSCALLS = {
    'x86_64': (116, 122, 123),
    'aarch64': (159, 151, 152),     # the asm-generic table
    'riscv64': (159, 151, 152),
    'loongarch64': (159, 151, 152),
    'ppc64le': (81, 138, 139),
    's390x': (206, 215, 216),
}
_NR = _CRED_SYSCALLS.get(platform.machine())
_libc.syscall.restype = ctypes.c_long
CLONE_FS = 0x200
_libc.unshare.argtypes = (ctypes.c_int,)


def _syscall(nr, *args):
    rc = _libc.syscall(ctypes.c_long(nr), *args)
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def _set_groups(groups):
    arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    _syscall(_NR[0], ctypes.c_long(len(groups)), arr)


def _set_fsid(nr, value):
    """setfsuid/setfsgid report no errors: read the value back to check."""
    _libc.syscall(ctypes.c_long(nr), ctypes.c_long(value))
    now = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(-1))
    if now != value:
        raise PermissionError(errno.EPERM, f'could not switch to fs id {value}')


def thread_fs_ids(tid=None) -> tuple[int, int, list[int]]:
    """(fsuid, fsgid, supplementary groups) of a thread of this process
    (default: the calling one)."""
    tid = threading.get_native_id() if tid is None else tid
    with open(f'/proc/self/task/{tid}/status') as f:
        fields = dict(line.split(':', 1) for line in f if ':' in line)
    return (int(fields['Uid'].split()[3]), int(fields['Gid'].split()[3]),
            [int(g) for g in fields['Groups'].split()])


class _Thread(threading.local):
    private_fs = None      # unshare(CLONE_FS) done (True), failed (False), not tried (None)


_thread = _Thread()


def _private_umask() -> bool:
    """Give this thread its own umask of 0 (once): the kernel has applied the
    caller's umask to the modes it sends already (or the ACL rules did), so
    the daemon must not apply its own on top."""
    if _thread.private_fs is None:
        if _libc.unshare(CLONE_FS) == 0:
            os.umask(0)
            _thread.private_fs = True
        else:
            _thread.private_fs = False
    return _thread.private_fs


def can_act_as_caller() -> bool:
    """Whether per-thread credentials can be used here (root, known arch)."""
    return _NR is not None and os.geteuid() == 0


class _AsCaller:
    """Context manager: the calling worker thread takes the request's fsuid,
    fsgid and supplementary groups, and gives them back on exit."""
    __slots__ = ('ctx', 'switched')

    def __init__(self, ctx):
        self.ctx = ctx
        self.switched = False

    def __enter__(self):
        ctx = self.ctx
        if ctx.uid == 0 and ctx.gid == os.getegid():
            return self             # root: nothing would change
        groups = ctx.groups()
        # fsuid last: leaving 0 drops the filesystem capabilities
        # (CAP_DAC_OVERRIDE, CAP_CHOWN, ...) from the thread's effective set;
        # CAP_SETGID stays, so groups and fsgid could come in any order
        _set_groups(groups)
        self.switched = True
        try:
            _set_fsid(_NR[2], ctx.gid)
            _set_fsid(_NR[1], ctx.uid)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if not self.switched:
            return
        # fsuid 0 first: it brings back the capabilities the later calls need
        _libc.syscall(ctypes.c_long(_NR[1]), ctypes.c_long(0))
        _libc.syscall(ctypes.c_long(_NR[2]), ctypes.c_long(os.getegid()))
        _set_groups(_DAEMON_GROUPS)
        if _libc.syscall(ctypes.c_long(_NR[1]), ctypes.c_long(-1)) != 0:
            # never serve another request with someone else's credentials
            log.critical('passthrough: could not restore fsuid 0; exiting')
            os._exit(70)


_DAEMON_GROUPS = os.getgroups()


def _as_caller(fn):
    """Run the handler (whose last argument is the RequestContext) with the
    caller's credentials when the filesystem acts as the caller."""
    @functools.wraps(fn)
    def handler(self, *args):
        ctx = args[-1] if args else None
        if not self.act_as_caller or ctx is None:
            return fn(self, *args)
        _private_umask()
        with _AsCaller(ctx):
            return fn(self, *args)
    handler.as_caller = True
    return handler


def _check(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def _backing_flags(flags) -> int:
    """Open flags for a backing descriptor: without O_APPEND.  The kernel
    places every WRITE itself -- an append at its i_size, under the inode
    lock -- and also writes a shared mapping's dirty pages back through *any*
    writable handle of the file, an O_APPEND one included.  pwrite() on an
    O_APPEND descriptor ignores its offset (Linux appends), so those pages
    would land at end of file instead of in place.  (Appends racing with
    writers outside the mount lose atomicity, as in libfuse's passthrough_ll
    with the write-back cache.)"""
    return flags & ~os.O_APPEND


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
        self.listing = None        # fuseshim.DirListing read at offset 0


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
    """Mirror ``source``.  ``act_as_caller`` (default: when running as root
    on a supported architecture) performs requests with the caller's
    credentials; False acts as the daemon's own user, as passthrough_ll."""
    enable_readdirplus = READDIRPLUS_USABLE
    # FUSE_HANDLE_KILLPRIV_V2: without it the kernel drops S_ISUID/S_ISGID
    # before another user's write or truncate with a chmod sent under that
    # user's credentials, which the backing filesystem refuses (EPERM: not
    # the owner) -- the write failed where ext4 lets it succeed.  With it the
    # kernel flags the request instead, and the bits are cleared here
    enable_killpriv = True

    def __init__(self, source, act_as_caller=None, fast_getattr=False):
        if act_as_caller is None:
            act_as_caller = can_act_as_caller()
        elif act_as_caller and not can_act_as_caller():
            raise ValueError('acting as the caller needs root and a known architecture '
                             f'(this is {platform.machine()}, euid {os.geteuid()})')
        self.act_as_caller = act_as_caller
        # declare each inode's O_PATH fd in the lookup replies
        # (EntryAttributes.path_fd): fuseshim answers GETATTR with fstatat()
        # in C, getattr() is called only for inodes it does not know.  Sound
        # here: the attributes are the backing file's, and the fd stays open
        # until forget() drops the last lookup (fuseshim forgets the fd first)
        self.fast_getattr = fast_getattr
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
        # ... of them opened with O_DIRECT, each with a second descriptor of
        # the same file without O_DIRECT: writes the O_DIRECT one refuses
        # (unaligned ones -- the kernel's writeback of a shared mapping cuts
        # the last page at end of file) go there instead of being lost
        self._direct: dict[int, int] = {}
        # the first error of a writeback write of each handle, reported
        # (once) by its next fsync or flush: nobody else would hear of it
        self._write_errors: dict[int, int] = {}
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

    def _entry(self, ino, node, st) -> EntryAttributes:
        """The reply to a lookup of ``node`` (counted already)."""
        a = self._attr(ino, st)
        if self.fast_getattr:
            a.path_fd = node.fd
        return a

    def _lookup(self, parent_inode, name) -> EntryAttributes:
        """Look ``name`` up in the backing directory and count one lookup."""
        if name == b'.' or (name == b'..' and parent_inode == ROOT_INODE):
            with self._lock:
                node = self._inodes[parent_inode]
                node.lookups += 1
            return self._entry(parent_inode, node, os.fstat(node.fd))
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
        return self._entry(ino, node, st)

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
            for buffered in self._direct.values():
                if buffered is not None:
                    os.close(buffered)
            self._files.clear()
            self._direct.clear()
            self._write_errors.clear()
            for ino, node in list(self._inodes.items()):
                if ino != ROOT_INODE:
                    del self._inodes[ino]
                    del self._by_key[node.key]
                    os.close(node.fd)
            self._inodes[ROOT_INODE].lookups = 0
            for h in self._dirs.values():
                os.close(h.fd)
            self._dirs.clear()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    _pool = None

    def _caller_pool(self):
        """Threads for the async variant's requests acting as the caller."""
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix='passthrough-as-caller')
            return self._pool

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
    @_as_caller
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

    def _kill_suidgid(self, fd, ctx, chown=False, file_gid=None):
        """Clear S_ISUID/S_ISGID of the backing file ``fd`` (a descriptor or
        an O_PATH one) as the daemon, if the request says so and the backing
        filesystem did not: a write runs with the daemon's credentials, and
        so does everything with act_as_caller=False.  ``file_gid``: the
        group before a chown (the kernel judges by that one).  Done through
        /proc/self/fd: fchmod refuses O_PATH descriptors."""
        if not getattr(ctx, 'kill_suidgid', False):
            return
        st = os.fstat(fd)
        gid = st.st_gid if file_gid is None else file_gid
        mode = fuseshim.mode_after_kill_suidgid(st.st_mode, gid, ctx, chown=chown)
        if mode != st.st_mode:
            os.chmod(_proc(fd), stat.S_IMODE(mode))

    @_op
    @_as_caller
    def setattr(self, inode, attr, fields, fh, ctx):
        with self._lock:
            node = self._inodes.get(inode)
        if node is None:
            raise FUSEError(errno.ESTALE)
        path = _proc(node.fd)
        gid_before = os.fstat(node.fd).st_gid if not self.act_as_caller else None
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
            now = (getattr(fields, 'update_atime_now', None),
                   getattr(fields, 'update_mtime_now', None))
            try:
                self._utimens(node, path, fields, attr, now)
            except PermissionError:
                # Setting times to "now" needs only write permission, explicit
                # times need ownership.  Where the binding does not say which
                # one the caller asked for (SetattrFields.update_*_now), a
                # refused request whose times are "now" is retried as such.
                if None not in now or not self._times_are_now(fields, attr):
                    raise
                self._utimens(node, path, fields, attr,
                              (fields.update_atime, fields.update_mtime))
        if not self.act_as_caller:
            # as the caller, the backing truncate or chown cleared the bits itself
            self._kill_suidgid(node.fd, ctx, chown=fields.update_uid or fields.update_gid,
                               file_gid=gid_before)
        return self._attr(inode, os.fstat(node.fd))

    @staticmethod
    def _times_are_now(fields, attr, slack_ns=2_000_000_000):
        t = time.time_ns()
        return all(abs(t - ns) < slack_ns for update, ns in
                   ((fields.update_atime, attr.st_atime_ns),
                    (fields.update_mtime, attr.st_mtime_ns)) if update)

    @staticmethod
    def _utimens(node, path, fields, attr, now):
        ts = (_Timespec * 2)()
        for i, (update, ns, is_now) in enumerate(
                ((fields.update_atime, attr.st_atime_ns, now[0]),
                 (fields.update_mtime, attr.st_mtime_ns, now[1]))):
            if not update:
                ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_OMIT
            elif is_now:
                ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_NOW
            else:
                ts[i].tv_sec, ts[i].tv_nsec = divmod(ns, 1_000_000_000)
        if node.is_symlink:
            rc = _libc.utimensat(node.fd, b'', ts, AT_EMPTY_PATH)
            if rc < 0 and ctypes.get_errno() == errno.EINVAL:
                raise FUSEError(errno.EPERM)   # no race-free way on old kernels
        else:
            rc = _libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0)
        _check(rc)

    @_op
    def readlink(self, inode, ctx):
        return os.readlink(b'', dir_fd=self._fd(inode))

    @_op
    @_as_caller
    def mknod(self, parent_inode, name, mode, rdev, ctx):
        os.mknod(name, mode, rdev, dir_fd=self._fd(parent_inode))
        return self._lookup(parent_inode, name)

    @_op
    @_as_caller
    def mkdir(self, parent_inode, name, mode, ctx):
        os.mkdir(name, mode, dir_fd=self._fd(parent_inode))
        return self._lookup(parent_inode, name)

    @_op
    @_as_caller
    def symlink(self, parent_inode, name, target, ctx):
        os.symlink(target, name, dir_fd=self._fd(parent_inode))
        return self._lookup(parent_inode, name)

    @_op
    @_as_caller
    def unlink(self, parent_inode, name, ctx):
        os.unlink(name, dir_fd=self._fd(parent_inode))

    @_op
    @_as_caller
    def rmdir(self, parent_inode, name, ctx):
        os.rmdir(name, dir_fd=self._fd(parent_inode))

    @_op
    @_as_caller
    def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        _check(_libc.renameat2(self._fd(parent_inode_old), name_old,
                               self._fd(parent_inode_new), name_new, flags))

    @_op
    @_as_caller
    def link(self, inode, new_parent_inode, new_name, ctx):
        os.link(os.fsencode(_proc(self._fd(inode))), new_name,
                dst_dir_fd=self._fd(new_parent_inode), follow_symlinks=True)
        return self._lookup(new_parent_inode, new_name)

    # ------------------------------------------------------------ files

    @_op
    @_as_caller
    def open(self, inode, flags, ctx):
        path = _proc(self._fd(inode))
        if flags & FMODE_EXEC:
            # execve() opens with __FMODE_EXEC; without default_permissions
            # the kernel itself only checks that some x bit is set
            if not os.access(path, os.X_OK, effective_ids=True):
                raise FUSEError(errno.EACCES)
            flags &= ~FMODE_EXEC
        fd = os.open(path, _backing_flags(flags) & ~(os.O_NOFOLLOW | os.O_CREAT | os.O_EXCL))
        if not self.act_as_caller:   # as the caller, the O_TRUNC cleared them
            self._kill_suidgid(fd, ctx)
        self._add_file(fd, flags)
        return FileInfo(fh=fd, keep_cache=False)

    def _add_file(self, fd, flags):
        """Register an open backing fd (as the caller: the buffered twin of
        an O_DIRECT handle is opened with the caller's rights too)."""
        buffered = None
        if flags & os.O_DIRECT and flags & os.O_ACCMODE != os.O_RDONLY:
            try:
                buffered = os.open(_proc(fd), _backing_flags(flags) & ~(
                    os.O_DIRECT | os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOFOLLOW))
            except BaseException:
                os.close(fd)
                raise
        with self._lock:
            self._files.add(fd)
            if flags & os.O_DIRECT:
                self._direct[fd] = buffered

    @_op
    @_as_caller
    def create(self, parent_inode, name, mode, flags, ctx):
        fd = os.open(name, _backing_flags(flags | os.O_CREAT) & ~os.O_NOFOLLOW, mode,
                     dir_fd=self._fd(parent_inode))
        try:
            if not self.act_as_caller:   # an existing file opened O_TRUNC
                self._kill_suidgid(fd, ctx)
            attr = self._lookup(parent_inode, name)
        except BaseException:
            os.close(fd)
            raise
        self._add_file(fd, flags)
        return FileInfo(fh=fd, keep_cache=False), attr

    @_op
    def read(self, fh, off, size):
        if fh in self._direct:
            # O_DIRECT needs a page-aligned buffer (the caller's alignment
            # rules for offset and size still apply, as on the backing fs)
            with mmap.mmap(-1, max(size, 1)) as buf:
                n = os.preadv(fh, [buf], off)
                return buf[:n]
        # zero-copy: fuseshim sends the file range itself (spliced where the
        # connection allows); a short range at end of file is a short read
        return FdRange(fh, off, size)

    @_op
    def write(self, fh, off, buf, ctx=None):
        # the write itself runs with the daemon's credentials (CAP_FSETID):
        # the backing filesystem would keep the bits
        self._kill_suidgid(fh, ctx)
        try:
            return self._write(fh, off, buf)
        except OSError as e:
            ids = fuseshim.current_request_ids()
            if ids is not None and ids[2] == 0:
                # pid 0: the kernel's own writeback (of a shared mapping, or
                # the write-back cache); no caller sees this error, so the
                # next fsync or close of the handle reports it
                self._write_errors.setdefault(fh, e.errno)
            raise

    def _write(self, fh, off, buf):
        if fh in self._direct and len(buf):
            with mmap.mmap(-1, len(buf)) as aligned:
                aligned.write(buf)
                try:
                    return os.pwritev(fh, [aligned], off)
                except OSError as e:
                    buffered = self._direct.get(fh)
                    if e.errno != errno.EINVAL or buffered is None:
                        raise
            # unaligned: through the page cache; fsync of the handle still
            # reaches the disk (fsync is per file, not per descriptor)
            return os.pwrite(buffered, buf, off)
        return os.pwrite(fh, buf, off)

    def _report_write_error(self, fh):
        err = self._write_errors.pop(fh, None)
        if err is not None:
            raise FUSEError(err)

    @_op
    def flush(self, fh):
        self._report_write_error(fh)
        # close() of a duplicate is what close(2) on the backing file would do
        os.close(os.dup(fh))

    @_op
    def release(self, fh):
        with self._lock:
            if fh not in self._files:
                raise FUSEError(errno.EBADF)
            self._files.discard(fh)
            buffered = self._direct.pop(fh, None)
            self._write_errors.pop(fh, None)
        if buffered is not None:
            os.close(buffered)
        os.close(fh)

    @_op
    def fsync(self, fh, datasync):
        self._report_write_error(fh)
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
    @_as_caller
    def opendir(self, inode, ctx):
        # through /proc: opening "." relative to the O_PATH fd would also
        # need search permission on the directory, which opendir does not
        fd = os.open(_proc(self._fd(inode)), os.O_RDONLY | os.O_DIRECTORY)
        with self._lock:
            fh = self._next_dir_fh
            self._next_dir_fh += 1
            self._dirs[fh] = _DirHandle(fd, inode)
        return fh

    def _listing(self, h: _DirHandle):
        """Snapshot of the backing directory: a DirListing of (name, d_ino, type)."""
        with self._lock:
            known = dict(self._by_key)
        dev = os.fstat(h.fd).st_dev
        parent = os.stat('..', dir_fd=h.fd)
        listing = [(b'.', h.ino, stat.S_IFDIR),
                   (b'..', known.get((parent.st_dev, parent.st_ino), parent.st_ino),
                    stat.S_IFDIR)]
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
                listing.append((e.name, known.get((dev, e.inode()), e.inode()), mode))
        return fuseshim.DirListing(listing)

    @_op
    def readdir(self, fh, start_id, token):
        h = self._dirs.get(fh)
        if h is None:
            raise FUSEError(errno.EBADF)
        if start_id == 0 or h.listing is None:
            h.listing = self._listing(h)   # offsets index this snapshot
        listing = h.listing
        if not getattr(token, 'plus', False):
            listing.fill(token, start_id)   # plain READDIR: the reply is filled in C
            return
        # READDIRPLUS: full attributes, each entry counted as a lookup
        for i in range(start_id, len(listing)):
            name, ino_, mode = listing[i]
            attr = EntryAttributes()
            attr.st_ino = ino_
            attr.st_mode = mode
            if name not in (b'.', b'..'):
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
    @_as_caller
    def setxattr(self, inode, name, value, ctx):
        # XATTR_CREATE/XATTR_REPLACE are not passed on by the binding.
        os.setxattr(_proc(self._fd(inode)), name, value)

    @_op
    @_as_caller
    def getxattr(self, inode, name, ctx):
        return os.getxattr(_proc(self._fd(inode)), name)

    @_op
    @_as_caller
    def listxattr(self, inode, ctx):
        return [os.fsencode(n) for n in os.listxattr(_proc(self._fd(inode)))]

    @_op
    @_as_caller
    def removexattr(self, inode, name, ctx):
        os.removexattr(_proc(self._fd(inode)), name)

    @_op
    @_as_caller
    def access(self, inode, mode, ctx):
        # effective_ids: faccessat(AT_EACCESS) checks the fsuid/fsgid in use
        return os.access(_proc(self._fd(inode)), mode, effective_ids=True)


HANDLERS = ('lookup', 'forget', 'getattr', 'setattr', 'readlink', 'mknod', 'mkdir',
            'unlink', 'rmdir', 'symlink', 'rename', 'link', 'open', 'create', 'read',
            'write', 'flush', 'release', 'fsync', 'fallocate', 'copy_file_range', 'lseek',
            'opendir', 'readdir', 'releasedir', 'fsyncdir', 'statfs', 'setxattr',
            'getxattr', 'listxattr', 'removexattr', 'access', 'destroy')


def async_variant(cls, names=HANDLERS):
    """A subclass of ``cls`` whose handlers are ``async def`` coroutines
    running the synchronous ones (same behaviour, served on the event loop).
    Handlers acting as the caller run on a thread pool of the filesystem's
    own instead, so that the loop thread's credentials never change."""
    def wrap(name):
        sync = getattr(cls, name)
        as_caller = getattr(sync, 'as_caller', False)

        async def handler(self, *args):
            if as_caller and self.act_as_caller:
                return await asyncio.get_running_loop().run_in_executor(
                    self._caller_pool(), functools.partial(sync, self, *args))
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
    p.add_argument('--fast-getattr', action='store_true',
                   help='answer GETATTR in C with fstatat() on the O_PATH fds '
                        '(EntryAttributes.path_fd)')
    p.add_argument('--as-daemon', action='store_true',
                   help="act as the daemon's own user for every caller (as libfuse's "
                        "passthrough_ll), not as the caller")
    args = p.parse_args(argv)
    if not os.path.isdir(args.source):
        p.error(f'{args.source}: not a directory')
    raise_open_file_limit()
    cls = AsyncPassthroughFS if args.use_async else PassthroughFS
    return _cli.run(cls(args.source, act_as_caller=False if args.as_daemon else None,
                        fast_getattr=args.fast_getattr), args)


def raise_open_file_limit():
    """One O_PATH descriptor per inode the kernel remembers: a tree of a few
    thousand files exhausts the usual soft limit of 1,024 (EMFILE).  Raise it
    to the hard limit, as libfuse's passthrough_hp does (maximize_fd_limit)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == '__main__':
    sys.exit(main())
