"""serve="threads": worker threads read /dev/fuse and run the handlers
(coroutine handlers are handed to the loop thread)."""
from __future__ import annotations

import threading

from ..lifecycle.state import SessionState
from . import Serving


class ThreadServing(Serving):
    mode = 'threads'

    def __init__(self, session, **kw):
        super().__init__(session, **kw)
        self._count_lock = threading.Lock()
        self._running = 0

    def spawn_init_reader(self):
        # the INIT reader goes on as the first worker
        self._spawn(1, until_init=False)

    def spawn_classic_readers(self):
        """Classic path (mount done, INIT not yet answered): ``workers``
        readers; one of them answers INIT.  start() then adds workers - 1
        more, as fuseshim always did on this path."""
        self._spawn(self.workers, until_init=False)

    def start(self):
        self.session.lifecycle.to(SessionState.SERVING)
        self._spawn(self.workers - 1, until_init=False)
        with self._count_lock:
            idle = self._running == 0
        if idle:  # the kernel ended the connection right after INIT: nobody will report
            self.session.lifecycle.readers_stopped(ended=True)

    def _spawn(self, count, until_init):
        with self._count_lock:
            self._running += count
        super()._spawn(count, until_init)

    def _read(self, until_init):
        try:
            self.session.serve(until_init)
        finally:
            with self._count_lock:
                self._running -= 1
                last = self._running == 0
            # workers return only when the connection ended, the session
            # exited (a fatal handler exception) or close() stopped them
            if last:
                self.session.lifecycle.readers_stopped(ended=True)
