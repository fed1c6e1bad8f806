"""fuseshim.compat.fusepy: fusepy 3.0's ``fuse`` module, served by fuseshim.

Change one line -- ``from fuse import FUSE, Operations, ...`` becomes
``from fuseshim.compat.fusepy import FUSE, Operations, ...`` -- and a fusepy
filesystem runs unchanged.  (mfusepy users: ``fuseshim.compat.mfusepy``.)

fusepy drives libfuse's *high-level* (path based) API.  fuseshim binds only
the low-level (inode based) one, so the private package ``_pathfs`` does in
Python what libfuse's lib/fuse.c does in C (its node table, handles, the
path operations and the FUSE front end; libfuse's high-level library is never
loaded).  This module is fusepy's public surface on top of it, plus
``_FLAVOUR``: what makes the layer behave as fusepy rather than mfusepy.

Behaviour differences and their reasons: docs/migration-fusepy.md.
"""
# fusepy 3.0 imports these three, so its module has them as names
from __future__ import absolute_import, annotations, division, print_function  # noqa: F401

import ctypes
import errno
import itertools  # noqa: F401  (this and the other unused imports: names the module
import logging    # has always had; docs/migration-fusepy.md's api-audit table lists them)
import operator  # noqa: F401
import os
import platform
import select  # noqa: F401
import stat
import sys  # noqa: F401
import threading  # noqa: F401
import warnings
from collections.abc import Iterable
from ctypes.util import find_library  # noqa: F401  (fusepy's module names, below)
from functools import partial  # noqa: F401
from platform import machine, system  # noqa: F401
from signal import SIG_DFL, SIGINT, signal  # noqa: F401
from stat import S_IFDIR  # noqa: F401
from traceback import print_exc  # noqa: F401
from typing import Tuple, Union, get_type_hints

from fuseshim._core import current_request_ids as _current_request_ids

from . import _cstructs, startup_mode, worker_count  # noqa: F401
from ._cstructs import (c_dev_t, c_fsblkcnt_t, c_fsfilcnt_t, c_gid_t, c_mode_t,  # noqa: F401
                        c_off_t, c_pid_t, c_timespec, c_uid_t, getxattr_t, setxattr_t)
from ._pathfs import frontend as _frontend
from ._pathfs.flavour import FreshDirentStat as _FreshDirentStat
from ._pathfs.flavour import Flavour as _Flavour
from ._pathfs.flavour import is_set as _is_set
from ._pathfs.frontend import FUSE, fuse_config, fuse_conn_info  # noqa: F401
from ._pathfs.nodes import FUSE_ROOT_ID, FUSE_UNKNOWN_INO  # noqa: F401
from ._pathfs.operations import (FUSE_IOCTL_DIR, FUSE_IOCTL_UNRESTRICTED, PATH_MAX,  # noqa: F401
                                 RENAME_EXCHANGE, RENAME_NOREPLACE, UTIME_NOW, UTIME_OMIT)
# the engine's parts under the names the in-process tests use
from ._pathfs.nodes import NodeTable as _NodeTable, Stale as _Stale  # noqa: F401,E402
from ._pathfs.operations import PathOperations as _PathOps  # noqa: F401

log = logging.getLogger('fuse')

ENOTSUP = errno.ENOTSUP
ENOATTR = errno.ENODATA      # mfusepy's name for the missing-xattr errno

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


def fuse_get_context():
    """(uid, gid, pid) of the process whose request is being handled (by the
    calling thread; (0, 0, 0) outside a request, as in init)."""
    ids = _current_request_ids()
    return ids if ids is not None else (0, 0, 0)


def fuse_exit():
    """Stop the FUSE loop: the filesystem is unmounted and FUSE() returns
    (like SIGINT)."""
    _frontend.exit_current()


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


# ---------------------------------------------------------------- the flavour

_FLAVOUR = _Flavour(
    registers=_is_set,
    always_offers_init=False,
    call_operator=Operations.__call__,
    nullpath_ok_flags=('flag_nullpath_ok',),
    truncate_gets_fh=True,
    create_gets_flags=False,
    rename_flags=False,            # libfuse 2: RENAME2 flags end as EINVAL
    plain_readdir_offsets=True,    # fusepy hands readdir offsets to libfuse as given
    dirent_stat=_FreshDirentStat,
    file_info_type=fuse_file_info,
    new_config=fuse_config,
    new_conn_info=fuse_conn_info,
    default_errors='strict',
    option_error=1,                # libfuse 2's fuse_main returns 1 on any failure
    mount_error=1,
    signal_error=None,             # ... and 0 after a signal
)
# fusepy's FUSE is the front end itself (its bases are fusepy's: object only)
_frontend.bind_flavour(FUSE, _FLAVOUR)


# fusepy has no __all__: ``from fuse import *`` gives every public name of
# its module, so the same names here (the layer's own extras stay out)
__all__ = ['ENOTSUP', 'FUSE', 'FuseOSError', 'LoggingMixIn', 'Operations', 'SIGINT', 'SIG_DFL',
           'S_IFDIR', 'absolute_import', 'basestring', 'c_dev_t', 'c_fsblkcnt_t', 'c_fsfilcnt_t',
           'c_gid_t', 'c_mode_t', 'c_off_t', 'c_pid_t', 'c_stat', 'c_statvfs', 'c_timespec',
           'c_uid_t', 'c_utimbuf', 'ctypes', 'division', 'errno', 'find_library', 'fuse_context',
           'fuse_exit', 'fuse_file_info', 'fuse_get_context', 'fuse_operations', 'getxattr_t',
           'log', 'logging', 'machine', 'os', 'partial', 'print_exc', 'print_function',
           'set_st_attrs', 'setxattr_t', 'signal', 'system', 'time_of_timespec', 'warnings']
