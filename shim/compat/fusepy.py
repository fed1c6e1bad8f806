"""fuseshim.compat.fusepy: fusepy 3.0's ``fuse`` module, served by fuseshim.

Change one line -- ``from fuse import FUSE, Operations, ...`` becomes
``from fuseshim.compat.fusepy import FUSE, Operations, ...`` -- and a fusepy
filesystem runs unchanged.  (mfusepy users: ``fuseshim.compat.mfusepy``.)

fusepy drives libfuse's *high-level* (path based) API.  fuseshim binds only
the low-level (inode based) one, so this module does in Python what
libfuse's lib/fuse.c does in C: a node table mapping inodes to paths with
lookup counts and forget, names moved on rename and unhashed on unlink, open
files hidden as ``.fuse_hiddenXXXXXXXXYYYYYYYY`` when unlinked or renamed
over, per-open handles, buffered or offset-driven readdir, the setattr
sequence chmod/chown/truncate/utimens/getattr, libfuse's defaults for
operations a filesystem leaves out, and the high-level options (use_ino,
readdir_ino, hard_remove, nullpath_ok, entry/attr/negative timeouts, uid=,
gid=, umask=, kernel_cache, direct_io, ...).  libfuse's high-level library
is never loaded.

Behaviour differences and their reasons: docs/migration-fusepy.md.
"""
# fusepy 3.0 imports these three, so its module has them as names
from __future__ import absolute_import, annotations, division, print_function  # noqa: F401

import ctypes
import errno
import itertools
import logging
import operator
import os
import platform
import select
import signal as _signal
import stat
import sys
import threading
import warnings
from collections.abc import Iterable
from ctypes.util import find_library  # noqa: F401  (fusepy's module names, below)
from functools import partial  # noqa: F401
from platform import machine, system  # noqa: F401
from signal import SIG_DFL, SIGINT, signal  # noqa: F401
from stat import S_IFDIR  # noqa: F401
from traceback import print_exc  # noqa: F401
from typing import Tuple, Union, get_type_hints

import fuseshim as _fs
from fuseshim._core import _fill_from_stat_dict
from fuseshim._core import current_operations as _current_operations
from fuseshim._core import current_request_ids as _current_request_ids
from fuseshim.operations import Operations as _CoreOperations

from . import _cstructs, startup_mode, worker_count
from ._cstructs import (c_dev_t, c_fsblkcnt_t, c_fsfilcnt_t, c_gid_t, c_mode_t,  # noqa: F401
                        c_off_t, c_pid_t, c_timespec, c_uid_t, getxattr_t, setxattr_t)

log = logging.getLogger('fuse')

ENOTSUP = errno.ENOTSUP
ENOATTR = errno.ENODATA      # mfusepy's name for the missing-xattr errno
FUSE_ROOT_ID = 1
FUSE_UNKNOWN_INO = 0xffffffff
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FUSE_IOCTL_UNRESTRICTED = 1 << 1
FUSE_IOCTL_DIR = 1 << 4
PATH_MAX = 4096
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

_FLAVOR = 'fusepy'


# ---------------------------------------------------------------- public helpers

class FuseOSError(OSError):
    def __init__(self, errno):
        super().__init__(errno, os.strerror(errno))


def time_of_timespec(ts, use_ns=False):
    if use_ns:
        return ts.tv_sec * 10 ** 9 + ts.tv_nsec
    return ts.tv_sec + ts.tv_nsec / 1E9


# fusepy's C-level names: its structures (libfuse 2.9's, as fusepy declares
# them), C type aliases and helpers, so that the same names mean the same
# things (see _cstructs).  None of them is handed to libfuse here.
basestring = str
c_utimbuf = _cstructs.struct('c_utimbuf', __name__, [('actime', c_timespec),
                                                     ('modtime', c_timespec)])
c_stat = _cstructs.struct('c_stat', __name__, _cstructs.stat_fields(reserved_tail=False))
c_statvfs = _cstructs.struct('c_statvfs', __name__, _cstructs.STATVFS_FIELDS)
# what raw_fi=True hands to open/create/read/...; the layer reads back fh,
# direct_io, keep_cache and nonseekable
fuse_file_info = _cstructs.struct('fuse_file_info', __name__, _cstructs.FUSE2_FILE_INFO)
fuse_context = _cstructs.struct('fuse_context', __name__, [
    ('fuse', ctypes.c_void_p), ('uid', c_uid_t), ('gid', c_gid_t), ('pid', c_pid_t),
    ('private_data', ctypes.c_void_p)])
fuse_operations = _cstructs.struct('fuse_operations', __name__, _cstructs.fuse2_operations(
    c_stat, c_statvfs, fuse_file_info, c_utimbuf))


def set_st_attrs(st, attrs, use_ns=False):
    """Fill a c_stat from a getattr() dict (fusepy's helper)."""
    _cstructs.fill_stat(st, attrs, use_ns, hasattr)


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


_instances: list = []
_instances_lock = threading.Lock()


def fuse_get_context():
    """(uid, gid, pid) of the process whose request is being handled (by the
    calling thread; (0, 0, 0) outside a request, as in init)."""
    ids = _current_request_ids()
    return ids if ids is not None else (0, 0, 0)


def fuse_exit():
    """Stop the FUSE loop: the filesystem is unmounted and FUSE() returns
    (like SIGINT)."""
    layer = _current_operations()
    inst = layer.f if isinstance(layer, _PathOps) else None
    if inst is None:
        with _instances_lock:
            inst = _instances[-1] if _instances else None
    if inst is not None:
        inst._request_exit()


# ---------------------------------------------------------------- Operations

