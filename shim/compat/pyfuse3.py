"""fuseshim.compat.pyfuse3: the public API of pyfuse3 3.x, served by fuseshim.

Change one line -- ``import pyfuse3`` becomes
``import fuseshim.compat.pyfuse3 as pyfuse3`` (and ``from pyfuse3 import ...``
becomes ``from fuseshim.compat.pyfuse3 import ...``) -- and a pyfuse3
filesystem runs unchanged: ``init()`` mounts, ``await main()`` inside
``trio.run`` (or asyncio after ``pyfuse3.asyncio.enable()``) serves until the
filesystem is unmounted or ``terminate()`` is called, ``close()`` cleans up.

How it works: ``init()`` mounts with fuseshim's ``serve="external"`` (a
thread answers FUSE_INIT, nothing else); ``main()`` then reads the requests in
tasks of its own event loop (``_driver.Driver``) and awaits each handler
right there, as pyfuse3 does.  Requests arriving before ``main()`` runs (or
between two ``main()`` calls) wait in the kernel, as under pyfuse3.

Behaviour differences and their reasons are listed in
docs/migration-pyfuse3.md.
"""
from __future__ import annotations

import asyncio as _asyncio
import collections
import ctypes
import errno
import functools
import inspect
import logging
import os
import stat as _stat
import sys
import threading
from types import CoroutineType as _CoroutineType
from pickle import PicklingError  # noqa: F401  (a name of pyfuse3's module)
from queue import Queue

try:
    import trio
except ImportError:  # pragma: no cover - pyfuse3 itself requires trio
    trio = None

import fuseshim as _fs
from fuseshim._core import OP_NAMES as _OP_NAMES
from fuseshim.operations import Operations as _CoreOperations

from . import _driver, startup_mode

_real_trio = trio

log = logging.getLogger('pyfuse3')

# The pyfuse3 API level this module provides.
__version__ = '3.5.0'

# ---------------------------------------------------------------- constants

FileHandleT = int
FileNameT = bytes
FlagT = int
InodeT = int
ModeT = int
XAttrNameT = bytes

ROOT_INODE: InodeT = 1
ENOATTR: int = errno.ENODATA          # Linux has no ENOATTR; pyfuse3 uses ENODATA
RENAME_NOREPLACE: FlagT = 1           # <linux/fs.h>
RENAME_EXCHANGE: FlagT = 2
_NANOS_PER_SEC = 1000000000

default_options = frozenset(('default_permissions',))

#: The trio token of the running main() ('asyncio' in asyncio mode), else None.
trio_token = None


# ---------------------------------------------------------------- data types

