"""The ctypes structures fusepy and mfusepy expose at module level.

fusepy and mfusepy talk to libfuse's high-level API through ctypes, so their
modules carry the C structures (``c_stat``, ``c_statvfs``, ``fuse_file_info``,
``fuse_context``, ``fuse_operations``, ...) and the C type aliases they are
built from.  Programs and test suites use them: mfusepy's own
``tests/test_struct_layout.py`` checks every one against the C headers, and
a filesystem given ``raw_fi=True`` gets a ``fuse_file_info``.  fuseshim's
layers never hand these structures to libfuse; they provide them so that the
same names mean the same things.

Which layout each peer shows:

* fusepy 3.0 only ever loads libfuse 2, so its structures are libfuse 2.9's
  (and its x86_64 ``c_stat`` stops after ``st_ctimespec``, without glibc's
  trailing reserved words);
* mfusepy 3.x loads libfuse 2 first and libfuse 3 when asked
  (``FUSE_LIBRARY_NAME=fuse3``); fuseshim's mfusepy layer runs on the
  libfuse 3 fuseshim is linked with, so it shows what mfusepy shows when it
  loads that library: ``fuse_version_major`` 3, the running minor version,
  and the libfuse 3 layouts of that minor version (fields that libfuse added,
  moved or made explicit in 3.5, 3.11, 3.15 and 3.17).

The layouts are written from glibc's and libfuse's headers; the API audit
compares them with the real peers' structures field by field, and runs
mfusepy's own layout test (a C program) against the mfusepy layer.
"""
from __future__ import annotations

import ctypes
import platform
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_ssize_t, c_uint, c_void_p

_MACHINE = platform.machine()

c_byte_p = POINTER(ctypes.c_byte)
c_uint64_p = POINTER(ctypes.c_uint64)

# Linux's C types (glibc, 64-bit file offsets)
c_dev_t = ctypes.c_ulonglong
c_fsblkcnt_t = ctypes.c_ulonglong
c_fsfilcnt_t = ctypes.c_ulonglong
c_gid_t = ctypes.c_uint
c_mode_t = ctypes.c_uint
c_off_t = ctypes.c_longlong
c_pid_t = ctypes.c_int
c_uid_t = ctypes.c_uint

# sys/xattr.h's callbacks as libfuse declares them on Linux
setxattr_t = CFUNCTYPE(c_int, c_char_p, c_char_p, c_byte_p, c_size_t, c_int)
getxattr_t = CFUNCTYPE(c_int, c_char_p, c_char_p, c_byte_p, c_size_t)


def struct(name: str, module: str, fields: list) -> type:
    """A ctypes Structure class that belongs to ``module`` (so that its repr
    and pickling name the layer, as the peer's name its own module)."""
    return type(name, (ctypes.Structure,), {'_fields_': fields, '__module__': module,
                                            '__qualname__': name})


class c_timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


c_timespec.__module__ = 'fuseshim.compat.fusepy'


