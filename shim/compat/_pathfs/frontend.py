"""The path layer's front end: ``FUSE(operations, mountpoint, ...)``.

It turns FUSE()'s arguments into libfuse's high-level options (this layer's
own: use_ino, hard_remove, timeouts, uid=/gid=/umask=, ...) and mount options,
daemonises unless ``foreground=True``, installs libfuse's signal handlers,
mounts operations.PathOperations with fuseshim and serves until unmounted,
then reports the way the peer's fuse_main does.  It also calls the
filesystem's operations for the path layer (_dispatch, _init_fs, _open, ...).

This class is fusepy's ``FUSE`` itself (fusepy.py binds its flavour to it);
mfusepy's derives from it and binds its own.  What differs between the two
is read from ``self._flavour`` (flavour.Flavour) only.
"""
import inspect
import logging
import os
import select
import signal as _signal
import sys
import threading
import warnings

import fuseshim as _fs
from fuseshim._core import current_operations as _current_operations

from .. import startup_mode, worker_count
from .flavour import Flavour, offered
from .operations import PathOperations, as_index

log = logging.getLogger('fuse')


class fuse_conn_info:
    """The init_with_config() connection argument (informational here)."""

    def __init__(self, info=None):
        info = info or {}
        self.proto_major = info.get('proto_major', 7)
        self.proto_minor = info.get('proto_minor', 0)
        self.max_write = info.get('max_write', 0)
        self.max_read = 0
        self.max_readahead = info.get('max_readahead', 0)
        self.capable = info.get('capable', 0)
        self.want = 0
        self.max_background = 0
        self.congestion_threshold = 0
        self.time_gran = 0


class fuse_config:
    """libfuse 3's struct fuse_config: the high-level options, which
    init_with_config() may change (use_ino, nullpath_ok, timeouts, ...)."""

    def __init__(self):
        self.set_gid = 0
        self.gid = 0
        self.set_uid = 0
        self.uid = 0
        self.set_mode = 0
        self.umask = 0
        self.entry_timeout = 1.0
        self.negative_timeout = 0.0
        self.attr_timeout = 1.0
        self.intr = 0
        self.intr_signal = 10   # SIGUSR1, libfuse's default
        self.remember = 0
        self.hard_remove = 0
        self.use_ino = 0
        self.readdir_ino = 0
        self.direct_io = 0
        self.kernel_cache = 0
        self.auto_cache = 0
        self.no_rofd_flush = 0
        self.ac_attr_timeout_set = 0
        self.ac_attr_timeout = 0.0
        self.nullpath_ok = 0
        self.parallel_direct_writes = 0
        self.show_help = 0
        self.modules = None
        self.debug = 0
        self.fmask = 0
        self.dmask = 0
        self.flags = 0

    def __repr__(self):
        return 'fuse_config(%s)' % ', '.join(f'{k}={v!r}' for k, v in vars(self).items())


# High-level (lib/fuse.c) options: name -> (conf attribute, kind)
_LIB_FLAGS = {'hard_remove': 'hard_remove', 'use_ino': 'use_ino', 'readdir_ino': 'readdir_ino',
              'direct_io': 'direct_io', 'kernel_cache': 'kernel_cache', 'auto_cache': 'auto_cache',
              'intr': 'intr', 'no_rofd_flush': 'no_rofd_flush', 'nullpath_ok': 'nullpath_ok',
              'nopath': 'nullpath_ok'}
_LIB_FLOATS = {'entry_timeout', 'attr_timeout', 'negative_timeout', 'ac_attr_timeout'}
_LIB_INTS = {'remember', 'intr_signal'}


# The path operations a filesystem may provide, for registration checks.
FS_OPS = ('getattr', 'readlink', 'mknod', 'mkdir', 'unlink', 'rmdir', 'symlink', 'rename',
          'link', 'chmod', 'chown', 'truncate', 'open', 'read', 'write', 'statfs', 'flush',
          'release', 'fsync', 'setxattr', 'getxattr', 'listxattr', 'removexattr', 'opendir',
          'readdir', 'releasedir', 'fsyncdir', 'init', 'destroy', 'access', 'create', 'lock',
          'utimens', 'bmap', 'ioctl', 'poll', 'write_buf', 'read_buf', 'flock', 'fallocate')


