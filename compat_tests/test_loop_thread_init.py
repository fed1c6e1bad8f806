"""``async def init`` / ``async def destroy`` when mount() or close() is
called on the thread of the event loop passed as ``loop=``.

The INIT thread used to hand the init coroutine to that loop and wait -- but
the loop cannot turn while mount() blocks its thread: the mount hung until
init_timeout (for ever with None), and close() stalled 30 s on destroy.
Now mount() runs the init coroutine on its own thread (stepped in place
while the loop is blocked; with loop.run_until_complete() when nobody runs
the loop yet), and close() steps destroy in place.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time

import pytest

import fuseshim
from conftest import mounted_paths
from fuseshim.examples.memfs import AsyncMemFS, MemFS

INIT_TIMEOUT = 5.0     # the old code hung this long before failing


def with_async_init_and_destroy(base, init_awaits, destroy_awaits=lambda: asyncio.sleep(0)):
    class FS(base):
        init_thread = destroy_thread = None

        async def init(self):
            self.init_thread = threading.current_thread()
            await init_awaits()
            self.inited = True

        async def destroy(self):
            self.destroy_thread = threading.current_thread()
            await destroy_awaits()
            r = super().destroy()
            if inspect.iscoroutine(r):   # AsyncMemFS's own destroy
                await r
    return FS()


async def use_from_another_thread(mnt):
    """A client in an executor thread: the loop keeps turning meanwhile."""
    def client():
        path = os.path.join(mnt, 'file')
        with open(path, 'w') as f:
            f.write('hello')
        with open(path) as f:
            return f.read()
    return await asyncio.get_running_loop().run_in_executor(None, client)


@pytest.mark.parametrize('handlers', ['plain', 'async'])
@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_mount_and_close_on_the_loops_own_thread(mnt, startup, handlers):
    fs = with_async_init_and_destroy(AsyncMemFS if handlers == 'async' else MemFS,
                                     lambda: asyncio.sleep(0))
    timings = {}

    async def main():
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        m = fuseshim.mount(fs, mnt, startup=startup, loop=loop, init_timeout=INIT_TIMEOUT)
        timings['mount'] = time.monotonic() - t0
        try:
            assert m.serve == ('loop' if handlers == 'async' else 'threads')
            assert await use_from_another_thread(mnt) == 'hello'
        finally:
            t0 = time.monotonic()
            m.close()
            timings['close'] = time.monotonic() - t0

    asyncio.run(main())
    assert fs.inited
    assert fs.init_thread is threading.current_thread()      # the loop's thread
    assert fs.destroy_thread is threading.current_thread()
    assert fs.destroyed
    assert timings['mount'] < 2, timings
    assert timings['close'] < 5, timings
    assert mnt not in mounted_paths()


@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_init_waiting_for_the_blocked_loop_fails_at_once(mnt, startup):
    """An init that awaits what only the (blocked) loop can complete cannot
    finish while mount() holds the loop's thread: a clear InitError at once."""
    fs = with_async_init_and_destroy(MemFS, lambda: asyncio.sleep(0.01))

    async def main():
        t0 = time.monotonic()
        with pytest.raises(fuseshim.InitError) as info:
            fuseshim.mount(fs, mnt, startup=startup, loop=asyncio.get_running_loop(),
                           init_timeout=INIT_TIMEOUT)
        return time.monotonic() - t0, info.value

    elapsed, error = asyncio.run(main())
    assert elapsed < 2
    assert "mount() was called on that loop's own thread" in str(error.__cause__)
    assert mnt not in mounted_paths()


@pytest.mark.parametrize('startup', ['sync', 'classic'])
def test_loop_nobody_runs_yet(mnt, startup):
    """loop= a loop not running yet: mount() runs the init coroutine on it
    (it may await the loop's futures); the loop then serves once run."""
    fs = with_async_init_and_destroy(AsyncMemFS, lambda: asyncio.sleep(0.01))
    loop = asyncio.new_event_loop()
    try:
        t0 = time.monotonic()
        m = fuseshim.mount(fs, mnt, startup=startup, loop=loop, init_timeout=INIT_TIMEOUT)
        assert time.monotonic() - t0 < 2
        assert fs.inited and fs.init_thread is threading.current_thread()

        async def use_and_close():   # close() on the loop's thread, while it runs
            try:
                return await use_from_another_thread(mnt)
            finally:
                m.close()
        assert loop.run_until_complete(use_and_close()) == 'hello'
    finally:
        loop.close()
    assert fs.destroyed
    assert mnt not in mounted_paths()


def test_destroy_waiting_for_the_blocked_loop_finishes_after_close(mnt, caplog):
    """close() on the loop's thread cannot wait for the loop: a destroy that
    suspends on it goes on as a Task, finished once the loop turns again."""
    fs = with_async_init_and_destroy(MemFS, lambda: asyncio.sleep(0),
                                     lambda: asyncio.sleep(0.05))

    async def main():
        m = fuseshim.mount(fs, mnt, loop=asyncio.get_running_loop(), init_timeout=INIT_TIMEOUT)
        t0 = time.monotonic()
        m.close()
        took = time.monotonic() - t0
        assert not fs.destroyed       # waits for the loop, which close() held
        for _ in range(200):
            if fs.destroyed:
                break
            await asyncio.sleep(0.01)
        return took

    took = asyncio.run(main())
    assert took < 5
    assert fs.destroyed and fs.destroy_thread is threading.current_thread()
    assert "finishes on the loop after close() returns" in caplog.text
    assert mnt not in mounted_paths()