def stat_fields(reserved_tail: bool) -> list:
    """glibc's struct stat for this machine, with the peers' field names
    (``st_atimespec`` for ``st_atim``...)."""
    times = [('st_atimespec', c_timespec), ('st_mtimespec', c_timespec),
             ('st_ctimespec', c_timespec)]
    if _MACHINE == 'x86_64':
        fields = [('st_dev', c_dev_t), ('st_ino', ctypes.c_ulong), ('st_nlink', ctypes.c_ulong),
                  ('st_mode', c_mode_t), ('st_uid', c_uid_t), ('st_gid', c_gid_t),
                  ('__pad0', ctypes.c_int), ('st_rdev', c_dev_t), ('st_size', c_off_t),
                  ('st_blksize', ctypes.c_long), ('st_blocks', ctypes.c_long), *times]
        return fields + [('reserved', ctypes.c_long * 3)] if reserved_tail else fields
    if _MACHINE == 'aarch64':
        return [('st_dev', c_dev_t), ('st_ino', ctypes.c_ulong), ('st_mode', c_mode_t),
                ('st_nlink', ctypes.c_uint), ('st_uid', c_uid_t), ('st_gid', c_gid_t),
                ('st_rdev', c_dev_t), ('__pad1', ctypes.c_ulong), ('st_size', c_off_t),
                ('st_blksize', ctypes.c_int), ('__pad2', ctypes.c_int),
                ('st_blocks', ctypes.c_long), *times, ('__reserved', ctypes.c_ulong)]
    if _MACHINE in ('ppc64', 'ppc64le'):
        return [('st_dev', c_dev_t), ('st_ino', ctypes.c_ulong), ('st_nlink', ctypes.c_ulong),
                ('st_mode', c_mode_t), ('st_uid', c_uid_t), ('st_gid', c_gid_t),
                ('__pad', ctypes.c_uint), ('st_rdev', c_dev_t), ('st_size', c_off_t),
                ('st_blksize', ctypes.c_long), ('st_blocks', ctypes.c_long), *times]
    # 32-bit x86 with 64-bit offsets (the peers' fallback for other machines)
    return [('st_dev', c_dev_t), ('__pad1', ctypes.c_ushort), ('__st_ino', ctypes.c_ulong),
            ('st_mode', c_mode_t), ('st_nlink', ctypes.c_uint), ('st_uid', c_uid_t),
            ('st_gid', c_gid_t), ('st_rdev', c_dev_t), ('__pad2', ctypes.c_ushort),
            ('st_size', c_off_t), ('st_blksize', ctypes.c_long), ('st_blocks', ctypes.c_longlong),
            *times, ('st_ino', ctypes.c_ulonglong)]


STATVFS_FIELDS = [('f_bsize', ctypes.c_ulong), ('f_frsize', ctypes.c_ulong),
                  ('f_blocks', c_fsblkcnt_t), ('f_bfree', c_fsblkcnt_t),
                  ('f_bavail', c_fsblkcnt_t), ('f_files', c_fsfilcnt_t),
                  ('f_ffree', c_fsfilcnt_t), ('f_favail', c_fsfilcnt_t),
                  ('f_fsid', ctypes.c_ulong), ('f_flag', ctypes.c_ulong),
                  ('f_namemax', ctypes.c_ulong)]
# glibc's tail of struct statvfs (mfusepy declares it; fusepy stops before it)
STATVFS_TAIL = [('f_type', ctypes.c_uint), ('__f_spare', ctypes.c_uint * 5)]

# ---------------------------------------------------------------- libfuse 2.9 (fusepy)

FUSE2_FILE_INFO = [('flags', c_int), ('fh_old', ctypes.c_ulong), ('writepage', c_int),
                   ('direct_io', c_uint, 1), ('keep_cache', c_uint, 1), ('flush', c_uint, 1),
                   ('nonseekable', c_uint, 1), ('flock_release', c_uint, 1),
                   ('padding', c_uint, 27), ('fh', ctypes.c_uint64),
                   ('lock_owner', ctypes.c_uint64)]


def _ops_mknod_to_symlink() -> list:
    """The run of struct fuse_operations that libfuse 2.9 and 3 share."""
    return [('mknod', CFUNCTYPE(c_int, c_char_p, c_mode_t, c_dev_t)),
            ('mkdir', CFUNCTYPE(c_int, c_char_p, c_mode_t)),
            ('unlink', CFUNCTYPE(c_int, c_char_p)),
            ('rmdir', CFUNCTYPE(c_int, c_char_p)),
            ('symlink', CFUNCTYPE(c_int, c_char_p, c_char_p))]


def _ops_open_to_removexattr(fi, c_statvfs) -> list:
    """Another run that libfuse 2.9 and 3 share."""
    return [('open', CFUNCTYPE(c_int, c_char_p, fi)),
            ('read', CFUNCTYPE(c_int, c_char_p, c_byte_p, c_size_t, c_off_t, fi)),
            ('write', CFUNCTYPE(c_int, c_char_p, c_byte_p, c_size_t, c_off_t, fi)),
            ('statfs', CFUNCTYPE(c_int, c_char_p, POINTER(c_statvfs))),
            ('flush', CFUNCTYPE(c_int, c_char_p, fi)),
            ('release', CFUNCTYPE(c_int, c_char_p, fi)),
            ('fsync', CFUNCTYPE(c_int, c_char_p, c_int, fi)),
            ('setxattr', setxattr_t),
            ('getxattr', getxattr_t),
            ('listxattr', CFUNCTYPE(c_int, c_char_p, c_byte_p, c_size_t)),
            ('removexattr', CFUNCTYPE(c_int, c_char_p, c_char_p))]


