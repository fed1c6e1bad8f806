"""fuseshim.compat.mfusepy: the mfusepy 3.x API, served by fuseshim.

``import mfusepy as fuse`` becomes ``import fuseshim.compat.mfusepy as fuse``.
Same path layer as fuseshim.compat.fusepy (the private package ``_pathfs``),
with mfusepy's rules, all in this module's ``_FLAVOUR``:

* only operations a filesystem overrides are offered (the base class marks
  its methods ``libfuse_ignore``); ``init`` always is, and ``readdir`` is when
  either ``readdir`` or ``readdir_with_offset`` is overridden;
* methods are called directly (``Operations.__call__`` is ignored, with
  mfusepy's DeprecationWarning when the object is callable);
* ``init_with_config(conn_info, config)`` may change the libfuse 3 config
  (``use_ino``, ``nullpath_ok``, timeouts, ...); ``flag_nopath`` together with
  ``flag_nullpath_ok`` sets ``nullpath_ok``;
* ``readdir_with_offset(path, offset, fh)`` gets libfuse's offsets; a plain
  ``readdir`` has its non-zero offsets ignored (with mfusepy's warning);
* ``create`` gets ``flags`` when it takes three arguments; ``truncate`` never
  gets the file handle; ``rename`` flags are not passed on (as in mfusepy);
* paths decode with ``errors='surrogateescape'`` by default.
"""
import contextlib  # noqa: F401  (mfusepy's module has these names; see below)
import ctypes
import errno
import functools
import inspect  # noqa: F401
import logging
import os  # noqa: F401
import platform  # noqa: F401
import warnings  # noqa: F401
from collections.abc import Iterable, Sequence  # noqa: F401
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_ssize_t,  # noqa: F401
                    c_uint, c_void_p)
from ctypes.util import find_library  # noqa: F401
from signal import SIG_DFL, SIGINT, SIGTERM, signal  # noqa: F401
from stat import S_IFDIR
from typing import TYPE_CHECKING, Any, Optional, Union, get_type_hints  # noqa: F401

import fuseshim as _fs
from fuseshim._core import libfuse_path as _libfuse_path

from . import _cstructs
from . import fusepy as _base
from ._pathfs import frontend as _frontend
from ._pathfs.flavour import Flavour as _Flavour
from ._pathfs.flavour import SharedDirentStat as _SharedDirentStat
from ._pathfs.flavour import offered as _offered
from ._cstructs import (c_byte_p, c_dev_t, c_flock_t, c_fsblkcnt_t, c_fsfilcnt_t,  # noqa: F401
                        c_gid_t, c_mode_t, c_off_t, c_pid_t, c_timespec, c_uid_t, c_uint64_p,
                        fuse_buf, fuse_buf_flags, fuse_bufvec, fuse_fill_dir_flags,
                        fuse_pollhandle_p, fuse_readdir_flags, getxattr_t, setxattr_t)
from .fusepy import (ENOTSUP, FuseOSError, fuse_exit, fuse_get_context,  # noqa: F401
                     log_callback, overrides, time_of_timespec)

log = logging.getLogger('fuse')

ENOATTR = errno.ENODATA
FieldsEntry = Union[tuple[str, type], tuple[str, type, int]]
BitFieldsEntry = tuple[str, type, int]
ReadDirResult = Iterable[Union[str, tuple[str, dict[str, int], int], tuple[str, int, int]]]

# ---------------------------------------------------------------- C-level names
# What mfusepy shows when it loads the libfuse 3 fuseshim runs (mfusepy
# itself prefers libfuse 2 unless FUSE_LIBRARY_NAME=fuse3): that version and
# its structures' layouts.  fuseshim never hands them to libfuse; raw_fi
# filesystems get a fuse_file_info, init_with_config() a fuse_conn_info and a
# fuse_config (whose changes take effect).
fuse_version_major, fuse_version_minor = _cstructs.running_libfuse_version()
c_utimbuf = _cstructs.struct('c_utimbuf', __name__, [('actime', c_timespec),
                                                     ('modtime', c_timespec)])
c_stat = _cstructs.struct('c_stat', __name__, _cstructs.stat_fields(reserved_tail=True))
c_statvfs = _cstructs.struct('c_statvfs', __name__,
                             _cstructs.STATVFS_FIELDS + _cstructs.STATVFS_TAIL)
fuse_file_info = _cstructs.struct('fuse_file_info', __name__,
                                  _cstructs.fuse3_file_info(fuse_version_minor))
fuse_context = _cstructs.struct('fuse_context', __name__, [
    ('fuse', c_void_p), ('uid', c_uid_t), ('gid', c_gid_t), ('pid', c_pid_t),
    ('private_data', c_void_p), ('umask', c_mode_t)])
