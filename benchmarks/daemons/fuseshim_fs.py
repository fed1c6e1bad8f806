"""Passthrough on fuseshim's own API (sync or async handlers, 1..N workers).

    python -m benchmarks.daemons.fuseshim_fs SRC MNT [--async] [--workers N]
        [--read {fd,range,bytes}] [--backing]

Reads (--read): ``fd`` (default) opens files with FileInfo.read_fd, so
fuseshim answers READs in C from the file's fd (fuse_reply_data, no Python
call); ``range`` answers each READ in read() with a fuseshim.FdRange (the
same reply, one handler call per READ); ``bytes`` with os.pread bytes.
--backing opens files with FileInfo.backing_fd (FUSE passthrough: the kernel
reads the backing file itself; needs fuseshim built against libfuse >= 3.17).
--fast-getattr keeps an O_PATH fd per inode the kernel looked up (counted,
closed when forget() drops the last lookup) and declares it in the lookup
replies (EntryAttributes.path_fd; not create's): fuseshim answers GETATTR
with fstatat() in C, getattr() is called only for the root and for files
created but not looked up since.
--fd-relative makes the handlers' system calls C passthrough_ll's: an O_PATH
fd per inode the kernel looked up (the root's from the start), LOOKUP with
fstatat() relative to the parent's fd (EntryAttributes.lstat(name,
dir_fd=)), GETATTR with fstatat() of the inode's fd (EntryAttributes.fstat),
instead of lstat() of the full path.  With --fast-getattr too, that fd is
the declared path_fd.
"""
from __future__ import annotations

import errno
import itertools
import os
import signal
import sys
import threading

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FileInfo, FUSEError, StatvfsData

FdRange = getattr(fuseshim, 'FdRange', None)

from ._common import OPEN_FLAG_MASK, dtype_mode, parser

# Answer READDIRPLUS only where the binding says which readdir requests are
# READDIRPLUS (their entries need full attributes and count as lookups).
PLUS_VISIBLE = hasattr(fuseshim.ReaddirToken, 'plus')
# fuseshim.DirListing: the listing is read and answered in C; READDIRPLUS
# entries go out without attributes (nodeid 0: no lookup counted), so both
# kinds of request cost the same as plain READDIR.
DirListing = getattr(fuseshim, 'DirListing', None)
# lstat(2) straight into the reply's attributes (no os.stat_result)
lstat = EntryAttributes.lstat
fstat = getattr(EntryAttributes, 'fstat', None)