def fuse2_operations(c_stat, c_statvfs, fuse_file_info, c_utimbuf) -> list:
    """libfuse 2.9's struct fuse_operations as fusepy 3.0 declares it."""
    fi = POINTER(fuse_file_info)
    return [
        ('getattr', CFUNCTYPE(c_int, c_char_p, POINTER(c_stat))),
        ('readlink', CFUNCTYPE(c_int, c_char_p, c_byte_p, c_size_t)),
        ('getdir', c_void_p),
        *_ops_mknod_to_symlink(),
        ('rename', CFUNCTYPE(c_int, c_char_p, c_char_p)),
        ('link', CFUNCTYPE(c_int, c_char_p, c_char_p)),
        ('chmod', CFUNCTYPE(c_int, c_char_p, c_mode_t)),
        ('chown', CFUNCTYPE(c_int, c_char_p, c_uid_t, c_gid_t)),
        ('truncate', CFUNCTYPE(c_int, c_char_p, c_off_t)),
        ('utime', c_void_p),
        *_ops_open_to_removexattr(fi, c_statvfs),
        ('opendir', CFUNCTYPE(c_int, c_char_p, fi)),
        ('readdir', CFUNCTYPE(c_int, c_char_p, c_void_p,
                              CFUNCTYPE(c_int, c_void_p, c_char_p, POINTER(c_stat), c_off_t),
                              c_off_t, fi)),
        ('releasedir', CFUNCTYPE(c_int, c_char_p, fi)),
        ('fsyncdir', CFUNCTYPE(c_int, c_char_p, c_int, fi)),
        ('init', CFUNCTYPE(c_void_p, c_void_p)),
        ('destroy', CFUNCTYPE(c_void_p, c_void_p)),
        ('access', CFUNCTYPE(c_int, c_char_p, c_int)),
        ('create', CFUNCTYPE(c_int, c_char_p, c_mode_t, fi)),
        ('ftruncate', CFUNCTYPE(c_int, c_char_p, c_off_t, fi)),
        ('fgetattr', CFUNCTYPE(c_int, c_char_p, POINTER(c_stat), fi)),
        ('lock', CFUNCTYPE(c_int, c_char_p, fi, c_int, c_void_p)),
        ('utimens', CFUNCTYPE(c_int, c_char_p, POINTER(c_utimbuf))),
        ('bmap', CFUNCTYPE(c_int, c_char_p, c_size_t, POINTER(ctypes.c_ulonglong))),
        ('flag_nullpath_ok', c_uint, 1),
        ('flag_nopath', c_uint, 1),
        ('flag_utime_omit_ok', c_uint, 1),
        ('flag_reserved', c_uint, 29),
        ('ioctl', CFUNCTYPE(c_int, c_char_p, c_uint, c_void_p, fi, c_uint, c_void_p)),
    ]


# ---------------------------------------------------------------- libfuse 3.x (mfusepy)

def fuse3_file_info(minor: int) -> list:
    """struct fuse_file_info of libfuse 3.<minor>."""
    bits = ['writepage', 'direct_io', 'keep_cache']
    if 15 <= minor < 17:            # 3.15/3.16 inserted it here (an ABI break)
        bits.append('parallel_direct_writes')
    bits += ['flush', 'nonseekable', 'flock_release']
    if minor >= 5:
        bits.append('cache_readdir')
    if minor >= 11:
        bits.append('noflush')
    if minor >= 17:                 # 3.17 moved it to the end of the bits
        bits.append('parallel_direct_writes')
    fields = [('flags', c_int)] + [(b, c_uint, 1) for b in bits]
    fields += [('padding', c_uint, 32 - len(bits)), ('padding2', c_uint)]
    if minor >= 17:                 # the alignment hole before fh, made explicit
        fields.append(('padding3', c_uint))
    # mfusepy declares poll_events 64-bit (C: uint32_t plus tail padding; same size)
    return fields + [('fh', ctypes.c_uint64), ('lock_owner', ctypes.c_uint64),
                     ('poll_events', ctypes.c_uint64)]


