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

static inline void shim_fi_set_backing_id(struct fuse_file_info *fi, int id) {
#if HAVE_FI_BACKING_ID
    fi->backing_id = id;
#else
    (void)fi; (void)id;
#endif
}

/* Request FUSE_CAP_PASSTHROUGH when the kernel offers it; 1 if granted. */
static inline int shim_want_passthrough(struct fuse_conn_info *conn) {
#if HAVE_FUSE_CAP_PASSTHROUGH && HAVE_FUSE_SET_FEATURE_FLAG
    return fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH) ? 1 : 0;
#elif HAVE_FUSE_CAP_PASSTHROUGH && HAVE_CONN_WANT_EXT
    if (conn->capable_ext & FUSE_CAP_PASSTHROUGH) {
        conn->want_ext |= FUSE_CAP_PASSTHROUGH;
        return 1;
    }
    return 0;
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
