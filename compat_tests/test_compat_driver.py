"""The event-loop driver of the pyfuse3 layer (fuseshim.compat._driver),
in process, on a scripted session: the same tests for its trio and asyncio
backends.  Real mounts through it are tested in test_compat_pyfuse3."""
from __future__ import annotations

import asyncio
import errno
import os
import threading

import pytest

import fuseshim
from fuseshim._core import OP_NAMES
from fuseshim.compat import _driver

trio = pytest.importorskip('trio')

TIMEOUT = 10   # a driver that never ends fails the test instead of hanging it

GETATTR = OP_NAMES.index('getattr')


class FakeRequest:
    """A collected request: what Session.pump() hands the driver."""

    def __init__(self, result=None, exc=None, op=GETATTR, handler=None):
        self.op = op
        self.answer = None

        async def default_handler():
            if exc is not None:
                raise exc
            return result
        self.coro = (handler or default_handler)()

    def finish(self, result, exc=None):
        self.answer = ('error', exc) if exc is not None else ('ok', result)


class FakeSession:
    """pump() takes scripted requests; ``endless`` makes one always queued.
    The fd is a pipe's read end, never readable: a worker that finds no
    request waits until the driver is stopped."""

    def __init__(self, script=(), endless=False, limit=10_000):
        self.script = list(script)
        self.endless = endless
        self.limit = limit
        self.taken = []
        self._r, self._w = os.pipe()
        self.fd = self._r
        self.served = threading.Event()

    def pump(self, limit=64):
        if self.endless:
            if len(self.taken) >= self.limit:
                raise AssertionError('the driver never let another task run')
            self.taken.append(FakeRequest(fuseshim.EntryAttributes()))
            return self.taken[-1:]
        if self.script:
            self.taken.append(self.script.pop(0))
            return self.taken[-1:]
        return []

    def close(self):
        os.close(self._r)
        os.close(self._w)


def _stop(driver):
    """Stop ``driver``; -> how many workers it had running."""
    workers = driver._workers
    driver.stop()
    return workers