def fuse3_conn_info(minor: int) -> list:
    fields = [(n, c_uint) for n in ('proto_major', 'proto_minor', 'max_write', 'max_read',
                                    'max_readahead', 'capable', 'want', 'max_background',
                                    'congestion_threshold', 'time_gran')]
    if minor < 17:
        return fields + [('reserved', c_uint * 22)]
    return fields + [('max_backing_stack_depth', ctypes.c_uint32),
                     ('no_interrupt', ctypes.c_uint32, 1), ('padding', ctypes.c_uint32, 31),
                     ('capable_ext', ctypes.c_uint64), ('want_ext', ctypes.c_uint64),
                     ('request_timeout', ctypes.c_uint16), ('reserved', ctypes.c_uint16 * 31)]


def fuse3_config(minor: int) -> list:
    d = ctypes.c_double
    fields = [('set_gid', c_int), ('gid', c_uint), ('set_uid', c_int), ('uid', c_uint),
              ('set_mode', c_int), ('umask', c_uint), ('entry_timeout', d),
              ('negative_timeout', d), ('attr_timeout', d)]
    fields += [(n, c_int) for n in ('intr', 'intr_signal', 'remember', 'hard_remove', 'use_ino',
                                    'readdir_ino', 'direct_io', 'kernel_cache', 'auto_cache')]
    if 11 <= minor < 17:
        fields.append(('no_rofd_flush', c_int))
    fields += [('ac_attr_timeout_set', c_int), ('ac_attr_timeout', d), ('nullpath_ok', c_int)]
    if 15 <= minor < 17:
        fields.append(('parallel_direct_writes', c_int))
    fields += [('show_help', c_int), ('modules', c_char_p), ('debug', c_int)]
    if minor >= 17:
        fields += [('fmask', ctypes.c_uint32), ('dmask', ctypes.c_uint32),
                   ('no_rofd_flush', ctypes.c_int32), ('parallel_direct_writes', ctypes.c_int32),
                   ('flags', ctypes.c_int32), ('reserved', ctypes.c_uint64 * 48)]
    return fields


class c_flock_t(ctypes.Structure):
    """struct flock as mfusepy declares it on Linux."""
    _fields_ = [('l_type', ctypes.c_short), ('l_whence', ctypes.c_short),
                ('l_start', c_off_t), ('l_len', c_off_t), ('l_pid', c_pid_t),
                ('l_sysid', ctypes.c_long)]


fuse_buf_flags = c_int


class fuse_buf(ctypes.Structure):
    _fields_ = [('size', c_size_t), ('flags', fuse_buf_flags), ('mem', c_void_p),
                ('fd', c_int), ('pos', c_off_t)]


class fuse_bufvec(ctypes.Structure):
    _fields_ = [('count', c_size_t), ('idx', c_size_t), ('off', c_size_t),
                ('buf', POINTER(fuse_buf))]


for _cls in (c_flock_t, fuse_buf, fuse_bufvec):
    _cls.__module__ = 'fuseshim.compat.mfusepy'

fuse_fill_dir_flags = c_int
fuse_readdir_flags = c_int
fuse_pollhandle_p = c_void_p


