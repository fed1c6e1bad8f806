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

    def __init__(self, result=None, exc=None, op=GETATTR):
        self.op = op
        self.answer = None

        async def handler():
            if exc is not None:
                raise exc
            return result
        self.coro = handler()

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


class _DriverTests:
    """Run by each backend's subclass: ``run(fn)`` runs ``await fn(make)``
    on that event loop, where ``make(session, **kw)`` starts a Driver."""

    def run(self, fn):
        raise NotImplementedError

    def test_always_queued_requests_still_let_other_tasks_run(self):
        session = FakeSession(endless=True)

        async def body(make):
            driver = make(session)
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


class TestTrioBackend(_DriverTests):
    @staticmethod
    async def checkpoint():
        await trio.lowlevel.checkpoint()

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
        driver = _driver.Driver(session, backend, 1, on_end=lambda: None, **kw)
        driver.start()
        return driver


class TestAsyncioBackend(_DriverTests):
    @staticmethod
    async def checkpoint():
        await asyncio.sleep(0)

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