def _parse_octal(value):
    return int(str(value), 8)


# The FUSE() calls serving now, for fuse_exit() called outside a request.
_instances: list = []
_instances_lock = threading.Lock()


def exit_current():
    """fuse_exit(): stop the FUSE() serving the calling thread's request
    (else the one started last): it unmounts and returns."""
    layer = _current_operations()
    inst = layer.f if isinstance(layer, PathOperations) else None
    if inst is None:
        with _instances_lock:
            inst = _instances[-1] if _instances else None
    if inst is not None:
        inst._request_exit()


class FUSE:
    """Mount ``operations`` at ``mountpoint`` and serve it; returns once the
    filesystem is unmounted (umount, fuse_exit(), Ctrl-C, SIGTERM, SIGHUP).

    ``kwargs`` become mount options (``allow_other=True`` -> ``allow_other``,
    ``fsname='x'`` -> ``fsname=x``); ``foreground``, ``debug`` and
    ``nothreads`` are fusepy's ``-f``, ``-d`` and ``-s``.  Without
    ``foreground=True`` the process daemonizes as fusepy's does: the calling
    process exits once the filesystem is mounted.  fuseshim extension:
    ``startup='auto'|'sync'|'classic'`` (default: $FUSESHIM_STARTUP or auto).
    """

    OPTIONS = (
        ('foreground', '-f'),
        ('debug', '-d'),
        ('nothreads', '-s'),
    )
    _flavour: Flavour              # bound by fusepy.py / mfusepy.py (bind_flavour)

    def __init__(self, operations, mountpoint, raw_fi=False, encoding='utf-8', errors=None,
                 **kwargs):
        self.operations = operations
        self.raw_fi = raw_fi
        self.encoding = encoding
        self.errors = errors if errors is not None else self._flavour.default_errors
        self.__critical_exception = None
        self._exit_event = threading.Event()
        self._exit_signal = None
        self._mount = None

        self.use_ns = getattr(operations, 'use_ns', False)
        if not self.use_ns:
            warnings.warn(
                'Time as floating point seconds for utimens is deprecated!\n'
                'To enable time as nanoseconds set the property "use_ns" to '
                'True in your operations class or set your fusepy '
                'requirements to <4.',
                DeprecationWarning, stacklevel=2)
        self._warn_if_call_ignored()

        startup = startup_mode(kwargs.pop('startup', None))
        foreground = bool(kwargs.pop('foreground', False))
        debug = bool(kwargs.pop('debug', False))
        nothreads = bool(kwargs.pop('nothreads', False))
        if debug:
            foreground = True        # libfuse: -d implies -f
        kwargs.setdefault('fsname', operations.__class__.__name__)

        self.conf = self._flavour.new_config()
        mount_opts = self._split_options(self._normalize_fuse_options(**kwargs))
        if debug:
            mount_opts.append('debug')
            self.conf.debug = 1
        self._registered = self._find_registered()
        mountpoint = os.path.abspath(os.fsdecode(mountpoint))
        status_fd = None
        if not foreground:
            status_fd = self._daemonize_before_mount()

        self._layer = self._make_layer(threaded=not nothreads)
        self._layer.nodes.remember = bool(self.conf.remember)
        self._layer.nodes.high_ids = bool(self.conf.use_ino)
        # Install the signal handlers first: a Ctrl-C arriving while the mount
        # is being set up then unmounts cleanly instead of interrupting it.
        restore = self._install_signal_handlers()
        try:
            try:
                # nothreads: every callback on this thread, as with libfuse's
                # single-threaded loop (ratarmount relies on it: its SQLite
                # connection may only be used by the thread that made it)
                self._mount = _fs.mount(self._layer, mountpoint, options=mount_opts,
                                        startup=startup,
                                        workers=1 if nothreads else worker_count(4),
                                        serve='external' if nothreads else None)
            except BaseException as e:
                crit = self.__critical_exception
                if status_fd is not None:
                    self._daemon_report(status_fd, False, e)
                if crit is not None:
                    raise crit
                if isinstance(e, _fs.InitError) and e.__cause__ is not None:
                    raise e.__cause__
                if not isinstance(e, Exception):
                    raise
                print(f'fuse: {e}', file=sys.stderr)
                flavour = self._flavour
                code = flavour.option_error if isinstance(e, ValueError) else flavour.mount_error
                raise RuntimeError(code) from e
            if status_fd is not None:
                self._daemon_report(status_fd, True, None)
            with _instances_lock:
                _instances.append(self)
            try:
                if nothreads:
                    self._serve_on_this_thread()
                else:
                    while not self._exit_event.is_set():
                        if self._mount.wait(0.25):
                            break
            finally:
                try:
                    self._mount.close()
                finally:
                    with _instances_lock:
                        if self in _instances:
                            _instances.remove(self)
        finally:
            self._restore_signal_handlers(restore)

        del self.operations     # as fusepy: drop the filesystem object
        if self.__critical_exception:
            raise self.__critical_exception
        if self._exit_signal is not None and self._flavour.signal_error is not None:
            # libfuse 3 records the signal as the loop's error; fuse_main
            # then returns 8, which mfusepy raises (after a clean unmount).
            raise RuntimeError(self._flavour.signal_error)

    def _serve_on_this_thread(self):
        """nothreads: read and answer the requests here until unmounted or
        asked to exit; closing then runs destroy here too."""
        session = self._mount.session
        session.served.clear()
        try:
            if not self._layer.run_deferred_init():
                return
            poller = select.poll()
            poller.register(session.fd, select.POLLIN)
            while not self._exit_event.is_set():
                # the handlers are plain functions: pump() answers them inline
                if poller.poll(250) and session.pump() is None:
                    break
        finally:
            session.served.set()

    # -- calling the filesystem (the path layer's way in)
    def _warn_if_call_ignored(self):
        if self._flavour.call_operator is None and callable(self.operations):
            warnings.warn(
                'The call operator on the Operations object is ignored since mfusepy 3.0!'
                'Use decorators to wrap methods or if really necessary overwrite '
                '__getattribute__ instead.', DeprecationWarning, stacklevel=3)

    def _make_layer(self, threaded):
        if 'flock' in self._registered:
            cls = type('_PathOpsFlock', (PathOperations,), {'flock': PathOperations.flock})
        else:
            cls = type('_PathOpsNoFlock', (PathOperations,), {})
        return cls(self, threaded)

    def _find_registered(self):
        """Which filesystem operations libfuse would be given."""
        ops = self.operations
        flavour = self._flavour
        names = {name for name in FS_OPS if flavour.registers(ops, name)}
        if flavour.always_offers_init:
            names.add('init')
        if offered(ops, 'readdir_with_offset'):    # mfusepy addition
            names.add('readdir')
        return names

    # _dispatch(name, *args): call the filesystem's operation,
    # _dispatcher(): the function the path layer calls per request, and
    # _by_name(): the operations object when that function is just
    # getattr(operations, name)(*args) (else None: the layer's hottest
    # requests then skip a call); all three the flavour's, set by bind_flavour.

    def _init_fs(self):
        ops = self.operations
        flavour = self._flavour
        if all(getattr(ops, flag, False) for flag in flavour.nullpath_ok_flags):
            self.conf.nullpath_ok = 1
        try:
            if offered(ops, 'init_with_config'):   # mfusepy addition
                ops.init_with_config(flavour.new_conn_info(), self.conf)
            elif flavour.registers(ops, 'init'):
                self._dispatch('init', '/')
        except BaseException as e:
            self._critical(e)
            raise
        self._layer.nodes.high_ids = bool(self.conf.use_ino)

    def _truncate(self, path, length, has_fh, ufh):
        if has_fh and self._flavour.truncate_gets_fh:
            self._status_of(self._dispatch('truncate', path, length, ufh))
        else:
            self._status_of(self._dispatch('truncate', path, length))

    def _rename(self, old, new, flags):
        # neither peer passes RENAME2 flags on (Flavour.rename_flags: whether
        # they are accepted at all)
        self._status_of(self._dispatch('rename', old, new))

    def _open(self, path, fi):
        if self.raw_fi:
            self._status_of(self._dispatch('open', path, fi))
        else:
            fh = self._dispatch('open', path, fi.flags)
            fi.fh = as_index(fh) & 0xFFFFFFFFFFFFFFFF

    def _create(self, path, mode, fi):
        if self.raw_fi:
            self._status_of(self._dispatch('create', path, mode, fi))
            return fi
        if (self._flavour.create_gets_flags
                and len(inspect.signature(self.operations.create).parameters) != 2):
            fh = self._dispatch('create', path, mode, fi.flags)
        else:
            fh = self._dispatch('create', path, mode)
        fi.fh = as_index(fh) & 0xFFFFFFFFFFFFFFFF
        return fi.fh

    def _readdir(self, path, offset, fh):
        if offered(self.operations, 'readdir_with_offset'):   # mfusepy addition
            return self.operations.readdir_with_offset(path, offset, fh)
        return self._dispatch('readdir', path, fh)

    @property
    def _offsets_honoured(self):
        """Whether readdir's non-zero offsets are used (else dropped, with a warning)."""
        return (self._flavour.plain_readdir_offsets
                or offered(self.operations, 'readdir_with_offset'))

    def _dirent_stats(self):
        return self._flavour.dirent_stat()

    @staticmethod
    def _status_of(r):
        if isinstance(r, int) and not isinstance(r, bool) and r < 0:
            raise _fs.FUSEError(-r)
        return r

    # -- options
    @staticmethod
    def _normalize_fuse_options(**kargs):
        for key, value in kargs.items():
            if isinstance(value, bool):
                if value is True:
                    yield key
            else:
                yield '%s=%s' % (key, value)

    def _split_options(self, opts):
        """High-level options configure this layer; the rest are mount options."""
        conf = self.conf
        rest = []
        for opt in opts:
            name, eq, value = opt.partition('=')
            if name in _LIB_FLAGS and not eq:
                setattr(conf, _LIB_FLAGS[name], 1)
            elif name == 'noauto_cache' and not eq:
                conf.auto_cache = 0
            elif name in _LIB_FLOATS and eq:
                setattr(conf, name, float(value))
                if name == 'ac_attr_timeout':
                    conf.ac_attr_timeout_set = 1
            elif name in _LIB_INTS and eq:
                setattr(conf, name, int(value))
            elif name == 'noforget' and not eq:
                conf.remember = -1
            elif name == 'umask' and eq:
                conf.umask, conf.set_mode = _parse_octal(value), 1
            elif name == 'uid' and eq:
                conf.uid, conf.set_uid = int(value), 1
            elif name == 'gid' and eq:
                conf.gid, conf.set_gid = int(value), 1
            elif name == 'modules':
                print('fuse: modules= is not supported by fuseshim', file=sys.stderr)
                raise RuntimeError(self._flavour.option_error)
            else:
                rest.append(opt)
        return rest

    # -- lifecycle
    def _critical(self, e):
        if self.__critical_exception is None:
            self.__critical_exception = e
        log.critical('Uncaught critical exception from FUSE operation, aborting.',
                     exc_info=(type(e), e, e.__traceback__))
        self._request_exit()

    def _request_exit(self):
        self._exit_event.set()

    def _install_signal_handlers(self):
        """libfuse's fuse_set_signal_handlers: SIGINT/SIGTERM/SIGHUP end the
        loop (fusepy resets SIGINT to SIG_DFL so libfuse takes it over)."""
        saved = []
        if threading.current_thread() is not threading.main_thread():
            return saved

        def handler(signum, frame):
            if self._exit_signal is None:
                self._exit_signal = signum
            self._request_exit()

        for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
            try:
                old = _signal.getsignal(sig)
                if sig != _signal.SIGINT and old not in (_signal.SIG_DFL, None):
                    continue
                _signal.signal(sig, handler)
                saved.append((sig, old))
            except (ValueError, OSError):
                pass
        try:
            old = _signal.getsignal(_signal.SIGPIPE)
            if old == _signal.SIG_DFL:
                _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
                saved.append((_signal.SIGPIPE, old))
        except (ValueError, OSError):
            pass
        return saved

    @staticmethod
    def _restore_signal_handlers(saved):
        for sig, old in saved:
            try:
                _signal.signal(sig, old if old is not None else _signal.SIG_DFL)
            except (ValueError, OSError):
                pass

    # -- daemon mode (no foreground=True)
    def _daemonize_before_mount(self):
        """fusepy without foreground=True: libfuse mounts, forks, and the
        calling process exits.  fuseshim forks first (its worker threads must
        not cross a fork); the parent waits for the child's mount result."""
        r, w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(w)
            status = b''
            while True:
                chunk = os.read(r, 1)
                if not chunk:
                    break
                status = chunk
                break
            os.close(r)
            if status == b'\0':
                os._exit(0)
            raise RuntimeError(self._flavour.mount_error)
        os.close(r)
        os.setsid()
        return w

    @staticmethod
    def _daemon_report(fd, ok, exc):
        try:
            os.write(fd, b'\0' if ok else b'\1')
        finally:
            os.close(fd)
        if not ok:
            if exc is not None:
                print(f'fuse: {exc}', file=sys.stderr)
            os._exit(1)
        try:
            os.chdir('/')
            nullfd = os.open(os.devnull, os.O_RDWR)
            for fd_ in (0, 1, 2):
                os.dup2(nullfd, fd_)
            if nullfd > 2:
                os.close(nullfd)
        except OSError:
            pass


