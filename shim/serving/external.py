"""serve="external": after INIT nobody reads until the caller's own driver
does (Session.pump(); the pyfuse3 layer's compat/_driver.py).  The driver
clears Session.served when it starts reading and sets it when it stops:
both are transitions of the session's state (MOUNTED -> SERVING -> MOUNTED,
or ENDED when the kernel ended the connection)."""
from __future__ import annotations

import os

from . import _deadline, _left
from .event_loop import EventLoopServing


class ExternalServing(EventLoopServing):
    mode = 'external'

    def start(self):
        self._join_init_reader()
        # the state stays MOUNTED until a driver runs
        os.set_blocking(self.session.fd, False)  # pump() must never block the driver

    def stop(self, timeout):
        s = self.session
        s.exit()
        s.served.wait(timeout)  # an outside driver stops once unmounted
        self._wake_threads(timeout)

    def wait(self, timeout):
        deadline = _deadline(timeout)
        if not self._join(deadline):
            return False
        return self.session.served.wait(_left(deadline))
