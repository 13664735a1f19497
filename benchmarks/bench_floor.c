/* bench_floor.c - the GEMM floor of a training step (or of a forward): its
 * GEMMs alone (bench_floor.h).
 *
 * The GEMMs an MLP training step must do, with the step's shapes, into
 * preallocated buffers: forward Y_l = X_l W_l^T per layer; backward
 * dW_l = G_l^T X_l per layer and dX_l = G_l W_l for every layer but the
 * first (the input needs no gradient).  What both easytorch and PyTorch must
 * compute at the least; the step's time over this one is its overhead.
 *
 * The batch-32/256 floors run each GEMM through etc_gemm as the step does
 * (our kernels or OpenBLAS, per shape, the thread's mode).  The b1024 floors
 * of the HTTP rows (issue 15) take, per GEMM, the faster of our kernels and
 * OpenBLAS, timed once at setup: the least any of our paths could spend. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_floor.h"
#include "bench_gemm_time.h"
#include "core/core_internal.h"   /* etc_gemm */

enum { FL_MAX_LAYERS = 4, FL_MAX_GEMMS = 3 * FL_MAX_LAYERS };

typedef struct {
    int nl;                        /* layers */
    int64_t b, n[FL_MAX_LAYERS + 1];
    float *x[FL_MAX_LAYERS + 1];   /* activations: x[0] input, x[l+1] layer l's output */
    float *g[FL_MAX_LAYERS + 1];   /* gradients of the same shapes */
    float *w[FL_MAX_LAYERS], *dw[FL_MAX_LAYERS];
    int ngemm;
    etc_gemm_t gemm[FL_MAX_GEMMS]; /* in the step's order */
    unsigned flags[FL_MAX_GEMMS];  /* etc_gemm's flags for each */
    bool mode_forward;             /* the forward GEMMs take etc_gemm_mode() at run time */
} floor_state;

void floor_teardown(void *p)
{
    floor_state *s = p;
    if (s == NULL)
        return;
    for (int l = 0; l <= s->nl; l++) {
        free(s->x[l]);
        free(s->g[l]);
        if (l < s->nl) {
            free(s->w[l]);
            free(s->dw[l]);
        }
    }
    free(s);
}

static float *floor_buf(size_t n)
{
    float *b = malloc((n ? n : 1) * sizeof(float));
    for (size_t j = 0; b != NULL && j < n; j++)
        b[j] = (float)((j * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return b;
}

/* sizes: the layer widths; backward: the step's GEMMs, else the forward's
 * alone; best: each GEMM the faster of ours and OpenBLAS (else as the step). */
static void *floor_setup(const int64_t *sizes, int nsizes, int64_t batch, bool backward, bool best)
{
    floor_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->nl = nsizes - 1;
    s->b = batch;
    bool ok = true;
    for (int l = 0; l <= s->nl; l++) {
        s->n[l] = sizes[l];
        ok = ok && (s->x[l] = floor_buf((size_t)(batch * sizes[l]))) != NULL;
        ok = ok && (s->g[l] = floor_buf((size_t)(batch * sizes[l]))) != NULL;
        if (l < s->nl) {
            ok = ok && (s->w[l] = floor_buf((size_t)(sizes[l] * sizes[l + 1]))) != NULL;
            ok = ok && (s->dw[l] = floor_buf((size_t)(sizes[l] * sizes[l + 1]))) != NULL;
        }
    }
    if (!ok) {
        floor_teardown(s);
        et_set_error(ET_ERR_NOMEM, "floor: out of memory");
        return NULL;
    }
    const int64_t b = batch;
    for (int l = 0; l < s->nl; l++) {   /* forward: x·Wᵀ */
        int64_t in = s->n[l], out = s->n[l + 1];
        s->gemm[s->ngemm++] = (etc_gemm_t){.m = b, .n = out, .k = in, .a = s->x[l], .ars = in,
                                           .acs = 1, .b = s->w[l], .brs = 1, .bcs = in,
                                           .c = s->x[l + 1], .ldc = out};
    }
    for (int l = s->nl - 1; backward && l >= 0; l--) {   /* dW = Gᵀ·X, dX = G·W */
        int64_t in = s->n[l], out = s->n[l + 1];
        s->gemm[s->ngemm++] = (etc_gemm_t){.m = out, .n = in, .k = b, .a = s->g[l + 1], .ars = 1,
                                           .acs = out, .b = s->x[l], .brs = in, .bcs = 1,
                                           .c = s->dw[l], .ldc = in};
        if (l > 0)
            s->gemm[s->ngemm++] = (etc_gemm_t){.m = b, .n = in, .k = out, .a = s->g[l + 1],
                                               .ars = out, .acs = 1, .b = s->w[l], .brs = in,
                                               .bcs = 1, .c = s->g[l], .ldc = in};
    }
    s->mode_forward = !best;
    for (int i = 0; i < s->ngemm; i++) {
        s->flags[i] = 0;
        if (best)
            s->flags[i] = bench_gemm_ns(&s->gemm[i], ETC_GEMM_BLAS, 2e6) <
                                  bench_gemm_ns(&s->gemm[i], ETC_GEMM_NO_BLAS, 2e6)
                              ? ETC_GEMM_BLAS : ETC_GEMM_NO_BLAS;
    }
    return s;
}

/* The GEMMs in the step's order: x·Wᵀ per layer, then Gᵀ·X and G·W from the last. */
et_status floor_run(void *p, long iters, double *value)
{
    floor_state *s = p;
    unsigned mode = etc_gemm_mode();
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < s->ngemm; j++)
            etc_gemm(&s->gemm[j], s->mode_forward && j < s->nl ? mode : s->flags[j]);
    *value = s->ngemm > s->nl ? s->dw[0][0] : s->x[s->nl][0];
    return ET_OK;
}

void *floor_1_5_1_setup(void) { return floor_setup((const int64_t[]){1, 5, 1}, 3, 256, true, false); }
void *floor_13_64_64_1_setup(void)
{
    return floor_setup((const int64_t[]){13, 64, 64, 1}, 4, 32, true, false);
}
void *floor_784_setup(void)
{
    return floor_setup((const int64_t[]){784, 1024, 1024, 10}, 4, 256, true, false);
}
void *floor_13_64_64_1_b1024_setup(void)
{
    return floor_setup((const int64_t[]){13, 64, 64, 1}, 4, 1024, true, true);
}
void *floor_forward_13_64_64_1_b1024_setup(void)
{
    return floor_setup((const int64_t[]){13, 64, 64, 1}, 4, 1024, false, true);
}
