/* The inodes whose GETATTRs fuseshim answers itself, with fstatat() on an
 * O_PATH descriptor the filesystem declared (EntryAttributes.path_fd),
 * without calling Python: (session, inode) -> (fd, attr timeout, lookups)
 * in a shim_fdtable.
 *
 * The entry counts the lookups the kernel was sent with that path_fd, the
 * way the kernel counts them: one per successful LOOKUP, MKNOD, MKDIR,
 * SYMLINK, LINK or CREATE reply, minus each FORGET's nlookup; it goes when
 * the count reaches 0 -- before the filesystem's forget() runs, so the fd it
 * closes there is never used afterwards -- and at session end.  Lookups
 * made without path_fd (READDIRPLUS entries) are not counted, so this count
 * never exceeds the kernel's: at worst an entry goes early and GETATTR falls
 * back to the handler.  A GETATTR in progress holds the kernel's inode, so
 * no FORGET of it can come before its reply. */
#ifndef FUSESHIM_PATHFD_H
#define FUSESHIM_PATHFD_H

#include "shim_fdtable.h"

static shim_fdtable shim_pathfd_table = SHIM_FDTABLE_INIT;

static inline int shim_pathfd_none(void) {
    return shim_fdtable_empty(&shim_pathfd_table);
}

/* The O_PATH fd of (session, ino) and its attr timeout, or -1. */
static inline int shim_pathfd_get(const void *session, uint64_t ino, double *timeout) {
    shim_fdtable_slot s;
    if (!shim_fdtable_get(&shim_pathfd_table, session, ino, &s))
        return -1;
    *timeout = s.timeout;
    return s.fd;
}

/* One lookup of (session, ino) is about to be replied with path_fd fd
 * (the latest fd and timeout replace earlier ones).  0, or -ENOMEM. */
static inline int shim_pathfd_hold(const void *session, uint64_t ino, int fd, double timeout) {
    int rc = 0;
    pthread_mutex_lock(&shim_pathfd_table.lock);
    shim_fdtable_slot *s = shim_fdtable_find(&shim_pathfd_table, session, ino);
    if (s == NULL)
        s = shim_fdtable_add(&shim_pathfd_table, session, ino);
    if (s != NULL) {
        s->count++;
        s->fd = fd;
        s->timeout = timeout;
    } else {
        rc = -ENOMEM;
    }
    pthread_mutex_unlock(&shim_pathfd_table.lock);
    return rc;
}

/* The kernel forgot nlookup lookups of (session, ino) (or a held lookup's
 * reply never reached it): at 0 the entry goes. */
static inline void shim_pathfd_forget(const void *session, uint64_t ino, uint64_t nlookup) {
    if (shim_fdtable_empty(&shim_pathfd_table))
        return;
    pthread_mutex_lock(&shim_pathfd_table.lock);
    shim_fdtable_slot *s = shim_fdtable_find(&shim_pathfd_table, session, ino);
    if (s != NULL) {
        s->count = nlookup < s->count ? s->count - nlookup : 0;
        if (s->count == 0)
            shim_fdtable_remove(&shim_pathfd_table, s);
    }
    pthread_mutex_unlock(&shim_pathfd_table.lock);
}

static inline void shim_pathfd_drop_session(const void *session) {
    shim_fdtable_drop_session(&shim_pathfd_table, session);
}

/* The lookups counted for (session, ino): 0 when it has no entry (tests). */
static inline uint64_t shim_pathfd_lookups(const void *session, uint64_t ino) {
    shim_fdtable_slot s;
    return shim_fdtable_get(&shim_pathfd_table, session, ino, &s) ? s.count : 0;
}

/* How many inodes the session (NULL: every session) has declared (tests). */
static inline size_t shim_pathfd_count(const void *session) {
    return shim_fdtable_count(&shim_pathfd_table, session);
}

#endif
