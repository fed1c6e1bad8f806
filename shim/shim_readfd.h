/* The open handles whose READs fuseshim answers itself, from a file
 * descriptor (FileInfo.read_fd), without calling Python.
 *
 * ll_read looks the handle up before it takes the GIL, so the table is plain
 * C: one process-wide open-addressing hash table keyed by (session, fh),
 * guarded by a mutex (uncontended in the common case: a few tens of ns per
 * READ).  A counter read without the lock lets sessions that never use
 * read_fd skip the lookup.  Entries go at release and, for handles the
 * kernel never released, when their session is destroyed (a new session may
 * be allocated at the same address). */
#ifndef FUSESHIM_READFD_H
#define FUSESHIM_READFD_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

enum { SHIM_SLOT_EMPTY, SHIM_SLOT_USED, SHIM_SLOT_DELETED };

typedef struct {
    const void *session;
    uint64_t fh;
    int fd;
    int state;
} shim_readfd_slot;

static pthread_mutex_t shim_readfd_lock = PTHREAD_MUTEX_INITIALIZER;
static shim_readfd_slot *shim_readfd_slots;
static size_t shim_readfd_cap;      /* a power of two, or 0 */
static size_t shim_readfd_dead;     /* SHIM_SLOT_DELETED slots */
static size_t shim_readfd_used;     /* SHIM_SLOT_USED slots (written under the lock) */

static inline size_t shim_readfd_hash(const void *session, uint64_t fh) {
    uint64_t h = fh ^ ((uint64_t)(uintptr_t)session * 0x9E3779B97F4A7C15ull);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return (size_t)h;
}

/* The slot holding (session, fh), or NULL.  Lock held, table not empty. */
static inline shim_readfd_slot *shim_readfd_slot_of(const void *session, uint64_t fh) {
    size_t mask = shim_readfd_cap - 1;
    for (size_t i = shim_readfd_hash(session, fh) & mask;; i = (i + 1) & mask) {
        shim_readfd_slot *s = &shim_readfd_slots[i];
        if (s->state == SHIM_SLOT_EMPTY)
            return NULL;
        if (s->state == SHIM_SLOT_USED && s->fh == fh && s->session == session)
            return s;
    }
}

/* Rebuild the table with room for twice the live entries (at least 16
 * slots, at most half full), dropping deleted slots.  Lock held. */
static inline int shim_readfd_rebuild(void) {
    size_t cap = 16;
    while (cap < 4 * (shim_readfd_used + 1))
        cap *= 2;
    shim_readfd_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t j = 0; j < shim_readfd_cap; j++) {
        shim_readfd_slot *old = &shim_readfd_slots[j];
        if (old->state != SHIM_SLOT_USED)
            continue;
        size_t i = shim_readfd_hash(old->session, old->fh) & (cap - 1);
        while (slots[i].state != SHIM_SLOT_EMPTY)
            i = (i + 1) & (cap - 1);
        slots[i] = *old;
    }
    free(shim_readfd_slots);
    shim_readfd_slots = slots;
    shim_readfd_cap = cap;
    shim_readfd_dead = 0;
    return 0;
}

/* The fd to answer READs of (session, fh) from, or -1. */
static inline int shim_readfd_get(const void *session, uint64_t fh) {
    if (__atomic_load_n(&shim_readfd_used, __ATOMIC_ACQUIRE) == 0)
        return -1;
    int fd = -1;
    pthread_mutex_lock(&shim_readfd_lock);
    if (shim_readfd_cap) {
        shim_readfd_slot *s = shim_readfd_slot_of(session, fh);
        if (s != NULL)
            fd = s->fd;
    }
    pthread_mutex_unlock(&shim_readfd_lock);
    return fd;
}

/* Answer READs of (session, fh) from fd (replacing an earlier entry).
 * 0, or -ENOMEM. */
static inline int shim_readfd_put(const void *session, uint64_t fh, int fd) {
    int rc = 0;
    pthread_mutex_lock(&shim_readfd_lock);
    shim_readfd_slot *s = shim_readfd_cap ? shim_readfd_slot_of(session, fh) : NULL;
    if (s != NULL) {
        s->fd = fd;
        goto out;
    }
    if (2 * (shim_readfd_used + shim_readfd_dead + 1) > shim_readfd_cap
            && (rc = shim_readfd_rebuild()) != 0)
        goto out;
    size_t mask = shim_readfd_cap - 1;
    size_t i = shim_readfd_hash(session, fh) & mask;
    while (shim_readfd_slots[i].state == SHIM_SLOT_USED)
        i = (i + 1) & mask;
    if (shim_readfd_slots[i].state == SHIM_SLOT_DELETED)
        shim_readfd_dead--;
    shim_readfd_slots[i] = (shim_readfd_slot){session, fh, fd, SHIM_SLOT_USED};
    __atomic_store_n(&shim_readfd_used, shim_readfd_used + 1, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&shim_readfd_lock);
    return rc;
}

static inline void shim_readfd_forget(shim_readfd_slot *s) {   /* lock held */
    s->state = SHIM_SLOT_DELETED;
    shim_readfd_dead++;
    __atomic_store_n(&shim_readfd_used, shim_readfd_used - 1, __ATOMIC_RELEASE);
}

/* (session, fh) is released: its READs are the handler's again. */
static inline void shim_readfd_del(const void *session, uint64_t fh) {
    if (__atomic_load_n(&shim_readfd_used, __ATOMIC_ACQUIRE) == 0)
        return;
    pthread_mutex_lock(&shim_readfd_lock);
    if (shim_readfd_cap) {
        shim_readfd_slot *s = shim_readfd_slot_of(session, fh);
        if (s != NULL)
            shim_readfd_forget(s);
    }
    pthread_mutex_unlock(&shim_readfd_lock);
}

/* Every entry of a session that is going away. */
static inline void shim_readfd_drop_session(const void *session) {
    if (__atomic_load_n(&shim_readfd_used, __ATOMIC_ACQUIRE) == 0)
        return;
    pthread_mutex_lock(&shim_readfd_lock);
    for (size_t i = 0; i < shim_readfd_cap; i++)
        if (shim_readfd_slots[i].state == SHIM_SLOT_USED && shim_readfd_slots[i].session == session)
            shim_readfd_forget(&shim_readfd_slots[i]);
    pthread_mutex_unlock(&shim_readfd_lock);
}

/* How many handles are registered (for tests). */
static inline size_t shim_readfd_count(void) {
    return __atomic_load_n(&shim_readfd_used, __ATOMIC_ACQUIRE);
}

#endif