class _Alias(type):
    """Metaclass: ``isinstance(x, Alias)`` checks against the fuseshim type."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._wrapped)

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls._wrapped)


class EntryAttributes(metaclass=_Alias):
    """pyfuse3.EntryAttributes: makes a fuseshim EntryAttributes with pyfuse3's
    defaults (st_mode S_IFREG, st_nlink 1, st_blksize 4096, timeouts 300 s)."""
    _wrapped = _fs.EntryAttributes

    def __new__(cls):
        return _ENTRY_TEMPLATE.copy()   # one C call: handlers make one per request


_ENTRY_TEMPLATE = _fs.EntryAttributes()
_ENTRY_TEMPLATE.st_mode = _stat.S_IFREG


class StatvfsData(metaclass=_Alias):
    """pyfuse3.StatvfsData: every field starts at 0, as in pyfuse3."""
    _wrapped = _fs.StatvfsData

    def __new__(cls):
        d = _fs.StatvfsData()
        d.f_bsize = d.f_frsize = d.f_namemax = 0
        return d


FileInfo = _fs.FileInfo
SetattrFields = _fs.SetattrFields
RequestContext = _fs.RequestContext
PollHandle = _fs.PollHandle


class FUSEError(_fs.FUSEError):
    """Raise from a handler to make the syscall fail with ``errno``."""

    @property
    def errno_(self):
        return self.errno

    def __reduce__(self):
        return (FUSEError, (self.errno,))


class ReaddirToken:
    """Handed to Operations.readdir; pass it on to readdir_reply()."""
    __slots__ = ('_core', '_counted', '__weakref__')

    def __init__(self, core_token=None):
        self._core = core_token
        self._counted = collections.Counter()

    def __reduce__(self):
        # as pyfuse3's: a token belongs to one READDIR request
        raise TypeError('self.req cannot be converted to a Python object for pickling')


def readdir_reply(token, name, attr, next_id):
    """Report one directory entry; False means the reply is full (stop).

    As in pyfuse3, an entry for which this returns True counts as a lookup of
    ``attr.st_ino`` (the filesystem increases its lookup count, "." and ".."
    excepted) and a later forget() balances it."""
    if isinstance(token, ReaddirToken):
        ok = _fs.readdir_reply(token._core, name, attr, next_id)
        if ok and name not in (b'.', b'..', '.', '..'):
            token._counted[attr.st_ino] += 1
        return ok
    return _fs.readdir_reply(token, name, attr, next_id)


# ---------------------------------------------------------------- Operations

class Operations:
    """Base class of pyfuse3 filesystems: every handler is a coroutine that
    raises ``FUSEError(ENOSYS)`` (the kernel then stops asking), ``init`` and
    ``forget`` do nothing.  Signatures are pyfuse3's."""

    supports_dot_lookup: bool = True
    enable_writeback_cache: bool = False
    enable_acl: bool = False

    def init(self) -> None:
        pass

    async def lookup(self, parent_inode, name, ctx):
        raise FUSEError(errno.ENOSYS)

    async def forget(self, inode_list):
        pass

    async def getattr(self, inode, ctx):
        raise FUSEError(errno.ENOSYS)

    async def setattr(self, inode, attr, fields, fh, ctx):
        raise FUSEError(errno.ENOSYS)

    async def readlink(self, inode, ctx):
        raise FUSEError(errno.ENOSYS)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        raise FUSEError(errno.ENOSYS)

    async def mkdir(self, parent_inode, name, mode, ctx):
        raise FUSEError(errno.ENOSYS)

    async def unlink(self, parent_inode, name, ctx):
        raise FUSEError(errno.ENOSYS)

    async def rmdir(self, parent_inode, name, ctx):
        raise FUSEError(errno.ENOSYS)

    async def symlink(self, parent_inode, name, target, ctx):
        raise FUSEError(errno.ENOSYS)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        raise FUSEError(errno.ENOSYS)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        raise FUSEError(errno.ENOSYS)

    async def open(self, inode, flags, ctx):
        raise FUSEError(errno.ENOSYS)

    async def read(self, fh, off, size):
        raise FUSEError(errno.ENOSYS)

    async def write(self, fh, off, buf):
        raise FUSEError(errno.ENOSYS)

    async def flush(self, fh):
        raise FUSEError(errno.ENOSYS)

    async def release(self, fh):
        raise FUSEError(errno.ENOSYS)

    async def fsync(self, fh, datasync):
        raise FUSEError(errno.ENOSYS)

    async def poll(self, inode, fh, poll_handle, ctx):
        raise FUSEError(errno.ENOSYS)

    async def opendir(self, inode, ctx):
        raise FUSEError(errno.ENOSYS)

    async def readdir(self, fh, start_id, token):
        raise FUSEError(errno.ENOSYS)

    async def releasedir(self, fh):
        raise FUSEError(errno.ENOSYS)

    async def fsyncdir(self, fh, datasync):
        raise FUSEError(errno.ENOSYS)

    async def statfs(self, ctx):
        raise FUSEError(errno.ENOSYS)

    def stacktrace(self) -> None:
        """Log the stack of every thread (pyfuse3's deadlock-debugging aid)."""
        import traceback
        lines = []
        for tid, frame in sys._current_frames().items():
            lines.append(f'\n# ThreadID: {tid}')
            for fs in traceback.extract_stack(frame):
                lines.append(f'{os.path.basename(fs.filename)}:{fs.lineno}, in {fs.name}')
                if fs.line:
                    lines.append(f'    {fs.line.strip()}')
        log.error('\n'.join(lines))

    async def setxattr(self, inode, name, value, ctx):
        raise FUSEError(errno.ENOSYS)

    async def getxattr(self, inode, name, ctx):
        raise FUSEError(errno.ENOSYS)

    async def listxattr(self, inode, ctx):
        raise FUSEError(errno.ENOSYS)

    async def removexattr(self, inode, name, ctx):
        raise FUSEError(errno.ENOSYS)

    async def access(self, inode, mode, ctx):
        raise FUSEError(errno.ENOSYS)

    async def create(self, parent_inode, name, mode, flags, ctx):
        raise FUSEError(errno.ENOSYS)


