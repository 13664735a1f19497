/* conv_onednn.c - the three convolution passes on oneDNN (Debian's
 * libdnnl 2.6, the library PyTorch uses for the same convolutions here).
 *
 * Each call builds the primitive descriptor for its geometry with
 * format_tag_any, so oneDNN picks its fastest kernel and blocked layout
 * (brgconv / jit avx512 on this machine); our NCHW buffers are reordered
 * into those layouts and back.  Primitive creation hits oneDNN's primitive
 * cache after the first call with a geometry.  Temporary buffers come from
 * etc_alloc (the per-thread storage cache).
 *
 * Threads: one engine per process; one stream per calling thread
 * (streams are not thread safe), freed at thread exit.  oneDNN runs its
 * kernels on OpenMP; each calling thread's OpenMP team is sized to
 * openblas_get_num_threads(), so the one BLAS thread setting
 * (OPENBLAS_NUM_THREADS, easytorchd --blas-threads) governs both.
 *
 * Any oneDNN failure returns false with no error set: conv.c then uses
 * im2col, so a geometry oneDNN rejects (e.g. negative far-end padding of a
 * transposed convolution with output_padding) still works.
 */
#include "core/conv_internal.h"

#ifndef ET_HAVE_ONEDNN

bool etc_onednn_available(void) { return false; }
bool etc_conv_fwd_onednn(const etc_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y)
{
    return false;
}
bool etc_conv_bwd_data_onednn(const etc_conv_geom *g, const float *dy, const float *w,
                              float *dx)
{
    return false;
}
bool etc_conv_bwd_weight_onednn(const etc_conv_geom *g, const float *x, const float *dy,
                                float *dw)
{
    return false;
}

#else

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <oneapi/dnnl/dnnl.h>

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static pthread_key_t stream_key;

static void stream_free(void *s) { dnnl_stream_destroy((dnnl_stream_t)s); }

static void engine_init(void)
{
    if (pthread_key_create(&stream_key, stream_free) != 0)
        return;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
}

bool etc_onednn_available(void)
{
    pthread_once(&engine_once, engine_init);
    return engine != NULL;
}

static _Thread_local int omp_threads;

/* Sizes this thread's OpenMP team before oneDNN sees it: a primitive
 * descriptor fixes its work split from the thread count when it is created,
 * so this runs before any descriptor is made.  (A split for 2 threads run
 * on a loaded 2-core machine waits on a descheduled thread: 0.6 ms calls
 * then take 12 ms.) */
static bool thread_setup(void)
{
    if (!etc_onednn_available())
        return false;
    int nt = openblas_get_num_threads();
    if (nt < 1)
        nt = 1;
    if (nt != omp_threads) {
        omp_set_num_threads(nt);
        omp_threads = nt;
    }
    return true;
}

/* This thread's stream, created on first use. */
static dnnl_stream_t thread_stream(void)
{
    dnnl_stream_t s = pthread_getspecific(stream_key);
    if (s)
        return s;
    if (dnnl_stream_create(&s, engine, dnnl_stream_default_flags) != dnnl_success)
        return NULL;
    if (pthread_setspecific(stream_key, s) != 0) {
        dnnl_stream_destroy(s);
        return NULL;
    }
    return s;
}

/* ---- memory descriptors of our plain buffers ---- */

static bool md4(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d,
                dnnl_format_tag_t tag)
{
    dnnl_dims_t dims = {a, b, c, d};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag) == dnnl_success;
}

/* Weights [o, c/G, kh, kw]; with groups oneDNN wants [G, o/G, c/G, kh, kw],
 * which is the same memory. */
static bool weights_md(dnnl_memory_desc_t *md, const etc_conv_geom *g, bool any)
{
    int64_t G = g->groups;
    if (G == 1)
        return md4(md, g->o, g->c, g->kh, g->kw, any ? dnnl_format_tag_any : dnnl_oihw);
    dnnl_dims_t dims = {G, g->o / G, g->c / G, g->kh, g->kw};
    return dnnl_memory_desc_init_by_tag(md, 5, dims, dnnl_f32,
                                        any ? dnnl_format_tag_any : dnnl_goihw) == dnnl_success;
}

typedef struct {
    dnnl_memory_desc_t src, wei, bias, dst;          /* ours (plain) */
    dnnl_memory_desc_t src_any, wei_any, dst_any;    /* for the primitive */
    dnnl_dims_t strides, dilates, pad_l, pad_r;
} descs;

