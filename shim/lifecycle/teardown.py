"""The last step: unmount, stop the readers, destroy the session (SERVING
or wherever the startup failed -> STOPPING -> DESTROYED).  A reader still
inside a handler keeps the session alive: a reaper thread destroys it once
the handler returns."""
from __future__ import annotations

import contextlib
import errno
import logging
import subprocess
import threading

from .. import fusermount, kernel
from .._core import sys_umount
from .state import MOUNTED_STATES

log = logging.getLogger('fuseshim')

MNT_DETACH = 2


def teardown(m, grace):
    """Close ``m`` (a fuseshim.Mount): ``grace`` seconds for the readers to
    finish after the unmount before the connection is aborted."""
    s = m.session
    serving = m._serving
    if s is not None:
        previous = s.lifecycle.begin_stopping()
        if previous in MOUNTED_STATES:
            unmount(m.mountpoint)
            if not serving.wait(grace) and m.conn_minor is not None:
                # a lazily unmounted fs with files still open, or a stuck handler
                kernel.abort_connection(m.conn_minor)
                serving.wait(grace)
        serving.stop(timeout=1.0)
        if s.loop is not None:
            abandoned = s.abandon_pending()
            if abandoned:
                log.warning('fuseshim: %d coroutine handler(s) still pending at close were '
                            'cancelled: %s', len(abandoned), ', '.join(abandoned))
        busy = serving.busy()
        if busy:
            # Destroying the session under a running handler would free
            # memory libfuse still uses: finish the job when it returns.
            log.warning('fuseshim: %d worker(s) still inside a handler; the session '
                        'is destroyed when they return', len(busy))
            threading.Thread(target=_destroy_when_idle, args=(serving,), daemon=True,
                             name='fuseshim-reaper').start()
        else:
            s.destroy()
    if m._mount_loop.own_thread is not None and (serving is None or not serving.busy()):
        m._mount_loop.stop_own()


def _destroy_when_idle(serving):
    serving.wait(None)
    serving.session.destroy()


def unmount(mountpoint):
    """Lazy unmount, as libfuse does, but never through libfuse's
    fuse_session_unmount(): that also closes /dev/fuse under the running
    workers (queued RELEASEs would be lost) and skips the umount when the
    connection was aborted.  The fd is closed later by destroy()."""
    try:
        if kernel.has_cap_sys_admin():
            sys_umount(mountpoint, MNT_DETACH)
        else:
            subprocess.run(fusermount.unmount_argv(mountpoint), check=True, capture_output=True)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted (any more)
            log.warning('fuseshim: unmounting %s failed: %s', mountpoint, e)
    except subprocess.CalledProcessError as e:
        if kernel.mountinfo_entry(mountpoint) is not None:
            log.warning('fuseshim: fusermount3 -u %s failed: %s', mountpoint,
                        e.stderr.decode(errors='replace').strip())


def detach_unclosed(m):
    """For Mount.__del__ (no user code may run): as root, detach the mount
    (lazy unmount, as close() does) and ask the readers to stop; the session
    is freed without its destroy handler.  Without root (fusermount3 would
    need a child process) it stays mounted until the process exits."""
    s = m.session
    if s.state not in MOUNTED_STATES or not kernel.has_cap_sys_admin():
        return
    s.lifecycle.begin_stopping()
    with contextlib.suppress(OSError):  # EINVAL: unmounted from outside already
        sys_umount(m.mountpoint, MNT_DETACH)
    s.exit()
    loop = m._mount_loop
    if loop.own_thread is not None:
        loop.loop.call_soon_threadsafe(loop.loop.stop)
