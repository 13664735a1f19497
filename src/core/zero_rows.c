/* zero_rows.c - which rows of a gradient may be nonzero, so that zero_grad
 * rewrites only those.
 *
 * An Embedding(V, D)'s dense weight gradient (torch's default) is zero but
 * for the rows its batch named.  optimizer.zero_grad (torch 1.13's default
 * set_to_none=False) must leave all of it zero, and Adam then reads all of
 * it; a memset of the whole table per step is the one pass that can be
 * skipped: the storage remembers "zero except these rows" and zero_grad
 * clears just them.
 *
 * The record is a claim about one tensor's elements (its offset and numel)
 * in a storage, valid while the storage's version is the one it was taken
 * at.  Every in-place op bumps the version (fill_, copy_, the optimizers'
 * and clip_grad's writes through nn_buf); the internal writers that do not
 * (autograd's etc_add_into, a backward writing into a .grad sink, a caller
 * of the mutable et_data) forget it.  Only embedding's backward adds rows,
 * and only for a leaf's gradient. */
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

struct etc_zrec {
    uint32_t version;   /* storage version the claim holds at */
    bool valid;
    int64_t offset, numel;   /* the tensor the claim is about */
    int64_t row_len;         /* elements per row (0 while no row is listed) */
    int64_t n, cap;
    int64_t rows[];          /* rows (of row_len elements) that may be nonzero */
};

void etc_zrec_free(et_storage *s)
{
    free(s->zrec);
    s->zrec = NULL;
}

static bool covers(const struct etc_zrec *z, const et_tensor *t)
{
    return z && z->valid && z->version == t->storage->version && z->offset == t->offset &&
           z->numel == t->numel && t->contiguous && t->dtype == ET_FLOAT32;
}

void etc_zrec_forget(et_tensor *t)
{
    /* written only when a record holds: tensors without one (parameters
     * read by several threads) see no store */
    if (t && t->storage && t->storage->zrec && t->storage->zrec->valid)
        t->storage->zrec->valid = false;
}

void etc_zrec_set_zero(et_tensor *t)
{
    if (!t->contiguous || t->dtype != ET_FLOAT32)
        return;
    struct etc_zrec *z = t->storage->zrec;
    if (!z) {
        z = malloc(sizeof *z);
        if (!z)
            return;   /* no record: zero_grad writes it all, as before */
        z->cap = 0;
        t->storage->zrec = z;
    }
    z->version = t->storage->version;
    z->valid = true;
    z->offset = t->offset;
    z->numel = t->numel;
    z->row_len = 0;
    z->n = 0;
}

bool etc_zrec_is_zero(const et_tensor *t)
{
    const struct etc_zrec *z = t->storage->zrec;
    return covers(z, t) && z->n == 0;
}

void etc_zrec_add_rows(et_tensor *t, const int64_t *rows, int64_t n, int64_t row_len)
{
    struct etc_zrec *z = t->storage->zrec;
    if (!covers(z, t))
        return;
    /* past a quarter of the tensor a full memset costs about the same */
    if (row_len <= 0 || (z->n > 0 && z->row_len != row_len) ||
        (z->n + n) > t->numel / row_len / 4) {
        z->valid = false;
        return;
    }
    if (z->n + n > z->cap) {
        int64_t cap = z->n + n > 2 * z->cap ? z->n + n : 2 * z->cap;
        struct etc_zrec *nz = realloc(z, sizeof *z + (size_t)cap * sizeof z->rows[0]);
        if (!nz) {
            z->valid = false;
            return;
        }
        z = t->storage->zrec = nz;
        z->cap = cap;
    }
    memcpy(z->rows + z->n, rows, (size_t)n * sizeof *rows);
    z->n += n;
    z->row_len = row_len;
}

et_status etc_zero_grad_(et_tensor *g)
{
    struct etc_zrec *z = g->storage->zrec;
    if (!covers(z, g)) {
        et_status st = et_fill_(g, 0.0f);
        if (st == ET_OK)
            etc_zrec_set_zero(g);
        return st;
    }
    g->storage->version++;   /* an in-place write, as fill_ */
    for (int64_t i = 0; i < z->n; i++)
        memset(g->data + z->rows[i] * z->row_len, 0, (size_t)z->row_len * sizeof(float));
    etc_zrec_set_zero(g);
    return ET_OK;
}
