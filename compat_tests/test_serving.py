"""Who reads the requests (Mount's ``serve``): the event loop with coroutines
stepped in place ("loop"), several worker threads with one reader at a time
("threads"), and what bad ``serve`` arguments get."""
from __future__ import annotations

import asyncio
import contextvars
import errno
import os
import stat
import threading

import pytest

import fuseshim
from fuseshim import ROOT_INODE, EntryAttributes, FUSEError
from conftest import mounted

FILE_INODE = ROOT_INODE + 1
request_tag = contextvars.ContextVar('request_tag', default=None)


def _attr(inode):
    a = EntryAttributes()
    a.st_ino = inode
    a.st_mode = (stat.S_IFDIR | 0o755) if inode == ROOT_INODE else (stat.S_IFREG | 0o644)
    a.st_nlink = 1
    a.attr_timeout = a.entry_timeout = 0   # every stat reaches the filesystem
    return a


def _stat_in_thread(path):
    """Start os.stat(path) in a thread; -> (thread, outcome list)."""
    outcome = []

    def run():
        try:
            outcome.append(os.stat(path))
        except OSError as e:
            outcome.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


class AsyncFS(fuseshim.Operations):
    """lookup("wait") suspends until a getattr of the root releases it (a
    second lookup in the same directory would queue behind the kernel's
    directory lock); every handler records the thread it ran on; context
    variables must not leak between requests, nor get lost across a
    suspension."""

    def __init__(self):
        self.threads = set()
        self.leaks = []
        self.in_task_after_suspend = []
        self.released = None

    async def getattr(self, inode, ctx=None):
        self.threads.add(threading.get_ident())
        if self.released is not None:
            self.released.set()
        return _attr(inode)

    async def lookup(self, parent_inode, name, ctx=None):
        self.threads.add(threading.get_ident())
        if request_tag.get() is not None:
            self.leaks.append(request_tag.get())
        request_tag.set(name)
        if self.released is None:
            self.released = asyncio.Event()
        if name == b'wait':
            await self.released.wait()
            self.in_task_after_suspend.append(asyncio.current_task() is not None)
            if request_tag.get() != name:
                self.leaks.append(b'lost across the suspension')
            return _attr(FILE_INODE)
        if name == b'boom':
            raise RuntimeError('a bug in the handler')
        raise FUSEError(errno.ENOENT)

    async def forget(self, inode_list):
        pass


def test_async_handlers_are_served_on_the_loop(mnt, mount_startup):
    fs = AsyncFS()
    with mounted(fs, mnt, startup=mount_startup) as m:
        assert m.serve == 'loop'
        assert stat.S_ISDIR(os.stat(mnt).st_mode)
        for _ in range(50):
            with pytest.raises(FileNotFoundError):
                os.stat(os.path.join(mnt, 'missing'))
        loop_thread = m._own_loop_thread.ident
    assert fs.threads == {loop_thread}
    assert fs.leaks == []


def test_a_suspended_coroutine_does_not_block_other_requests(mnt):
    fs = AsyncFS()
    with mounted(fs, mnt) as m:
        assert m.serve == 'loop'
        waiter, outcome = _stat_in_thread(os.path.join(mnt, 'wait'))
        waiter.join(0.2)
        assert waiter.is_alive() and not outcome, 'lookup("wait") returned before the release'
        os.stat(mnt)      # a GETATTR served while "wait" is suspended releases it
        waiter.join(10)
        assert not waiter.is_alive(), 'the suspended lookup never finished'
        assert isinstance(outcome[0], os.stat_result)
    assert fs.in_task_after_suspend == [True]
    assert fs.leaks == []


@pytest.mark.expected_errors
def test_loop_handler_exceptions(mnt):
    with mounted(AsyncFS(), mnt, allow_errors=True):
        with pytest.raises(OSError) as e:
            os.stat(os.path.join(mnt, 'boom'))
        assert e.value.errno == errno.EIO
        with pytest.raises(FileNotFoundError):
            os.stat(os.path.join(mnt, 'missing'))


