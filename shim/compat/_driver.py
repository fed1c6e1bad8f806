"""Serve a fuseshim session from event-loop tasks, the way pyfuse3 does.

The pyfuse3 layer mounts with ``serve="external"``: after FUSE_INIT nobody
reads /dev/fuse until ``main()`` runs a :class:`Driver`.  Its workers are
tasks of main()'s event loop (trio, or asyncio after
``pyfuse3.asyncio.enable()``).  One worker at a time, the reader, waits for
the fd to be readable, takes one request (``Session.pump``) and steps its
handler coroutine itself -- no thread hop and no task per request, so a
handler that never suspends costs no scheduler round trip besides the wait
for the next request.  A handler that suspends makes its worker hand the
reader role on (starting another worker while fewer than ``max_tasks``
exist), so it does not hold up the rest (pyfuse3's model); once that
handler is done, its worker takes the requests already queued before it
stands by for the role again.
"""
from __future__ import annotations

import asyncio
import errno

import fuseshim as _fs
from fuseshim._core import OP_NAMES, resume_coroutine


class TrioBackend:
    def __init__(self, trio, nursery):
        self._trio = trio
        self._nursery = nursery
        self.cancelled = trio.Cancelled
        # interrupt() wakes waiters with notify_closing(), as pyfuse3's
        # terminate() does, instead of entering a CancelScope for every wait
        self.wait_readable = trio.lowlevel.wait_readable
        self.interrupted = trio.ClosedResourceError
        self.checkpoint = trio.lowlevel.checkpoint

    def spawn(self, fn):
        self._nursery.start_soon(fn)

    def lock(self):
        return self._trio.Lock()

    def interrupt(self, fd):
        # notify_closing() leaves the fd open and usable: a later wait
        # registers it again
        self._trio.lowlevel.notify_closing(fd)


class FdWaiters:
    """asyncio tasks waiting for fds to become readable (trio's
    ``wait_readable``); ``wake(fd)`` ends their waits early (trio's
    ``notify_closing``; given ``exc``, they raise it)."""

    def __init__(self):
        self._waiting = {}      # fd -> the futures of the tasks waiting for it

    async def wait_readable(self, fd):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        waiting = self._waiting.setdefault(fd, set())
        waiting.add(fut)
        loop.add_reader(fd, _resolve, fut)
        try:
            await fut
        finally:
            loop.remove_reader(fd)
            waiting.discard(fut)
            if not waiting and self._waiting.get(fd) is waiting:
                del self._waiting[fd]

    def wake(self, fd, exc=None):
        for fut in tuple(self._waiting.get(fd, ())):
            if exc is None:
                _resolve(fut)
            elif not fut.done():
                fut.set_exception(exc)


class AsyncioBackend:
    cancelled = asyncio.CancelledError
    interrupted = ()   # interrupt() makes wait_readable() return instead

    def __init__(self, loop):
        self._loop = loop
        self._waiters = FdWaiters()
        self.wait_readable = self._waiters.wait_readable
        self.tasks = set()

    def spawn(self, fn):
        task = self._loop.create_task(fn())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def lock(self):
        return asyncio.Lock()

    async def checkpoint(self):
        await asyncio.sleep(0)

    def interrupt(self, fd):
        self._waiters.wake(fd)


def _resolve(fut):
    if not fut.done():
        fut.set_result(None)


