/*
 * gemm_inv_pack.c - a cache of Linear weights packed for the batch-invariant
 * many-row x·Wᵀ kernel (gemm_inv_many.c), kept between calls (ops.h,
 * et_pack_cache).
 *
 * Why: gemm_inv_many.c transposes W into 16-column panels at every call.
 * For the 784-1024-1024-10 model a batching daemon serves, that is 7.4 MB
 * rewritten per batch (~1/3 of a 64-row batch's forward on this Zen 3,
 * docs/performance-http.md), though a serving model's weights rarely
 * change.  With a cache set on the thread (et_set_pack_cache), an
 * invariant Linear with enough rows for the many kernel takes the panels
 * from here, packed once (the same layout, so the same bits: the panels
 * hold W's values, only their order differs).
 *
 * Staleness: an entry is keyed by the weight's storage, data pointer,
 * shape, strides and storage version (bumped by the library's writes:
 * in-place ops, et_copy_from, the optimizers' steps through nn_buf_release),
 * and every entry is dropped when the owner's generation
 * (et_pack_cache_sync) changes.  Writes through et_data() bump nothing, so
 * the owner changes the generation whenever the weights may have been
 * written: easytorchd uses its model lock's write generation (every write of
 * a model's parameters holds the lock exclusive; docs/design.md).
 *
 * Threads: one mutex; a missing entry is packed while holding it (a few ms
 * once per generation), so two batches computing at once never pack the
 * same weight twice.  Entries are freed only by et_pack_cache_sync with a
 * new generation, et_pack_cache_free, or when their key's version moved --
 * never while a reader may use them, as long as weights are not written
 * while a forward reads them (which would be a data race anyway).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "core/gemm_inv.h"

enum { PACK_ENTRIES_MAX = 64 };

typedef struct pack_entry {
    const et_storage *storage;
    const float *data;
    int64_t n, k, bcs;
    uint32_t version;
    float *panels;
    size_t floats;
} pack_entry;

struct et_pack_cache {
    pthread_mutex_t mu;
    uint64_t generation;
    size_t max_bytes, bytes;
    int n;
    pack_entry e[PACK_ENTRIES_MAX];
};

static _Thread_local et_pack_cache *tl_cache;

et_pack_cache *et_pack_cache_new(size_t max_bytes)
{
    et_pack_cache *c = calloc(1, sizeof *c);
    if (!c) {
        et_set_error(ET_ERR_NOMEM, "et_pack_cache_new: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void drop_all(et_pack_cache *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->e[i].panels);
    c->n = 0;
    c->bytes = 0;
}

void et_pack_cache_free(et_pack_cache *c)
{
    if (!c)
        return;
    drop_all(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void et_pack_cache_sync(et_pack_cache *c, uint64_t generation)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->generation != generation) {
        drop_all(c);
        c->generation = generation;
    }
    pthread_mutex_unlock(&c->mu);
}

size_t et_pack_cache_bytes(et_pack_cache *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    size_t b = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return b;
}

et_pack_cache *et_set_pack_cache(et_pack_cache *c)
{
    et_pack_cache *prev = tl_cache;
    tl_cache = c;
    return prev;
}

#if !defined(__GNUC__) || !defined(__x86_64__) || defined(ET_GEMM_PORTABLE)
/* no AVX2 kernels in this build: nothing to pack for */
const float *etc_inv_pack_get(const etc_gemm_t *g, const et_tensor *w)
{
    (void)g;
    (void)w;
    return NULL;
}
#else
const float *etc_inv_pack_get(const etc_gemm_t *g, const et_tensor *w)
{
    et_pack_cache *c = tl_cache;
    if (!c || !(etc_gemm_mode() & ETC_GEMM_INVARIANT) || g->acs != 1 || g->brs != 1 ||
        g->k < 16 || g->m < ETC_INV_MANY_MIN_ROWS || !w || !w->storage ||
        strcmp(etc_gemm_isa(), "portable") == 0)
        return NULL;
    const et_storage *s = w->storage;
    const float *panels = NULL;
    pthread_mutex_lock(&c->mu);
    int slot = -1;
    for (int i = 0; i < c->n; i++) {
        pack_entry *e = &c->e[i];
        if (e->data != g->b)
            continue;
        if (e->storage == s && e->version == s->version && e->n == g->n && e->k == g->k &&
            e->bcs == g->bcs) {
            panels = e->panels;
            goto out;
        }
        slot = i;   /* the same weight, written or reshaped since: repack */
        break;
    }
    size_t floats = ETC_INV_PACK_FLOATS(g), bytes = floats * sizeof(float);
    if (slot < 0 && c->n == PACK_ENTRIES_MAX)
        goto out;
    size_t held = slot >= 0 ? c->e[slot].floats * sizeof(float) : 0;
    if (c->max_bytes && c->bytes - held + bytes > c->max_bytes)
        goto out;
    float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p)
        goto out;
    memset(p, 0, bytes);
    etc_gemm_inv_pack_avx2(g, p);
    if (slot < 0)
        slot = c->n++;
    else {
        free(c->e[slot].panels);
        c->bytes -= held;
    }
    c->e[slot] = (pack_entry){.storage = s, .data = g->b, .n = g->n, .k = g->k, .bcs = g->bcs,
                              .version = s->version, .panels = p, .floats = floats};
    c->bytes += bytes;
    panels = p;
out:
    pthread_mutex_unlock(&c->mu);
    return panels;
}
#endif
