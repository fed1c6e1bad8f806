"""Request handling: concurrency across workers, interrupts, notifications,
the request context."""
from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import fuseshim
from fuseshim import EntryAttributes, FUSEError, ROOT_INODE

from child_signals import popen


class ProbeFS(fuseshim.Operations):
    """Root plus files whose getattr behaviour the test controls:
    'pair' waits until two getattrs run at once, 'slow' waits for an
    interrupt, 'data' holds bytes that notify_store can replace."""
    NAMES = {b'pair': 2, b'slow': 3, b'data': 4}

    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=10)
        self.saw_interrupt = threading.Event()
        self.slow_entered = threading.Event()
        self.contexts = []
        self.data = b'old contents'
        self.reads = 0

    def _attr(self, inode):
        a = EntryAttributes()
        a.st_ino = inode
        a.st_mode = (stat.S_IFDIR | 0o755) if inode == ROOT_INODE else (stat.S_IFREG | 0o644)
        a.st_size = len(self.data) if inode == 4 else 0
        a.attr_timeout = a.entry_timeout = 0 if inode in (2, 3) else 60
        return a

    def lookup(self, parent_inode, name, ctx):
        if name not in self.NAMES:
            raise FUSEError(errno.ENOENT)
        self.contexts.append(ctx)
        return self._attr(self.NAMES[name])

    def getattr(self, inode, ctx):
        if inode == 2:
            self.barrier.wait()
        elif inode == 3:
            self.slow_entered.set()
            deadline = time.monotonic() + 20
            while not ctx.interrupted and time.monotonic() < deadline:
                time.sleep(0.01)
            if ctx.interrupted:
                self.saw_interrupt.set()
                raise FUSEError(errno.EINTR)
        return self._attr(inode)

    def open(self, inode, flags, ctx):
        return fuseshim.FileInfo(fh=inode, keep_cache=True)

    def read(self, fh, off, size):
        self.reads += 1
        return self.data[off:off + size]


def test_two_workers_serve_requests_concurrently(mnt):
    ops = ProbeFS()
    with fuseshim.mount(ops, mnt, workers=2):
        results = []
        threads = [threading.Thread(target=lambda: results.append(os.stat(f'{mnt}/pair')))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert len(results) == 2  # each getattr waited for the other: both ran at once


def test_interrupted_request_is_visible_to_the_handler(mnt):
    ops = ProbeFS()
    with fuseshim.mount(ops, mnt, workers=2):
        client = popen([sys.executable, '-c', f'import os; os.stat({mnt + "/slow"!r})'])
        # signal only once the request is in the handler (a fixed 0.5 s lost
        # to a slow interpreter start on a loaded machine)
        assert ops.slow_entered.wait(30)
        client.send_signal(signal.SIGTERM)
        assert client.wait(15) != 0
        assert ops.saw_interrupt.wait(15)


def test_request_context_names_the_caller(mnt):
    ops = ProbeFS()
    with fuseshim.mount(ops, mnt):
        os.stat(f'{mnt}/data')
        ctx = ops.contexts[-1]
        assert (ctx.uid, ctx.gid, ctx.pid) == (os.getuid(), os.getgid(), os.getpid())
        assert 0 in ctx.groups() or ctx.groups() == [] or os.getgid() in ctx.groups()


def test_notify_store_and_invalidate_inode(mnt):
    ops = ProbeFS()
    with fuseshim.mount(ops, mnt, workers=2) as m:
        path = f'{mnt}/data'
        assert open(path, 'rb').read() == b'old contents'
        reads = ops.reads
        assert open(path, 'rb').read() == b'old contents' and ops.reads == reads  # cached
        m.notify_store(4, 0, b'new contents')  # same length: pushed into the page cache
        assert open(path, 'rb').read() == b'new contents' and ops.reads == reads
        ops.data = b'changed again, longer'
        m.invalidate_inode(4)
        assert open(path, 'rb').read() == b'changed again, longer'
        assert ops.reads > reads


def test_invalidate_entry_forgets_a_cached_name(mnt):
    ops = ProbeFS()
    with fuseshim.mount(ops, mnt, workers=2) as m:
        assert os.stat(f'{mnt}/data').st_ino == 4
        ops.NAMES = {b'pair': 2, b'slow': 3}  # 'data' disappears behind the kernel's back
        assert os.path.exists(f'{mnt}/data')  # still cached (entry_timeout 60 s)
        m.invalidate_entry(ROOT_INODE, b'data')
        assert not os.path.exists(f'{mnt}/data')


def test_notify_delete_removes_the_name_and_unlinks_the_inode(mnt):
    ops = ProbeFS()
    with fuseshim.mount(ops, mnt, workers=2) as m:
        fd = os.open(f'{mnt}/data', os.O_RDONLY)
        try:
            assert os.fstat(fd).st_nlink == 1
            ops.NAMES = {b'pair': 2, b'slow': 3}  # deleted behind the kernel's back
            m.notify_delete(ROOT_INODE, 4, b'data')
            assert not os.path.exists(f'{mnt}/data')  # despite entry_timeout 60 s
            assert os.fstat(fd).st_nlink == 0         # the kernel cleared the link count
        finally:
            os.close(fd)