class _DriverTests:
    """Run by each backend's subclass: ``run(fn)`` runs ``await fn(make)``
    on that event loop, where ``make(session, **kw)`` starts a Driver."""

    def run(self, fn):
        raise NotImplementedError

    @pytest.mark.parametrize('max_tasks', [1, 99])
    def test_always_queued_requests_still_let_other_tasks_run(self, max_tasks):
        session = FakeSession(endless=True)

        async def body(make):
            driver = make(session, max_tasks=max_tasks)
            while not session.taken:   # once the worker ran, we run again only when it yields
                await self.checkpoint()
            seen = len(session.taken)
            driver.stop()
            return seen
        seen = self.run(body)
        # every CHECKPOINT_EVERY requests the worker yields; trio may still
        # pick it first again (it shuffles each batch of runnable tasks)
        assert _driver.Driver.CHECKPOINT_EVERY <= 100
        assert 0 < seen < session.limit
        assert all(r.answer is not None for r in session.taken)
        assert session.served.is_set()

    def test_stop_wakes_an_idle_worker(self):
        session = FakeSession()

        async def body(make):
            driver = make(session)
            for _ in range(5):
                await self.checkpoint()   # the worker now waits on the fd
            driver.stop()
        self.run(body)    # returns only if the waiting worker ended
        assert session.served.is_set()

    def test_results_checked_and_errors_mapped(self):
        errors = []

        def on_error(exc):
            errors.append(exc)
            return fuseshim.FUSEError(errno.EIO)
        expect = [None] * len(OP_NAMES)
        expect[GETATTR] = fuseshim.EntryAttributes
        good = FakeRequest(fuseshim.EntryAttributes())
        wrong = FakeRequest('no attributes')
        unchecked = FakeRequest('anything', op=OP_NAMES.index('readlink'))
        fuse_error = FakeRequest(exc=fuseshim.FUSEError(errno.ENOENT))
        boom = FakeRequest(exc=RuntimeError('boom'))
        session = FakeSession([good, wrong, unchecked, fuse_error, boom])

        async def body(make):
            driver = make(session, expect=expect, on_error=on_error)
            for _ in range(20):
                await self.checkpoint()
            driver.stop()
        self.run(body)
        assert good.answer[0] == 'ok'
        assert wrong.answer[0] == 'error' and wrong.answer[1].errno == errno.EIO
        assert unchecked.answer == ('ok', 'anything')
        assert fuse_error.answer[1].errno == errno.ENOENT
        assert boom.answer[1].errno == errno.EIO
        assert [type(e) for e in errors] == [TypeError, RuntimeError]
        assert 'getattr() must return EntryAttributes, not str' in str(errors[0])


    @pytest.mark.parametrize('max_tasks', [1, 2, 99])
    def test_handlers_that_return_run_on_the_reading_task(self, max_tasks):
        """pyfuse3's default main() has max_tasks=99: a client's requests
        whose handlers never suspend must not hop between tasks (that made
        it 2.7 times slower than max_tasks=1)."""
        tasks = []

        def request():
            async def handler():
                tasks.append(self.current_task())
                return fuseshim.EntryAttributes()
            return FakeRequest(handler=handler)
        session = FakeSession([request() for _ in range(300)])

        async def body(make):
            driver = make(session, max_tasks=max_tasks)
            while len(tasks) < 300:
                await self.checkpoint()
            return _stop(driver)
        assert self.run(body) == 1            # nobody else was started
        assert len(set(tasks)) == 1
        assert all(r.answer[0] == 'ok' for r in session.taken)

    def test_a_suspended_handler_hands_reading_on(self):
        """Request 1 waits for what request 2 does: with the reader role
        handed on when a handler suspends, a second worker reads request 2."""
        order = []

        async def first():
            order.append('1 waits')
            await released.wait()
            order.append('1 done')
            return fuseshim.EntryAttributes()

        async def second():
            order.append('2 runs')
            released.set()
            return fuseshim.EntryAttributes()
        session = FakeSession([FakeRequest(handler=first), FakeRequest(handler=second)])

        async def body(make):
            nonlocal released
            released = self.Event()
            driver = make(session, max_tasks=4)
            while len(order) < 3:
                await self.checkpoint()
            return _stop(driver)
        released = None
        assert self.run(body) == 2
        assert order == ['1 waits', '2 runs', '1 done']
        assert [r.answer[0] for r in session.taken] == ['ok', 'ok']

    def test_a_worker_back_from_a_suspended_handler_takes_queued_requests(self):
        """One client's next request is queued when its reply is written:
        the worker that wrote it takes it at once, beside the reader waiting
        on the fd (that wakeup, a handover and a read finding nothing made
        max_tasks=99 cost twice the syscalls of max_tasks=1).  Here the fd
        never becomes readable: only that worker can take request 2."""
        tasks = []

        async def first():
            tasks.append(self.current_task())
            await released.wait()
            return fuseshim.EntryAttributes()

        async def second():
            tasks.append(self.current_task())
            return fuseshim.EntryAttributes()
        session = FakeSession([FakeRequest(handler=first)])

        async def body(make):
            nonlocal released
            released = self.Event()
            driver = make(session, max_tasks=4)
            for _ in range(20):
                await self.checkpoint()   # request 1 waits, worker 2 waits on the fd
            assert len(tasks) == 1 and driver._workers == 2
            session.script.append(FakeRequest(handler=second))
            released.set()
            for _ in range(200):
                if len(tasks) == 2:
                    break
                await self.checkpoint()
            return _stop(driver)
        released = None
        assert self.run(body) == 2
        assert len(tasks) == 2 and tasks[0] is tasks[1]
        assert [r.answer[0] for r in session.taken] == ['ok', 'ok']


class TestTrioBackend(_DriverTests):
    @staticmethod
    async def checkpoint():
        await trio.lowlevel.checkpoint()

    @staticmethod
    def current_task():
        return trio.lowlevel.current_task()

    Event = staticmethod(lambda: trio.Event())

    def run(self, fn):
        async def main():
            with trio.fail_after(TIMEOUT):
                return await in_nursery()

        async def in_nursery():
            async with trio.open_nursery() as nursery:
                backend = _driver.TrioBackend(trio, nursery)
                return await fn(lambda s, **kw: self._start(s, backend, kw))
        try:
            return trio.run(main)
        finally:
            self.session.close()

    def _start(self, session, backend, kw):
        self.session = session
        max_tasks = kw.pop('max_tasks', 1)
        driver = _driver.Driver(session, backend, max_tasks, on_end=lambda: None, **kw)
        driver.start()
        return driver


class TestAsyncioBackend(_DriverTests):
    @staticmethod
    async def checkpoint():
        await asyncio.sleep(0)

    @staticmethod
    def current_task():
        return asyncio.current_task()

    Event = asyncio.Event

    def run(self, fn):
        async def main():
            backend = _driver.AsyncioBackend(asyncio.get_running_loop())
            result = await fn(lambda s, **kw: self._start(s, backend, kw))
            while backend.tasks:
                await asyncio.wait(tuple(backend.tasks))
            return result
        try:
            return asyncio.run(asyncio.wait_for(main(), TIMEOUT))
        finally:
            self.session.close()

    _start = TestTrioBackend._start
