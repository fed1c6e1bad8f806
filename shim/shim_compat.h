/* Version-guarded wrappers over libfuse APIs that not every supported
 * release (3.10 ... 3.18) has.  fuseshim_config.h holds meson's probe
 * results; the Cython code only ever calls the shim_* names below, so it
 * compiles unchanged against every libfuse version. */
#ifndef FUSESHIM_COMPAT_H
#define FUSESHIM_COMPAT_H

#include "fuseshim_config.h"
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>

/* Linux 6.18: arm /dev/fuse so that FUSE_INIT is exchanged inside mount(2). */
#ifndef FUSE_DEV_IOC_SYNC_INIT
#define FUSE_DEV_IOC_SYNC_INIT _IO(229, 3)
#endif

#define SHIM_FUSE_INIT_OPCODE 26

static const int shim_have_passthrough =
#if HAVE_FUSE_PASSTHROUGH_OPEN && HAVE_FI_BACKING_ID && HAVE_FUSE_CAP_PASSTHROUGH
    1;
#else
    0;
#endif

static inline int shim_passthrough_open(fuse_req_t req, int fd) {
#if HAVE_FUSE_PASSTHROUGH_OPEN
    return fuse_passthrough_open(req, fd);
#else
    (void)req; (void)fd;
    return -ENOSYS;
#endif
}

static inline int shim_passthrough_close(fuse_req_t req, int backing_id) {
#if HAVE_FUSE_PASSTHROUGH_OPEN
    return fuse_passthrough_close(req, backing_id);
#else
    (void)req; (void)backing_id;
    return -ENOSYS;
#endif
}

/* fuse_passthrough_close() without a request: it reaches the session through
 * req, which a failed reply has freed already.  The same ioctl libfuse makes
 * (FUSE_DEV_IOC_BACKING_CLOSE, Linux >= 6.9, older kernel headers lack it). */
static inline int shim_backing_close(int devfd, int backing_id) {
#if HAVE_FUSE_PASSTHROUGH_OPEN
    uint32_t id = (uint32_t)backing_id;
    return ioctl(devfd, _IOW(229, 2, uint32_t), &id) < 0 ? -errno : 0;
#else
    (void)devfd; (void)backing_id;
    return -ENOSYS;
#endif
}

static inline void shim_fi_set_backing_id(struct fuse_file_info *fi, int id) {
#if HAVE_FI_BACKING_ID
    fi->backing_id = id;
#else
    (void)fi; (void)id;
#endif
}

#if HAVE_CONN_WANT_EXT
/* Request a capability of the 64-bit set (libfuse >= 3.17) when the kernel
 * offers it; 1 if granted. */
static inline int shim_want_ext(struct fuse_conn_info *conn, uint64_t flag) {
#if HAVE_FUSE_SET_FEATURE_FLAG
    return fuse_set_feature_flag(conn, flag) ? 1 : 0;
#else
    if (conn->capable_ext & flag) {
        conn->want_ext |= flag;
        return 1;
    }
    return 0;
#endif
}
#endif

/* Request FUSE_CAP_PASSTHROUGH when the kernel offers it; 1 if granted. */
static inline int shim_want_passthrough(struct fuse_conn_info *conn) {
#if HAVE_FUSE_CAP_PASSTHROUGH && HAVE_CONN_WANT_EXT
    return shim_want_ext(conn, FUSE_CAP_PASSTHROUGH);
#else
    (void)conn;
    return 0;
#endif
}

/* Set or clear one legacy (32-bit) capability bit, only if the kernel offers it. */
static inline int shim_conn_want(struct fuse_conn_info *conn, unsigned flag, int on) {
#if HAVE_FUSE_SET_FEATURE_FLAG
    if (on)
        return fuse_set_feature_flag(conn, flag) ? 1 : 0;
    fuse_unset_feature_flag(conn, flag);
    return 0;
#else
    if (on) {
        if (!(conn->capable & flag))
            return 0;
        conn->want |= flag;
        return 1;
    }
    conn->want &= ~flag;
    return 0;
#endif
}

/* The opcode and unique id of a raw request read from /dev/fuse
 * (struct fuse_in_header: len u32, opcode u32, unique u64, ...). */
static inline unsigned shim_buf_opcode(const struct fuse_buf *buf) {
    if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < 16)
        return 0;
    unsigned op;
    memcpy(&op, (const char *)buf->mem + 4, sizeof op);
    return op;
}
static inline uint64_t shim_buf_unique(const struct fuse_buf *buf) {
    uint64_t u;
    memcpy(&u, (const char *)buf->mem + 8, sizeof u);
    return u;
}