class Operations:
    """fusepy 3.0's base class: subclass it and pass an instance to FUSE.
    Every request goes through ``__call__(op, path, *args)``.  The defaults
    are fusepy's (e.g. chmod raises EROFS, statfs returns {}, readdir lists
    "." and ".."); a method set to None is not offered to the kernel."""

    def __call__(self, op, *args):
        if not hasattr(self, op):
            raise FuseOSError(errno.EFAULT)
        return getattr(self, op)(*args)

    def access(self, path, amode):
        return 0

    bmap = None

    def chmod(self, path, mode):
        raise FuseOSError(errno.EROFS)

    def chown(self, path, uid, gid):
        raise FuseOSError(errno.EROFS)

    def create(self, path, mode, fi=None):
        raise FuseOSError(errno.EROFS)

    def destroy(self, path):
        pass

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def getattr(self, path, fh=None):
        if path != '/':
            raise FuseOSError(errno.ENOENT)
        return dict(st_mode=(stat.S_IFDIR | 0o755), st_nlink=2)

    def getxattr(self, path, name, position=0):
        raise FuseOSError(ENOTSUP)

    def init(self, path):
        pass

    def ioctl(self, path, cmd, arg, fip, flags, data):
        raise FuseOSError(errno.ENOTTY)

    def link(self, target, source):
        raise FuseOSError(errno.EROFS)

    def listxattr(self, path):
        return []

    lock = None

    def mkdir(self, path, mode):
        raise FuseOSError(errno.EROFS)

    def mknod(self, path, mode, dev):
        raise FuseOSError(errno.EROFS)

    def open(self, path, flags):
        return 0

    def opendir(self, path):
        return 0

    def read(self, path, size, offset, fh):
        raise FuseOSError(errno.EIO)

    def readdir(self, path, fh):
        return ['.', '..']

    def readlink(self, path):
        raise FuseOSError(errno.ENOENT)

    def release(self, path, fh):
        return 0

    def releasedir(self, path, fh):
        return 0

    def removexattr(self, path, name):
        raise FuseOSError(ENOTSUP)

    def rename(self, old, new):
        raise FuseOSError(errno.EROFS)

    def rmdir(self, path):
        raise FuseOSError(errno.EROFS)

    def setxattr(self, path, name, value, options, position=0):
        raise FuseOSError(ENOTSUP)

    def statfs(self, path):
        return {}

    def symlink(self, target, source):
        raise FuseOSError(errno.EROFS)

    def truncate(self, path, length, fh=None):
        raise FuseOSError(errno.EROFS)

    def unlink(self, path):
        raise FuseOSError(errno.EROFS)

    def utimens(self, path, times=None):
        return 0

    def write(self, path, data, offset, fh):
        raise FuseOSError(errno.EROFS)


class LoggingMixIn:
    """Logs every call and its result on the 'fuse.log-mixin' logger."""
    log = logging.getLogger('fuse.log-mixin')

    def __call__(self, op, path, *args):
        self.log.debug('-> %s %s %s', op, path, repr(args))
        ret = '[Unhandled Exception]'
        try:
            ret = getattr(self, op)(path, *args)
            return ret
        except OSError as e:
            ret = str(e)
            raise
        finally:
            self.log.debug('<- %s %s', op, repr(ret))


# mfusepy additions, usable with this module too --------------------------

ReadDirResult = Iterable[Union[str, Tuple[str, dict, int], Tuple[str, int, int]]]
_callback_logger = logging.getLogger('fuse.log-mixin')


def _log_method_call(method, *args):
    _callback_logger.debug('-> %s %s', method.__name__, repr(args))
    ret = '[Unhandled Exception]'
    try:
        ret = method(*args)
        return ret
    except OSError as e:
        ret = str(e)
        raise
    finally:
        _callback_logger.debug('<- %s %s', method.__name__, repr(ret))


def log_callback(method):
    """Decorator logging the calls of one Operations method (mfusepy)."""
    def wrap_method_call(*args):
        return _log_method_call(method, *args)
    return wrap_method_call


def overrides(parent_class):
    """Decorator checking that the method exists in ``parent_class`` (and,
    with MFUSEPY_CHECK_OVERRIDES=1, that the annotations agree) (mfusepy)."""
    def overrider(method):
        if platform.python_implementation() == 'PyPy':
            return method
        assert method.__name__ in dir(parent_class)
        parent_method = getattr(parent_class, method.__name__)
        assert callable(parent_method)
        if os.getenv('MFUSEPY_CHECK_OVERRIDES', '').lower() not in (
                '1', 'yes', 'on', 'enable', 'enabled'):
            return method
        parent_types = get_type_hints(parent_method)
        for argument, argument_type in get_type_hints(method).items():
            if argument in parent_types:
                parent_type = parent_types[argument]
                assert argument_type == parent_type, \
                    f'{method.__name__}: {argument}: {argument_type} != {parent_type}'
        return method
    return overrider


def _offered(ops, name):
    value = getattr(ops, name, None)
    return value is not None and not getattr(value, 'libfuse_ignore', False)


# ---------------------------------------------------------------- node table

class _Stale(Exception):
    """A node on the way to the root has no name any more (ESTALE)."""


class _Node:
    __slots__ = ('id', 'generation', 'parent', 'name', 'nlookup', 'children',
                 'open_count', 'is_hidden', 'path')

    def __init__(self, nid, generation=0):
        self.id = nid
        self.generation = generation
        self.parent = None
        self.name = None
        self.nlookup = 0
        self.children = 0
        self.open_count = 0
        self.is_hidden = False
        self.path = None        # (table version, path) once walked; see _NodeTable.path


