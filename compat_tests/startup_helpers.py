"""Small helpers for the startup tests: filesystems with instrumented init,
and checks that nothing is left behind."""
from __future__ import annotations

import errno
import os
import subprocess
import threading

import fuseshim
from fuseshim.examples.hello import HelloFS


def mounted_at(path: str) -> bool:
    path = os.path.realpath(path)
    with open('/proc/self/mountinfo') as f:
        return any(line.split()[4] == path for line in f)


def force_unmount(path: str) -> None:
    """Last resort for a test that failed half-way."""
    if mounted_at(path):
        subprocess.run(['umount', '-l', path], check=False)


def fuseshim_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith('fuseshim-')]


def open_fds() -> int:
    return len(os.listdir('/proc/self/fd'))


class RecordingHello(HelloFS):
    """hello, plus a record of when init ran."""
    init_calls = 0

    def init(self):
        self.init_calls += 1


class RaisingInit(HelloFS):
    def init(self):
        raise RuntimeError('init refuses')


class BlockingInit(HelloFS):
    """init waits until released: a server that never answers INIT in time."""

    def __init__(self):
        self.release = threading.Event()

    def init(self):
        self.release.wait(30)


class AsyncHello(HelloFS):
    """hello with coroutine handlers."""

    async def getattr(self, inode, ctx=None):
        return HelloFS.getattr(self, inode, ctx)

    async def lookup(self, parent_inode, name, ctx=None):
        return HelloFS.lookup(self, parent_inode, name, ctx)

    async def read(self, fh, off, size):
        return HelloFS.read(self, fh, off, size)


class FailingHandlers(HelloFS):
    """getattr of inode 2 fails with an errno; reads raise a plain bug."""

    def getattr(self, inode, ctx=None):
        if inode == self.HELLO_INODE and getattr(self, 'fail_getattr', False):
            raise fuseshim.FUSEError(errno.EROFS)
        return HelloFS.getattr(self, inode, ctx)

    def read(self, fh, off, size):
        raise ZeroDivisionError('bug in read handler')