/* --- suid/sgid clearing by the filesystem (FUSE_HANDLE_KILLPRIV_V2) ---- *
 * With it negotiated, the kernel no longer drops S_ISUID/S_ISGID itself
 * with a SETATTR sent under the writer's credentials (which a filesystem
 * acting as the caller must refuse for files the writer does not own); it
 * flags the WRITE, SETATTR (truncate, chown) and O_TRUNC OPEN/CREATE whose
 * caller lacks CAP_FSETID, and the filesystem clears the bits itself.
 * libfuse (3.10 ... 3.18) hands none of these flags to the callbacks (the
 * write's write_flags and open's open_flags never; FATTR_KILL_SUIDGID only
 * from 3.14), so the worker reads them from the raw request before
 * fuse_session_process_buf() runs the callback on the same thread.
 * Layouts are the kernel ABI (include/uapi/linux/fuse.h): the requests
 * follow the 40-byte struct fuse_in_header. */
#define SHIM_IN_HEADER 40
#define SHIM_OP_SETATTR 4
#define SHIM_OP_OPEN 14
#define SHIM_OP_WRITE 16
#define SHIM_OP_CREATE 35
#define SHIM_FATTR_KILL_SUIDGID (1u << 11)        /* fuse_setattr_in.valid */
#define SHIM_OPEN_KILL_SUIDGID (1u << 0)          /* fuse_{open,create}_in.open_flags */
#define SHIM_WRITE_KILL_SUIDGID (1u << 2)         /* fuse_write_in.write_flags */
#define SHIM_INIT_HANDLE_KILLPRIV_V2 (1u << 28)   /* fuse_init_{in,out}.flags */

/* Per worker thread: what the request being dispatched asks for. */
static __thread int shim_req_kill_suidgid;
/* The INIT this thread is answering: its id, whether the kernel offers
 * KILLPRIV_V2, and whether our writev must add it to the reply. */
static __thread uint64_t shim_init_unique;
static __thread int shim_init_offers_v2;
static __thread int shim_init_add_v2;

static inline uint32_t shim_u32_at(const struct fuse_buf *buf, size_t off) {
    uint32_t v = 0;
    if (buf->size >= off + sizeof v)
        memcpy(&v, (const char *)buf->mem + off, sizeof v);
    return v;
}

/* Note the kill-suid/sgid flag of a raw request (called before
 * fuse_session_process_buf on the thread that will run its callback).
 * A request spliced into a pipe (FUSE_BUF_IS_FD) cannot be read without
 * consuming it: fuseshim does not ask for KILLPRIV_V2 with splice_read. */
static inline void shim_note_request(const struct fuse_buf *buf) {
    shim_req_kill_suidgid = 0;
    if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < SHIM_IN_HEADER)
        return;
    switch (shim_buf_opcode(buf)) {
    case SHIM_OP_SETATTR:
        shim_req_kill_suidgid = !!(shim_u32_at(buf, SHIM_IN_HEADER) & SHIM_FATTR_KILL_SUIDGID);
        break;
    case SHIM_OP_OPEN:
        shim_req_kill_suidgid = !!(shim_u32_at(buf, SHIM_IN_HEADER + 4) & SHIM_OPEN_KILL_SUIDGID);
        break;
    case SHIM_OP_CREATE:
        shim_req_kill_suidgid = !!(shim_u32_at(buf, SHIM_IN_HEADER + 12) & SHIM_OPEN_KILL_SUIDGID);
        break;
    case SHIM_OP_WRITE:
        shim_req_kill_suidgid = !!(shim_u32_at(buf, SHIM_IN_HEADER + 20) & SHIM_WRITE_KILL_SUIDGID);
        break;
    case SHIM_FUSE_INIT_OPCODE:
        shim_init_unique = shim_buf_unique(buf);
        shim_init_offers_v2 = !!(shim_u32_at(buf, SHIM_IN_HEADER + 12) & SHIM_INIT_HANDLE_KILLPRIV_V2);
        shim_init_add_v2 = 0;
        break;
    }
}

static inline int shim_request_kill_suidgid(void) { return shim_req_kill_suidgid; }

