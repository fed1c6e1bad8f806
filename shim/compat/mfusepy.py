"""fuseshim.compat.mfusepy: the mfusepy 3.x API, served by fuseshim.

``import mfusepy as fuse`` becomes ``import fuseshim.compat.mfusepy as fuse``.
Same path layer as fuseshim.compat.fusepy, with mfusepy's rules:

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
from __future__ import annotations

import errno
import functools
import inspect
import logging
import stat
import warnings
from collections.abc import Iterable
from typing import Any, Optional

import fuseshim as _fs

from . import fusepy as _base
from .fusepy import (ENOTSUP, FuseOSError, ReadDirResult, _offered, c_timespec,  # noqa: F401
                     fuse_config, fuse_conn_info, fuse_exit, fuse_file_info, fuse_get_context,
                     log_callback, overrides, time_of_timespec)

log = logging.getLogger('fuse')

ENOATTR = errno.ENODATA
fuse_version_major = 3
fuse_version_minor = 14

_ROOT_STAT = {'st_mode': (stat.S_IFDIR | 0o755), 'st_nlink': 2}


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
    _flavor = 'mfusepy'
    _rename_flags = True           # libfuse 3 passes them; mfusepy drops them
    _default_errors = 'surrogateescape'
    _option_error = 3              # ... when fuse_new() rejects the options
    _mount_error = 4               # ... when mounting fails

    def __init__(self, operations, mountpoint: str, raw_fi: bool = False,
                 encoding: str = 'utf-8', errors: str = 'surrogateescape', **kwargs) -> None:
        super().__init__(operations, mountpoint, raw_fi=raw_fi, encoding=encoding,
                         errors=errors, **kwargs)

    @property
    def _signal_error(self) -> int:
        # what libfuse 3's fuse_main_real returns after SIGINT/SIGTERM/SIGHUP
        # (the loop's error), which mfusepy raises: 7 up to 3.11, 8 from
        # 3.12 on, where fuse_loop_cfg_create() took 7 for its own failure
        return 7 if _libfuse_before(3, 12) else 8

    @property
    def _offsets_honoured(self):
        return _offered(self.operations, 'readdir_with_offset')

    def _check_callable(self):
        if callable(self.operations):
            warnings.warn(
                'The call operator on the Operations object is ignored since mfusepy 3.0!'
                'Use decorators to wrap methods or if really necessary overwrite '
                '__getattribute__ instead.', DeprecationWarning, stacklevel=3)

    def _find_registered(self):
        ops = self.operations
        names = {name for name in _base._FS_OPS if _offered(ops, name)}
        names.add('init')
        if _offered(ops, 'readdir_with_offset'):
            names.add('readdir')
        return names

    def _dispatch(self, name, *args):
        return getattr(self.operations, name)(*args)

    def _dispatcher(self):
        return self._dispatch     # mfusepy never goes through __call__

    def _init_fs(self):
        ops = self.operations
        if getattr(ops, 'flag_nopath', False) and getattr(ops, 'flag_nullpath_ok', False):
            self.conf.nullpath_ok = 1
        try:
            if _offered(ops, 'init_with_config'):
                conn = fuse_conn_info()
                ops.init_with_config(conn, self.conf)
            elif _offered(ops, 'init'):
                ops.init('/')
        except BaseException as e:
            self._critical(e)
            raise
        self._layer.nodes.high_ids = bool(self.conf.use_ino)

    def _truncate(self, path, length, has_fh, ufh):
        self._status_of(self._dispatch('truncate', path, length))

    def _rename(self, old, new, flags):
        self._status_of(self._dispatch('rename', old, new))

    def _create_call(self, path, mode, fi):
        if len(inspect.signature(self.operations.create).parameters) == 2:
            return self._dispatch('create', path, mode)
        return self._dispatch('create', path, mode, fi.flags)

    def _readdir(self, path, offset, fh):
        if _offered(self.operations, 'readdir_with_offset'):
            return self.operations.readdir_with_offset(path, offset, fh)
        return self.operations.readdir(path, fh)

    class _DirentStats:
        """mfusepy fills ONE struct stat for a whole listing: only st_mode
        and st_ino are copied from each entry's attrs, so an entry without
        them keeps the previous entry's values, and a bare name gets the
        struct as it stands."""

        def __init__(self):
            self.st = {'st_mode': 0, 'st_ino': 0}

        def for_name(self):
            return dict(self.st)

        def for_attrs(self, attrs):
            if isinstance(attrs, int) and not isinstance(attrs, bool):
                self.st['st_mode'] = attrs
                return dict(self.st)
            if isinstance(attrs, dict):
                for k in ('st_mode', 'st_ino'):
                    if k in attrs:
                        self.st[k] = attrs[k]
                return dict(self.st)
            return None

    def _dirent_stats(self):
        return self._DirentStats()


__all__ = ['ENOATTR', 'ENOTSUP', 'FUSE', 'FuseOSError', 'LoggingMixIn', 'Operations',
           'ReadDirResult', 'c_timespec', 'fuse_config', 'fuse_conn_info', 'fuse_exit',
           'fuse_file_info', 'fuse_get_context', 'log_callback', 'overrides',
           'time_of_timespec']