class Driver:
    """Workers reading ``session`` in an event loop until stop() or the end
    of the filesystem (then ``on_end`` is called, on the loop's thread).

    ``expect`` (optional) is indexed by a request's op number: the type its
    handler's result must have, or None; ``on_error(exc)`` is given an
    exception other than FUSEError raised by a handler, or the TypeError of
    a result of the wrong type, and returns what to answer the request with.
    Together they let an adapter hand the filesystem's own coroutines to the
    session instead of wrapping each request in a checking coroutine.

    One worker at a time is *the reader*: it takes requests and steps each
    handler coroutine in place.  A handler that returns without suspending
    (most do) costs no task switch, whatever ``max_tasks`` is.  Only when a
    handler suspends does the reader give up its role -- to a worker
    waiting for it, or to a new one while fewer than ``max_tasks`` exist --
    and go on awaiting that handler, so a slow handler never holds up the
    rest (pyfuse3's model).  Handing the role over on every request instead
    (a lock taken per request) made pyfuse3's default ``max_tasks=99``
    2.7 times slower than ``max_tasks=1`` for one client.

    A worker whose suspended handler has finished first takes the requests
    already queued -- without the role, never waiting for the fd -- and
    steps their handlers, awaiting in place any that suspend while the
    reader keeps reading; only when none is queued does it stand by for the
    role.  One client's next request is queued by the time its reply is
    written, so a waiting handler costs it what it costs with
    ``max_tasks=1`` (read, wait, reply) instead of a wakeup of the reader,
    a handover, a read finding nothing and a re-arm of the fd each time."""

    # a reader whose requests are always queued never waits: let the loop's
    # other tasks (terminate(), signals) run at least this often
    CHECKPOINT_EVERY = 64

    def __init__(self, session, backend, max_tasks, on_end, expect=None, on_error=None):
        self.session = session
        self.backend = backend
        self.max_tasks = max(1, max_tasks)
        self.on_end = on_end
        self.expect = expect
        self.on_error = on_error or (lambda exc: exc)
        self._fd = session.fd
        # the reader role (trio refuses two tasks waiting on one fd); with
        # one task it is always that task's
        self._reader = backend.lock() if self.max_tasks > 1 else None
        self._workers = 0
        self._standby = 0     # workers waiting to become the reader
        self._stopping = False

    def start(self):
        self.session.served.clear()
        self.backend.spawn(self._worker)

    def stop(self):
        """Let busy workers finish their request, end idle ones."""
        self._stopping = True
        self.backend.interrupt(self._fd)

    async def _worker(self):
        self._workers += 1
        try:
            if self._reader is None:
                await self._read()
                return
            while not self._stopping:
                self._standby += 1
                try:
                    await self._reader.acquire()
                finally:
                    self._standby -= 1
                try:
                    suspended = await self._read()
                finally:
                    self._reader.release()
                if suspended is None:
                    return
                if self._standby == 0 and self._workers < self.max_tasks:
                    self.backend.spawn(self._worker)     # the next reader
                p, rest = suspended
                try:
                    res = await rest
                except BaseException as exc:  # noqa: BLE001 - _raised re-raises what must escape
                    self._raised(p, exc)
                else:
                    self._returned(p, res)
                # A client that got that reply has often sent its next
                # request already: take it here, beside the reader, rather
                # than leave it to the reader's wakeup (an epoll_wait, then
                # on the next suspension a lock handover, a read finding
                # nothing and a re-arm of the fd: 8 syscalls a request for one
                # waiting client instead of max_tasks=1's 4).
                if await self._read(reader=False) is None:
                    return
        finally:
            self._workers -= 1
            if self._workers == 0:
                self.session.served.set()

    async def _read(self, reader=True):
        """Be the reader: take requests and run their handlers in place until
        one suspends (-> (request, the rest of its coroutine), when another
        task could read meanwhile) or serving ends (-> None).  The hot path:
        everything per request is inline here.

        ``reader=False``: take only requests already queued, without the
        reader role (never waiting for the fd, which is the reader's), and
        await suspended handlers in place -- the reader reads meanwhile --
        until none is queued (-> False) or serving ends (-> None)."""
        pump = self.session.pump
        handover = reader and self._reader is not None
        untaken = self.CHECKPOINT_EVERY
        while not self._stopping:
            # the next request is often queued already (the client ran while
            # we replied): take it without an extra coroutine
            batch = pump(1)
            if batch:
                p = batch[0]
                untaken -= 1
            elif not reader and batch is not None:
                return False
            else:
                p = await self._next(batch)
                if p is None:
                    return None
                untaken = self.CHECKPOINT_EVERY
            coro = p.coro
            try:
                first = coro.send(None)
            except StopIteration as done:
                self._returned(p, done.value)
            except BaseException as exc:  # noqa: BLE001 - _raised re-raises what must escape
                self._raised(p, exc)
            else:
                rest = resume_coroutine(coro, first)
                if handover:
                    return p, rest
                try:
                    res = await rest
                except BaseException as exc:  # noqa: BLE001
                    self._raised(p, exc)
                else:
                    self._returned(p, res)
            if untaken <= 0:
                untaken = self.CHECKPOINT_EVERY
                await self.backend.checkpoint()
        return None

    def _returned(self, p, res):
        want = None if self.expect is None else self.expect[p.op]
        if want is None or isinstance(res, want):
            p.finish(res)
        else:
            p.finish(None, self.on_error(TypeError(
                f'{OP_NAMES[p.op]}() must return {want.__name__}, not {type(res).__name__}')))

    def _raised(self, p, exc):
        """Answer the request a handler raised ``exc`` for; re-raise what
        must reach the loop (cancellation, KeyboardInterrupt, SystemExit)."""
        if isinstance(exc, _fs.FUSEError):
            p.finish(None, exc)
        elif isinstance(exc, self.backend.cancelled):
            p.finish(None, _fs.FUSEError(errno.EINTR))
            raise exc
        elif isinstance(exc, Exception):
            p.finish(None, self.on_error(exc))
        else:
            p.finish(None, exc)
            raise exc

    async def _next(self, batch):
        """-> the next request whose coroutine is to run, or None to stop;
        ``batch`` is what a pump(1) just returned (a request it took is
        served even when stopping: its reply is owed)."""
        while True:
            if batch:
                return batch[0]
            if batch is None:
                self._stopping = True
                self.backend.interrupt(self._fd)
                self.on_end()
                return None
            if self._stopping:
                return None
            try:
                await self.backend.wait_readable(self._fd)
            except self.backend.interrupted:
                continue   # stop() woke us
            batch = self.session.pump(1)
