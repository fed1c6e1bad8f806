"""Passthrough on llfuse (libfuse2, synchronous handlers, 1 worker).

    python -m benchmarks.daemons.llfuse_fs SRC MNT
"""
from __future__ import annotations

import errno
import itertools
import os
import sys

import llfuse
from llfuse import EntryAttributes, FUSEError, ROOT_INODE

from ._common import OPEN_FLAG_MASK, dtype_mode, fill_attr, parser


class PassFS(llfuse.Operations):
    def __init__(self, source):
        super().__init__()
        self.root = os.fsencode(os.path.realpath(source))
        self.root_ino = os.lstat(self.root).st_ino
        self.paths = {ROOT_INODE: self.root}
        self.dirs = {}
        self.dir_ids = itertools.count(1)

    def _path(self, inode):
        try:
            return self.paths[inode]
        except KeyError:
            raise FUSEError(errno.ESTALE) from None

    def _entry(self, path):
        st = os.lstat(path)
        if st.st_ino != self.root_ino:
            self.paths[st.st_ino] = path
        return fill_attr(EntryAttributes(), st, st.st_ino, self.root_ino)

    def lookup(self, parent_inode, name, ctx=None):
        try:
            return self._entry(self._path(parent_inode) + b'/' + name)
        except OSError as e:
            raise FUSEError(e.errno) from None

    def forget(self, inode_list):
        pass

    def getattr(self, inode, ctx=None):
        try:
            st = os.lstat(self._path(inode))
        except OSError as e:
            raise FUSEError(e.errno) from None
        return fill_attr(EntryAttributes(), st, st.st_ino, self.root_ino)

    def open(self, inode, flags, ctx):
        try:
            return os.open(self._path(inode), flags & OPEN_FLAG_MASK)
        except OSError as e:
            raise FUSEError(e.errno) from None

    def create(self, parent_inode, name, mode, flags, ctx):
        path = self._path(parent_inode) + b'/' + name
        try:
            fd = os.open(path, flags | os.O_CREAT, mode)
            return fd, self._entry(path)
        except OSError as e:
            raise FUSEError(e.errno) from None

    def read(self, fh, off, size):
        return os.pread(fh, size, off)

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

    def readdir(self, fh, off):
        # libfuse2's plain READDIR: only st_ino and the file type are sent.
        d = self.dirs[fh]
        if off == 0 or d[1] is None:
            with os.scandir(d[0]) as it:
                d[1] = [(e.name, e.inode(), dtype_mode(e)) for e in it]
        listing = d[1]
        for i in range(off, len(listing)):
            name, ino, mode = listing[i]
            attr = EntryAttributes()
            attr.st_ino = ino
            attr.st_mode = mode
            yield name, attr, i + 1

    def releasedir(self, fh):
        self.dirs.pop(fh, None)

    def statfs(self, ctx):
        s = os.statvfs(self.root)
        r = llfuse.StatvfsData()
        for f in ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files',
                  'f_ffree', 'f_favail'):
            setattr(r, f, getattr(s, f))
        return r


def main(argv=None):
    p = parser(__doc__)
    p.add_argument('--workers', type=int, default=1)
    args = p.parse_args(argv)
    opts = set(llfuse.default_options)
    opts.discard('default_permissions')
    opts.add(f'fsname={args.fsname}')
    llfuse.init(PassFS(args.source), args.mountpoint, opts)
    print('llfuse: mounted', file=sys.stderr, flush=True)
    unmount = True
    try:
        unmount = llfuse.main(workers=args.workers) is not None  # None: unmounted already
    finally:
        llfuse.close(unmount=unmount)


if __name__ == '__main__':
    main()
