"""Step 3 (sync path, Linux >= 6.18 as root): FUSE_INIT is answered while
mount(2) runs, so mount() returns a filesystem that already works.

  1. (path_choice) /dev/fuse is open and armed with FUSE_DEV_IOC_SYNC_INIT
  2. the libfuse session adopts that fd ("/dev/fd/N": libfuse mounts nothing)
  3. ONE reader thread; it blocks in read() until mount(2) attaches the fd
  4. mount(2) with the GIL released; the kernel sends FUSE_INIT meanwhile,
     the reader answers it, and mount(2) returns only then (or fails with it);
     the INIT watchdog aborts the connection if that takes too long
  5. (serving) the remaining workers start: libfuse sizes buffers from INIT
"""
from __future__ import annotations

import errno
import os
import stat
import time

from .. import kernel
from .._core import sys_mount, wake_signal
from ..errors import InitError, InitTimeout, MountError
from .init_watchdog import InitWatchdog
from .state import SessionState


def start_sync(m, fd):
    """Mount ``m`` (a fuseshim.Mount being started) over the armed ``fd``."""
    s = m.session
    try:
        s.adopt_fd(fd)
    except BaseException:
        os.close(fd)
        raise
    wake_signal()  # install the handler before any thread could need waking
    m._serving.spawn_init_reader()   # answers INIT during mount(2)
    mo = m.options
    watchdog = InitWatchdog(fd, m.init_timeout)
    watchdog.start()
    root_mode = stat.S_IFMT(os.stat(m.mountpoint).st_mode)
    m.mount_called_ns = time.monotonic_ns()
    try:
        m._mount_loop.blocking(sys_mount, mo.fsname, m.mountpoint, mo.fstype(), mo.mount_flags(),
                         mo.mount_data(fd, root_mode))
    except OSError as e:
        watchdog.mount_returned()
        if watchdog.timed_out:
            raise InitTimeout(errno.ETIMEDOUT, f'FUSE_INIT was not answered within '
                              f'{m.init_timeout} s; the connection was aborted and '
                              'nothing is mounted', m.mountpoint) from e
        if s.init_error is not None:
            raise InitError(errno.EPROTO, f'the init handler raised {s.init_error!r}; '
                            'the kernel refused the mount', m.mountpoint) from s.init_error
        raise MountError(e.errno, f'mount(2) failed: {e.strerror}', m.mountpoint) from e
    finally:
        m.mount_returned_ns = time.monotonic_ns()
        watchdog.mount_returned()
    s.lifecycle.to(SessionState.MOUNTED)
    m.conn_minor = kernel.our_connection(s.fd, m.mountpoint)
    if s.init_error is not None:  # defensive: the kernel accepted a refused INIT
        raise InitError(errno.EPROTO, f'the init handler raised {s.init_error!r}',
                        m.mountpoint) from s.init_error