class PassFS(fuseshim.Operations):
    enable_readdirplus = PLUS_VISIBLE or DirListing is not None

    def __init__(self, source, read='fd', backing=False, fast_getattr=False, fd_relative=False):
        self.read_bytes = read == 'bytes' or FdRange is None
        # where the binding has it: READs answered in C, read() not called
        self.read_fd = read == 'fd' and hasattr(FileInfo(), 'read_fd')
        self.backing = backing
        if backing:
            self.enable_passthrough = True
        self.root = os.fsencode(os.path.realpath(source))
        self.root_ino = os.lstat(self.root).st_ino
        self.paths = {ROOT_INODE: self.root}
        self.dirs = {}
        self.dir_ids = itertools.count(1)
        self.fast_getattr = fast_getattr
        self.path_fds = {}           # inode -> [O_PATH fd, lookups declared with it]
        self.lock = threading.Lock()
        self.fd_relative = fd_relative
        if fd_relative:              # the root's: never forgotten
            self.path_fds[ROOT_INODE] = [os.open(self.root, os.O_PATH | os.O_DIRECTORY), 1]

    def _entry(self, path, declare=True):
        a = lstat(path, entry_timeout=0, attr_timeout=0)
        ino = a.st_ino
        if ino == self.root_ino:
            a.st_ino = ROOT_INODE
        else:
            self.paths[ino] = path
            if self.fast_getattr and declare:
                self._declare_path_fd(a, ino, path)
        return a

    def _declare_path_fd(self, a, ino, path):
        """Count one lookup of ``ino`` and declare its O_PATH fd in the reply."""
        node = self._counted_fd(ino, path)
        if node is not None:
            a.path_fd = node[0]

    def _counted_fd(self, ino, path, dir_fd=None):
        """Count one lookup of ``ino``; -> its [O_PATH fd, lookups] (the fd
        opened at the first one, ``path`` relative to ``dir_fd`` if given),
        or None when the name is gone or replaced meanwhile (getattr() then
        answers by path)."""
        with self.lock:
            node = self.path_fds.get(ino)
            if node is None:
                try:
                    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError:
                    return None
                if os.fstat(fd).st_ino != ino:
                    os.close(fd)
                    return None
                node = self.path_fds[ino] = [fd, 0]
            node[1] += 1
        return node

    def _path(self, inode):
        try:
            return self.paths[inode]
        except KeyError:
            raise FUSEError(errno.ESTALE) from None

    def lookup(self, parent_inode, name, ctx):
        try:
            if self.fd_relative:
                return self._entry_at(parent_inode, name)
            return self._entry(self._path(parent_inode) + b'/' + name)
        except OSError as e:
            raise FUSEError(e.errno) from None

    def _entry_at(self, parent_inode, name):
        """--fd-relative: passthrough_ll's lookup (fstatat of the name in the
        parent's O_PATH fd; an O_PATH fd of its own at the first lookup)."""
        parent = self.path_fds.get(parent_inode)
        if parent is None:      # created, never looked up: no fd yet
            return self._entry(self._path(parent_inode) + b'/' + name)
        a = lstat(name, dir_fd=parent[0], entry_timeout=0, attr_timeout=0)
        ino = a.st_ino
        if ino == self.root_ino:
            a.st_ino = ROOT_INODE
            return a
        if ino not in self.paths:   # open(), opendir() and create() work on paths
            self.paths[ino] = self._path(parent_inode) + b'/' + name
        node = self._counted_fd(ino, name, parent[0])
        if node is not None and self.fast_getattr:
            a.path_fd = node[0]
        return a

    def forget(self, inode_list):
        # paths stay known (every daemon in this suite does the same); an
        # O_PATH fd goes with its inode's last lookup (fuseshim has dropped
        # its path_fd entry already)
        if self.path_fds:
            with self.lock:
                for ino, nlookup in inode_list:
                    node = self.path_fds.get(ino)
                    if node is not None:
                        node[1] -= nlookup
                        if node[1] <= 0:
                            del self.path_fds[ino]
                            os.close(node[0])

    def getattr(self, inode, ctx):
        try:
            node = self.path_fds.get(inode) if self.fd_relative else None
            if node is not None:
                a = fstat(node[0], entry_timeout=0, attr_timeout=0)
            else:
                a = lstat(self._path(inode), entry_timeout=0, attr_timeout=0)
        except OSError as e:
            raise FUSEError(e.errno) from None
        a.st_ino = inode
        return a

    def open(self, inode, flags, ctx):
        try:
            fd = os.open(self._path(inode), flags & OPEN_FLAG_MASK)
        except OSError as e:
            raise FUSEError(e.errno) from None
        return self._handle(fd)

    def _handle(self, fd):
        if self.backing:
            return FileInfo(fh=fd, keep_cache=False, backing_fd=fd)
        if self.read_fd:
            return FileInfo(fh=fd, keep_cache=False, read_fd=fd)
        return FileInfo(fh=fd, keep_cache=False)

    def create(self, parent_inode, name, mode, flags, ctx):
        path = self._path(parent_inode) + b'/' + name
        try:
            fd = os.open(path, flags | os.O_CREAT, mode)
            # not declared: an O_PATH fd per new file cost creates 18 %; the
            # next lookup of the name declares it
            return self._handle(fd), self._entry(path, declare=False)
        except OSError as e:
            raise FUSEError(e.errno) from None

    def read(self, fh, off, size):
        if self.read_bytes:
            return os.pread(fh, size, off)
        return FdRange(fh, off, size)

    def write(self, fh, off, buf):
        return os.pwrite(fh, buf, off)

    def flush(self, fh):
        os.close(os.dup(fh))

    def release(self, fh):
        os.close(fh)

    def opendir(self, inode, ctx):
        fh = next(self.dir_ids)
        self.dirs[fh] = [self._path(inode), None]
        return fh

    def readdir(self, fh, start_id, token):
        d = self.dirs[fh]
        if DirListing is not None:
            if start_id == 0 or d[1] is None:
                d[1] = DirListing.scan(d[0])
            d[1].fill(token, start_id)
            return
        if start_id == 0 or d[1] is None:
            with os.scandir(d[0]) as it:
                d[1] = [(e.name, e.inode(), dtype_mode(e)) for e in it]
        listing = d[1]
        plus = PLUS_VISIBLE and token.plus
        reply = fuseshim.readdir_reply
        for i in range(start_id, len(listing)):
            name, ino, mode = listing[i]
            if plus:
                try:
                    attr = self._entry(d[0] + b'/' + name)
                except OSError:
                    continue
            else:
                attr = EntryAttributes()
                attr.st_ino = ino
                attr.st_mode = mode
            if not reply(token, name, attr, i + 1):
                break

    def releasedir(self, fh):
        self.dirs.pop(fh, None)

    def statfs(self, ctx):
        return StatvfsData.from_statvfs(os.statvfs(self.root))