static bool make_descs(const etc_conv_geom *g, descs *d)
{
    dnnl_dims_t bd = {g->o};
    d->strides[0] = g->sh;
    d->strides[1] = g->sw;
    d->dilates[0] = g->dh - 1;         /* oneDNN counts the gaps */
    d->dilates[1] = g->dw - 1;
    d->pad_l[0] = g->pt;
    d->pad_l[1] = g->pl;
    d->pad_r[0] = g->pb;
    d->pad_r[1] = g->pr;
    return md4(&d->src, g->n, g->c, g->h, g->w, dnnl_nchw) &&
           md4(&d->dst, g->n, g->o, g->oh, g->ow, dnnl_nchw) &&
           md4(&d->src_any, g->n, g->c, g->h, g->w, dnnl_format_tag_any) &&
           md4(&d->dst_any, g->n, g->o, g->oh, g->ow, dnnl_format_tag_any) &&
           weights_md(&d->wei, g, false) && weights_md(&d->wei_any, g, true) &&
           dnnl_memory_desc_init_by_tag(&d->bias, 1, bd, dnnl_f32, dnnl_x) == dnnl_success;
}

static dnnl_primitive_desc_t fwd_pd(const descs *d, bool bias, dnnl_prop_kind_t prop)
{
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_dilated_convolution_forward_desc_init(
            &cd, prop, dnnl_convolution_direct, &d->src_any, &d->wei_any,
            bias ? &d->bias : NULL, &d->dst_any, d->strides, d->dilates, d->pad_l,
            d->pad_r) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, NULL, engine, NULL) != dnnl_success)
        return NULL;
    return pd;
}

/* ---- running a primitive on plain buffers ---- */

typedef struct {
    int arg;                        /* DNNL_ARG_* */
    const dnnl_memory_desc_t *md;   /* our layout */
    float *ptr;
    bool out;                       /* written by the primitive */
} user_arg;

#define MAX_ARGS 4

static bool reorder(dnnl_stream_t s, dnnl_memory_t from, const dnnl_memory_desc_t *fmd,
                    dnnl_memory_t to, const dnnl_memory_desc_t *tmd)
{
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    if (dnnl_reorder_primitive_desc_create(&rpd, fmd, engine, tmd, engine, NULL) != dnnl_success)
        return false;
    bool ok = dnnl_primitive_create(&r, rpd) == dnnl_success;
    dnnl_primitive_desc_destroy(rpd);
    if (!ok)
        return false;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    ok = dnnl_primitive_execute(r, s, 2, a) == dnnl_success;
    dnnl_primitive_destroy(r);
    return ok;
}

/* Executes pd with our buffers: each argument whose layout the primitive
 * does not take as is goes through a temporary in the primitive's layout. */
static bool run(dnnl_primitive_desc_t pd, const user_arg *ua, int n)
{
    dnnl_stream_t s = thread_stream();
    if (!s)
        return false;
    dnnl_memory_t user[MAX_ARGS] = {0}, inner[MAX_ARGS] = {0};
    et_tensor *tmp[MAX_ARGS] = {0};
    const dnnl_memory_desc_t *imd[MAX_ARGS] = {0};
    dnnl_exec_arg_t args[MAX_ARGS];
    dnnl_primitive_t prim = NULL;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        imd[i] = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, ua[i].arg);
        ok = imd[i] && dnnl_memory_create(&user[i], ua[i].md, engine, ua[i].ptr) == dnnl_success;
        if (!ok)
            break;
        if (dnnl_memory_desc_equal(imd[i], ua[i].md)) {
            args[i] = (dnnl_exec_arg_t){ua[i].arg, user[i]};
            continue;
        }
        size_t bytes = dnnl_memory_desc_get_size(imd[i]);
        int64_t nf = (int64_t)(bytes / sizeof(float)) + 16;
        tmp[i] = etc_alloc(&nf, 1);
        ok = tmp[i] && dnnl_memory_create(&inner[i], imd[i], engine, tmp[i]->data) == dnnl_success;
        if (ok && !ua[i].out)
            ok = reorder(s, user[i], ua[i].md, inner[i], imd[i]);
        args[i] = (dnnl_exec_arg_t){ua[i].arg, inner[i]};
    }
    if (ok)
        ok = dnnl_primitive_create(&prim, pd) == dnnl_success &&
             dnnl_primitive_execute(prim, s, n, args) == dnnl_success;
    for (int i = 0; i < n && ok; i++)
        if (inner[i] && ua[i].out)
            ok = reorder(s, inner[i], imd[i], user[i], ua[i].md);
    if (ok)
        ok = dnnl_stream_wait(s) == dnnl_success;
    else
        dnnl_stream_wait(s);
    if (prim)
        dnnl_primitive_destroy(prim);
    for (int i = 0; i < n; i++) {
        if (inner[i])
            dnnl_memory_destroy(inner[i]);
        if (user[i])
            dnnl_memory_destroy(user[i]);
        etc_release(tmp[i]);
    }
    return ok;
}