def test_close_with_a_suspended_coroutine(mnt):
    fs = AsyncFS()
    m = fuseshim.mount(fs, mnt)
    try:
        waiter, outcome = _stat_in_thread(os.path.join(mnt, 'wait'))
        waiter.join(0.2)
        assert waiter.is_alive()
    finally:
        m.close()
    waiter.join(10)
    assert not waiter.is_alive(), 'the caller stayed blocked after close()'
    assert isinstance(outcome[0], OSError)
    assert mnt not in open('/proc/self/mounts').read()


def test_mount_and_close_inside_the_event_loop(mnt):
    """mount() and close() called by a coroutine of the very loop that serves."""
    fs = AsyncFS()

    async def main():
        loop = asyncio.get_running_loop()
        m = fuseshim.mount(fs, mnt, loop=loop, close_timeout=60)
        assert m.serve == 'loop'
        st = await asyncio.to_thread(os.stat, mnt)
        fd = await asyncio.to_thread(os.open, mnt, os.O_RDONLY)   # a RELEASE still to come
        os.close(fd)
        started = loop.time()
        m.close()
        return st, loop.time() - started

    st, close_s = asyncio.run(main())
    assert stat.S_ISDIR(st.st_mode)
    # not a speed target: close() must not sit out close_timeout because the
    # loop it waits for is the one it blocks
    assert close_s < 30, f'close() took {close_s:.1f} s'
    assert mnt not in open('/proc/self/mounts').read()


class BlockingFS(fuseshim.Operations):
    """Plain handlers; lookup("block") blocks its worker until released."""

    def __init__(self):
        self.release = threading.Event()
        self.order = []   # the thread of each handler call, in order

    def getattr(self, inode, ctx=None):
        self.order.append(threading.get_ident())
        return _attr(inode)

    def lookup(self, parent_inode, name, ctx=None):
        self.order.append(threading.get_ident())
        if name == b'block':
            if not self.release.wait(10):
                raise FUSEError(errno.ETIMEDOUT)
            return _attr(FILE_INODE)
        raise FUSEError(errno.ENOENT)

    def forget(self, inode_list):
        pass


def test_second_worker_reads_while_the_first_is_blocked(mnt, mount_startup):
    fs = BlockingFS()
    with mounted(fs, mnt, startup=mount_startup, workers=2) as m:
        assert m.serve == 'threads'
        blocked, outcome = _stat_in_thread(os.path.join(mnt, 'block'))
        blocked.join(0.2)
        assert blocked.is_alive()
        # answered by the other worker while the first one is still blocked (a
        # GETATTR: a LOOKUP in the same directory would wait for the directory lock)
        for _ in range(20):
            assert stat.S_ISDIR(os.stat(mnt).st_mode)
        assert blocked.is_alive()
        fs.release.set()
        blocked.join(10)
        assert isinstance(outcome[0], os.stat_result)


def test_workers_do_not_alternate_on_sequential_requests(mnt):
    """One reader at a time: consecutive requests stay on one thread instead
    of alternating (each switch is a GIL hand-over)."""
    fs = BlockingFS()
    with mounted(fs, mnt, workers=3):
        for _ in range(500):
            os.stat(mnt)
    calls = fs.order[-500:]
    switches = sum(1 for a, b in zip(calls, calls[1:]) if a != b)
    assert switches < len(calls) // 4, f'{switches} thread switches in {len(calls)} requests'


@pytest.mark.parametrize('kwargs, message', [
    ({'serve': 'fibers'}, 'serve must be one of'),
    ({'serve': 'loop', 'workers': 2}, 'workers must be 1'),
    ({'serve': 'external', 'workers': 3}, 'workers must be 1'),
])
def test_bad_serve_arguments(mnt, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuseshim.mount(AsyncFS(), mnt, **kwargs)
    assert mnt not in open('/proc/self/mounts').read()