# ---------------------------------------------------------------- the adapter

class _State:
    def __init__(self):
        self.mount = None
        self.ops = None
        self.exit_requested = False
        self.stop = None            # callable stopping the running main(), or None
        self.fatal = None           # exception main() re-raises

    def fail(self, exc):
        """A handler raised something other than FUSEError: pyfuse3 lets it
        escape from main(); do the same (the request itself gets EIO)."""
        if self.fatal is None:
            self.fatal = exc
        log.error('pyfuse3 compat: a request handler raised %r; main() will re-raise it', exc)
        if self.stop is not None:
            self.stop()

    def request_stop(self):
        self.exit_requested = True
        if self.stop is not None:
            self.stop()


_state = _State()


def _expect(value, types, what):
    if not isinstance(value, types):
        raise TypeError(f'{what} must return {types.__name__ if isinstance(types, type) else types}, '
                        f'not {type(value).__name__}')
    return value


@functools.lru_cache(maxsize=None)
def _forward(name, returns=None):
    """An adapter handler passing the request to the filesystem's ``name``
    and checking the result type: for the handlers that do more than
    forward, and for filesystem methods that are not coroutine functions."""
    what = f'{name}()'

    async def handler(self, *args):
        try:
            res = getattr(self._ops, name)(*args)
            if type(res) is _CoroutineType or inspect.isawaitable(res):
                res = await res
        except _fs.FUSEError:
            raise
        except Exception as e:
            self._state.fail(e)
            raise FUSEError(errno.EIO) from None
        return res if returns is None else self._expect(res, returns, what)
    handler.__name__ = handler.__qualname__ = name
    return handler


# The requests forwarded unchanged, with the type the result must have.
_FORWARDED = {
    'lookup': _fs.EntryAttributes, 'forget': None, 'getattr': _fs.EntryAttributes,
    'setattr': _fs.EntryAttributes, 'readlink': None, 'mknod': _fs.EntryAttributes,
    'unlink': None, 'rmdir': None, 'symlink': _fs.EntryAttributes, 'rename': None,
    'link': _fs.EntryAttributes, 'open': _fs.FileInfo, 'read': None, 'write': None,
    'flush': None, 'release': None, 'fsync': None, 'opendir': int, 'releasedir': None,
    'fsyncdir': None, 'statfs': _fs.StatvfsData, 'setxattr': None, 'getxattr': None,
    'listxattr': None, 'removexattr': None,
}


