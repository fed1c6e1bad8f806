"""The asyncio loop of a mount: the one ``loop=`` names, or one fuseshim
runs in a thread of its own, for ``async def`` handlers (and every handler
with serve="loop").  An ``async def init`` on a loop mount() blocks is run
by InitOnCallingThread."""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading

from .._core import run_on_blocked_loop


def running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def needs_loop(ops, session, serve) -> bool:
    """Whether the mount needs an event loop: a coroutine handler, an
    ``async def`` init or destroy, or serve="loop"."""
    if serve == 'external':   # the outside driver runs the coroutines
        return False
    return (session.uses_async or serve == 'loop'
            or asyncio.iscoroutinefunction(getattr(ops, 'init', None))
            or asyncio.iscoroutinefunction(getattr(ops, 'destroy', None)))


class MountLoop:
    """The loop of one mount: who runs it, and how the startup's blocking
    calls let an ``async def init`` run meanwhile."""

    def __init__(self, loop):
        self.loop = loop
        self.own_thread = None        # the thread of a loop fuseshim runs itself
        self.init_here = None         # InitOnCallingThread, when init must run on our thread

    def prepare(self, ops, session, serve):
        if not needs_loop(ops, session, serve):
            return
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.own_thread = threading.Thread(target=self.loop.run_forever,
                                               name='fuseshim-asyncio', daemon=True)
            self.own_thread.start()
        elif (asyncio.iscoroutinefunction(getattr(ops, 'init', None))
              and (running_loop() is self.loop or not self.loop.is_running())):
            # The INIT thread cannot hand an async init to this loop: mount()
            # blocks it (called on its thread) or nobody runs it yet.
            self.init_here = InitOnCallingThread(self.loop)
            session.init_runner = self.init_here.run
        session.loop = self.loop

    def blocking(self, fn, *args):
        """fn(*args) for a startup step that waits for INIT: here, or on a
        helper thread while this one runs an async init (InitOnCallingThread)."""
        if self.init_here is None:
            return fn(*args)
        return self.init_here.call(fn, *args)

    def stop_own(self):
        """Stop and close the loop fuseshim started (once nothing serves)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.own_thread.join(5)
        self.loop.close()
        self.own_thread = None


class InitOnCallingThread:
    """Runs an ``async def init`` on the thread that called mount(), for a
    ``loop=`` that thread owns: it runs the loop (mount() was called from one
    of the loop's callbacks or coroutines) or nobody runs it yet.  The INIT
    thread hands the coroutine over and waits; meanwhile a helper thread
    makes the blocking startup call (mount(2), or the wait for INIT).
    Otherwise the INIT thread would wait for a loop that waits for mount():
    a hang until init_timeout, for ever with None."""

    def __init__(self, loop):
        self._loop = loop
        self._jobs = queue.SimpleQueue()   # (coroutine, Future) from the INIT thread; None: done
        self._lock = threading.Lock()
        self._open = True

    def run(self, coro):
        """On the INIT thread (Session.init_runner): run ``coro`` over there."""
        done = concurrent.futures.Future()
        with self._lock:
            if not self._open:
                coro.close()
                raise RuntimeError('mount() no longer waits for FUSE_INIT')
            self._jobs.put((coro, done))
        return done.result()

    def call(self, fn, *args):
        """fn(*args) on a helper thread; run init coroutines here meanwhile."""
        outcome = concurrent.futures.Future()

        def blocking():
            try:
                outcome.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 -- re-raised on the calling thread
                outcome.set_exception(e)
            self._jobs.put(None)
        helper = threading.Thread(target=blocking, name='fuseshim-mount', daemon=True)
        helper.start()
        try:
            while (job := self._jobs.get()) is not None:
                coro, done = job
                try:
                    done.set_result(self._run_here(coro))
                except BaseException as e:  # noqa: BLE001 -- the INIT thread reports it
                    done.set_exception(e)
        finally:
            with self._lock:
                self._open = False
            while True:  # handed over after the end: nobody will run them
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].close()
                    job[1].set_exception(RuntimeError('mount() no longer waits for FUSE_INIT'))
            helper.join()
        return outcome.result()

    def _run_here(self, coro):
        if running_loop() is self._loop:   # blocked by our caller: step in place
            return run_on_blocked_loop(coro, self._loop, 'init')
        return self._loop.run_until_complete(coro)   # nobody runs it: run it here
