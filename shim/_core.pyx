# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""fuseshim._core: the compiled binding (one extension, several parts).

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
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset
from posix.types cimport off_t, mode_t, dev_t, uid_t, gid_t, pid_t
from posix.stat cimport struct_stat
from posix.time cimport timespec, clock_gettime, CLOCK_REALTIME, CLOCK_MONOTONIC
from posix.unistd cimport write, usleep
from .libfuse cimport *

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

cdef extern from "shim_compat.h" nogil:
    int FUSE_DEV_IOC_SYNC_INIT
    int SHIM_FUSE_INIT_OPCODE
    const int shim_have_passthrough
    int shim_passthrough_open(fuse_req_t req, int fd)
    int shim_passthrough_close(fuse_req_t req, int backing_id)
    int shim_backing_close(int devfd, int backing_id)
    void shim_fi_set_backing_id(fuse_file_info *fi, int id)
    int shim_want_passthrough(fuse_conn_info *conn)
    int shim_conn_want(fuse_conn_info *conn, unsigned flag, int on)
    unsigned shim_buf_opcode(const fuse_buf *buf)
    uint64_t shim_buf_unique(const fuse_buf *buf)
    void shim_note_request(const fuse_buf *buf)
    int shim_request_kill_suidgid()
    int shim_want_killpriv_v2(fuse_session *se, fuse_conn_info *conn)
    ctypedef void (*shim_log_sink_t)(int level, const char *msg)
    void shim_install_log_sink(shim_log_sink_t sink)
    int shim_install_wake_signal(int sig)
    int shim_wake_signal_number()
    int shim_claim_reader(int *reading)
    void shim_release_reader(int *reading)

cdef extern from "shim_readfd.h" nogil:
    int shim_readfd_get(const void *session, uint64_t fh)
    int shim_readfd_put(const void *session, uint64_t fh, int fd)
    void shim_readfd_del(const void *session, uint64_t fh)
    void shim_readfd_drop_session(const void *session)
    size_t shim_readfd_count()

cdef extern from "shim_pathfd.h" nogil:
    bint shim_pathfd_none()
    int shim_pathfd_get(const void *session, uint64_t ino, double *timeout)
    int shim_pathfd_hold(const void *session, uint64_t ino, int fd, double timeout)
    void shim_pathfd_forget(const void *session, uint64_t ino, uint64_t nlookup)
    void shim_pathfd_drop_session(const void *session)
    size_t shim_pathfd_count(const void *session)
    uint64_t shim_pathfd_lookups(const void *session, uint64_t ino)

cdef extern from "fuseshim_config.h":
    const char *FUSESHIM_LIBFUSE_BUILD_VERSION
    int HAVE_FUSE_PASSTHROUGH_OPEN
    int HAVE_FUSE_REPLY_STATX
    int HAVE_FUSE_SET_FEATURE_FLAG
    int HAVE_CONN_WANT_EXT
    int HAVE_FUSE_CAP_HANDLE_KILLPRIV_V2
    int HAVE_FUSE_SESSION_CUSTOM_IO

cdef extern from "<sys/mount.h>" nogil:
    int c_mount "mount"(const char *source, const char *target, const char *fstype,
                        unsigned long flags, const void *data)
    int c_umount2 "umount2"(const char *target, int flags)

cdef extern from "<errno.h>" nogil:
    int c_errno "errno"

cdef extern from "<sys/stat.h>" nogil:
    int c_lstat "lstat"(const char *path, struct_stat *buf)
    int c_fstatat "fstatat"(int dirfd, const char *path, struct_stat *buf, int flags)

cdef extern from "<fcntl.h>" nogil:
    int AT_EMPTY_PATH
    int AT_SYMLINK_NOFOLLOW

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


cdef extern from "<dlfcn.h>" nogil:
    ctypedef struct Dl_info:
        const char *dli_fname
    int dladdr(const void *addr, Dl_info *info)


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