class _Adapter(_CoreOperations):
    """fuseshim Operations forwarding to a pyfuse3 Operations object.  Only
    the requests pyfuse3 registers are defined here, so fuseshim registers
    exactly that set with libfuse."""

    enable_readdirplus = False   # see readdir()

    def __init__(self, ops, state):
        self._ops = ops
        self._state = state
        # The filesystem's own coroutine functions are handed to fuseshim as
        # they are (one coroutine per request, no wrapper); the Driver checks
        # their results and errors with ``expect`` and ``on_error``.
        self.expect = [None] * len(_OP_NAMES)
        for name, returns in _FORWARDED.items():
            fn = getattr(ops, name, None)
            if inspect.iscoroutinefunction(fn):
                setattr(self, name, fn)
                self.expect[_OP_NAMES.index(name)] = returns
        self.enable_writeback_cache = bool(getattr(ops, 'enable_writeback_cache', False))
        self.enable_acl = bool(getattr(ops, 'enable_acl', False))
        self.supports_dot_lookup = bool(getattr(ops, 'supports_dot_lookup', True))

    async def _call(self, name, *args):
        """For the handlers that do more than forward (mkdir, readdir, ...)."""
        return await _forward(name)(self, *args)

    def on_error(self, exc):
        """What a request whose handler raised ``exc`` (not a FUSEError) is
        answered with; main() re-raises ``exc`` (pyfuse3 lets it escape)."""
        self._state.fail(exc)
        return FUSEError(errno.EIO)

    def _checked(self, fn):
        try:
            return fn()
        except TypeError as e:
            self._state.fail(e)
            raise FUSEError(errno.EIO) from None

    def _expect(self, value, types, what):
        # the hot path: one isinstance, no closure
        if isinstance(value, types):
            return value
        return self._checked(lambda: _expect(value, types, what))

    # pyfuse3 runs init() synchronously while answering FUSE_INIT and ignores
    # what it raises (Cython prints "Exception ignored").
    def init(self):
        try:
            self._ops.init()
        except Exception:
            log.exception('pyfuse3 compat: Operations.init() raised (ignored, as in pyfuse3)')

    async def mkdir(self, parent_inode, name, mode, ctx):
        mode = (mode & ~_stat.S_IFMT(0o177777)) | _stat.S_IFDIR   # as pyfuse3 does
        r = await self._call('mkdir', parent_inode, name, mode, ctx)
        return self._expect(r, _fs.EntryAttributes, 'mkdir()')

    async def readdir(self, fh, start_id, token):
        # pyfuse3 only answers READDIRPLUS, so every reported entry is a lookup.
        # fuseshim cannot switch off the kernel's READDIRPLUS_AUTO, under which
        # later chunks of a listing come as plain READDIR -- and fuseshim does
        # not tell which kind a token is for.  So this adapter answers plain
        # READDIR only and gives back, by a forget(), the lookups the
        # filesystem counted for the entries (the kernel counted none).
        t = ReaddirToken(token)
        try:
            await self._call('readdir', fh, start_id, t)
        finally:
            counted, t._counted = t._counted, collections.Counter()
            if counted:
                await self._call('forget', list(counted.items()))

    async def access(self, inode, mode, ctx):
        # pyfuse3: a false result (None included) denies with EACCES
        return bool(await self._call('access', inode, mode, ctx))

    async def create(self, parent_inode, name, mode, flags, ctx):
        r = await self._call('create', parent_inode, name, mode, flags, ctx)

        def check():
            fi, attr = r
            return (_expect(fi, _fs.FileInfo, 'create()[0]'),
                    _expect(attr, _fs.EntryAttributes, 'create()[1]'))
        try:
            return self._checked(check)
        except ValueError as e:
            self._state.fail(e)
            raise FUSEError(errno.EIO) from None

    async def poll(self, inode, fh, events, handle):
        # fuseshim passes no request context for POLL: hand over a blank one
        r = await self._call('poll', inode, fh, handle, RequestContext())
        return int(r or 0)


# The class-level handlers, for a filesystem method that is no coroutine
# function (__init__ binds the others directly); defining them all here also
# makes fuseshim register exactly pyfuse3's set of requests.
for _name, _returns in _FORWARDED.items():
    setattr(_Adapter, _name, _forward(_name, _returns))
del _name, _returns


# ---------------------------------------------------------------- main API

def init(ops, mountpoint, options=default_options, *, startup=None):
    """Mount ``ops`` at ``mountpoint`` (pyfuse3.init).

    ``startup`` (a fuseshim extension): 'auto', 'sync' or 'classic'; default
    from $FUSESHIM_STARTUP, else 'auto'."""
    log.debug('Initializing pyfuse3 (fuseshim)')
    if not isinstance(mountpoint, str):
        raise TypeError('*mountpoint_* argument must be of type str')
    st = _state
    if st.mount is not None:
        raise RuntimeError('pyfuse3 is already initialized; call close() first')
    opts = []
    for o in options:
        o.encode('us-ascii')  # as pyfuse3: non-ASCII options raise UnicodeEncodeError
        opts.append(o)
    mode = startup_mode(startup)
    st.ops = ops
    st.exit_requested = False
    st.fatal = None
    try:
        st.mount = _fs.mount(_Adapter(ops, st), os.path.abspath(mountpoint), options=opts,
                             startup=mode, serve='external')
    except ValueError as e:
        st.ops = None
        raise RuntimeError(f'fuse_session_new() failed: {e}') from e
    except OSError as e:
        st.ops = None
        raise RuntimeError(f'fuse_session_mount failed: {e}') from e


async def main(min_tasks=1, max_tasks=99):
    """Serve requests until the filesystem is unmounted or terminate() is
    called (pyfuse3.main).  Await it inside trio.run(), or inside asyncio
    after pyfuse3.asyncio.enable()."""
    st = _state
    if st.mount is None:
        raise RuntimeError('Need to call init() before main()')
    return await _event_loop.main(st, min_tasks, max_tasks)