/* ---- the three passes ---- */

bool etc_conv_fwd_onednn(const etc_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y)
{
    descs d;
    if (g->n == 0 || !thread_setup() || !make_descs(g, &d))
        return false;
    dnnl_primitive_desc_t pd = fwd_pd(&d, b != NULL, dnnl_forward_inference);
    if (!pd)
        return false;
    user_arg ua[4] = {{DNNL_ARG_SRC, &d.src, (float *)x, false},
                      {DNNL_ARG_WEIGHTS, &d.wei, (float *)w, false},
                      {DNNL_ARG_DST, &d.dst, y, true},
                      {DNNL_ARG_BIAS, &d.bias, (float *)b, false}};
    bool ok = run(pd, ua, b ? 4 : 3);
    dnnl_primitive_desc_destroy(pd);
    return ok;
}

bool etc_conv_bwd_data_onednn(const etc_conv_geom *g, const float *dy, const float *w,
                              float *dx)
{
    descs d;
    if (g->n == 0 || !thread_setup() || !make_descs(g, &d))
        return false;
    dnnl_primitive_desc_t hint = fwd_pd(&d, false, dnnl_forward_training), pd = NULL;
    dnnl_convolution_desc_t cd;
    if (hint && dnnl_dilated_convolution_backward_data_desc_init(
                    &cd, dnnl_convolution_direct, &d.src_any, &d.wei_any, &d.dst_any, d.strides,
                    d.dilates, d.pad_l, d.pad_r) == dnnl_success)
        if (dnnl_primitive_desc_create(&pd, &cd, NULL, engine, hint) != dnnl_success)
            pd = NULL;
    bool ok = false;
    if (pd) {
        user_arg ua[3] = {{DNNL_ARG_DIFF_DST, &d.dst, (float *)dy, false},
                          {DNNL_ARG_WEIGHTS, &d.wei, (float *)w, false},
                          {DNNL_ARG_DIFF_SRC, &d.src, dx, true}};
        ok = run(pd, ua, 3);
        dnnl_primitive_desc_destroy(pd);
    }
    if (hint)
        dnnl_primitive_desc_destroy(hint);
    return ok;
}

bool etc_conv_bwd_weight_onednn(const etc_conv_geom *g, const float *x, const float *dy,
                                float *dw)
{
    descs d;
    if (g->n == 0 || !thread_setup() || !make_descs(g, &d))
        return false;
    dnnl_primitive_desc_t hint = fwd_pd(&d, false, dnnl_forward_training), pd = NULL;
    dnnl_convolution_desc_t cd;
    if (hint && dnnl_dilated_convolution_backward_weights_desc_init(
                    &cd, dnnl_convolution_direct, &d.src_any, &d.wei_any, NULL, &d.dst_any,
                    d.strides, d.dilates, d.pad_l, d.pad_r) == dnnl_success)
        if (dnnl_primitive_desc_create(&pd, &cd, NULL, engine, hint) != dnnl_success)
            pd = NULL;
    bool ok = false;
    if (pd) {
        user_arg ua[3] = {{DNNL_ARG_SRC, &d.src, (float *)x, false},
                          {DNNL_ARG_DIFF_DST, &d.dst, (float *)dy, false},
                          {DNNL_ARG_DIFF_WEIGHTS, &d.wei, dw, true}};
        ok = run(pd, ua, 3);
        dnnl_primitive_desc_destroy(pd);
    }
    if (hint)
        dnnl_primitive_desc_destroy(hint);
    return ok;
}

#endif