def bind_flavour(cls, flavour: Flavour):
    """Make ``cls`` (fusepy's FUSE, mfusepy's) serve as ``flavour`` says.

    The calling convention is set as plain functions on the class, not looked
    up through ``self._flavour`` per call: the path layer calls an operation
    on every request, and ``cls._dispatch(obj, ...)`` then also works for any
    object with FUSE's attributes (the in-process tests drive the layer so)."""
    cls._flavour = flavour
    call_operator = flavour.call_operator
    if call_operator is None:
        def _dispatch(self, name, *args):
            return getattr(self.operations, name)(*args)

        def _dispatcher(self):
            return self._dispatch

        def _by_name(self):
            return self.operations
        cls._dispatch, cls._dispatcher, cls._by_name = _dispatch, _dispatcher, _by_name
        return

    def _dispatch(self, name, *args):       # noqa: F811  (the other convention)
        ops = self.operations
        if callable(ops):
            return ops(name, *args)
        return getattr(ops, name)(*args)

    def _dispatcher(self):                   # noqa: F811
        """A filesystem that keeps the base class's __call__ is called by
        name here (_call_method): a call and an attribute lookup less on
        every request."""
        if getattr(type(self.operations), '__call__', None) is call_operator:
            return self._call_method
        return self._dispatch

    def _call_method(self, name, *args):
        """call_operator(operations, name, *args), inlined."""
        try:
            method = getattr(self.operations, name)
        except AttributeError:
            return call_operator(self.operations, name, *args)   # its error (EFAULT)
        return method(*args)

    def _by_name(self):                      # noqa: F811
        return self.operations if self._dispatcher() == self._call_method else None
    cls._dispatch, cls._dispatcher, cls._call_method = _dispatch, _dispatcher, _call_method
    cls._by_name = _by_name

