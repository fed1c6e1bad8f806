"""Serve a fuseshim session from event-loop tasks, the way pyfuse3 does.

The pyfuse3 layer mounts with ``serve="external"``: after FUSE_INIT nobody
reads /dev/fuse until ``main()`` runs a :class:`Driver`.  Its workers are
tasks of main()'s event loop (trio, or asyncio after
``pyfuse3.asyncio.enable()``).  One worker at a time waits for the fd to be
readable and takes one request (``Session.pump``); it then awaits that
request's handler coroutine itself -- no thread hop and no task per request,
so a handler that never suspends costs no scheduler round trip besides the
wait for the next request.  When a worker takes a request while no other one
is left to read, and fewer than ``max_tasks`` exist, it starts another, so a
handler that suspends does not hold up the rest (pyfuse3's model).
"""
from __future__ import annotations

import asyncio
import errno

import fuseshim as _fs


class TrioBackend:
    def __init__(self, trio, nursery):
        self._trio = trio
        self._nursery = nursery
        self._scopes = set()
        self.cancelled = trio.Cancelled

    def spawn(self, fn):
        self._nursery.start_soon(fn)

    def lock(self):
        return self._trio.Lock()

    async def wait_readable(self, fd):
        with self._trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await self._trio.lowlevel.wait_readable(fd)
            finally:
                self._scopes.discard(scope)

    def interrupt(self):
        for scope in self._scopes:
            scope.cancel()


class AsyncioBackend:
    cancelled = asyncio.CancelledError

    def __init__(self, loop):
        self._loop = loop
        self._waiting = set()
        self.tasks = set()

    def spawn(self, fn):
        task = self._loop.create_task(fn())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def lock(self):
        return asyncio.Lock()

    async def wait_readable(self, fd):
        fut = self._loop.create_future()
        self._waiting.add(fut)
        self._loop.add_reader(fd, _resolve, fut)
        try:
            await fut
        finally:
            self._loop.remove_reader(fd)
            self._waiting.discard(fut)

    def interrupt(self):
        for fut in self._waiting:
            _resolve(fut)


def _resolve(fut):
    if not fut.done():
        fut.set_result(None)


class Driver:
    """Workers reading ``session`` in an event loop until stop() or the end
    of the filesystem (then ``on_end`` is called, on the loop's thread)."""

    def __init__(self, session, backend, max_tasks, on_end):
        self.session = session
        self.backend = backend
        self.max_tasks = max(1, max_tasks)
        self.on_end = on_end
        self._fd = session.fd
        # one reader at a time: trio refuses two tasks waiting on one fd
        self._read_lock = backend.lock() if self.max_tasks > 1 else None
        self._workers = 0
        self._ready = 0       # workers waiting for (or reading) the next request
        self._stopping = False

    def start(self):
        self.session.served.clear()
        self.backend.spawn(self._worker)

    def stop(self):
        """Let busy workers finish their request, end idle ones."""
        self._stopping = True
        self.backend.interrupt()

    async def _worker(self):
        pump = self.session.pump
        self._workers += 1
        try:
            while not self._stopping:
                self._ready += 1
                try:
                    if self._read_lock is None:
                        # the next request is often queued already (the client ran
                        # while we replied): take it without an extra coroutine
                        batch = pump(1)
                        p = batch[0] if batch else await self._next(batch)
                    else:
                        async with self._read_lock:
                            p = await self._next(pump(1))
                finally:
                    self._ready -= 1
                if p is None:
                    return
                if self._ready == 0 and self._workers < self.max_tasks:
                    self.backend.spawn(self._worker)
                try:
                    res = await p.coro
                except self.backend.cancelled:
                    p.finish(None, _fs.FUSEError(errno.EINTR))
                    raise
                except BaseException as exc:
                    p.finish(None, exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    p.finish(res)
        finally:
            self._workers -= 1
            if self._workers == 0:
                self.session.served.set()

    async def _next(self, batch):
        """-> the next request whose coroutine is to run, or None to stop;
        ``batch`` is what a pump(1) just returned."""
        while not self._stopping:
            if batch:
                return batch[0]
            if batch is None:
                self._stopping = True
                self.backend.interrupt()
                self.on_end()
                return None
            await self.backend.wait_readable(self._fd)
            batch = self.session.pump(1)
        return None
