"""A read-only filesystem with one file, /hello, saying "Hello, world!"."""
from __future__ import annotations

import errno
import stat
import sys

import fuseshim
from fuseshim import EntryAttributes, FUSEError, ROOT_INODE
from fuseshim.examples import _cli


class HelloFS(fuseshim.Operations):
    HELLO_INODE = ROOT_INODE + 1
    NAME = b'hello'
    DATA = b'Hello, world!\n'

    def getattr(self, inode, ctx=None):
        return self._attr(inode)

    def _attr(self, inode):
        a = EntryAttributes()
        if inode == ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o755
            a.st_nlink = 2
        elif inode == self.HELLO_INODE:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(self.DATA)
        else:
            raise FUSEError(errno.ENOENT)
        a.st_ino = inode
        return a

    def lookup(self, parent_inode, name, ctx=None):
        if parent_inode != ROOT_INODE or name != self.NAME:
            raise FUSEError(errno.ENOENT)
        return self._attr(self.HELLO_INODE)

    def opendir(self, inode, ctx):
        if inode != ROOT_INODE:
            raise FUSEError(errno.ENOTDIR)
        return inode

    def readdir(self, fh, start_id, token):
        if start_id == 0:
            fuseshim.readdir_reply(token, self.NAME, self._attr(self.HELLO_INODE), 1)

    def open(self, inode, flags, ctx):
        if inode != self.HELLO_INODE:
            raise FUSEError(errno.EISDIR)
        if flags & 3 != 0:  # O_WRONLY / O_RDWR
            raise FUSEError(errno.EACCES)
        return fuseshim.FileInfo(fh=inode)

    def read(self, fh, off, size):
        return self.DATA[off:off + size]


def main(argv=None) -> int:
    args = _cli.parser(__doc__).parse_args(argv)
    return _cli.run(HelloFS(), args)


if __name__ == '__main__':
    sys.exit(main())