async def _main_trio(st, min_tasks, max_tasks):
    global trio_token
    token = _real_trio.lowlevel.current_trio_token()
    trio_token = token
    try:
        if st.exit_requested:
            return
        async with _real_trio.open_nursery() as nursery:
            done = _real_trio.Event()

            def stop():
                try:
                    if _real_trio.lowlevel.current_trio_token() is token:
                        done.set()
                        return
                except RuntimeError:
                    pass
                try:
                    token.run_sync_soon(done.set)
                except _real_trio.RunFinishedError:
                    pass

            await _serve(st, _driver.TrioBackend(_real_trio, nursery), max_tasks, stop, done)
            # handlers still running finish before the nursery closes, as in pyfuse3
    finally:
        st.stop = None
        trio_token = None
        _stop_notify_thread()
    _raise_fatal(st)


async def _main_asyncio(st, min_tasks, max_tasks):
    global trio_token
    loop = _asyncio.get_running_loop()
    trio_token = 'asyncio'
    backend = _driver.AsyncioBackend(loop)
    done = _asyncio.Event()

    def stop():
        try:
            if _asyncio.get_running_loop() is loop:
                done.set()
                return
        except RuntimeError:
            pass
        try:
            loop.call_soon_threadsafe(done.set)
        except RuntimeError:
            pass

    try:
        if st.exit_requested:
            return
        await _serve(st, backend, max_tasks, stop, done)
        while backend.tasks:
            await _asyncio.wait(tuple(backend.tasks))
    finally:
        st.stop = None
        trio_token = None
        _stop_notify_thread()
    _raise_fatal(st)


class _EventLoop:
    """Which event loop main() serves in: trio (pyfuse3's default), or
    asyncio once pyfuse3.asyncio.enable() chose it.

    pyfuse3 shows the choice as its module attribute ``trio``: the real trio,
    or after enable() the pyfuse3.asyncio module standing in for it.  That
    attribute is set here for users to see; main() reads ``main`` only."""

    def __init__(self):
        self.main = _main_trio

    def use_asyncio(self, stand_in):
        global trio
        self.main = _main_asyncio
        trio = stand_in

    def use_trio(self):
        global trio
        self.main = _main_trio
        trio = _real_trio


_event_loop = _EventLoop()


async def _serve(st, backend, max_tasks, stop, done):
    """Run the workers until terminate(), a fatal handler error or unmount."""
    if st.fatal is not None or st.exit_requested:
        return
    st.stop = stop
    adapter = st.mount.ops
    driver = _driver.Driver(st.mount.session, backend, max_tasks, on_end=stop,
                            expect=adapter.expect, on_error=adapter.on_error)
    driver.start()
    try:
        await done.wait()
    finally:
        st.stop = None
        driver.stop()


def _raise_fatal(st):
    exc, st.fatal = st.fatal, None
    if exc is not None:
        raise exc


def terminate():
    """Make main() return once the handlers now running have finished
    (pyfuse3.terminate).  May be called from a handler, from the event loop,
    or from another thread."""
    _state.request_stop()


def close(unmount=True):
    """Unmount (if still mounted) and release the session (pyfuse3.close).

    Unlike pyfuse3, ``unmount=False`` does not leave a dead mount behind:
    fuseshim always detaches a mount it still holds when it closes."""
    st = _state
    if st.mount is None:
        return
    if not unmount:
        log.debug('close(unmount=False): fuseshim unmounts anyway if still mounted')
    try:
        st.mount.close()
    finally:
        st.mount = None
        st.ops = None
        st.stop = None


# ---------------------------------------------------------------- notifications

def _mount_or_raise():
    m = _state.mount
    if m is None:
        raise RuntimeError('pyfuse3 is not initialized (call init() first)')
    return m


def invalidate_inode(inode, attr_only=False):
    """Drop the kernel's cached attributes (and data unless attr_only)."""
    _mount_or_raise().invalidate_inode(inode, attr_only)


def invalidate_entry(inode_p, name, deleted=0):
    """Drop the kernel's cached directory entry ``name`` in ``inode_p``; with
    ``deleted`` also tell inotify watchers that inode was deleted.  May block
    (see pyfuse3's documentation): prefer invalidate_entry_async() in handlers."""
    if not isinstance(name, bytes):
        raise TypeError('*name* argument must be of type bytes')
    _mount_or_raise().invalidate_entry(inode_p, name, deleted)


_notify_queue = None
_notify_lock = threading.Lock()