fuse_conn_info = _cstructs.struct('fuse_conn_info', __name__,
                                  _cstructs.fuse3_conn_info(fuse_version_minor))
fuse_config = _cstructs.struct('fuse_config', __name__, _cstructs.fuse3_config(fuse_version_minor))
fuse_fi_p = POINTER(fuse_file_info)
c_stat_p = POINTER(c_stat)
c_statvfs_p = POINTER(c_statvfs)
c_utimbuf_p = POINTER(c_utimbuf)
fuse_bufvec_p = POINTER(fuse_bufvec)
fuse_bufvec_pp = POINTER(fuse_bufvec_p)
FuseConfigPointer = POINTER(fuse_config)
FuseConnInfoPointer = POINTER(fuse_conn_info)
fuse_fill_dir_t = CFUNCTYPE(c_int, c_void_p, c_char_p, c_stat_p, c_off_t, fuse_fill_dir_flags)
fuse_operations = _cstructs.struct('fuse_operations', __name__, _cstructs.fuse3_operations(
    c_stat, c_statvfs, fuse_file_info, c_utimbuf, fuse_conn_info, fuse_config))
# libfuse's own entry point, from the library fuseshim is linked with (None
# in the unlikely case that the loader cannot tell which file that is)
fuse_main_real = ctypes.CDLL(_libfuse_path()).fuse_main_real if _libfuse_path() else None


def get_fuse_version(libfuse) -> tuple[int, int]:
    """(major, minor) of a libfuse loaded with ctypes (mfusepy's helper)."""
    version = libfuse.fuse_version()
    if version < 100:
        return version // 10, version % 10
    if version < 1000:
        return version // 100, version % 100
    raise AttributeError(f'Version {version} of found library {libfuse._name} cannot be parsed!')


def set_st_attrs(st, attrs: dict[str, Any], use_ns: bool = False) -> None:
    """Fill a c_stat from a getattr() dict (mfusepy's helper)."""
    _cstructs.fill_stat(st, attrs, use_ns, lambda st, key: getattr(st, key, None) is not None)


def _new_config():
    """A fuse_config with libfuse's defaults, as init_with_config() gets it."""
    conf = fuse_config()
    defaults = _base.fuse_config()
    for name, *_ in fuse_config._fields_:
        if hasattr(defaults, name):
            setattr(conf, name, getattr(defaults, name))
    return conf


def _new_conn_info():
    conn = fuse_conn_info()
    conn.proto_major = 7        # informational only: the kernel's values are not passed on
    return conn


_ROOT_STAT = {'st_mode': (S_IFDIR | 0o755), 'st_nlink': 2}


def _nullable_dummy_function(method):
    """Marks a base-class method as not offered to the kernel unless overridden."""
    method.libfuse_ignore = True
    return method


def _libfuse_before(*version: int) -> bool:
    """True when the libfuse this process runs is older than ``version``."""
    running = tuple(int(x) for x in _fs.libfuse_version().split('.')[:len(version)])
    return running < version


