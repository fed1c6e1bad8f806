"""fuseshim.mount() and the Mount object: the public face of a mount.

The steps live in fuseshim/lifecycle/ (one module each, in this order):
path_choice -> capabilities -> event_loop -> sync_startup or classic_startup
(with init_watchdog) -> serving (fuseshim/serving/: threads, event loop or
an outside driver) -> teardown.  The session's one state
(lifecycle/state.py: new -> mounted -> serving -> stopping -> destroyed) is
Mount.state.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import warnings

from . import fusermount, kernel
from ._core import Session
from .errors import MountError
from .lifecycle.capabilities import wanted_capabilities
from .lifecycle.classic_startup import start_classic
from .lifecycle.event_loop import MountLoop
from .lifecycle.path_choice import choose_path
from .lifecycle.state import SessionState
from .lifecycle.sync_startup import start_sync
from .lifecycle.teardown import detach_unclosed, teardown
from .operations import implemented_operations
from .options import parse_options
from .serving import for_mode

log = logging.getLogger('fuseshim')

STARTUP_MODES = ('auto', 'sync', 'classic')
SERVE_MODES = ('threads', 'loop', 'external')
CLOSED_STATES = (SessionState.STOPPING, SessionState.DESTROYED)


def mount(ops, mountpoint, *, options=(), startup='auto', workers=1, init_timeout=10.0,
          loop=None, close_timeout=5.0, serve=None) -> 'Mount':
    """Mount ``ops`` at ``mountpoint`` and serve it in the background.

    startup: "auto" (sync init where the kernel and privileges allow it),
    "sync" (fail unless sync init is possible) or "classic" (mount, then loop).
    workers: threads receiving requests (>= 1; only with "threads" serving).
    init_timeout: seconds to wait for FUSE_INIT to be answered before the
    connection is aborted.  loop: the asyncio loop for ``async def`` handlers
    (default: one fuseshim runs in a thread).  serve: "threads" (worker threads
    read and run plain handlers), "loop" (the event loop reads and runs every
    handler; the default when any handler is ``async def`` and workers is 1)
    or "external"
    (after INIT, the caller drives the session: see docs/api.md).
    """
    m = Mount(ops, mountpoint, options=options, startup=startup, workers=workers,
              init_timeout=init_timeout, loop=loop, close_timeout=close_timeout, serve=serve)
    m._start()
    return m


class Mount:
    """A mounted, serving filesystem.  Use as a context manager, or call
    close(); wait() blocks until it is unmounted (from outside, or close())."""

    def __init__(self, ops, mountpoint, *, options=(), startup='auto', workers=1,
                 init_timeout=10.0, loop=None, close_timeout=5.0, serve=None):
        if startup not in STARTUP_MODES:
            raise ValueError(f'startup must be one of {STARTUP_MODES}, not {startup!r}')
        if serve is not None and serve not in SERVE_MODES:
            raise ValueError(f'serve must be one of {SERVE_MODES} (or None), not {serve!r}')
        if serve in ('loop', 'external') and workers != 1:
            raise ValueError(f'serve={serve!r} reads on one thread: workers must be 1')
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f'workers must be a whole number >= 1, not {workers!r}')
        if init_timeout is not None and init_timeout <= 0:
            raise ValueError('init_timeout must be positive (or None for no limit)')
        self.ops = ops
        self.mountpoint = _check_mountpoint(mountpoint)
        self.options = parse_options(options)
        self.requested_startup = startup
        self.serve = serve            # resolved in _start() once the handlers are known
        self.workers = workers
        self.init_timeout = init_timeout
        self.close_timeout = close_timeout
        self.startup_path: str | None = None
        self.startup_reason: str | None = None
        self.mount_called_ns = 0      # monotonic ns when mount(2)/libfuse mount was called
        self.mount_returned_ns = 0    # ... and when it returned
        self.conn_minor: int | None = None
        self._mount_loop = MountLoop(loop)
        self._session: Session | None = None
        self._serving = None          # the serving mode (fuseshim.serving), from _start()
        # re-entrant, with _closing: close() from a signal handler that
        # interrupted this thread's own close() (the usual SIGTERM handler
        # calling close() while the main thread is already closing) returns
        # at once instead of waiting on itself
        self._close_lock = threading.RLock()
        self._closing = False
        self._fatal_raised = False

    # ------------------------------------------------------------ public

    @property
    def state(self) -> SessionState:
        """The session's state: NEW, MOUNTED, SERVING, ENDED, STOPPING or
        DESTROYED (fuseshim.lifecycle.state)."""
        return self._session.state if self._session is not None else SessionState.NEW

    @property
    def closed(self) -> bool:
        return self.state in CLOSED_STATES

    @property
    def init_ns(self) -> int:
        """monotonic ns when the init handler finished (0: not yet)."""
        return self._session.init_ns if self._session is not None else 0

    @property
    def init_before_mount_returned(self) -> bool:
        """True when INIT was answered before mount(2) returned (sync path)."""
        return 0 < self.init_ns <= self.mount_returned_ns

    @property
    def connection(self) -> dict:
        """What the kernel offered in INIT (protocol, capabilities, ...)."""
        return dict(self._session.conn_info or {}) if self._session is not None else {}

    @property
    def granted(self) -> dict:
        """Capabilities fuseshim asked for and whether the kernel granted them."""
        return dict(self._session.granted) if self._session is not None else {}

    def wait(self, timeout=None) -> bool:
        """Block until serving stopped (unmounted); False on timeout.  A
        KeyboardInterrupt or SystemExit raised by a handler stopped serving:
        it is raised here (or by close(), whichever comes first)."""
        if not self._served_stopped(timeout):
            return False
        self._raise_fatal()
        return True

    def _served_stopped(self, timeout) -> bool:
        return self._serving is None or self._serving.wait(timeout)

    def _raise_fatal(self):
        """Raise (once) the KeyboardInterrupt/SystemExit a handler raised."""
        exc = self._session.fatal if self._session is not None else None
        if exc is not None and not self._fatal_raised:
            self._fatal_raised = True
            raise exc

    @property
    def _own_loop_thread(self):
        """The thread of the loop fuseshim runs itself (None: none, or the caller's)."""
        return self._mount_loop.own_thread

    @property
    def session(self):
        """The session, for an outside driver (serve="external"): its fd,
        pump() and served event."""
        return self._session

    def close(self) -> None:
        """Unmount (lazily, as libfuse does), stop the workers, run destroy."""
        with self._close_lock:
            if self._closing or self.closed:   # _closing: nested on this thread
                return
            self._closing = True
            try:
                teardown(self, self.close_timeout)
            finally:
                self._closing = False
        self._raise_fatal()

    unmount = close

    def __del__(self):
        # A finalizer runs no user code: destroy() runs only from close().  An
        # unclosed Mount warns; as root it is also detached (lazy unmount, as
        # close() does), so the workers end once the kernel lets go and the
        # session is then freed without its destroy handler.  Without root
        # (fusermount3 would need a child process) it stays mounted and served
        # until the process exits, when the kernel ends the connection.
        if getattr(self, '_session', None) is None or self.closed:
            return
        message = f'unclosed {self!r}: call close() or use "with"; its destroy handler was not run'
        try:
            warnings.warn(message, ResourceWarning, source=self)
        finally:  # detached even where warnings are errors (-W error)
            with contextlib.suppress(Exception):  # a finalizer must not raise (e.g. at shutdown)
                detach_unclosed(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f'<fuseshim.Mount {self.mountpoint!r} path={self.startup_path} '
                f'workers={self.workers}{" closed" if self.closed else ""}>')

    # notifications, forwarded to the session
    def invalidate_inode(self, inode, attr_only=False):
        self._session.invalidate_inode(inode, attr_only)

    def invalidate_entry(self, parent_inode, name, deleted=0):
        self._session.invalidate_entry(parent_inode, name, deleted)

    def notify_delete(self, parent_inode, child_inode, name):
        self._session.invalidate_entry(parent_inode, name, child_inode)

    def notify_store(self, inode, offset, data):
        self._session.notify_store(inode, offset, data)

    def notify_retrieve(self, inode, offset, size, cookie=0):
        self._session.notify_retrieve(inode, offset, size, cookie)

    # ------------------------------------------------------------ startup

    def _start(self):
        """The startup, step by step (each in fuseshim/lifecycle/)."""
        if self.options.auto_unmount:
            problem = fusermount.auto_unmount_problem(kernel.has_cap_sys_admin())
            if problem is not None:
                raise MountError(errno.EOPNOTSUPP, problem, self.mountpoint)
        path, reason, fd = choose_path(self.requested_startup, self.options)
        self.startup_path, self.startup_reason = path, reason
        try:
            s = self._session = Session(self.ops, implemented_operations(self.ops),
                                        self.options.libfuse_argv())
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        s.want = wanted_capabilities(self.ops, s)
        if self.serve is None:  # async handlers: the loop reads, unless workers were asked for
            self.serve = 'loop' if s.uses_async and self.workers == 1 else 'threads'
        s.use_mode(self.serve)
        self._serving = for_mode(self.serve, s, workers=self.workers,
                                 init_timeout=self.init_timeout, mountpoint=self.mountpoint)
        try:
            self._mount_loop.prepare(self.ops, s, self.serve)
            self._serving.loop = self._mount_loop.loop
            if path == 'sync':
                start_sync(self, fd)
            else:
                start_classic(self)
            self._serving.start()
        except BaseException:
            teardown(self, grace=0)  # nothing to drain: the connection is failed or aborted
            raise
        log.info('fuseshim: mounted %s via %s startup (%s)', self.mountpoint, path, reason)


def _check_mountpoint(mountpoint) -> str:
    path = os.path.abspath(os.fsdecode(mountpoint))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, 'mountpoint does not exist', path) from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise MountError(errno.ENOTCONN, 'mountpoint is a dead FUSE mount (its daemon is '
                             'gone); unmount it first: fusermount3 -u or umount -l', path) from None
        raise
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, 'mountpoint is not a directory', path)
    path = os.path.realpath(path)
    if kernel.is_mountpoint(path):
        raise MountError(errno.EBUSY, 'something is already mounted there; unmount it or '
                         'choose another directory', path)
    return path