HOT = ('lookup', 'forget', 'getattr', 'open', 'create', 'read', 'write', 'flush', 'release',
       'opendir', 'readdir', 'releasedir', 'statfs')


def _async(name):
    sync = getattr(PassFS, name)

    async def handler(self, *args):
        return sync(self, *args)
    handler.__name__ = name
    return handler


AsyncPassFS = type('AsyncPassFS', (PassFS,), {n: _async(n) for n in HOT})


def main(argv=None):
    p = parser(__doc__)
    p.add_argument('--async', dest='use_async', action='store_true')
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--startup', default='auto')
    p.add_argument('--plain-readdir', action='store_true',
                   help='answer plain READDIR only (no READDIRPLUS)')
    p.add_argument('--read', choices=('fd', 'range', 'bytes'), default='fd',
                   help='how READs are answered (see above)')
    p.add_argument('--backing', action='store_true',
                   help='FUSE passthrough: open returns backing_fd (libfuse >= 3.17)')
    p.add_argument('--fast-getattr', action='store_true',
                   help='GETATTR answered in C from O_PATH fds (EntryAttributes.path_fd)')
    p.add_argument('--fd-relative', action='store_true',
                   help="passthrough_ll's system calls: O_PATH fd per inode, fstatat relative to it")
    p.add_argument('--no-splice-write', action='store_true',
                   help='fd replies copy instead of splicing (enable_splice_write = False)')
    args = p.parse_args(argv)
    ops = (AsyncPassFS if args.use_async else PassFS)(args.source, args.read, args.backing,
                                                       args.fast_getattr, args.fd_relative)
    if args.no_splice_write:
        ops.enable_splice_write = False
    if args.plain_readdir:
        ops.enable_readdirplus = False
    m = fuseshim.mount(ops, args.mountpoint, options=[f'fsname={args.fsname}'],
                       workers=args.workers, startup=args.startup)
    print(f'fuseshim: mounted via {m.startup_path} startup', file=sys.stderr, flush=True)
    if args.backing and not m.granted.get('passthrough'):
        m.close()
        sys.exit(f'fuseshim: FUSE passthrough was not granted (libfuse {fuseshim.libfuse_version()}, '
                 f'build features {fuseshim.build_features()}, kernel {os.uname().release})')
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: m.close())
    try:
        while not m.wait(1.0):
            pass
    finally:
        m.close()


if __name__ == '__main__':
    main()
