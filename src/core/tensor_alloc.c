/* tensor_alloc.c - the memory of tensors: allocation, reference counts,
 * release, the per-thread free lists and storage cache, and pools.
 *
 * Memory: a tensor is a header (shape, strides, offset, graph node) plus a
 * reference-counted storage shared with its views.  Small tensors (< 64 KiB)
 * get header and storage in ONE block, freed when the storage's last
 * reference goes (a view may outlive the tensor that made it); blocks of
 * <= 16 floats are recycled through a per-thread free list.  Large storages
 * go through a bounded per-thread cache so training steps reuse buffers.
 * Reference counts are atomic: threads may share read-only parameters.
 * External storage (et_tensor_from_external) is a storage header whose data
 * is the caller's memory: no cache, its release callback when it dies.
 *
 * Split from tensor.c (the tensor API) because the two change for different
 * reasons: this file for allocation speed and thread lifetime, that one for
 * torch's semantics.  Nothing here is static-shared with tensor.c: the API
 * reaches memory only through the etc_ functions of core_internal.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

/* ------------------------------------------------------------------ */
/* per-thread state, released by a pthread key destructor at thread exit */

/* pools: one growable array of creation references, and a stack of marks
 * into it (one per open pool) */
static _Thread_local et_tensor **pool_items;
static _Thread_local size_t pool_len, pool_cap;
static _Thread_local size_t *pool_marks;
static _Thread_local size_t pool_depth, pool_marks_cap;

/* cache of large storages: a training step frees and then re-allocates
 * the same multi-MB buffers; reusing them avoids mmap, munmap and page
 * faults on every step.  Bounded in count and bytes. */
#define CACHE_MIN_FLOATS 16384               /* 64 KiB */
#define CACHE_SLOTS 32
#define CACHE_MAX_BYTES ((size_t)256 << 20)

static _Thread_local et_storage *cache_slot[CACHE_SLOTS];
static _Thread_local size_t cache_n, cache_bytes;

static void thread_state_exit(void *unused);
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static _Thread_local bool thread_key_set;

static void thread_key_init(void) { pthread_key_create(&thread_key, thread_state_exit); }

/* Make sure this thread's pools and cache are released when it exits. */
static void ensure_thread_cleanup(void)
{
    if (thread_key_set)
        return;
    pthread_once(&thread_key_once, thread_key_init);
    pthread_setspecific(thread_key, (void *)1);
    thread_key_set = true;
}

static size_t storage_bytes(const et_storage *s)
{
    return sizeof(et_storage) + (size_t)s->size * sizeof(float);
}

/* Free lists of the blocks of small tensors (header and storage in one
 * malloc, fewer than CACHE_MIN_FLOATS floats), one list per capacity in
 * steps of BLOCK_STEP floats, and one of the headers of the other tensors
 * (views, large storages): a training step frees and re-makes the same
 * shapes every step, so after the first steps every tensor comes from a
 * list and a step calls malloc not at all (tests/nn/check_alloc.c).
 * Bounded per thread; off under ASan so use-after-free stays detectable. */
#define BLOCK_STEP 16
#define BLOCK_CLASSES (CACHE_MIN_FLOATS / BLOCK_STEP)
#define BLOCK_LIST_MAX 256                      /* blocks per capacity */
#define BLOCK_LISTS_MAX_BYTES ((size_t)4 << 20) /* all capacities */
#define HEADER_LIST_MAX 1024
#if defined(__SANITIZE_ADDRESS__)
#define USE_SMALL_LIST 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define USE_SMALL_LIST 0
#endif
#endif
#ifndef USE_SMALL_LIST
#define USE_SMALL_LIST 1
#endif

typedef struct small_block {
    struct small_block *next;
} small_block;

static _Thread_local small_block *block_list[BLOCK_CLASSES];
static _Thread_local uint16_t block_len[BLOCK_CLASSES];
static _Thread_local size_t block_bytes;
static _Thread_local small_block *header_list;
static _Thread_local size_t header_len;

/* offset of the storage inside a small tensor's block */
#define BLOCK_STORAGE_OFFSET ((sizeof(et_tensor) + 63) & ~(size_t)63)

static size_t block_size(int64_t cap)
{
    return BLOCK_STORAGE_OFFSET + sizeof(et_storage) + (size_t)cap * sizeof(float);
}

