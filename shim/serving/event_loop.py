"""serve="loop": after INIT the asyncio loop reads /dev/fuse (add_reader)
and steps every handler in place; only one that suspends becomes a Task."""
from __future__ import annotations

import contextlib
import errno
import select
import time

from ..errors import InitTimeout
from ..lifecycle.event_loop import running_loop
from ..lifecycle.state import SessionState
from . import Serving, _deadline, _left


class EventLoopServing(Serving):
    mode = 'loop'

    def start(self):
        self._join_init_reader()
        self.session.lifecycle.to(SessionState.SERVING)
        self.loop.call_soon_threadsafe(self.session.attach_loop)

    def _join_init_reader(self):
        # the INIT thread returns right after INIT: no two readers at a time
        for t in self.threads:
            t.join(self.init_timeout)
            if t.is_alive():
                raise InitTimeout(errno.ETIMEDOUT, 'the INIT thread did not return',
                                  self.mountpoint)
        self.threads.clear()

    def stop(self, timeout):
        s = self.session
        s.exit()
        if not s.served.is_set():
            if running_loop() is self.loop:
                s.detach_loop()
            else:
                with contextlib.suppress(RuntimeError):  # a closed loop serves nothing
                    self.loop.call_soon_threadsafe(s.detach_loop)
                s.served.wait(timeout)
        self._wake_threads(timeout)

    def wait(self, timeout):
        deadline = _deadline(timeout)
        if not self._join(deadline):
            return False
        if running_loop() is self.loop:
            return self._serve_inline(deadline)
        return self.session.served.wait(_left(deadline))

    def busy(self):
        busy = super().busy()
        if not self.session.served.is_set():
            busy.append('the event loop')  # inside a handler, or not running
        return busy

    def _serve_inline(self, deadline):
        """wait() (or close()) called on the serving loop's own thread: the
        loop cannot run its reader while we block it, so read here until the
        kernel ends the connection.  A coroutine handler that suspends waits
        for the loop (and is cancelled if the session goes first)."""
        s = self.session
        poller = select.poll()
        poller.register(s.fd, select.POLLIN)
        while not s.served.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if poller.poll(None if left is None else max(1, int(left * 1000))):
                s._on_readable()  # detaches (sets served) at the end
        return True
