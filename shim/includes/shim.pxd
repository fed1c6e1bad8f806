# Declarations of fuseshim's own C: the version-guarded libfuse wrappers
# (shim_compat.h), the Python-free fd tables (shim_readfd.h, shim_pathfd.h),
# the meson probe results (fuseshim_config.h), and the C thread-locals and
# globals the callbacks keep (defined here, in verbatim C: only _core.pyx
# cimports this file; another module doing so would get copies of its own).
from libc.stdint cimport uint64_t
from .libfuse cimport fuse_req_t, fuse_file_info, fuse_conn_info, fuse_buf, fuse_session

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

# The request a plain handler is running for, per thread (C thread-locals:
# _dispatch.pxi sets and restores them around every handler call for the
# cost of four stores).  current_request_ids() and current_operations() read
# them, e.g. for the fusepy layer's fuse_get_context() in any handler, as
# libfuse offers it.
cdef extern from *:
    """
    static __thread void *shim_current_req = NULL;
    static __thread void *shim_current_session = NULL;
    """
    void *shim_current_req
    void *shim_current_session

# Test-only fault injection (_dispatch.pxi's _test_only_inject_faults): bit
# masks of (1 << Op), zero unless a test arms them: then each request pays
# one predictable branch on a global, nothing else.
cdef extern from *:
    """
    static unsigned long long shim_test_fault_args = 0;
    static unsigned long long shim_test_fault_reply = 0;
    static unsigned long long shim_test_fault_copy = 0;
    """
    unsigned long long shim_test_fault_args
    unsigned long long shim_test_fault_reply
    unsigned long long shim_test_fault_copy

# The session Session.__dealloc__ is freeing on this thread: libfuse's
# destroy callback (ll_destroy) must then not touch it (nor run user code).
cdef extern from *:
    """
    static __thread void *shim_finalizing_session = NULL;
    """
    void *shim_finalizing_session
