/* A process-wide table (session, key) -> (fd, count, timeout) that libfuse
 * callbacks consult before they take the GIL: the C fast paths that answer
 * a request from a file descriptor without calling Python (shim_readfd.h:
 * READ of a handle; shim_pathfd.h: GETATTR of an inode).
 *
 * One open-addressing hash table per use, guarded by a mutex (uncontended in
 * the common case: a few tens of ns per lookup).  A counter read without the
 * lock lets sessions that never use the table skip it: one predictable
 * branch per request.  Entries go when their owner says so and, for the
 * ones left, when their session is destroyed (a new session may be
 * allocated at the same address). */
#ifndef FUSESHIM_FDTABLE_H
#define FUSESHIM_FDTABLE_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

enum { SHIM_SLOT_EMPTY, SHIM_SLOT_USED, SHIM_SLOT_DELETED };

typedef struct {
    const void *session;
    uint64_t key;
    uint64_t count;     /* shim_pathfd.h: lookups the kernel holds */
    double timeout;     /* shim_pathfd.h: attribute cache timeout */
    int fd;
    int state;
} shim_fdtable_slot;

typedef struct {
    pthread_mutex_t lock;
    shim_fdtable_slot *slots;
    size_t cap;         /* a power of two, or 0 */
    size_t dead;        /* SHIM_SLOT_DELETED slots */
    size_t used;        /* SHIM_SLOT_USED slots (written under the lock) */
} shim_fdtable;

#define SHIM_FDTABLE_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0}

static inline size_t shim_fdtable_hash(const void *session, uint64_t key) {
    uint64_t h = key ^ ((uint64_t)(uintptr_t)session * 0x9E3779B97F4A7C15ull);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return (size_t)h;
}

/* Nothing registered (read without the lock: the fast exit). */
static inline int shim_fdtable_empty(shim_fdtable *t) {
    return __atomic_load_n(&t->used, __ATOMIC_ACQUIRE) == 0;
}

/* The slot holding (session, key), or NULL.  Lock held. */
static inline shim_fdtable_slot *shim_fdtable_find(shim_fdtable *t, const void *session,
                                                   uint64_t key) {
    if (t->cap == 0)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = shim_fdtable_hash(session, key) & mask;; i = (i + 1) & mask) {
        shim_fdtable_slot *s = &t->slots[i];
        if (s->state == SHIM_SLOT_EMPTY)
            return NULL;
        if (s->state == SHIM_SLOT_USED && s->key == key && s->session == session)
            return s;
    }
}

/* Copy the entry of (session, key) into *out: 1, or 0 when there is none. */
static inline int shim_fdtable_get(shim_fdtable *t, const void *session, uint64_t key,
                                   shim_fdtable_slot *out) {
    pthread_mutex_lock(&t->lock);
    shim_fdtable_slot *s = shim_fdtable_find(t, session, key);
    if (s != NULL)
        *out = *s;
    pthread_mutex_unlock(&t->lock);
    return s != NULL;
}

/* Rebuild the table with room for twice the live entries (at least 16
 * slots, at most half full), dropping deleted slots.  Lock held. */
static inline int shim_fdtable_rebuild(shim_fdtable *t) {
    size_t cap = 16;
    while (cap < 4 * (t->used + 1))
        cap *= 2;
    shim_fdtable_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t j = 0; j < t->cap; j++) {
        shim_fdtable_slot *old = &t->slots[j];
        if (old->state != SHIM_SLOT_USED)
            continue;
        size_t i = shim_fdtable_hash(old->session, old->key) & (cap - 1);
        while (slots[i].state != SHIM_SLOT_EMPTY)
            i = (i + 1) & (cap - 1);
        slots[i] = *old;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->dead = 0;
    return 0;
}

/* A new slot for (session, key), not in the table yet; NULL when out of
 * memory.  Lock held. */
static inline shim_fdtable_slot *shim_fdtable_add(shim_fdtable *t, const void *session,
                                                  uint64_t key) {
    if (2 * (t->used + t->dead + 1) > t->cap && shim_fdtable_rebuild(t) != 0)
        return NULL;
    size_t mask = t->cap - 1;
    size_t i = shim_fdtable_hash(session, key) & mask;
    while (t->slots[i].state == SHIM_SLOT_USED)
        i = (i + 1) & mask;
    if (t->slots[i].state == SHIM_SLOT_DELETED)
        t->dead--;
    t->slots[i] = (shim_fdtable_slot){session, key, 0, 0.0, -1, SHIM_SLOT_USED};
    __atomic_store_n(&t->used, t->used + 1, __ATOMIC_RELEASE);
    return &t->slots[i];
}

static inline void shim_fdtable_remove(shim_fdtable *t, shim_fdtable_slot *s) {  /* lock held */
    s->state = SHIM_SLOT_DELETED;
    t->dead++;
    __atomic_store_n(&t->used, t->used - 1, __ATOMIC_RELEASE);
}

/* Every entry of a session that is going away. */
static inline void shim_fdtable_drop_session(shim_fdtable *t, const void *session) {
    if (shim_fdtable_empty(t))
        return;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].state == SHIM_SLOT_USED && t->slots[i].session == session)
            shim_fdtable_remove(t, &t->slots[i]);
    pthread_mutex_unlock(&t->lock);
}

/* How many entries the session has (all sessions: NULL).  For tests. */
static inline size_t shim_fdtable_count(shim_fdtable *t, const void *session) {
    if (session == NULL)
        return __atomic_load_n(&t->used, __ATOMIC_ACQUIRE);
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->cap; i++)
        n += t->slots[i].state == SHIM_SLOT_USED && t->slots[i].session == session;
    pthread_mutex_unlock(&t->lock);
    return n;
}

#endif
