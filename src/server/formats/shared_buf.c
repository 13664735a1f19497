/* shared_buf.c - reference-counted byte buffers (see shared_buf.h).  The
 * count sits in a 64-byte header before the bytes. */
#include "server/formats/shared_buf.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEAD 64

typedef struct sbuf_head {
    atomic_long refs;
    size_t cap;
} sbuf_head;

_Static_assert(sizeof(sbuf_head) <= HEAD, "the header fits before the bytes");

static sbuf_head *head_of(void *p) { return (sbuf_head *)(void *)((char *)p - HEAD); }

char *etd_sbuf_new(size_t cap)
{
    if (cap == 0)
        cap = 1;
    if (cap > SIZE_MAX - 2 * HEAD)
        return NULL;
    void *m = NULL;
    if (posix_memalign(&m, HEAD, HEAD + cap) != 0)
        return NULL;
    sbuf_head *h = m;
    atomic_init(&h->refs, 1);
    h->cap = cap;
    return (char *)m + HEAD;
}

char *etd_sbuf_grow(char *p, size_t len, size_t cap)
{
    if (p && head_of(p)->cap >= cap)
        return p;
    char *n = etd_sbuf_new(cap);
    if (!n)
        return NULL;
    if (p) {
        memcpy(n, p, len);
        etd_sbuf_unref(p);
    }
    return n;
}

void etd_sbuf_ref(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&head_of(p)->refs, 1, memory_order_relaxed);
}

void etd_sbuf_unref(void *p)
{
    if (p && atomic_fetch_sub_explicit(&head_of(p)->refs, 1, memory_order_acq_rel) == 1)
        free(head_of(p));
}