/* capacity (in floats) of the block made for n floats, n < CACHE_MIN_FLOATS */
static int64_t block_cap(int64_t n)
{
    return n <= BLOCK_STEP ? BLOCK_STEP
                           : (int64_t)(((uint64_t)n + BLOCK_STEP - 1) & ~(uint64_t)(BLOCK_STEP - 1));
}

static void small_push(void *block, int64_t cap)
{
    /* cap > 0: unsigned arithmetic, shifts instead of signed division */
    size_t ucap = (size_t)cap, cls = ucap / BLOCK_STEP - 1, bytes = block_size(cap);
    if (!USE_SMALL_LIST || ucap % BLOCK_STEP != 0 || cls >= BLOCK_CLASSES ||
        block_len[cls] >= BLOCK_LIST_MAX || block_bytes + bytes > BLOCK_LISTS_MAX_BYTES) {
        free(block);
        return;
    }
    if (!thread_key_set)
        ensure_thread_cleanup();
    small_block *b = block;
    b->next = block_list[cls];
    block_list[cls] = b;
    block_len[cls]++;
    block_bytes += bytes;
}

static void *small_pop(int64_t cap)
{
    size_t cls = (size_t)cap / BLOCK_STEP - 1;
    small_block *b = block_list[cls];
    if (b) {
        block_list[cls] = b->next;
        block_len[cls]--;
        block_bytes -= block_size(cap);
    }
    return b;
}

static void header_push(et_tensor *t)
{
    if (!USE_SMALL_LIST || header_len >= HEADER_LIST_MAX) {
        free(t);
        return;
    }
    ensure_thread_cleanup();
    small_block *b = (small_block *)t;
    b->next = header_list;
    header_list = b;
    header_len++;
}

static et_tensor *header_pop(void)
{
    small_block *b = header_list;
    if (b) {
        header_list = b->next;
        header_len--;
    }
    return (et_tensor *)b;
}

static void small_clear(void)
{
    for (size_t c = 0; c < BLOCK_CLASSES; c++)
        while (block_list[c])
            free(small_pop((int64_t)(c + 1) * BLOCK_STEP));
    while (header_list)
        free(header_pop());
}

static et_storage *cache_take(int64_t n)
{
    int best = -1;
    for (size_t i = 0; i < cache_n; i++) {
        int64_t sz = cache_slot[i]->size;
        if (sz >= n && sz <= n + n / 4 && (best < 0 || sz < cache_slot[best]->size))
            best = (int)i;
    }
    if (best < 0)
        return NULL;
    et_storage *s = cache_slot[best];
    cache_bytes -= storage_bytes(s);
    memmove(cache_slot + best, cache_slot + best + 1, (cache_n - (size_t)best - 1) * sizeof *cache_slot);
    cache_n--;
    return s;
}

static void storage_free(et_storage *s)
{
    if (s->zrec)
        etc_zrec_free(s);
    if (__builtin_expect(s->data != s->inline_data, 0)) {
        /* external memory (et_tensor_from_external): its owner's callback,
         * then the header alone */
        if (s->release)
            s->release(s->release_arg);
        free(s);
        return;
    }
    if (s->block) {
        small_push(s->block, s->size);
        return;
    }
    size_t bytes = storage_bytes(s);
    if (s->size < CACHE_MIN_FLOATS || bytes > CACHE_MAX_BYTES / 2) {
        free(s);
        return;
    }
    ensure_thread_cleanup();
    /* evict the oldest until the new one fits */
    while (cache_n > 0 && (cache_n == CACHE_SLOTS || cache_bytes + bytes > CACHE_MAX_BYTES)) {
        cache_bytes -= storage_bytes(cache_slot[0]);
        free(cache_slot[0]);
        memmove(cache_slot, cache_slot + 1, (cache_n - 1) * sizeof *cache_slot);
        cache_n--;
    }
    cache_slot[cache_n++] = s;
    cache_bytes += bytes;
}

static void cache_clear(void)
{
    for (size_t i = 0; i < cache_n; i++)
        free(cache_slot[i]);
    cache_n = 0;
    cache_bytes = 0;
}

/* ------------------------------------------------------------------ */
/* allocation                                                           */