#if !(HAVE_FUSE_CAP_HANDLE_KILLPRIV_V2 && HAVE_CONN_WANT_EXT) && HAVE_FUSE_SESSION_CUSTOM_IO
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>
/* libfuse 3.13 ... 3.16 build the INIT reply from capabilities they know,
 * and KILLPRIV_V2 is not one of them.  fuseshim's I/O functions are
 * libfuse's defaults (read, writev, splice), except that the INIT reply
 * this thread is sending gets the flag the filesystem asked for. */
static ssize_t shim_io_read(int fd, void *buf, size_t len, void *userdata) {
    (void)userdata;
    return read(fd, buf, len);
}
static ssize_t shim_io_writev(int fd, struct iovec *iov, int count, void *userdata) {
    (void)userdata;
    if (shim_init_add_v2 && count >= 2 && iov[0].iov_len >= 16 && iov[1].iov_len >= 16) {
        int32_t error;
        uint64_t unique;
        memcpy(&error, (const char *)iov[0].iov_base + 4, sizeof error);
        memcpy(&unique, (const char *)iov[0].iov_base + 8, sizeof unique);
        if (error == 0 && unique == shim_init_unique) {
            uint32_t flags;   /* struct fuse_init_out: major, minor, max_readahead, flags */
            memcpy(&flags, (char *)iov[1].iov_base + 12, sizeof flags);
            flags |= SHIM_INIT_HANDLE_KILLPRIV_V2;
            memcpy((char *)iov[1].iov_base + 12, &flags, sizeof flags);
            shim_init_add_v2 = 0;
        }
    }
    return writev(fd, iov, count);
}
static ssize_t shim_io_splice(int fdin, off_t *offin, int fdout, off_t *offout,
                              size_t len, unsigned int flags, void *userdata) {
    (void)userdata;
    return splice(fdin, (loff_t *)offin, fdout, (loff_t *)offout, len, flags);
}
static const struct fuse_custom_io shim_killpriv_io = {
    .writev = shim_io_writev, .read = shim_io_read,
    .splice_receive = shim_io_splice, .splice_send = shim_io_splice,
};
#endif

/* From the init callback: ask for KILLPRIV_V2 if the kernel offers it.
 * 1 if it will be granted.  libfuse >= 3.17 knows the capability; with
 * 3.13 ... 3.16 our I/O functions (installed here, before libfuse writes the
 * reply) add it; older libfuse cannot. */
static inline int shim_want_killpriv_v2(struct fuse_session *se, struct fuse_conn_info *conn) {
#if HAVE_FUSE_CAP_HANDLE_KILLPRIV_V2 && HAVE_CONN_WANT_EXT   /* both since 3.17 */
    (void)se;
    return shim_want_ext(conn, FUSE_CAP_HANDLE_KILLPRIV_V2);
#elif HAVE_FUSE_SESSION_CUSTOM_IO
    (void)conn;
    if (!shim_init_offers_v2)
        return 0;
    if (fuse_session_custom_io(se, &shim_killpriv_io, fuse_session_fd(se)) != 0)
        return 0;
    shim_init_add_v2 = 1;
    return 1;
#else
    (void)se; (void)conn;
    return 0;
#endif
}

/* --- libfuse log messages -> Python logging --------------------------- */
typedef void (*shim_log_sink_t)(int level, const char *msg);
static shim_log_sink_t shim_log_sink;

static void shim_log_func(enum fuse_log_level level, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    if (shim_log_sink)
        shim_log_sink((int)level, msg);
}

static inline void shim_install_log_sink(shim_log_sink_t sink) {
    shim_log_sink = sink;
    fuse_set_log_func(shim_log_func);
}

/* --- waking a reader blocked on an armed (not yet mounted) fd -------- *
 * close() does not wake it; a signal whose handler lacks SA_RESTART does. */
static void shim_wake_handler(int sig) { (void)sig; }

static inline int shim_install_wake_signal(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = shim_wake_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  /* deliberately no SA_RESTART: read() must fail with EINTR */
    return sigaction(sig, &sa, NULL);
}

static inline int shim_wake_signal_number(void) { return SIGRTMIN + 2; }

/* --- one reader at a time among several workers ------------------------ *
 * A flag, not a lock: taking and leaving it costs no system call, so the
 * worker that just answered a request reads the next one itself. */
static inline int shim_claim_reader(int *reading) {
    int expected = 0;
    return __atomic_compare_exchange_n(reading, &expected, 1, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline void shim_release_reader(int *reading) {
    __atomic_store_n(reading, 0, __ATOMIC_RELEASE);
}

#endif
