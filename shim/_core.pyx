# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""fuseshim._core: the compiled binding (one extension, several parts).

includes/*.pxd the C declarations: libfuse, fuseshim's own C (shim_*.h and
               the C thread-locals), libc/POSIX bits
_optable.pxi   generated at build time from operations_table.py: the Op
               enum, OP_NAMES, _fill_ops() (gen_optable.py)
_types.pxi     data types handed to handlers (EntryAttributes, FileInfo, ...)
_dispatch.pxi  libfuse callbacks -> Python handlers -> replies
_session.pxi   the libfuse session, worker loop, init/destroy, notifications
this file      syscalls the startup needs, version/feature reports, logging
"""
cimport cython
from cpython.bytes cimport PyBytes_FromString, PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock, NOWAIT_LOCK, WAIT_LOCK)
from libc.errno cimport EINTR, EAGAIN
from libc.stdint cimport uint32_t, int32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy, memchr, strlen
from posix.types cimport off_t, mode_t, dev_t, uid_t, gid_t, pid_t
from posix.stat cimport struct_stat
from posix.time cimport timespec, clock_gettime, CLOCK_REALTIME, CLOCK_MONOTONIC
from posix.unistd cimport write, usleep, pread
from posix.fcntl cimport fcntl, F_GETFL, O_ACCMODE, O_WRONLY
from .includes.libfuse cimport *
from .includes.shim cimport *
from .includes.system cimport *

import asyncio
import collections.abc
import contextvars
import errno
import inspect
import logging
import operator
import os
import threading
from pickle import PicklingError
import time
import warnings
from types import CoroutineType

from .lifecycle.state import Lifecycle, SessionState

log = logging.getLogger('fuseshim')

include "_optable.pxi"
include "_types.pxi"
include "_dispatch.pxi"
include "_session.pxi"


# ---------------------------------------------------------------- logging

_capture = threading.local()

cdef class _LogCapture:
    """Collects libfuse's log lines on this thread, to put them into the
    exception a failed call raises."""
    cdef list lines
    cdef object previous

    def __enter__(self):
        self.lines = []
        self.previous = getattr(_capture, 'lines', None)
        _capture.lines = self.lines
        return self

    def __exit__(self, *exc):
        _capture.lines = self.previous

    def text(self):
        return '; '.join(self.lines)


cdef void _log_sink(int level, const char *msg) noexcept with gil:
    text = msg.decode('utf-8', 'replace')
    lines = getattr(_capture, 'lines', None)
    if lines is not None:  # a caller is turning these into an exception
        lines.append(text)
        pylevel = logging.DEBUG
    elif level <= FUSE_LOG_ERR:
        pylevel = logging.ERROR
    elif level == FUSE_LOG_WARNING:
        pylevel = logging.WARNING
    elif level <= FUSE_LOG_INFO:
        pylevel = logging.INFO
    else:
        pylevel = logging.DEBUG
    log.log(pylevel, 'libfuse: %s', text)

shim_install_log_sink(_log_sink)


# ---------------------------------------------------------------- syscalls

SYNC_INIT_IOCTL = FUSE_DEV_IOC_SYNC_INIT


def sys_mount(source, target, fstype, unsigned long flags, data):
    """mount(2) with the GIL released (on the sync path INIT is answered by
    our reader thread while this call waits in the kernel)."""
    cdef bytes bs = os.fsencode(source), bt = os.fsencode(target)
    cdef bytes bf = os.fsencode(fstype), bd = os.fsencode(data)
    cdef const char *s = bs
    cdef const char *t = bt
    cdef const char *f = bf
    cdef const char *d = bd
    cdef int rc, err = 0
    with nogil:
        rc = c_mount(s, t, f, flags, d)
        if rc != 0:
            err = c_errno
    if rc != 0:
        raise OSError(err, os.strerror(err), target)


def sys_umount(target, int flags=0):
    cdef bytes bt = os.fsencode(target)
    cdef const char *t = bt
    cdef int rc, err = 0
    with nogil:
        rc = c_umount2(t, flags)
        if rc != 0:
            err = c_errno
    if rc != 0:
        raise OSError(err, os.strerror(err), target)


_wake_installed = False

def wake_signal():
    """The real-time signal used to interrupt a reader blocked on an armed
    /dev/fuse fd (installs its no-op, non-restarting handler once)."""
    global _wake_installed
    sig = shim_wake_signal_number()
    if not _wake_installed:
        if shim_install_wake_signal(sig) != 0:
            raise OSError(c_errno, 'sigaction failed')
        _wake_installed = True
    return sig


# ---------------------------------------------------------------- versions

def libfuse_version():
    """Version of the libfuse3 this process runs with, e.g. '3.14.0'."""
    return fuse_pkgversion().decode()


def libfuse_path():
    """The file of the libfuse3 this extension is linked with (another one
    may be mapped into the process too, e.g. by a peer built against a
    different soname), or None if the loader cannot tell."""
    cdef Dl_info info
    if dladdr(<const void*>fuse_pkgversion, &info) == 0 or info.dli_fname is NULL:
        return None
    return os.fsdecode(info.dli_fname)


def build_features():
    """Optional libfuse APIs compiled into this build (meson probes)."""
    return {
        'libfuse_build_version': FUSESHIM_LIBFUSE_BUILD_VERSION.decode(),
        'passthrough': bool(shim_have_passthrough),
        'reply_statx': bool(HAVE_FUSE_REPLY_STATX),
        'feature_flags': bool(HAVE_FUSE_SET_FEATURE_FLAG),
        'want_ext_64bit': bool(HAVE_CONN_WANT_EXT),
        # Operations.enable_killpriv can be granted: libfuse >= 3.17 knows
        # FUSE_HANDLE_KILLPRIV_V2, 3.13 ... 3.16 through fuseshim's own I/O
        'killpriv_v2': bool(HAVE_FUSE_CAP_HANDLE_KILLPRIV_V2 or HAVE_FUSE_SESSION_CUSTOM_IO),
    }