static void tensor_init(et_tensor *t)
{
    atomic_init(&t->refcount, 1);
    t->ndim = 0;
    t->op = ETC_OP_NONE;
    t->requires_grad = false;
    t->retain_grad = false;
    t->contiguous = true;
    t->dtype = ET_FLOAT32;
    t->numel = 1;
    t->data = NULL;
    t->storage = NULL;
    t->offset = 0;
    t->grad = NULL;
    t->nin = 0;
    t->in = t->in_inline;
    t->saved = NULL;
    t->mark = 0;
    t->pgrad = NULL;
    etc_made++; /* a tensor was made: the last failure is no longer fresh */
}

static et_tensor *tensor_struct_new(void)
{
    et_tensor *t = header_pop();
    if (!t)
        t = malloc(sizeof *t);
    if (!t) {
        et_set_error(ET_ERR_NOMEM, "out of memory allocating a tensor");
        return NULL;
    }
    tensor_init(t);
    return t;
}

et_tensor *etc_alloc(const int64_t *shape, int ndim)
{
    return etc_alloc_dtype(shape, ndim, ET_FLOAT32);
}

et_tensor *etc_alloc_dtype(const int64_t *shape, int ndim, int dtype)
{
    /* Shapes reach here from broadcasting, matmul and cat of views (an
     * expanded view of [1] can claim 2^40 elements in each of two dims
     * without owning memory), so the product is checked for overflow here,
     * not only in the public creators. */
    int64_t n = 1, cst[ET_MAX_DIMS];   /* contiguous strides, made in the same pass */
    bool overflow = false;
    for (int i = ndim - 1; i >= 0; i--) {
        cst[i] = n;
        overflow |= shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n);
    }
    /* storage is counted in floats: an int64 element takes two */
    int64_t per = etc_elsize(dtype) / (int64_t)sizeof(float);
    if (overflow || (uint64_t)n > (SIZE_MAX - sizeof(et_storage) - BLOCK_STORAGE_OFFSET) /
                                      sizeof(float) / (uint64_t)per) {
        char b[160];
        et_set_error(ET_ERR_NOMEM, "tensor of shape %s is too large",
                     etc_shape_fmt(shape, ndim, b, sizeof b));
        return NULL;
    }
    int64_t numel = n;
    n *= per;
    et_tensor *t;
    et_storage *s;
    if (n < CACHE_MIN_FLOATS) {
        /* one allocation for the tensor and its storage */
        int64_t cap = block_cap(n);
        char *block = USE_SMALL_LIST ? small_pop(cap) : NULL;
        if (!block)
            block = malloc(block_size(cap));
        if (!block) {
            et_set_error(ET_ERR_NOMEM, "out of memory allocating %lld floats", (long long)n);
            return NULL;
        }
        t = (et_tensor *)block;
        tensor_init(t);
        s = (et_storage *)(block + BLOCK_STORAGE_OFFSET);
        s->size = cap;
        s->block = block;
    } else {
        s = cache_take(n);
        if (!s) {
            s = malloc(sizeof(et_storage) + (size_t)n * sizeof(float));
            if (!s) {
                et_set_error(ET_ERR_NOMEM, "out of memory allocating %lld floats", (long long)n);
                return NULL;
            }
            s->size = n;
        }
        s->block = NULL;
        t = tensor_struct_new();
        if (!t) {
            free(s);
            return NULL;
        }
    }
    atomic_init(&s->refcount, 1);
    s->version = 0;
    s->zrec = NULL;
    s->release = NULL;
    s->release_arg = NULL;
    s->data = s->inline_data;
    t->storage = s;
    t->data = s->data;
    t->ndim = ndim;
    t->numel = numel;
    t->dtype = (uint8_t)dtype;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->strides[i] = cst[i];
    }
    return t;
}

/* ------------------------------------------------------------------ */
/* external storage: memory the library does not own                     */

