"""fuseshim.mount(): the two-path startup and the Mount object.

Sync path (Linux >= 6.18, CAP_SYS_ADMIN):
  1. open /dev/fuse, ioctl(FUSE_DEV_IOC_SYNC_INIT)
  2. create the libfuse session on that fd ("/dev/fd/N": libfuse mounts nothing)
  3. start ONE reader thread; it blocks in read() until step 4 attaches the fd
  4. mount(2) with the GIL released; the kernel sends FUSE_INIT meanwhile, the
     reader answers it, and mount(2) returns only then (or fails with it)
  5. start the remaining workers (libfuse sizes buffers from INIT, so only after)
Classic path: libfuse's fuse_session_mount (mount(2) as root, fusermount3
otherwise), then the workers, then wait for INIT to be answered.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import queue
import select
import signal
import stat
import subprocess
import tempfile
import threading
import time
import warnings

from . import fusermount, kernel
from ._core import Session, run_on_blocked_loop, sys_mount, sys_umount, wake_signal
from .errors import InitError, InitTimeout, MountError, SyncInitUnavailable
from .operations import implemented_operations
from .options import parse_options

log = logging.getLogger('fuseshim')

STARTUP_MODES = ('auto', 'sync', 'classic')
SERVE_MODES = ('threads', 'loop', 'external')
MNT_DETACH = 2


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
        self._loop = loop
        self._own_loop_thread = None
        self._threads: list[threading.Thread] = []
        self._session: Session | None = None
        self._loop_attached = False   # after INIT, the event loop (or an outside driver) serves
        self._mounted = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._fatal_raised = False
        self._init_here = None        # _InitOnCallingThread, when init must run on our thread

    # ------------------------------------------------------------ public

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
        deadline = None if timeout is None else time.monotonic() + timeout

        def left():
            return None if deadline is None else max(0.0, deadline - time.monotonic())
        for t in list(self._threads):
            t.join(left())
            if t.is_alive():
                return False
        if self._loop_attached:
            if self.serve == 'loop' and _running_loop() is self._loop:
                return self._serve_inline(left())
            return self._session.served.wait(left())
        return True

    def _raise_fatal(self):
        """Raise (once) the KeyboardInterrupt/SystemExit a handler raised."""
        exc = self._session.fatal if self._session is not None else None
        if exc is not None and not self._fatal_raised:
            self._fatal_raised = True
            raise exc

    def _serve_inline(self, timeout):
        """wait() (or close()) called on the serving loop's own thread: the
        loop cannot run its reader while we block it, so read here until the
        kernel ends the connection.  A coroutine handler that suspends waits
        for the loop (and is cancelled if the session goes first)."""
        s = self._session
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(s.fd, select.POLLIN)
        while not s.served.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if poller.poll(None if left is None else max(1, int(left * 1000))):
                s._on_readable()  # detaches (sets served) at the end
        return True

    @property
    def session(self):
        """The session, for an outside driver (serve="external"): its fd,
        pump() and served event."""
        return self._session

    def close(self) -> None:
        """Unmount (lazily, as libfuse does), stop the workers, run destroy."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._teardown(self.close_timeout)
        self._raise_fatal()

    unmount = close

    def __del__(self):
        # A finalizer runs no user code: destroy() runs only from close().  An
        # unclosed Mount warns; as root it is also detached (lazy unmount, as
        # close() does), so the workers end once the kernel lets go and the
        # session is then freed without its destroy handler.  Without root
        # (fusermount3 would need a child process) it stays mounted and served
        # until the process exits, when the kernel ends the connection.
        if getattr(self, '_closed', True) or getattr(self, '_session', None) is None:
            return
        message = f'unclosed {self!r}: call close() or use "with"; its destroy handler was not run'
        self._closed = True
        try:
            warnings.warn(message, ResourceWarning, source=self)
        finally:  # detached even where warnings are errors (-W error)
            self._detach_unclosed()

    def _detach_unclosed(self):
        try:
            if not (self._mounted and kernel.has_cap_sys_admin()):
                return
            self._mounted = False
            with contextlib.suppress(OSError):  # EINVAL: unmounted from outside already
                sys_umount(self.mountpoint, MNT_DETACH)
            self._session.exit()
            if self._own_loop_thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
        except Exception:  # noqa: BLE001 -- a finalizer must not raise (e.g. at shutdown)
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f'<fuseshim.Mount {self.mountpoint!r} path={self.startup_path} '
                f'workers={self.workers}{" closed" if self._closed else ""}>')

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
        if self.options.auto_unmount:
            problem = fusermount.auto_unmount_problem(kernel.has_cap_sys_admin())
            if problem is not None:
                raise MountError(errno.EOPNOTSUPP, problem, self.mountpoint)
        path, reason, fd = self._choose_path()
        self.startup_path, self.startup_reason = path, reason
        try:
            self._session = Session(self.ops, implemented_operations(self.ops),
                                    self.options.libfuse_argv())
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        self._session.want = self._wanted_caps()
        if self.serve is None:  # async handlers: the loop reads, unless workers were asked for
            self.serve = 'loop' if self._session.uses_async and self.workers == 1 else 'threads'
        self._session.use_mode(self.serve)
        try:
            self._setup_loop()
            if path == 'sync':
                self._start_sync(fd)
            else:
                self._start_classic()
        except BaseException:
            self._closed = True
            self._teardown(grace=0)  # nothing to drain: the connection is failed or aborted
            raise
        log.info('fuseshim: mounted %s via %s startup (%s)', self.mountpoint, path, reason)

    def _choose_path(self):
        """-> (path, reason, armed /dev/fuse fd or None)."""
        mode = self.requested_startup
        if mode == 'classic':
            return 'classic', 'startup="classic" was requested', None

        def unavailable(reason):
            if mode == 'sync':
                raise SyncInitUnavailable(errno.EOPNOTSUPP,
                                          f'startup="sync" is impossible here: {reason}')
            return 'classic', reason, None

        if self.options.needs_fusermount:
            return unavailable('auto_unmount needs fusermount3, which mounts classically')
        if not kernel.has_cap_sys_admin():
            return unavailable('no CAP_SYS_ADMIN: mounting through fusermount3')
        fd = kernel.open_fuse_device()
        try:
            kernel.arm_sync_init(fd)
        except OSError as e:
            os.close(fd)
            if e.errno == errno.ENOTTY:
                return unavailable(f'kernel {os.uname().release} has no FUSE_DEV_IOC_SYNC_INIT '
                                   '(ENOTTY; needs Linux >= 6.18)')
            return unavailable(f'FUSE_DEV_IOC_SYNC_INIT failed: {e.strerror}')
        return 'sync', f'kernel {os.uname().release} accepted FUSE_DEV_IOC_SYNC_INIT', fd

    def _wanted_caps(self) -> dict:
        ops = self.ops
        want = {'writeback_cache': bool(getattr(ops, 'enable_writeback_cache', False)),
                'posix_acl': bool(getattr(ops, 'enable_acl', False)),
                # libfuse turns splice on whenever write_buf exists; for the
                # small requests that dominate, it costs two extra syscalls each
                'splice_read': bool(getattr(ops, 'enable_splice_read', False)),
                # only FdRange replies (fuse_reply_data) use it, and libfuse copies
                # those under two pages anyway: large reads gain, nothing loses
                'splice_write': bool(getattr(ops, 'enable_splice_write', True)),
                'splice_move': bool(getattr(ops, 'enable_splice_write', True)),
                # pyfuse3's meaning: the fs answers "." and "..", so NFS export works
                'export_support': bool(getattr(ops, 'supports_dot_lookup', False))}
        if getattr(ops, 'enable_passthrough', False):
            want['passthrough'] = True
        if self._session.killpriv_wanted:
            # the flags are read from the raw request, which splice_read
            # leaves in a pipe: the two do not go together
            want['handle_killpriv_v2'] = not want['splice_read']
        elif getattr(ops, 'enable_killpriv', False):
            log.info('fuseshim: enable_killpriv ignored: %s.write() does not take the '
                     "writer's RequestContext as a fourth argument", type(ops).__name__)
        return want

    def _setup_loop(self):
        s = self._session
        if self.serve == 'external':
            return
        if not (s.uses_async or self.serve == 'loop'
                or asyncio.iscoroutinefunction(getattr(self.ops, 'init', None))
                or asyncio.iscoroutinefunction(getattr(self.ops, 'destroy', None))):
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._own_loop_thread = threading.Thread(target=self._loop.run_forever,
                                                     name='fuseshim-asyncio', daemon=True)
            self._own_loop_thread.start()
        elif (asyncio.iscoroutinefunction(getattr(self.ops, 'init', None))
              and (_running_loop() is self._loop or not self._loop.is_running())):
            # The INIT thread cannot hand an async init to this loop: mount()
            # blocks it (called on its thread) or nobody runs it yet.
            self._init_here = _InitOnCallingThread(self._loop)
            s.init_runner = self._init_here.run
        s.loop = self._loop

    def _blocking(self, fn, *args):
        """fn(*args) for a startup step that waits for INIT: here, or on a
        helper thread while this one runs an async init (_InitOnCallingThread)."""
        if self._init_here is None:
            return fn(*args)
        return self._init_here.call(fn, *args)

    def _spawn_workers(self, count, until_init=False):
        for _ in range(count):
            t = threading.Thread(target=self._session.serve, args=(until_init,), daemon=True,
                                 name=f'fuseshim-worker-{len(self._threads)}')
            t.start()
            self._threads.append(t)

    def _start_serving(self):
        """After INIT: the remaining workers, or hand over to the event loop."""
        if self.serve == 'threads':
            self._spawn_workers(self.workers - 1)
            return
        # the INIT thread returns right after INIT: no two readers at a time
        for t in self._threads:
            t.join(self.init_timeout)
            if t.is_alive():
                raise InitTimeout(errno.ETIMEDOUT, 'the INIT thread did not return',
                                  self.mountpoint)
        self._threads.clear()
        self._loop_attached = True
        if self.serve == 'loop':
            self._loop.call_soon_threadsafe(self._session.attach_loop)
        else:  # 'external': "served" stays set while no driver runs
            os.set_blocking(self._session.fd, False)  # pump() must never block the driver
            self._session.served.set()

    def _start_sync(self, fd):
        s = self._session
        try:
            s.adopt_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        wake_signal()  # install the handler before any thread could need waking
        # the one reader that answers INIT during mount(2)
        self._spawn_workers(1, until_init=self.serve != 'threads')
        mo = self.options
        returned = threading.Event()
        timed_out = []
        watchdog = threading.Thread(target=self._init_watchdog, args=(fd, returned, timed_out),
                                    name='fuseshim-init-watchdog', daemon=True)
        watchdog.start()
        root_mode = stat.S_IFMT(os.stat(self.mountpoint).st_mode)
        self.mount_called_ns = time.monotonic_ns()
        try:
            self._blocking(sys_mount, mo.fsname, self.mountpoint, mo.fstype(), mo.mount_flags(),
                           mo.mount_data(fd, root_mode))
        except OSError as e:
            returned.set()
            watchdog.join()
            if timed_out:
                raise InitTimeout(errno.ETIMEDOUT, f'FUSE_INIT was not answered within '
                                  f'{self.init_timeout} s; the connection was aborted and '
                                  'nothing is mounted', self.mountpoint) from e
            if s.init_error is not None:
                raise InitError(errno.EPROTO, f'the init handler raised {s.init_error!r}; '
                                'the kernel refused the mount', self.mountpoint) from s.init_error
            raise MountError(e.errno, f'mount(2) failed: {e.strerror}', self.mountpoint) from e
        finally:
            self.mount_returned_ns = time.monotonic_ns()
            returned.set()
        self._mounted = True
        self.conn_minor = self._find_minor()
        if s.init_error is not None:  # defensive: the kernel accepted a refused INIT
            raise InitError(errno.EPROTO, f'the init handler raised {s.init_error!r}',
                            self.mountpoint) from s.init_error
        self._start_serving()

    def _init_watchdog(self, fd, returned, timed_out):
        """Abort our new connection if mount(2) is still waiting for INIT.

        Only the connection our /dev/fuse fd serves, as the kernel names it
        in fdinfo: the fusectl directory lists every connection of the
        machine, and one that appeared meanwhile may belong to another
        process, user or mount namespace."""
        if self.init_timeout is None or returned.wait(self.init_timeout):
            return
        minor = kernel.fd_connection(fd)
        if minor is None:
            log.error('fuseshim: FUSE_INIT not answered within %s s, but the kernel does not '
                      'say which connection fd %d serves (no fuse_connection in '
                      '/proc/self/fdinfo): nothing aborted, mount(2) waits on', self.init_timeout,
                      fd)
            return
        if kernel.abort_connection(minor):
            timed_out.append(minor)
            log.error('fuseshim: FUSE_INIT not answered within %s s; aborted connection %d',
                      self.init_timeout, minor)

    def _wake_reader(self, timeout=5.0):
        """Stop the workers.  After a failed mount the reader is still blocked
        on the armed fd; close() does not wake it, a non-restarting signal does."""
        s = self._session
        s.exit()
        if self._loop_attached and not s.served.is_set():
            if self.serve == 'loop' and _running_loop() is self._loop:
                s.detach_loop()
            else:
                if self.serve == 'loop':
                    with contextlib.suppress(RuntimeError):  # a closed loop serves nothing
                        self._loop.call_soon_threadsafe(s.detach_loop)
                s.served.wait(timeout)  # an outside driver stops once unmounted
        sig = wake_signal()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            while t.is_alive() and time.monotonic() < deadline:
                try:
                    signal.pthread_kill(t.ident, sig)
                except ProcessLookupError:
                    break
                t.join(0.01)

    def _start_classic(self):
        s = self._session
        self.mount_called_ns = time.monotonic_ns()
        if kernel.has_cap_sys_admin():
            failure = s.mount_classic(self.mountpoint)
        else:
            # fusermount3 explains a refusal only on its stderr (our fd 2)
            with _stderr_captured() as helper_said:
                failure = s.mount_classic(self.mountpoint)
            if failure is not None and helper_said():
                failure = f'{failure}; {helper_said()}'
        self.mount_returned_ns = time.monotonic_ns()
        if failure is not None:
            if 'open /dev/fuse' in failure and not kernel.has_cap_sys_admin():
                failure += (' (/dev/fuse must be accessible to ordinary users for fusermount3; '
                            "Debian's udev rule makes it mode 0666)")
            raise MountError(errno.EIO, f'libfuse could not mount: {failure}', self.mountpoint)
        self._mounted = True
        self.conn_minor = self._find_minor()
        self._spawn_workers(1 if self.serve != 'threads' else self.workers,
                            until_init=self.serve != 'threads')
        if not self._blocking(s.init_event.wait, self.init_timeout):
            if self.conn_minor is not None:
                kernel.abort_connection(self.conn_minor)
            raise InitTimeout(errno.ETIMEDOUT, f'FUSE_INIT was not answered within '
                              f'{self.init_timeout} s; the connection was aborted and the '
                              'filesystem unmounted', self.mountpoint)
        if s.init_error is not None:
            raise InitError(errno.EPROTO, f'the init handler raised {s.init_error!r}; '
                            'the filesystem was unmounted', self.mountpoint) from s.init_error
        self._start_serving()

    def _find_minor(self):
        """Our connection: the one our fd serves (fdinfo, Linux >= 6.18), else
        the FUSE mount we just made at our mountpoint (classic path on older
        kernels; mountinfo shows only our namespace)."""
        minor = kernel.fd_connection(self._session.fd)
        if minor is not None:
            return minor
        entry = kernel.mountinfo_entry(self.mountpoint)
        return entry[0] if entry is not None and entry[1].startswith('fuse') else None

    # ------------------------------------------------------------ teardown

    def _teardown(self, grace):
        s = self._session
        was_mounted = self._mounted
        if self._mounted:
            self._mounted = False
            self._unmount()
        if s is not None:
            if was_mounted and not self._served_stopped(grace) and self.conn_minor is not None:
                # a lazily unmounted fs with files still open, or a stuck handler
                kernel.abort_connection(self.conn_minor)
                self._served_stopped(grace)
            self._wake_reader(timeout=1.0)
            if s.loop is not None:
                abandoned = s.abandon_pending()
                if abandoned:
                    log.warning('fuseshim: %d coroutine handler(s) still pending at close were '
                                'cancelled: %s', len(abandoned), ', '.join(abandoned))
            busy = [t for t in self._threads if t.is_alive()]
            if self._loop_attached and not s.served.is_set():
                busy.append('the event loop')  # inside a handler, or not running
            if busy:
                # Destroying the session under a running handler would free
                # memory libfuse still uses: finish the job when it returns.
                log.warning('fuseshim: %d worker(s) still inside a handler; the session '
                            'is destroyed when they return', len(busy))
                threading.Thread(target=self._destroy_when_idle, daemon=True,
                                 name='fuseshim-reaper').start()
            else:
                s.destroy()
        if (self._own_loop_thread is not None and not any(t.is_alive() for t in self._threads)
                and (not self._loop_attached or s.served.is_set())):
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._own_loop_thread.join(5)
            self._loop.close()
            self._own_loop_thread = None

    def _unmount(self):
        """Lazy unmount, as libfuse does, but never through libfuse's
        fuse_session_unmount(): that also closes /dev/fuse under the running
        workers (queued RELEASEs would be lost) and skips the umount when the
        connection was aborted.  The fd is closed later by destroy()."""
        try:
            if kernel.has_cap_sys_admin():
                sys_umount(self.mountpoint, MNT_DETACH)
            else:
                subprocess.run(fusermount.unmount_argv(self.mountpoint),
                               check=True, capture_output=True)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted (any more)
                log.warning('fuseshim: unmounting %s failed: %s', self.mountpoint, e)
        except subprocess.CalledProcessError as e:
            if kernel.mountinfo_entry(self.mountpoint) is not None:
                log.warning('fuseshim: fusermount3 -u %s failed: %s', self.mountpoint,
                            e.stderr.decode(errors='replace').strip())

    def _destroy_when_idle(self):
        self._served_stopped(None)
        self._session.destroy()


class _InitOnCallingThread:
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
        if _running_loop() is self._loop:   # blocked by our caller: step in place
            return run_on_blocked_loop(coro, self._loop, 'init')
        return self._loop.run_until_complete(coro)   # nobody runs it: run it here


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@contextlib.contextmanager
def _stderr_captured():
    """Redirect fd 2 (where child processes such as fusermount3 write) to a
    temporary file for the block; yields a function returning what was
    written, which is also passed on to the real stderr afterwards."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        text = []
        try:
            yield lambda: ''.join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            data = tmp.read().decode(errors='replace')
            text.append(' '.join(data.split()))
            if data:
                os.write(2, data.encode())


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
