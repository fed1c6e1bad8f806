"""The path layer's open files and directories.

The kernel gets our own handle numbers; each stands for the node that was
opened and what the filesystem's open()/opendir() returned (its ``fh``, and
for files the fuse_file_info it filled, which raw_fi filesystems get back).
A directory handle also keeps the listing read so far (libfuse's buffered
readdir: filled once, then served from any offset).
"""
import errno
import itertools
import threading

import fuseshim as _fs


class OpenFile:
    __slots__ = ('ino', 'fh', 'fi')

    def __init__(self, ino, fh, fi):
        self.ino, self.fh, self.fi = ino, fh, fi


class OpenDir:
    __slots__ = ('ino', 'fh', 'entries', 'filled', 'lock')

    def __init__(self, ino, fh):
        self.ino, self.fh = ino, fh
        self.entries = []       # (name bytes, mode, ino) once filled
        self.filled = False
        self.lock = threading.Lock()


class HandleTable:
    """Handle number -> OpenFile / OpenDir.  Numbers come from one counter
    (files and directories never share one) and are never reused."""

    def __init__(self):
        self.files = {}
        self.dirs = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add_file(self, h: OpenFile) -> int:
        return self._add(self.files, h)

    def add_dir(self, h: OpenDir) -> int:
        return self._add(self.dirs, h)

    def _add(self, table, h):
        with self._lock:
            hid = next(self._ids)
            table[hid] = h
        return hid

    def file(self, fh) -> OpenFile:
        h = self.files.get(fh)
        if h is None:
            raise _fs.FUSEError(errno.EBADF)
        return h

    def dir(self, fh) -> OpenDir:
        h = self.dirs.get(fh)
        if h is None:
            raise _fs.FUSEError(errno.EBADF)
        return h

    def pop_file(self, fh):
        """The OpenFile of ``fh``, now released (None if there is none)."""
        with self._lock:
            return self.files.pop(fh, None)

    def pop_dir(self, fh):
        with self._lock:
            return self.dirs.pop(fh, None)