et_tensor *et_tensor_from_external(void *data, const int64_t *shape, int ndim, et_dtype dtype,
                                   et_release_fn release, void *arg)
{
    if (!etc_check_shape(shape, ndim, "tensor_from_external"))
        return NULL;
    if (dtype != ET_FLOAT32 && dtype != ET_INT64) {
        et_set_error(ET_ERR_ARG, "tensor_from_external: unknown dtype %d", (int)dtype);
        return NULL;
    }
    int64_t numel = etc_numel(shape, ndim);
    size_t el = (size_t)etc_elsize(dtype);
    if (!data && numel > 0) {
        et_set_error(ET_ERR_ARG, "tensor_from_external: data is NULL");
        return NULL;
    }
    if ((uintptr_t)data % el != 0) {
        et_set_error(ET_ERR_ARG, "tensor_from_external: data at %p is not aligned to its "
                     "%zu-byte elements", data, el);
        return NULL;
    }
    /* the header alone: the elements stay where they are */
    et_storage *s = malloc(sizeof *s);
    if (!s) {
        et_set_error(ET_ERR_NOMEM, "out of memory allocating a tensor");
        return NULL;
    }
    et_tensor *t = tensor_struct_new();
    if (!t) {
        free(s);
        return NULL;
    }
    atomic_init(&s->refcount, 1);
    s->size = numel * (int64_t)(el / sizeof(float));
    s->data = data;
    s->version = 0;
    s->block = NULL;
    s->zrec = NULL;
    s->release = release;
    s->release_arg = arg;
    t->storage = s;
    t->data = data;
    t->ndim = ndim;
    t->numel = numel;
    t->dtype = (uint8_t)dtype;
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->strides[i] = st;
        st *= shape[i];
    }
    return etc_pooled(t);
}

bool et_tensor_is_external(const et_tensor *t)
{
    return t && t->storage && t->storage->data != t->storage->inline_data;
}

et_tensor *etc_zeros(const int64_t *shape, int ndim)
{
    et_tensor *t = etc_alloc(shape, ndim);
    if (t)
        memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

et_tensor *etc_full(const int64_t *shape, int ndim, float v)
{
    et_tensor *t = etc_alloc(shape, ndim);
    if (t)
        for (int64_t i = 0; i < t->numel; i++)
            t->data[i] = v;
    return t;
}

et_tensor *etc_view_of(et_tensor *base, const int64_t *shape, const int64_t *strides,
                       int ndim, int64_t offset)
{
    et_tensor *t = tensor_struct_new();
    if (!t)
        return NULL;
    atomic_fetch_add_explicit(&base->storage->refcount, 1, memory_order_relaxed);
    t->storage = base->storage;
    t->offset = offset;
    t->dtype = base->dtype;
    t->data = (float *)(void *)((char *)base->storage->data + offset * etc_elsize(base->dtype));
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->strides[i] = strides[i];
    }
    t->numel = etc_numel(shape, ndim);
    t->contiguous = etc_compute_contiguous(t);
    return t;
}

/* Drops one reference; true when it was the last.  A holder of the only
 * reference needs no atomic write: no other thread can reach the object
 * to add one (the acquire load still orders its earlier writes). */
static inline bool dec_ref(et_tensor *t)
{
    if (atomic_load_explicit(&t->refcount, memory_order_acquire) == 1)
        return true;
    return atomic_fetch_sub_explicit(&t->refcount, 1, memory_order_acq_rel) == 1;
}

static inline bool dec_storage(et_storage *s)
{
    if (atomic_load_explicit(&s->refcount, memory_order_acquire) == 1)
        return true;
    return atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel) == 1;
}

static void free_dead(et_tensor *t);

/* Frees the dead tensors of `stack[0..n)` and everything that dies with
 * them, iteratively: a graph of 100000 nodes must not overflow the C
 * stack.  If the work list cannot grow (out of memory) the child is freed
 * by recursion instead, which is only deep for deep graphs. */
typedef struct {
    et_tensor **stack, **local;
    size_t n, cap;
} dead_list;

/* Drops the reference to c; if it was the last, c joins the work list. */
static inline __attribute__((always_inline)) void drop_into(dead_list *d, et_tensor *c)
{
    if (!c || !dec_ref(c))
        return;
    if (__builtin_expect(d->n == d->cap, 0)) {
        et_tensor **ns = malloc(d->cap * 2 * sizeof *ns);
        if (!ns) {
            free_dead(c);
            return;
        }
        memcpy(ns, d->stack, d->n * sizeof *ns);
        if (d->stack != d->local)
            free(d->stack);
        d->stack = ns;
        d->cap *= 2;
    }
    d->stack[d->n++] = c;
}