class Operations:
    """mfusepy's base class.  Methods a subclass does not override are not
    offered to the kernel, which then applies libfuse's defaults."""

    @_nullable_dummy_function
    def access(self, path: str, amode: int) -> int:
        return 0

    @_nullable_dummy_function
    def bmap(self, path: str, blocksize: int, idx) -> int:
        return 0

    @_nullable_dummy_function
    def chmod(self, path: str, mode: int) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def chown(self, path: str, uid: int, gid: int) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def create(self, path: str, mode: int, fi=None) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def destroy(self, path: str) -> None:
        pass

    @_nullable_dummy_function
    def flush(self, path: str, fh: int) -> int:
        return 0

    @_nullable_dummy_function
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        return 0

    @_nullable_dummy_function
    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0

    def getattr(self, path: str, fh: Optional[int] = None) -> dict[str, Any]:
        if path != '/':
            raise FuseOSError(errno.ENOENT)
        return dict(_ROOT_STAT)

    @_nullable_dummy_function
    def init(self, path: str) -> None:
        pass

    @_nullable_dummy_function
    def init_with_config(self, conn_info: Optional[fuse_conn_info],
                         config_3: Optional[fuse_config]) -> None:
        pass

    @_nullable_dummy_function
    def ioctl(self, path: str, cmd: int, arg, fh: int, flags: int, data) -> int:
        raise FuseOSError(errno.ENOTTY)

    @_nullable_dummy_function
    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def listxattr(self, path: str) -> Iterable[str]:
        return []

    @_nullable_dummy_function
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        raise FuseOSError(ENOTSUP)

    @_nullable_dummy_function
    def lock(self, path: str, fh: int, cmd: int, lock) -> int:
        raise FuseOSError(errno.ENOSYS)

    @_nullable_dummy_function
    def mkdir(self, path: str, mode: int) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def open(self, path: str, flags: int) -> int:
        return 0

    @_nullable_dummy_function
    def opendir(self, path: str) -> int:
        return 0

    @_nullable_dummy_function
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        raise FuseOSError(errno.EIO)

    @_nullable_dummy_function
    def readdir(self, path: str, fh: int) -> ReadDirResult:
        return ['.', '..']

    @_nullable_dummy_function
    def readdir_with_offset(self, path: str, offset: int, fh: int) -> ReadDirResult:
        return ['.', '..']

    @_nullable_dummy_function
    def readlink(self, path: str) -> str:
        raise FuseOSError(errno.ENOENT)

    @_nullable_dummy_function
    def release(self, path: str, fh: int) -> int:
        return 0

    @_nullable_dummy_function
    def releasedir(self, path: str, fh: int) -> int:
        return 0

    @_nullable_dummy_function
    def removexattr(self, path: str, name: str) -> int:
        raise FuseOSError(ENOTSUP)

    @_nullable_dummy_function
    def rename(self, old: str, new: str) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def rmdir(self, path: str) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise FuseOSError(ENOTSUP)

    @_nullable_dummy_function
    def statfs(self, path: str) -> dict[str, int]:
        return {}

    @_nullable_dummy_function
    def symlink(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def unlink(self, path: str) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def utimens(self, path: str, times: Optional[tuple[int, int]] = None) -> int:
        return 0

    @_nullable_dummy_function
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        raise FuseOSError(errno.EROFS)

    @_nullable_dummy_function
    def poll(self, path: str, fh: int, ph, reventsp) -> int:
        raise FuseOSError(errno.ENOSYS)

    @_nullable_dummy_function
    def write_buf(self, path: str, buf, offset: int, fh: int) -> int:
        raise FuseOSError(errno.ENOSYS)

    @_nullable_dummy_function
    def read_buf(self, path: str, bufpp, size: int, offset: int, fh: int) -> int:
        raise FuseOSError(errno.ENOSYS)

    @_nullable_dummy_function
    def flock(self, path: str, fh: int, op: int) -> int:
        raise FuseOSError(errno.ENOSYS)

    @_nullable_dummy_function
    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        raise FuseOSError(errno.ENOSYS)


callback_logger = _base._callback_logger
_log_method_call = _base._log_method_call


class LoggingMixIn:
    """Inherit (before Operations) to log every callback; log_callback is the
    decorator form."""

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if (not name.startswith('_') and callable(value) and hasattr(Operations, name)
                and not getattr(value, 'libfuse_ignore', False)):
            return functools.partial(_log_method_call, value)
        return value


class FUSE(_base.FUSE):
    __doc__ = _base.FUSE.__doc__

    def __init__(self, operations, mountpoint: str, raw_fi: bool = False,
                 encoding: str = 'utf-8', errors: str = 'surrogateescape', **kwargs) -> None:
        super().__init__(operations, mountpoint, raw_fi=raw_fi, encoding=encoding,
                         errors=errors, **kwargs)


_FLAVOUR = _Flavour(
    registers=_offered,            # only what a filesystem overrides ...
    always_offers_init=True,       # ... and init, always
    call_operator=None,            # methods are called directly
    nullpath_ok_flags=('flag_nopath', 'flag_nullpath_ok'),
    truncate_gets_fh=False,
    create_gets_flags=True,
    rename_flags=True,             # libfuse 3 passes them; mfusepy drops them
    plain_readdir_offsets=False,   # readdir_with_offset's are used, readdir's dropped
    dirent_stat=_SharedDirentStat,
    file_info_type=fuse_file_info,
    new_config=_new_config,
    new_conn_info=_new_conn_info,
    default_errors='surrogateescape',
    option_error=3,                # ... when fuse_new() rejects the options
    mount_error=4,                 # ... when mounting fails
    # what libfuse 3's fuse_main_real returns after SIGINT/SIGTERM/SIGHUP (the
    # loop's error), which mfusepy raises: 7 up to 3.11, 8 from 3.12 on, where
    # fuse_loop_cfg_create() took 7 for its own failure
    signal_error=7 if _libfuse_before(3, 12) else 8,
)
_frontend.bind_flavour(FUSE, _FLAVOUR)


# mfusepy has no __all__: ``from mfusepy import *`` gives every public name
# of its module, which are exactly this module's public names
__all__ = [n for n in dir() if not n.startswith('_')]
