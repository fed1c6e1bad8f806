"""How requests are served once FUSE_INIT is answered: one class per mode.

- threads.py     worker threads read /dev/fuse and run the handlers
- event_loop.py  the asyncio loop reads (add_reader) and runs every handler
- external.py    the caller's own driver reads with Session.pump() (pyfuse3 layer)

Each has the same verbs: ``start()`` (after INIT), ``stop(timeout)`` (wake
the readers at close()) and ``wait(timeout)`` (until they returned).  Before
start(), the startup uses ``spawn_init_reader()``: the one thread that
answers INIT (on the sync path while mount(2) waits for it).
"""
from __future__ import annotations

import signal
import threading
import time

from .._core import wake_signal


class Serving:
    """What every mode shares: the reader threads it started."""

    mode = ''

    def __init__(self, session, *, workers=1, loop=None, init_timeout=None, mountpoint=''):
        self.session = session
        self.workers = workers
        self.loop = loop
        self.init_timeout = init_timeout
        self.mountpoint = mountpoint
        self.threads: list[threading.Thread] = []

    # --------------------------------------------------------- the verbs

    def spawn_init_reader(self) -> None:
        """The reader that answers FUSE_INIT (the only one: libfuse sizes
        its buffers from INIT).  In the event-loop modes it returns after
        INIT; start() hands over to the loop or the outside driver."""
        self._spawn(1, until_init=True)

    def spawn_classic_readers(self) -> None:
        """Classic path (mounted, INIT not answered yet): the readers that
        start before INIT."""
        self.spawn_init_reader()

    def start(self) -> None:
        """After INIT: serve (MOUNTED -> SERVING, or wait for a driver)."""
        raise NotImplementedError

    def stop(self, timeout: float) -> None:
        """At close(): make every reader return (the session stops)."""
        self.session.exit()
        self._wake_threads(timeout)

    def wait(self, timeout) -> bool:
        """Block until the readers returned; False on timeout."""
        return self._join(_deadline(timeout))

    def busy(self) -> list:
        """Readers still running (inside a handler) after stop()."""
        return [t for t in self.threads if t.is_alive()]

    # --------------------------------------------------------- threads

    def _spawn(self, count, until_init):
        for _ in range(count):
            t = threading.Thread(target=self._read, args=(until_init,), daemon=True,
                                 name=f'fuseshim-worker-{len(self.threads)}')
            t.start()
            self.threads.append(t)

    def _read(self, until_init):
        self.session.serve(until_init)

    def _join(self, deadline) -> bool:
        for t in list(self.threads):
            t.join(_left(deadline))
            if t.is_alive():
                return False
        return True

    def _wake_threads(self, timeout):
        """After a failed mount the reader is still blocked on the armed fd;
        close() does not wake it, a non-restarting signal does."""
        sig = wake_signal()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            while t.is_alive() and time.monotonic() < deadline:
                try:
                    signal.pthread_kill(t.ident, sig)
                except ProcessLookupError:
                    break
                t.join(0.01)


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline):
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def for_mode(mode, session, **kw) -> Serving:
    from .event_loop import EventLoopServing
    from .external import ExternalServing
    from .threads import ThreadServing
    cls = {'threads': ThreadServing, 'loop': EventLoopServing, 'external': ExternalServing}[mode]
    return cls(session, **kw)