def fuse3_operations(c_stat, c_statvfs, fuse_file_info, c_utimbuf, fuse_conn_info,
                     fuse_config) -> list:
    """libfuse 3's struct fuse_operations as mfusepy declares it."""
    fi = POINTER(fuse_file_info)
    fill_dir = CFUNCTYPE(c_int, c_void_p, c_char_p, POINTER(c_stat), c_off_t,
                         fuse_fill_dir_flags)
    bufvec_p = POINTER(fuse_bufvec)
    return [
        ('getattr', CFUNCTYPE(c_int, c_char_p, POINTER(c_stat), fi)),
        ('readlink', CFUNCTYPE(c_int, c_char_p, c_byte_p, c_size_t)),
        *_ops_mknod_to_symlink(),
        ('rename', CFUNCTYPE(c_int, c_char_p, c_char_p, c_uint)),
        ('link', CFUNCTYPE(c_int, c_char_p, c_char_p)),
        ('chmod', CFUNCTYPE(c_int, c_char_p, c_mode_t, fi)),
        ('chown', CFUNCTYPE(c_int, c_char_p, c_uid_t, c_gid_t, fi)),
        ('truncate', CFUNCTYPE(c_int, c_char_p, c_off_t, fi)),
        *_ops_open_to_removexattr(fi, c_statvfs),
        ('opendir', CFUNCTYPE(c_int, c_char_p, fi)),
        ('readdir', CFUNCTYPE(c_int, c_char_p, c_void_p, fill_dir, c_off_t, fi,
                              fuse_readdir_flags)),
        ('releasedir', CFUNCTYPE(c_int, c_char_p, fi)),
        ('fsyncdir', CFUNCTYPE(c_int, c_char_p, c_int, fi)),
        ('init', CFUNCTYPE(c_void_p, POINTER(fuse_conn_info), POINTER(fuse_config))),
        ('destroy', CFUNCTYPE(c_void_p, c_void_p)),
        ('access', CFUNCTYPE(c_int, c_char_p, c_int)),
        ('create', CFUNCTYPE(c_int, c_char_p, c_mode_t, fi)),
        ('lock', CFUNCTYPE(c_int, c_char_p, fi, c_int, POINTER(c_flock_t))),
        ('utimens', CFUNCTYPE(c_int, c_char_p, POINTER(c_utimbuf), fi)),
        ('bmap', CFUNCTYPE(c_int, c_char_p, c_size_t, c_uint64_p)),
        ('ioctl', CFUNCTYPE(c_int, c_char_p, c_uint, c_void_p, fi, c_uint,
                            c_void_p)),
        ('poll', CFUNCTYPE(c_int, c_char_p, fi, fuse_pollhandle_p, POINTER(c_uint))),
        ('write_buf', CFUNCTYPE(c_int, c_char_p, bufvec_p, c_off_t, fi)),
        ('read_buf', CFUNCTYPE(c_int, c_char_p, POINTER(bufvec_p), c_size_t, c_off_t, fi)),
        ('flock', CFUNCTYPE(c_int, c_char_p, fi, c_int)),
        ('fallocate', CFUNCTYPE(c_int, c_char_p, c_int, c_off_t, c_off_t, fi)),
        ('copy_file_range', CFUNCTYPE(c_ssize_t, c_char_p, fi, c_off_t, c_char_p, fi, c_off_t,
                                      c_size_t, c_int)),
        ('lseek', CFUNCTYPE(c_off_t, c_char_p, c_off_t, c_int, fi)),
    ]


def fill_stat(st, attrs: dict, use_ns: bool, has) -> None:
    """The peers' set_st_attrs(): a getattr() dict into a c_stat.  Times go
    into the ``*timespec`` fields (float seconds, or ns with ``use_ns``);
    other keys are set when ``has(st, key)`` (the peers test that
    differently)."""
    for key, val in attrs.items():
        if key in ('st_atime', 'st_mtime', 'st_ctime', 'st_birthtime'):
            timespec = getattr(st, key + 'spec', None)
            if timespec is None:
                continue
            if use_ns:
                timespec.tv_sec, timespec.tv_nsec = divmod(int(val), 10 ** 9)
            else:
                timespec.tv_sec = int(val)
                timespec.tv_nsec = int((val - timespec.tv_sec) * 1E9)
        elif has(st, key):
            setattr(st, key, val)


def running_libfuse_version() -> tuple[int, int]:
    """(major, minor) of the libfuse fuseshim runs."""
    from fuseshim import libfuse_version
    major, minor = libfuse_version().split('.')[:2]
    return int(major), int(minor)