class _NodeTable:
    """libfuse's node bookkeeping (lib/fuse.c: find_node, forget_node,
    unlink_node, rename_node, exchange_node, try_get_path)."""

    def __init__(self, threaded=True):
        self.lock = threading.RLock()
        if not threaded:
            # A single worker thread makes every call here: the lock guards
            # nothing, and find() runs on every LOOKUP.
            self.find = self._find
        root = _Node(FUSE_ROOT_ID)
        root.nlookup = 1
        self.by_id = {FUSE_ROOT_ID: root}
        self.by_name = {}
        self.ctr = 0
        self.generation = 0
        self.hidectr = 0
        self.remember = False
        self.high_ids = False    # use_ino: generated ids stay clear of the fs's st_ino
        self.version = 0         # bumped whenever a name goes: cached paths are then stale

    def next_id(self):
        base = 1 << 48 if self.high_ids else 0
        while True:
            self.ctr = (self.ctr + 1) & 0xffffffff
            if not self.ctr:
                self.generation += 1
            nid = base + self.ctr
            if self.ctr and nid != FUSE_UNKNOWN_INO and nid not in self.by_id and nid != FUSE_ROOT_ID:
                return nid

    def get(self, nid):
        node = self.by_id.get(nid)
        if node is None:
            raise _fs.FUSEError(errno.ESTALE)
        return node

    def lookup(self, parent_id, name):
        return self.by_name.get((parent_id, name))

    def _hash(self, node, parent, name):
        self.by_name[(parent.id, name)] = node
        node.parent = parent
        node.name = name
        parent.children += 1

    def _unhash(self, node):
        if node.name is None or node.parent is None:
            return
        self.version += 1       # this node's path, and its descendants', change
        parent = node.parent
        self.by_name.pop((parent.id, node.name), None)
        node.name = None
        node.parent = None
        parent.children -= 1
        self._maybe_delete(parent)

    def _maybe_delete(self, node):
        if node.id == FUSE_ROOT_ID or node.nlookup > 0 or node.children > 0:
            return
        self._unhash(node)
        if self.by_id.get(node.id) is node:
            del self.by_id[node.id]

    def find(self, parent_id, name, want_id=None):
        """The node for ``name`` in ``parent_id`` (or ``parent_id`` itself when
        name is None), created if needed; its lookup count goes up by one."""
        with self.lock:
            return self._find(parent_id, name, want_id)

    def _find(self, parent_id, name, want_id=None):
        if name is None:
            node = self.get(parent_id)
        else:
            node = self.by_name.get((parent_id, name))
            if node is not None and want_id is not None and node.id != want_id:
                self._unhash(node)      # the name refers to another inode now
                node = None
            if node is None and want_id is not None:
                node = self.by_id.get(want_id)
                if node is not None:    # a hard link, or renamed behind our back
                    parent = self.get(parent_id)
                    self._unhash(node)
                    self._hash(node, parent, name)
            if node is None:
                parent = self.get(parent_id)
                nid = want_id if want_id is not None else self.next_id()
                node = _Node(nid, self.generation)
                if self.remember:
                    node.nlookup += 1
                self.by_id[nid] = node
                self._hash(node, parent, name)
        node.nlookup += 1
        return node

    def forget(self, nid, nlookup):
        if nid == FUSE_ROOT_ID:
            return
        with self.lock:
            node = self.by_id.get(nid)
            if node is None:
                return
            node.nlookup = max(0, node.nlookup - nlookup)
            if not node.nlookup:
                self._maybe_delete(node)

    def remove(self, parent_id, name):
        with self.lock:
            node = self.by_name.get((parent_id, name))
            if node is not None:
                if self.remember and node.nlookup > 1:
                    node.nlookup -= 1
                self._unhash(node)
                self._maybe_delete(node)

    def rename(self, olddir, oldname, newdir, newname, hide=False):
        with self.lock:
            node = self.by_name.get((olddir, oldname))
            newnode = self.by_name.get((newdir, newname))
            if node is None:
                return
            if newnode is not None:
                if hide:
                    log.error('fuse: hidden file got created during hiding')
                    raise _fs.FUSEError(errno.EBUSY)
                self._unhash(newnode)
                self._maybe_delete(newnode)
            parent = self.get(newdir)
            parent.children += 1            # keep both parents alive while moving
            self._unhash(node)
            parent.children -= 1
            self._hash(node, parent, newname)
            if hide:
                node.is_hidden = True

    def exchange(self, olddir, oldname, newdir, newname):
        with self.lock:
            old = self.by_name.get((olddir, oldname))
            new = self.by_name.get((newdir, newname))
            p_old, p_new = self.get(olddir), self.get(newdir)
            p_old.children += 1
            p_new.children += 1
            if old is not None:
                self._unhash(old)
            if new is not None:
                self._unhash(new)
            if old is not None:
                self._hash(old, p_new, newname)
            if new is not None:
                self._hash(new, p_old, oldname)
            p_old.children -= 1
            p_new.children -= 1

    def path(self, nid, name=None):
        """The path (bytes) of node ``nid`` (plus ``name``); raises _Stale.

        Every request needs a path, and walking to the root in Python costs
        about as much as a filesystem's whole getattr, so each node keeps the
        path last walked.  Only _unhash changes existing paths (renames,
        unlinks and forgets all go through it) and it bumps ``version``, which
        invalidates every cached path at once.  Reading a cached path takes no
        lock: a rename racing with it gives the path from just before the
        rename, as when the walk had finished just before it."""
        node = self.by_id.get(nid)
        cached = node.path if node is not None else None
        if cached is not None and cached[0] == self.version:
            base = cached[1]
        else:
            base = self._walk(nid)
        if name is None:
            return base
        return base + b'/' + name if nid != FUSE_ROOT_ID else b'/' + name

    def _walk(self, nid):
        with self.lock:
            node = self.get(nid)
            version = self.version
            parts = []
            n = node
            while n.id != FUSE_ROOT_ID:
                if n.name is None or n.parent is None:
                    raise _Stale()
                parts.append(n.name)
                n = n.parent
            path = b'/' + b'/'.join(reversed(parts))
            node.path = (version, path)
            return path


# ---------------------------------------------------------------- handles

class _File:
    __slots__ = ('ino', 'fh', 'fi')

    def __init__(self, ino, fh, fi):
        self.ino, self.fh, self.fi = ino, fh, fi


class _Dir:
    __slots__ = ('ino', 'fh', 'entries', 'filled', 'lock')

    def __init__(self, ino, fh):
        self.ino, self.fh = ino, fh
        self.entries = []
        self.filled = False
        self.lock = threading.Lock()


class _Critical(BaseException):
    pass


def _as_index(value):
    # ctypes integer fields reject floats: fusepy fails such a stat with EINVAL
    if isinstance(value, bool):
        return int(value)
    return operator.index(value)


# Stat dict keys other than the st_* fields fusepy knows (st_dev, st_atime_ns, ...)
# are accepted and ignored, as by fusepy (see _fill_from_stat_dict).

# What fusepy's set_st_attrs starts from: a zeroed struct stat (EntryAttributes
# defaults st_nlink to 1 and st_blksize to 4096).  copy() is one C call.
_ZEROED_ENTRY = _fs.EntryAttributes()
_ZEROED_ENTRY.st_nlink = 0
_ZEROED_ENTRY.st_blksize = 0
_ZEROED_ENTRY.st_ino = 0

def _seconds_to_ns(val):
    """fusepy's conversion of a time in seconds (tv_sec = int(val), tv_nsec =
    int((val - tv_sec) * 1E9)), as one ns count: for the types (Decimal, ...)
    and sizes _fill_from_stat_dict does not convert in C itself."""
    sec = int(val)
    return sec * 1000000000 + int((val - sec) * 1E9)


_STATVFS_FIELDS = ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files',
                   'f_ffree', 'f_favail', 'f_namemax')

# High-level (lib/fuse.c) options: name -> (conf attribute, kind)
_LIB_FLAGS = {'hard_remove': 'hard_remove', 'use_ino': 'use_ino', 'readdir_ino': 'readdir_ino',
              'direct_io': 'direct_io', 'kernel_cache': 'kernel_cache', 'auto_cache': 'auto_cache',
              'intr': 'intr', 'no_rofd_flush': 'no_rofd_flush', 'nullpath_ok': 'nullpath_ok',
              'nopath': 'nullpath_ok'}