def _notify_loop(q):
    while True:
        req = q.get()
        if req is None:
            log.debug('terminating notify thread')
            break
        inode_p, name, deleted, ignore_enoent = req
        try:
            invalidate_entry(inode_p, name, deleted)
        except Exception as exc:
            if not (ignore_enoent and isinstance(exc, FileNotFoundError)):
                log.exception('Failed to submit invalidate_entry request for parent inode %d, '
                              'name %s', inode_p, name)


def _stop_notify_thread():
    global _notify_queue
    with _notify_lock:
        q, _notify_queue = _notify_queue, None
    if q is not None:
        q.put(None)


def invalidate_entry_async(inode_p, name, deleted=0, ignore_enoent=False):
    """invalidate_entry() from a separate thread; errors are logged."""
    global _notify_queue
    with _notify_lock:
        if _notify_queue is None:
            _notify_queue = Queue()
            threading.Thread(target=_notify_loop, args=(_notify_queue,), daemon=True,
                             name='pyfuse3-compat-notify').start()
        _notify_queue.put((inode_p, name, deleted, ignore_enoent))


def notify_store(inode, offset, data):
    """Put ``data`` into the kernel's page cache for ``inode`` at ``offset``."""
    _mount_or_raise().notify_store(inode, offset, data)


# ---------------------------------------------------------------- helpers

def get_sup_groups(pid):
    """Supplementary group ids of process ``pid`` (a set), from /proc."""
    with open('/proc/%d/status' % pid) as fh:
        for line in fh:
            if line.startswith('Groups:'):
                return {int(x) for x in line.split()[1:]}
    raise RuntimeError('Unable to parse /proc/%d/status' % pid)


def _check_str(value, what):
    if not isinstance(value, str):
        raise TypeError(f'*{what}* argument must be of type str')


def _check_namespace(namespace):
    if namespace not in ('system', 'user'):
        raise ValueError('*namespace* parameter must be "system" or "user", not %s' % namespace)


def listdir(path):
    """Like os.listdir (without "." and ".."); names are str."""
    _check_str(path, 'path')
    return [n for n in os.listdir(path) if n not in ('.', '..')]


_libc = None


def syncfs(path):
    """syncfs(2) on the filesystem holding ``path``."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
    finally:
        os.close(fd)


def setxattr(path, name, value, namespace='user'):
    """Set extended attribute ``name`` of ``path`` (Linux: namespace unused)."""
    _check_str(path, 'path')
    _check_str(name, 'name')
    if not isinstance(value, bytes):
        raise TypeError('*value* argument must be of type bytes')
    _check_namespace(namespace)
    os.setxattr(path, name, value, follow_symlinks=True)


def getxattr(path, name, size_guess=128, namespace='user'):
    """Value of extended attribute ``name`` of ``path`` (bytes)."""
    _check_str(path, 'path')
    _check_str(name, 'name')
    _check_namespace(namespace)
    return os.getxattr(path, name, follow_symlinks=True)


# pyfuse3 has no __all__: ``from pyfuse3 import *`` binds every public name
# of its module, so the same ones here (its Cython internals excepted)
__all__ = [
    'ENOATTR', 'EntryAttributes', 'FUSEError', 'FileHandleT', 'FileInfo', 'FileNameT', 'FlagT',
    'InodeT', 'ModeT', 'Operations', 'PicklingError', 'PollHandle', 'Queue', 'RENAME_EXCHANGE',
    'RENAME_NOREPLACE', 'ROOT_INODE', 'ReaddirToken', 'RequestContext', 'SetattrFields',
    'StatvfsData', 'XAttrNameT', 'close', 'default_options', 'get_sup_groups', 'getxattr',
    'init', 'invalidate_entry', 'invalidate_entry_async', 'invalidate_inode', 'listdir', 'log',
    'logging', 'main', 'notify_store', 'os', 'readdir_reply', 'setxattr', 'syncfs', 'sys',
    'terminate', 'threading', 'trio', 'trio_token',
]

# ``import pyfuse3.asyncio`` made ``pyfuse3.asyncio`` an attribute; mirror it
# (and let ``import fuseshim.compat.pyfuse3.asyncio`` find the module too).
from . import pyfuse3_asyncio as asyncio  # noqa: E402
sys.modules[__name__ + '.asyncio'] = asyncio
