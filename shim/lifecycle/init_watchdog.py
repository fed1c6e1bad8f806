"""Step 3b of the sync startup: mount(2) waits until FUSE_INIT is answered,
for ever if the init handler hangs.  The watchdog aborts our connection
after init_timeout, which makes mount(2) fail."""
from __future__ import annotations

import logging
import threading

from .. import kernel

log = logging.getLogger('fuseshim')


class InitWatchdog:
    """Started before mount(2); ``mount_returned()`` ends it.  ``timed_out``
    tells afterwards whether it aborted the connection."""

    def __init__(self, fd, timeout):
        self.fd = fd
        self.timeout = timeout
        self.timed_out = False
        self._returned = threading.Event()
        self._thread = threading.Thread(target=self._watch, name='fuseshim-init-watchdog',
                                        daemon=True)

    def start(self):
        self._thread.start()

    def mount_returned(self):
        self._returned.set()
        self._thread.join()

    def _watch(self):
        """Abort our new connection if mount(2) is still waiting for INIT.

        Only the connection our /dev/fuse fd serves, as the kernel names it
        in fdinfo: the fusectl directory lists every connection of the
        machine, and one that appeared meanwhile may belong to another
        process, user or mount namespace."""
        if self.timeout is None or self._returned.wait(self.timeout):
            return
        minor = kernel.fd_connection(self.fd)
        if minor is None:
            log.error('fuseshim: FUSE_INIT not answered within %s s, but the kernel does not '
                      'say which connection fd %d serves (no fuse_connection in '
                      '/proc/self/fdinfo): nothing aborted, mount(2) waits on', self.timeout,
                      self.fd)
            return
        if kernel.abort_connection(minor):
            self.timed_out = True
            log.error('fuseshim: FUSE_INIT not answered within %s s; aborted connection %d',
                      self.timeout, minor)