_LIB_FLOATS = {'entry_timeout', 'attr_timeout', 'negative_timeout', 'ac_attr_timeout'}
_LIB_INTS = {'remember', 'intr_signal'}


# ---------------------------------------------------------------- the path layer

class _PathOps(_CoreOperations):
    """fuseshim (inode based) Operations running a path-based filesystem the
    way libfuse's high-level library does."""

    enable_readdirplus = False   # libfuse's fill_dir answers READDIRPLUS without attributes

    def __init__(self, fuse, threaded):
        self.f = fuse
        # Per-request shortcuts: these are fixed before the layer is made, and
        # every attribute hop saved counts on the LOOKUP/GETATTR path.
        self.conf = fuse.conf
        self.encoding = fuse.encoding
        self.errors = fuse.errors
        self.use_ns = fuse.use_ns
        self._op = fuse._dispatcher()     # _op(name, *args): what the operation returned
        self._registered = fuse._registered
        self.nodes = _NodeTable(threaded)
        # single-threaded (nothreads): INIT is answered by fuseshim's reader
        # (during mount(2) on the sync path), but the filesystem's init runs
        # later on the thread that called FUSE(), before any other request
        self.threaded = threaded
        self.init_deferred = False
        self.files = {}
        self.dirs = {}
        self.handle_ids = itertools.count(1)
        self.hlock = threading.Lock()
        # libfuse locks the paths an operation works on (its "treelock"), so a
        # release and an unlink/rename of the same file never interleave.
        # One lock for the operations that move names (and release) does the same.
        self.treelock = threading.RLock()
        self._note_owner_mode()

    # -- plumbing
    def _run(self, fn, *args):
        """Call fn; map its failure to an errno the way fusepy's _wrapper
        does.  (fuse_get_context() asks fuseshim for the request the calling
        thread is handling: nothing to set up per call.)"""
        try:
            return fn(*args)
        except _fs.FUSEError:
            raise
        except BaseException as e:
            raise self._failure(e, fn) from None

    def _failure(self, e, fn):
        """The FUSEError answering an operation ``fn`` that raised ``e``."""
        if isinstance(e, _Stale):
            return _fs.FUSEError(errno.ESTALE)
        name = getattr(fn, '__name__', fn)
        if isinstance(e, OSError):
            if isinstance(e.errno, int) and e.errno > 0:
                log.debug('FUSE operation %s raised a %s, returning errno %s.',
                          name, type(e), e.errno, exc_info=e)
                return _fs.FUSEError(e.errno)
            log.error('FUSE operation %s raised an OSError with negative errno %s, returning '
                      'errno.EINVAL.', name, e.errno, exc_info=e)
            return _fs.FUSEError(errno.EINVAL)
        if isinstance(e, Exception):
            log.error('Uncaught exception from FUSE operation %s, returning errno.EINVAL.',
                      name, exc_info=e)
            return _fs.FUSEError(errno.EINVAL)
        self.f._critical(e)
        return _fs.FUSEError(errno.EFAULT)

    def _status(self, name, *args):
        """Invoke an operation whose int result is 0 or -errno."""
        r = self._op(name, *args)
        if isinstance(r, int) and not isinstance(r, bool) and r < 0:
            raise _fs.FUSEError(-r)
        return r

    def _has(self, name):
        return name in self._registered

    def _decode(self, b):
        return None if b is None else b.decode(self.encoding, self.errors)

    def _path(self, nid, name=None):
        return self.nodes.path(nid, name).decode(self.encoding, self.errors)

    def _path_nullok(self, nid):
        if self.conf.nullpath_ok:
            return None
        try:
            return self._path(nid)
        except _Stale:
            return None

    def _user_fh(self, h):
        return h.fi if self.f.raw_fi else h.fh

    def _file(self, fh):
        h = self.files.get(fh)
        if h is None:
            raise _fs.FUSEError(errno.EBADF)
        return h

    def _dir(self, fh):
        h = self.dirs.get(fh)
        if h is None:
            raise _fs.FUSEError(errno.EBADF)
        return h

    def _new_handle(self, table, obj):
        with self.hlock:
            hid = next(self.handle_ids)
            table[hid] = obj
        return hid

    # -- attributes
    def _fill(self, attrs):
        """A stat dict (fusepy's getattr result) -> EntryAttributes, the way
        fusepy's set_st_attrs fills a zeroed struct stat.  This runs for every
        LOOKUP and GETATTR, hence the loop in C (the rules: _fill_from_stat_dict)."""
        if attrs is None:
            raise TypeError('getattr returned None')
        return _fill_from_stat_dict(_ZEROED_ENTRY.copy(), attrs, self.use_ns, _seconds_to_ns)

    def _note_owner_mode(self):
        """Whether _apply_owner_mode has anything to do: the options are set
        at mount and may change in init(); every LOOKUP and GETATTR asks."""
        conf = self.conf
        self.owner_mode_set = bool(conf.set_mode or conf.set_uid or conf.set_gid)

    def _apply_owner_mode(self, e):
        """The umask=, uid= and gid= options."""
        conf = self.conf
        if conf.set_mode:
            e.st_mode = stat.S_IFMT(e.st_mode) | (0o777 & ~conf.umask)
        if conf.set_uid:
            e.st_uid = conf.uid
        if conf.set_gid:
            e.st_gid = conf.gid

    def _getattr(self, path, fh=None):
        return self._fill(self._op('getattr', path, fh))

    def _lookup_path(self, parent, name, path, fh=None):
        """libfuse's lookup_path: getattr, then find (or make) the node."""
        conf = self.conf
        if 'getattr' not in self._registered:
            raise _fs.FUSEError(errno.ENOSYS)
        e = self._fill(self._op('getattr', path, fh))
        want = None
        if conf.use_ino and name is not None:
            ino = e.st_ino
            if 1 < ino < (1 << 64) and ino != FUSE_UNKNOWN_INO:
                want = ino
        node = self.nodes.find(parent, name, want)
        e.st_ino = node.id            # the kernel's inode number for this node
        e.generation = node.generation
        e.entry_timeout = conf.entry_timeout
        e.attr_timeout = conf.attr_timeout
        if self.owner_mode_set:
            self._apply_owner_mode(e)
        return e, node

    # -- init / destroy
    def init(self):
        if not self.threaded:
            self.init_deferred = True
            return
        try:
            self._run(self.f._init_fs)
        finally:
            self._note_owner_mode()

    def run_deferred_init(self) -> bool:
        """nothreads: the filesystem's init, on the serving thread.  False
        if it raised (recorded as the critical exception; FUSE() re-raises)."""
        if not self.init_deferred:
            return True
        self.init_deferred = False
        try:
            self.f._init_fs()
        except BaseException:
            return False
        finally:
            self._note_owner_mode()
        return True

    def destroy(self):
        if self._has('destroy'):
            try:
                self._run(self._op, 'destroy', '/')
            except _fs.FUSEError:
                pass

    # -- names
    def lookup(self, parent, name, ctx):
        nid, nm = parent, name
        if name == b'.':
            nm = None
        elif name == b'..':
            with self.nodes.lock:
                p = self.nodes.get(parent)
                nid = p.parent.id if p.parent is not None else FUSE_ROOT_ID
            nm = None
        try:
            try:    # _run inlined: LOOKUP and GETATTR are the hottest requests
                return self._do_lookup(nid, nm)
            except _fs.FUSEError:
                raise
            except BaseException as e:
                raise self._failure(e, self._do_lookup) from None
        except _fs.FUSEError as e:
            neg = self.conf.negative_timeout
            if e.errno == errno.ENOENT and neg:
                ea = _fs.EntryAttributes()
                ea.st_ino = 0
                ea.entry_timeout = neg
                return ea
            raise

    def _do_lookup(self, parent, name):
        path = self.nodes.path(parent, name).decode(self.encoding, self.errors)
        return self._lookup_path(parent, name, path)[0]

    def forget(self, inode_list):
        for nid, n in inode_list:
            self.nodes.forget(nid, n)

    def getattr(self, inode, ctx):
        try:        # _run inlined, as in lookup()
            return self._do_getattr(inode)
        except _fs.FUSEError:
            raise
        except BaseException as e:
            raise self._failure(e, self._do_getattr) from None

    def _do_getattr(self, inode):
        if 'getattr' not in self._registered:
            raise _fs.FUSEError(errno.ENOSYS)
        path = self.nodes.path(inode).decode(self.encoding, self.errors)
        e = self._fill(self._op('getattr', path, None))
        self._finish_attr(e, inode)
        return e

    def _finish_attr(self, e, inode):
        # One dict read and one flag: no lock needed to look (a hidden node's
        # state may change right after either way).
        node = self.nodes.by_id.get(inode)
        if node is not None and node.is_hidden and e.st_nlink > 0:
            e.st_nlink -= 1
        conf = self.conf
        if not conf.use_ino:          # use_ino: st_ino is the filesystem's
            e.st_ino = inode
        if self.owner_mode_set:
            self._apply_owner_mode(e)
        e.attr_timeout = conf.attr_timeout

    def setattr(self, inode, attr, fields, fh, ctx):
        return self._run(self._do_setattr, inode, attr, fields, fh)

    def _do_setattr(self, inode, attr, fields, fh):
        h = self._file(fh) if fh is not None and fh in self.files else None
        ufh = self._user_fh(h) if h is not None else None
        path = self._path_nullok(inode) if h is not None else self._path(inode)
        if fields.update_mode:
            self._need('chmod')
            self._status('chmod', path, attr.st_mode)
        if fields.update_uid or fields.update_gid:
            self._need('chown')
            uid = attr.st_uid if fields.update_uid else -1
            gid = attr.st_gid if fields.update_gid else -1
            self._status('chown', path, uid, gid)
        if fields.update_size:
            self._need('truncate')
            self.f._truncate(path, attr.st_size, h is not None, ufh)
        if fields.update_atime or fields.update_mtime:
            self._need('utimens')
            times = (self._time(attr.st_atime_ns, fields.update_atime),
                     self._time(attr.st_mtime_ns, fields.update_mtime))
            self._status('utimens', path, times)
        if not self._has('getattr'):
            raise _fs.FUSEError(errno.ENOSYS)
        e = self._getattr(path, ufh)
        self._finish_attr(e, inode)
        return e

    def _time(self, ns, given):
        sec, nsec = divmod(ns, 1000000000) if given else (0, UTIME_OMIT)
        if self.use_ns:
            return sec * 10 ** 9 + nsec
        return sec + nsec / 1E9

    def _need(self, name):
        if not self._has(name):
            raise _fs.FUSEError(errno.ENOSYS)

    def readlink(self, inode, ctx):
        def do():
            self._need('readlink')
            ret = self._op('readlink', self._path(inode))
            return ret.encode(self.encoding, self.errors)[:PATH_MAX]
        return self._run(do)

    def mknod(self, parent, name, mode, rdev, ctx):
        def do():
            path = self._path(parent, name)
            if stat.S_ISREG(mode) and self._has('create'):
                # libfuse makes regular files with create() + release()
                fi = self.f._file_info_type(os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                try:
                    ufh = self.f._create(path, mode, fi)
                except (_fs.FUSEError, OSError) as e:
                    if e.errno != errno.ENOSYS:
                        raise
                else:
                    try:
                        return self._lookup_path(parent, name, path, ufh)[0]
                    finally:
                        self._release_quietly(path, ufh)
            self._need('mknod')
            self._status('mknod', path, mode, rdev)
            return self._lookup_path(parent, name, path)[0]
        return self._run(do)

    def mkdir(self, parent, name, mode, ctx):
        def do():
            path = self._path(parent, name)
            self._need('mkdir')
            self._status('mkdir', path, mode)
            return self._lookup_path(parent, name, path)[0]
        return self._run(do)

    def _is_open(self, parent, name):
        with self.nodes.lock:
            node = self.nodes.lookup(parent, name)
            return node is not None and node.open_count > 0

    def _hide(self, oldpath, parent, name):
        """libfuse's hide_node: rename an open file to an unused
        .fuse_hidden name instead of removing it; release() unlinks it."""
        newpath = newname = None
        for _ in range(10):
            with self.nodes.lock:
                node = self.nodes.lookup(parent, name)
                if node is None:
                    break
                while True:
                    self.nodes.hidectr += 1
                    newname = b'.fuse_hidden%08x%08x' % (node.id & 0xffffffff,
                                                         self.nodes.hidectr & 0xffffffff)
                    if self.nodes.lookup(parent, newname) is None:
                        break
                try:
                    candidate = self._path(parent, newname)
                except _Stale:
                    break
            try:
                self._getattr(candidate)
            except (_fs.FUSEError, OSError) as e:
                if e.errno == errno.ENOENT:
                    newpath = candidate
                break
            # the name exists in the filesystem: try another
        if newpath is None:
            raise _fs.FUSEError(errno.EBUSY)
        self.f._rename(oldpath, newpath, 0)
        self.nodes.rename(parent, name, parent, newname, hide=True)

    def unlink(self, parent, name, ctx):
        def do():
            with self.treelock:
                return undo()

        def undo():
            path = self._path(parent, name)
            if not self.conf.hard_remove and self._is_open(parent, name):
                self._need('rename')
                self._hide(path, parent, name)
            else:
                self._need('unlink')
                self._status('unlink', path)
                self.nodes.remove(parent, name)
        self._run(do)

    def rmdir(self, parent, name, ctx):
        def do():
            with self.treelock:
                return undo()

        def undo():
            path = self._path(parent, name)
            self._need('rmdir')
            self._status('rmdir', path)
            self.nodes.remove(parent, name)
        self._run(do)

    def symlink(self, parent, name, target, ctx):
        def do():
            path = self._path(parent, name)
            self._need('symlink')
            self._status('symlink', path, self._decode(target))
            return self._lookup_path(parent, name, path)[0]
        return self._run(do)

    def rename(self, p_old, n_old, p_new, n_new, flags, ctx):
        def do():
            with self.treelock:
                return undo()

        def undo():
            if flags and not self.f._rename_flags:
                # libfuse 2 has no RENAME2: the kernel turns its ENOSYS into EINVAL
                raise _fs.FUSEError(errno.EINVAL)
            oldpath = self._path(p_old, n_old)
            newpath = self._path(p_new, n_new)
            self._need('rename')
            if (not self.conf.hard_remove and not flags & RENAME_EXCHANGE
                    and self._is_open(p_new, n_new)):
                self._hide(newpath, p_new, n_new)
            self.f._rename(oldpath, newpath, flags)
            if flags & RENAME_EXCHANGE:
                self.nodes.exchange(p_old, n_old, p_new, n_new)
            else:
                self.nodes.rename(p_old, n_old, p_new, n_new)
        self._run(do)

    def link(self, inode, new_parent, new_name, ctx):
        def do():
            oldpath = self._path(inode)
            newpath = self._path(new_parent, new_name)
            self._need('link')
            self._status('link', newpath, oldpath)
            return self._lookup_path(new_parent, new_name, newpath)[0]
        return self._run(do)

    # -- files
    def _file_info(self, fi, h_id):
        conf = self.conf
        return _fs.FileInfo(fh=h_id, direct_io=bool(fi.direct_io or conf.direct_io),
                            keep_cache=bool(fi.keep_cache or conf.kernel_cache),
                            nonseekable=bool(fi.nonseekable))

    def open(self, inode, flags, ctx):
        def do():
            path = self._path(inode)
            fi = self.f._file_info_type(flags)
            if self._has('open'):
                self.f._open(path, fi)
            with self.nodes.lock:
                self.nodes.get(inode).open_count += 1
            hid = self._new_handle(self.files, _File(inode, fi.fh, fi))
            return self._file_info(fi, hid)
        return self._run(do)

    def create(self, parent, name, mode, flags, ctx):
        def do():
            path = self._path(parent, name)
            self._need('create')
            fi = self.f._file_info_type(flags)
            ufh = self.f._create(path, mode, fi)
            try:
                e, node = self._lookup_path(parent, name, path, ufh)
            except BaseException:
                self._release_quietly(path, ufh)
                raise
            if not stat.S_ISREG(e.st_mode):
                self._release_quietly(path, ufh)
                self.nodes.forget(node.id, 1)
                raise _fs.FUSEError(errno.EIO)
            with self.nodes.lock:
                node.open_count += 1
            hid = self._new_handle(self.files, _File(node.id, fi.fh, fi))
            return self._file_info(fi, hid), e
        return self._run(do)

    def _release_quietly(self, path, ufh):
        if self._has('release'):
            try:
                self._op('release', path, ufh)
            except Exception:
                pass

    def read(self, fh, off, size):
        h = self._file(fh)

        def do():
            self._need('read')
            ret = self._op('read', self._path_nullok(h.ino), size, off, self._user_fh(h))
            if not ret:
                return b''
            assert len(ret) <= size, \
                'actual amount read %d greater than expected %d' % (len(ret), size)
            return bytes(ret)
        return self._run(do)

    def write(self, fh, off, buf):
        h = self._file(fh)

        def do():
            self._need('write')
            r = self._op('write', self._path_nullok(h.ino), buf, off, self._user_fh(h)) or 0
            if r < 0:
                raise _fs.FUSEError(-r)
            return r
        return self._run(do)

    def flush(self, fh):
        h = self._file(fh)

        def do():
            self._need('flush')
            self._status('flush', self._path_nullok(h.ino), self._user_fh(h))
        self._run(do)

    def release(self, fh):
        with self.hlock:
            h = self.files.pop(fh, None)
        if h is None:
            return

        def do():
            with self.treelock:
                return undo()

        def undo():
            path = self._path_nullok(h.ino)
            if self._has('release'):
                try:
                    self._op('release', path, self._user_fh(h))
                except _fs.FUSEError:
                    pass
            unlink_hidden = False
            with self.nodes.lock:
                node = self.nodes.by_id.get(h.ino)
                if node is not None:
                    node.open_count -= 1
                    if node.is_hidden and not node.open_count:
                        unlink_hidden = True
                        node.is_hidden = False
            if unlink_hidden and self._has('unlink'):
                if path is None and self.conf.nullpath_ok:
                    try:
                        path = self._path(h.ino)
                    except _Stale:
                        path = None
                if path is not None:
                    try:
                        self._op('unlink', path)
                    except Exception:
                        pass
        try:
            self._run(do)
        except _fs.FUSEError:
            pass

    def fsync(self, fh, datasync):
        h = self._file(fh)

        def do():
            self._need('fsync')
            self._status('fsync', self._path_nullok(h.ino), int(datasync), self._user_fh(h))
        self._run(do)

    def fallocate(self, fh, mode, off, length):
        h = self._file(fh)

        def do():
            self._need('fallocate')
            self._status('fallocate', self._path_nullok(h.ino), mode, off, length,
                         self._user_fh(h))
        self._run(do)

    def flock(self, inode, fh, owner, op, ctx):
        h = self._file(fh)

        def do():
            self._status('flock', self._path_nullok(h.ino), self._user_fh(h), op)
        self._run(do)

    def ioctl(self, inode, fh, cmd, arg, in_data, out_size, flags, ctx):
        def do():
            if flags & FUSE_IOCTL_UNRESTRICTED:
                raise _fs.FUSEError(errno.EPERM)
            if flags & FUSE_IOCTL_DIR:
                h = self._dir(fh)
                ufh = h.fh
            else:
                h = self._file(fh)
                ufh = self._user_fh(h)
            self._need('ioctl')
            size = max(len(in_data), out_size)
            buf = ctypes.create_string_buffer(bytes(in_data), size) if size else None
            data = ctypes.addressof(buf) if buf is not None else None
            ret = self._op('ioctl', self._path_nullok(inode), cmd, arg or None, ufh, flags,
                           data) or 0
            if ret < 0:
                raise _fs.FUSEError(-ret)
            return ret, (buf.raw[:out_size] if buf is not None and out_size else b'')
        return self._run(do)

    # -- directories
    def opendir(self, inode, ctx):
        def do():
            path = self._path(inode)
            fh = self._op('opendir', path) if self._has('opendir') else 0
            return self._new_handle(self.dirs, _Dir(inode, fh))
        return self._run(do)

    def readdir(self, fh, off, token):
        dh = self._dir(fh)
        with dh.lock:
            if not off:
                dh.filled = False
            if not dh.filled:
                self._run(self._readdir_fill, dh, off, token)
            if dh.filled:
                for pos in range(off, len(dh.entries)):
                    name, mode, ino = dh.entries[pos]
                    if not _fs.readdir_reply(token, name, self._dirent(mode, ino), pos + 1):
                        break

    @staticmethod
    def _dirent(mode, ino):
        e = _fs.EntryAttributes()
        e.st_ino = ino
        e.st_mode = mode
        return e

    def _readdir_fill(self, dh, off, token):
        self._need('readdir')
        f = self.f
        path = self._path_nullok(dh.ino)
        dh.entries = []
        items = f._readdir(path, off, dh.fh)
        stats = f._dirent_stats()
        direct = False
        warned = False
        try:
            for item in items:
                if isinstance(item, str):
                    name, st, ioff = item, stats.for_name(), 0
                else:
                    name, attrs, ioff = item
                    st = stats.for_attrs(attrs)
                    if ioff and not f._offsets_honoured:
                        if not warned:
                            warned = True
                        ioff = 0
                mode = st.get('st_mode', 0) if st is not None else 0
                ino = self._dirent_ino(dh.ino, name, st)
                bname = name.encode(f.encoding, f.errors)
                if ioff:
                    if dh.filled:
                        raise _fs.FUSEError(errno.EIO)
                    direct = True
                    if not _fs.readdir_reply(token, bname, self._dirent(_as_index(mode), ino), ioff):
                        break
                else:
                    dh.filled = True
                    dh.entries.append((bname, _as_index(mode), ino))
        except BaseException:
            dh.filled = False
            raise
        finally:
            close = getattr(items, 'close', None)
            if close is not None:
                close()
        if warned:
            log.warning('When returning non-zero offsets from readdir, you should use '
                        'readdir_with_offset instead.')
        if direct and dh.filled:
            raise _fs.FUSEError(errno.EIO)

    def _dirent_ino(self, dir_ino, name, st):
        conf = self.conf
        if conf.use_ino:
            if st is None:
                return FUSE_UNKNOWN_INO
            return _as_index(st.get('st_ino', 0))
        if conf.readdir_ino:
            with self.nodes.lock:
                node = self.nodes.lookup(dir_ino, name.encode(self.encoding, self.errors))
                return node.id if node is not None else FUSE_UNKNOWN_INO
        return FUSE_UNKNOWN_INO

    def releasedir(self, fh):
        with self.hlock:
            dh = self.dirs.pop(fh, None)
        if dh is None:
            return

        def do():
            if self._has('releasedir'):
                self._op('releasedir', self._path_nullok(dh.ino), dh.fh)
        try:
            self._run(do)
        except _fs.FUSEError:
            pass

    def fsyncdir(self, fh, datasync):
        dh = self._dir(fh)

        def do():
            self._need('fsyncdir')
            self._status('fsyncdir', self._path_nullok(dh.ino), int(datasync), dh.fh)
        self._run(do)

    # -- misc
    def statfs(self, ctx):
        def do():
            sv = _fs.StatvfsData()
            for k in _STATVFS_FIELDS:
                setattr(sv, k, 0)
            if not self._has('statfs'):
                sv.f_namemax = 255
                sv.f_bsize = 512
                return sv
            attrs = self._op('statfs', '/')
            for key, val in attrs.items():
                if key in _STATVFS_FIELDS:
                    setattr(sv, key, _as_index(val))
            return sv
        return self._run(do)

    def setxattr(self, inode, name, value, ctx):
        def do():
            self._need('setxattr')
            self._status('setxattr', self._path(inode), self._decode(name), value, 0)
        self._run(do)

    def getxattr(self, inode, name, ctx):
        def do():
            self._need('getxattr')
            ret = self._op('getxattr', self._path(inode), self._decode(name))
            if not isinstance(ret, (bytes, bytearray)):
                raise TypeError(f'getxattr must return bytes, not {type(ret).__name__}')
            return bytes(ret)
        return self._run(do)

    def listxattr(self, inode, ctx):
        def do():
            self._need('listxattr')
            attrs = list(self._op('listxattr', self._path(inode)) or '')
            '\x00'.join(attrs)     # as fusepy: the names must be str
            return [n.encode(self.encoding, self.errors) for n in attrs]
        return self._run(do)

    def removexattr(self, inode, name, ctx):
        def do():
            self._need('removexattr')
            self._status('removexattr', self._path(inode), self._decode(name))
        self._run(do)

    def access(self, inode, mode, ctx):
        def do():
            self._need('access')
            self._status('access', self._path(inode), mode)
            return True
        return self._run(do)


# ---------------------------------------------------------------- FUSE

# The path operations a filesystem may provide, for registration checks.
_FS_OPS = ('getattr', 'readlink', 'mknod', 'mkdir', 'unlink', 'rmdir', 'symlink', 'rename',
           'link', 'chmod', 'chown', 'truncate', 'open', 'read', 'write', 'statfs', 'flush',
           'release', 'fsync', 'setxattr', 'getxattr', 'listxattr', 'removexattr', 'opendir',
           'readdir', 'releasedir', 'fsyncdir', 'init', 'destroy', 'access', 'create', 'lock',
           'utimens', 'bmap', 'ioctl', 'poll', 'write_buf', 'read_buf', 'flock', 'fallocate')


def _parse_octal(value):
    return int(str(value), 8)


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
    _flavor = 'fusepy'
    _rename_flags = False          # libfuse 2: RENAME2 flags end as EINVAL
    _offsets_honoured = True       # fusepy hands readdir offsets to libfuse as given
    _default_errors = 'strict'
    _signal_error = None           # libfuse 2's fuse_main returns 0 after a signal
    _option_error = 1              # libfuse 2's fuse_main returns 1 on any failure
    _mount_error = 1
    _file_info_type = fuse_file_info   # what open/create fill (and raw_fi hands over)
    _config_type = fuse_config         # the high-level options (libfuse 3's struct fuse_config)

    def __init__(self, operations, mountpoint, raw_fi=False, encoding='utf-8', errors=None,
                 **kwargs):
        self.operations = operations
        self.raw_fi = raw_fi
        self.encoding = encoding
        self.errors = errors if errors is not None else self._default_errors
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
        self._check_callable()

        startup = startup_mode(kwargs.pop('startup', None))
        foreground = bool(kwargs.pop('foreground', False))
        debug = bool(kwargs.pop('debug', False))
        nothreads = bool(kwargs.pop('nothreads', False))
        if debug:
            foreground = True        # libfuse: -d implies -f
        kwargs.setdefault('fsname', operations.__class__.__name__)

        self.conf = self._config_type()
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
                code = self._option_error if isinstance(e, ValueError) else self._mount_error
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
        if self._exit_signal is not None and self._signal_error is not None:
            # libfuse 3 records the signal as the loop's error; fuse_main
            # then returns 8, which mfusepy raises (after a clean unmount).
            raise RuntimeError(self._signal_error)

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

    # -- flavour hooks
    def _check_callable(self):
        pass

    def _make_layer(self, threaded):
        cls = _PathOps
        if 'flock' in self._registered:
            cls = type('_PathOpsFlock', (_PathOps,), {'flock': _PathOps.flock})
        else:
            cls = type('_PathOpsNoFlock', (_PathOps,), {})
        layer = cls(self, threaded)
        return layer

    def _find_registered(self):
        """Which filesystem operations libfuse would be given (fusepy: every
        attribute that is not None)."""
        ops = self.operations
        names = {name for name in _FS_OPS if getattr(ops, name, None) is not None}
        if _offered(ops, 'readdir_with_offset'):    # mfusepy addition
            names.add('readdir')
        return names

    def _dispatch(self, name, *args):
        ops = self.operations
        if callable(ops):
            return ops(name, *args)
        return getattr(ops, name)(*args)

    def _dispatcher(self):
        """The _dispatch to use per request.  When the filesystem keeps
        Operations.__call__, doing its lookup here (in _call_method) saves a
        call and a second attribute lookup on every request."""
        if getattr(type(self.operations), '__call__', None) is Operations.__call__:
            return self._call_method
        return self._dispatch

    def _call_method(self, name, *args):
        """Operations.__call__(name, *args), inlined."""
        try:
            method = getattr(self.operations, name)
        except AttributeError:
            raise FuseOSError(errno.EFAULT) from None
        return method(*args)

    def _init_fs(self):
        ops = self.operations
        if getattr(ops, 'flag_nullpath_ok', False):
            self.conf.nullpath_ok = 1
        try:
            if _offered(ops, 'init_with_config'):   # mfusepy addition
                ops.init_with_config(fuse_conn_info(), self.conf)
                self._layer.nodes.high_ids = bool(self.conf.use_ino)
            elif 'init' in self._registered:
                self._dispatch('init', '/')
        except BaseException as e:
            self._critical(e)
            raise

    def _truncate(self, path, length, has_fh, ufh):
        if has_fh:
            self._status_of(self._dispatch('truncate', path, length, ufh))
        else:
            self._status_of(self._dispatch('truncate', path, length))

    def _rename(self, old, new, flags):
        self._status_of(self._dispatch('rename', old, new))

    def _open(self, path, fi):
        if self.raw_fi:
            self._status_of(self._dispatch('open', path, fi))
        else:
            fh = self._dispatch('open', path, fi.flags)
            fi.fh = _as_index(fh) & 0xFFFFFFFFFFFFFFFF

    def _create(self, path, mode, fi):
        if self.raw_fi:
            self._status_of(self._dispatch('create', path, mode, fi))
            return fi
        fh = self._create_call(path, mode, fi)
        fi.fh = _as_index(fh) & 0xFFFFFFFFFFFFFFFF
        return fi.fh

    def _create_call(self, path, mode, fi):
        return self._dispatch('create', path, mode)

    def _readdir(self, path, offset, fh):
        if _offered(self.operations, 'readdir_with_offset'):   # mfusepy addition
            return self.operations.readdir_with_offset(path, offset, fh)
        return self._dispatch('readdir', path, fh)

    class _DirentStats:
        """fusepy: a bare name has no struct stat; a non-empty attrs dict
        fills a fresh, zeroed one."""

        def for_name(self):
            return None

        def for_attrs(self, attrs):
            if not attrs:
                return None
            if isinstance(attrs, int) and not isinstance(attrs, bool):
                return {'st_mode': attrs}
            return dict(attrs)

    def _dirent_stats(self):
        return self._DirentStats()

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
                raise RuntimeError(self._option_error)
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
            raise RuntimeError(self._mount_error)
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


# fusepy has no __all__: ``from fuse import *`` gives every public name of
# its module, so the same names here (the layer's own extras stay out)
__all__ = ['ENOTSUP', 'FUSE', 'FuseOSError', 'LoggingMixIn', 'Operations', 'SIGINT', 'SIG_DFL',
           'S_IFDIR', 'absolute_import', 'basestring', 'c_dev_t', 'c_fsblkcnt_t', 'c_fsfilcnt_t',
           'c_gid_t', 'c_mode_t', 'c_off_t', 'c_pid_t', 'c_stat', 'c_statvfs', 'c_timespec',
           'c_uid_t', 'c_utimbuf', 'ctypes', 'division', 'errno', 'find_library', 'fuse_context',
           'fuse_exit', 'fuse_file_info', 'fuse_get_context', 'fuse_operations', 'getxattr_t',
           'log', 'logging', 'machine', 'os', 'partial', 'print_exc', 'print_function',
           'set_st_attrs', 'setxattr_t', 'signal', 'system', 'time_of_timespec', 'warnings']
