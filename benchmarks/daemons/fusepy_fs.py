"""Path-based passthrough on the fusepy API (libfuse's high-level API):
mfusepy (on libfuse3: FUSE_LIBRARY_NAME=fuse3), fusepy (libfuse2), or
fuseshim's fusepy compat layer, all running the same code.

    python -m benchmarks.daemons.fusepy_fs SRC MNT --impl {mfusepy,fusepy,compat}
"""
from __future__ import annotations

import os
import sys
import warnings

from ._common import OPEN_FLAG_MASK, parser

STAT_KEYS = ('st_mode', 'st_ino', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_blocks',
             'st_atime', 'st_mtime', 'st_ctime')


def build(mod):
    FuseOSError = mod.FuseOSError

    class Loopback(mod.Operations):
        def __init__(self, root):
            self.root = os.path.realpath(root)

        def getattr(self, path, fh=None):
            try:
                st = os.lstat(self.root + path)
            except OSError as e:
                raise FuseOSError(e.errno) from None
            return {k: getattr(st, k) for k in STAT_KEYS}

        def readdir(self, path, fh):
            return ['.', '..'] + os.listdir(self.root + path)

        def open(self, path, flags):
            try:
                return os.open(self.root + path, flags & OPEN_FLAG_MASK)
            except OSError as e:
                raise FuseOSError(e.errno) from None

        def create(self, path, mode, fi=None):
            try:
                return os.open(self.root + path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            except OSError as e:
                raise FuseOSError(e.errno) from None

        def read(self, path, size, offset, fh):
            return os.pread(fh, size, offset)

        def write(self, path, data, offset, fh):
            return os.pwrite(fh, data, offset)

        def flush(self, path, fh):
            os.close(os.dup(fh))

        def release(self, path, fh):
            os.close(fh)

        def statfs(self, path):
            s = os.statvfs(self.root + path)
            return {k: getattr(s, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize',
                                                'f_favail', 'f_ffree', 'f_files', 'f_flag',
                                                'f_frsize', 'f_namemax')}

    return Loopback


def main(argv=None):
    p = parser(__doc__)
    p.add_argument('--impl', choices=('mfusepy', 'fusepy', 'compat'), default='mfusepy')
    p.add_argument('--threads', action='store_true',
                   help="multi-threaded, FUSE()'s default (else nothreads=True, libfuse -s)")
    args = p.parse_args(argv)
    if args.impl == 'compat':
        from fuseshim.compat import fusepy as mod
    elif args.impl == 'fusepy':
        import fuse as mod
    else:
        os.environ.setdefault('FUSE_LIBRARY_NAME', 'fuse3')
        import mfusepy as mod
    warnings.simplefilter('ignore', DeprecationWarning)  # mfusepy: float times
    ops = build(mod)(args.source)
    print(f'{args.impl}: mounting', file=sys.stderr, flush=True)
    mod.FUSE(ops, args.mountpoint, foreground=True, nothreads=not args.threads, fsname=args.fsname,
             attr_timeout=0, entry_timeout=0, negative_timeout=0)


if __name__ == '__main__':
    main()
