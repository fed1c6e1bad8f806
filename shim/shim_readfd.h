/* The open handles whose READs fuseshim answers itself, from a file
 * descriptor (FileInfo.read_fd), without calling Python: (session, fh) ->
 * fd in a shim_fdtable.  Entries go at release and, for handles the kernel
 * never released, when their session is destroyed. */
#ifndef FUSESHIM_READFD_H
#define FUSESHIM_READFD_H

#include "shim_fdtable.h"

static shim_fdtable shim_readfd_table = SHIM_FDTABLE_INIT;

/* The fd to answer READs of (session, fh) from, or -1. */
static inline int shim_readfd_get(const void *session, uint64_t fh) {
    shim_fdtable_slot s;
    if (shim_fdtable_empty(&shim_readfd_table)
            || !shim_fdtable_get(&shim_readfd_table, session, fh, &s))
        return -1;
    return s.fd;
}

/* Answer READs of (session, fh) from fd (replacing an earlier entry).
 * 0, or -ENOMEM. */
static inline int shim_readfd_put(const void *session, uint64_t fh, int fd) {
    int rc = 0;
    pthread_mutex_lock(&shim_readfd_table.lock);
    shim_fdtable_slot *s = shim_fdtable_find(&shim_readfd_table, session, fh);
    if (s == NULL)
        s = shim_fdtable_add(&shim_readfd_table, session, fh);
    if (s != NULL)
        s->fd = fd;
    else
        rc = -ENOMEM;
    pthread_mutex_unlock(&shim_readfd_table.lock);
    return rc;
}

/* (session, fh) is released: its READs are the handler's again. */
static inline void shim_readfd_del(const void *session, uint64_t fh) {
    if (shim_fdtable_empty(&shim_readfd_table))
        return;
    pthread_mutex_lock(&shim_readfd_table.lock);
    shim_fdtable_slot *s = shim_fdtable_find(&shim_readfd_table, session, fh);
    if (s != NULL)
        shim_fdtable_remove(&shim_readfd_table, s);
    pthread_mutex_unlock(&shim_readfd_table.lock);
}

static inline void shim_readfd_drop_session(const void *session) {
    shim_fdtable_drop_session(&shim_readfd_table, session);
}

/* How many handles are registered (for tests). */
static inline size_t shim_readfd_count(void) {
    return shim_fdtable_count(&shim_readfd_table, NULL);
}

#endif