static void free_list(et_tensor **stack, size_t n, size_t cap, et_tensor **local)
{
    dead_list d = {stack, local, n, cap};
    while (d.n) {
        et_tensor *x = d.stack[--d.n];
        /* the inputs of a node, then its saved tensor and gradients */
        et_tensor **in = x->in;
        for (int i = 0; i < x->nin; i++)
            drop_into(&d, in[i]);
        drop_into(&d, x->saved);
        drop_into(&d, x->grad);
        drop_into(&d, x->pgrad);
        if (in != x->in_inline)
            free(in);
        et_storage *s = x->storage;
        if (!s) {
            header_push(x);
            continue;
        }
        /* a small tensor lives in its storage's block: freed with the storage */
        bool in_block = s->block == (void *)x;
        if (dec_storage(s))
            storage_free(s);
        if (!in_block)
            header_push(x);
    }
    if (d.stack != local)
        free(d.stack);
}

/* t has no references left */
static void free_dead(et_tensor *t)
{
    et_tensor *local[64];
    local[0] = t;
    free_list(local, 1, 64, local);
}

void etc_free_dead(et_tensor *t) { free_dead(t); }

et_tensor *et_tensor_ref(et_tensor *t) { return etc_ref(t); }

void et_tensor_free(et_tensor *t) { etc_release(t); }

/* ------------------------------------------------------------------ */
/* pools (see tensor.h OWNERSHIP)                                       */


/* Runs at thread exit: releases tensors still in unclosed pools, frees
 * the pool arrays and the storage cache. */
static _Thread_local et_tensor *scalar_one;

et_tensor *etc_scalar_one(void)
{
    et_tensor *t = scalar_one;
    if (t && t->data[0] == 1.0f && !t->requires_grad && t->ndim == 0)
        return etc_ref(t);
    etc_release(t);
    scalar_one = t = etc_full(NULL, 0, 1.0f);
    if (!t)
        return NULL;
    ensure_thread_cleanup();
    return etc_ref(t);
}

static void thread_state_exit(void *unused)
{
    (void)unused;
    etc_release(scalar_one);
    scalar_one = NULL;
    while (pool_len > 0)
        etc_release(pool_items[--pool_len]);
    free(pool_items);
    free(pool_marks);
    pool_items = NULL;
    pool_marks = NULL;
    pool_cap = pool_marks_cap = pool_depth = 0;
    cache_clear();
    small_clear();
}

/* pools that could not be opened (out of memory): their begin/end pairs
 * are counted so the other pools stay balanced; their tensors go to the
 * enclosing pool */
static _Thread_local size_t pool_lost;

void et_pool_begin(void)
{
    if (pool_lost) {
        pool_lost++;
        return;
    }
    if (pool_depth == pool_marks_cap) {
        size_t ncap = pool_marks_cap ? pool_marks_cap * 2 : 16;
        size_t *nm = realloc(pool_marks, ncap * sizeof *nm);
        if (!nm) {
            et_set_error(ET_ERR_NOMEM, "pool_begin: out of memory");
            pool_lost++;
            return;
        }
        ensure_thread_cleanup();
        pool_marks = nm;
        pool_marks_cap = ncap;
    }
    pool_marks[pool_depth++] = pool_len;
}

void et_pool_end(void)
{
    if (pool_lost) {
        pool_lost--;
        return;
    }
    if (pool_depth == 0)
        return;
    size_t mark = pool_marks[--pool_depth];
    /* newest first: results die before the inputs they reference */
    while (pool_len > mark)
        etc_release(pool_items[--pool_len]);
    if (pool_depth == 0 && pool_cap > 65536) {
        /* a huge step should not pin its peak forever */
        free(pool_items);
        pool_items = NULL;
        pool_cap = 0;
    }
}

bool etc_pool_active(void) { return pool_depth > 0; }

et_tensor *etc_pooled(et_tensor *t)
{
    if (!t || pool_depth == 0)
        return t;
    if (pool_len == pool_cap) {
        size_t ncap = pool_cap ? pool_cap * 2 : 256;
        et_tensor **ni = realloc(pool_items, ncap * sizeof *ni);
        if (!ni) {
            etc_release(t);
            et_set_error(ET_ERR_NOMEM, "out of memory growing the tensor pool");
            return NULL;
        }
        pool_items = ni;
        pool_cap = ncap;
    }
    pool_items[pool_len++] = t;
    return t;
}
