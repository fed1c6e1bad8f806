"""Passthrough on pyfuse3's API: the real pyfuse3, or fuseshim's compat layer
running the very same code (only the import differs).

    python -m benchmarks.daemons.pyfuse3_fs SRC MNT --impl {pyfuse3,compat}

``--handler-wait-ms X`` makes lookup and getattr wait X ms (``trio.sleep``)
before answering: a simulated backing-store wait, as S3QL's or borg's
handlers wait on a network or a disk.  The default 0 never suspends.
"""
from __future__ import annotations

import errno
import itertools
import os
import sys

from ._common import OPEN_FLAG_MASK, fill_attr, parser


def build(pyfuse3, wait_s=0.0):
    """The filesystem class on ``pyfuse3`` (the real one or the layer);
    ``wait_s`` > 0: lookup and getattr first ``await trio.sleep(wait_s)``."""
    EntryAttributes, FileInfo, FUSEError = (pyfuse3.EntryAttributes, pyfuse3.FileInfo,
                                            pyfuse3.FUSEError)
    ROOT_INODE = pyfuse3.ROOT_INODE

    class PassFS(pyfuse3.Operations):
        supports_dot_lookup = False

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

        async def lookup(self, parent_inode, name, ctx=None):
            try:
                return self._entry(self._path(parent_inode) + b'/' + name)
            except OSError as e:
                raise FUSEError(e.errno) from None

        async def forget(self, inode_list):
            pass

        async def getattr(self, inode, ctx=None):
            try:
                st = os.lstat(self._path(inode))
            except OSError as e:
                raise FUSEError(e.errno) from None
            return fill_attr(EntryAttributes(), st, st.st_ino, self.root_ino)

        async def open(self, inode, flags, ctx):
            try:
                fd = os.open(self._path(inode), flags & OPEN_FLAG_MASK)
            except OSError as e:
                raise FUSEError(e.errno) from None
            return FileInfo(fh=fd, keep_cache=False)

        async def create(self, parent_inode, name, mode, flags, ctx):
            path = self._path(parent_inode) + b'/' + name
            try:
                fd = os.open(path, flags | os.O_CREAT, mode)
                return FileInfo(fh=fd, keep_cache=False), self._entry(path)
            except OSError as e:
                raise FUSEError(e.errno) from None

        async def read(self, fh, off, size):
            return os.pread(fh, size, off)

        async def write(self, fh, off, buf):
            return os.pwrite(fh, buf, off)

        async def flush(self, fh):
            os.close(os.dup(fh))

        async def release(self, fh):
            os.close(fh)

        async def opendir(self, inode, ctx):
            fh = next(self.dir_ids)
            self.dirs[fh] = [self._path(inode), None]
            return fh

        async def readdir(self, fh, start_id, token):
            # pyfuse3 always answers READDIRPLUS: full attributes per entry,
            # each counted as a lookup.
            d = self.dirs[fh]
            if start_id == 0 or d[1] is None:
                with os.scandir(d[0]) as it:
                    d[1] = [e.name for e in it]
            listing = d[1]
            for i in range(start_id, len(listing)):
                try:
                    attr = self._entry(d[0] + b'/' + listing[i])
                except OSError:
                    continue
                if not pyfuse3.readdir_reply(token, listing[i], attr, i + 1):
                    break

        async def releasedir(self, fh):
            self.dirs.pop(fh, None)

        async def statfs(self, ctx):
            s = os.statvfs(self.root)
            r = pyfuse3.StatvfsData()
            for f in ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files',
                      'f_ffree', 'f_favail', 'f_namemax'):
                setattr(r, f, getattr(s, f))
            return r

    if not wait_s:
        return PassFS
    import trio
    sleep = trio.sleep

    class WaitingFS(PassFS):
        # a subclass, so that the default daemon runs unchanged code
        async def lookup(self, parent_inode, name, ctx=None):
            await sleep(wait_s)
            return await PassFS.lookup(self, parent_inode, name, ctx)

        async def getattr(self, inode, ctx=None):
            await sleep(wait_s)
            return await PassFS.getattr(self, inode, ctx)

    return WaitingFS


def main(argv=None):
    p = parser(__doc__)
    p.add_argument('--impl', choices=('pyfuse3', 'compat'), default='pyfuse3')
    p.add_argument('--max-tasks', type=int, default=1)
    p.add_argument('--handler-wait-ms', type=float, default=0.0,
                   help='lookup and getattr await trio.sleep() this long first (default 0)')
    args = p.parse_args(argv)
    if args.impl == 'compat':
        from fuseshim.compat import pyfuse3
    else:
        import pyfuse3
    import trio
    ops = build(pyfuse3, args.handler_wait_ms / 1000)(args.source)
    opts = set(pyfuse3.default_options)
    opts.discard('default_permissions')
    opts.add(f'fsname={args.fsname}')
    pyfuse3.init(ops, args.mountpoint, opts)
    print(f'{args.impl}: mounted', file=sys.stderr, flush=True)
    try:
        trio.run(pyfuse3.main, 1, args.max_tasks)
    finally:
        pyfuse3.close(unmount=False)


if __name__ == '__main__':
    main()
