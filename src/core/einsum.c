/* einsum.c - torch.einsum over any number of operands, composed from
 * recorded core ops (diagonal, sum, permute, expand, reshape, matmul), so
 * autograd differentiates it without a backward of its own.
 *
 * Each operand's subscripts become one code per dim (letters 0..51 as
 * torch orders them, A-Z before a-z; ellipsis dims 52 + k).  Repeated
 * subscripts of one operand take its diagonal; then operands are contracted
 * left to right, two at a time, as one batched matmul: batch labels
 * (in both, still needed) x left-only x right-only, summing the shared
 * labels no later operand or the output needs.  Size-1 dims broadcast, as
 * torch 1.13's einsum does. */
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"

#define EINSUM_MAX_OPERANDS 16
#define NCODES (52 + ET_MAX_DIMS)

typedef struct {
    et_tensor *t;            /* owned reference */
    int nd;
    int code[ET_MAX_DIMS];   /* label of each dim */
} term;

static int letter_code(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return 26 + (c - 'a');
    return -1;
}

static char code_char(int c)
{
    return c < 26 ? (char)('A' + c) : c < 52 ? (char)('a' + c - 26) : '.';
}

/* replace *t by next (a new reference or NULL) */
static bool step(et_tensor **t, et_tensor *next)
{
    etc_release(*t);
    *t = next;
    return next != NULL;
}

/* Parsed subscripts of one side: codes (ELL = -2 for "..."), count. */
#define ELL (-2)
static const char *parse_term(const char *s, int *codes, int *n, bool *ell, const char *what,
                              int which)
{
    *n = 0;
    *ell = false;
    for (; *s && *s != ',' && *s != '-'; s++) {
        if (*s == ' ')
            continue;
        if (*s == '.') {
            if (s[1] != '.' || s[2] != '.' || *ell) {
                et_set_error(ET_ERR_ARG, "einsum: %s %d has an invalid ellipsis (\"...\" once)",
                             what, which);
                return NULL;
            }
            *ell = true;
            s += 2;
            if (*n >= ET_MAX_DIMS + 1)
                goto too_many;
            codes[(*n)++] = ELL;
            continue;
        }
        int c = letter_code(*s);
        if (c < 0) {
            et_set_error(ET_ERR_ARG, "einsum: invalid subscript '%c' in %s %d (letters a-z, A-Z "
                         "and \"...\" only)", *s, what, which);
            return NULL;
        }
        if (*n >= ET_MAX_DIMS + 1)
            goto too_many;
        codes[(*n)++] = c;
    }
    return s;
too_many:
    et_set_error(ET_ERR_ARG, "einsum: %s %d has more than %d subscripts", what, which, ET_MAX_DIMS);
    return NULL;
}

/* Take diagonals until every label of the term is unique. */
static bool unique_labels(term *tm, int which)
{
    for (;;) {
        int i = -1, j = -1;
        for (int a = 0; a < tm->nd && i < 0; a++)
            for (int b = a + 1; b < tm->nd; b++)
                if (tm->code[a] == tm->code[b]) {
                    i = a;
                    j = b;
                    break;
                }
        if (i < 0)
            return true;
        if (tm->t->shape[i] != tm->t->shape[j]) {
            et_set_error(ET_ERR_SHAPE, "einsum: subscript %c is repeated for operand %d but the "
                         "sizes don't match, %lld != %lld", code_char(tm->code[i]), which,
                         (long long)tm->t->shape[i], (long long)tm->t->shape[j]);
            return false;
        }
        int c = tm->code[i];
        if (!step(&tm->t, etc_diagonal(tm->t, 0, i, j)))
            return false;
        int m = 0;   /* diagonal drops dims i, j and appends the diagonal */
        for (int a = 0; a < tm->nd; a++)
            if (a != i && a != j)
                tm->code[m++] = tm->code[a];
        tm->code[m++] = c;
        tm->nd = m;
    }
}

static int find(const term *tm, int code)
{
    for (int d = 0; d < tm->nd; d++)
        if (tm->code[d] == code)
            return d;
    return -1;
}

/* Sum out the dims whose label is not in keep[] (in place on the term). */
static bool sum_out(term *tm, const bool *keep)
{
    int dims[ET_MAX_DIMS], n = 0, m = 0;
    for (int d = 0; d < tm->nd; d++)
        if (!keep[tm->code[d]])
            dims[n++] = d;
    if (n == 0)
        return true;
    if (!step(&tm->t, etc_sum(tm->t, dims, n, false)))
        return false;
    for (int d = 0; d < tm->nd; d++)
        if (keep[tm->code[d]])
            tm->code[m++] = tm->code[d];
    tm->nd = m;
    return true;
}

/* Permute (and insert size-1 dims for absent labels, then expand) t to the
 * label order `order` with sizes `size` (size-1 dims of t broadcast). */
static bool arrange(term *tm, const int *order, int n, const int64_t *size)
{
    int perm[ET_MAX_DIMS], np = 0;
    for (int k = 0; k < n; k++) {
        int d = find(tm, order[k]);
        if (d >= 0)
            perm[np++] = d;
    }
    if (np != tm->nd)
        return et_set_error(ET_ERR_STATE, "einsum: internal label mismatch") == ET_OK;
    if (!step(&tm->t, etc_permute(tm->t, perm, np)))
        return false;
    int64_t sh[ET_MAX_DIMS], ex[ET_MAX_DIMS];
    int pos = 0;
    for (int k = 0; k < n; k++) {
        bool have = find(tm, order[k]) >= 0;
        sh[k] = have ? tm->t->shape[pos++] : 1;
        ex[k] = size[order[k]];
    }
    if (!step(&tm->t, etc_reshape(tm->t, sh, n)) || !step(&tm->t, etc_expand(tm->t, ex, n)))
        return false;
    memcpy(tm->code, order, (size_t)n * sizeof(int));
    tm->nd = n;
    return true;
}

/* a and b contracted into a, keeping the labels marked in keep[]. */
static bool contract(term *a, term *b, const bool *keep, const int64_t *size)
{
    bool in_a[NCODES] = {0}, in_b[NCODES] = {0};
    for (int d = 0; d < a->nd; d++)
        in_a[a->code[d]] = true;
    for (int d = 0; d < b->nd; d++)
        in_b[b->code[d]] = true;
    /* labels only one side has and nobody needs: summed out first */
    bool ka[NCODES], kb[NCODES];
    for (int c = 0; c < NCODES; c++) {
        ka[c] = keep[c] || in_b[c];
        kb[c] = keep[c] || in_a[c];
    }
    if (!sum_out(a, ka) || !sum_out(b, kb))
        return false;
    int bat[ET_MAX_DIMS], lft[ET_MAX_DIMS], rgt[ET_MAX_DIMS], con[ET_MAX_DIMS];
    int nb = 0, nl = 0, nr = 0, nc = 0;
    for (int d = 0; d < a->nd; d++) {
        int c = a->code[d];
        if (find(b, c) < 0)
            lft[nl++] = c;
        else if (keep[c])
            bat[nb++] = c;
        else
            con[nc++] = c;
    }
    for (int d = 0; d < b->nd; d++)
        if (find(a, b->code[d]) < 0)
            rgt[nr++] = b->code[d];
    int oa[2 * ET_MAX_DIMS], ob[2 * ET_MAX_DIMS], na = 0, nbb = 0;
    for (int k = 0; k < nb; k++)
        oa[na++] = ob[nbb++] = bat[k];
    for (int k = 0; k < nl; k++)
        oa[na++] = lft[k];
    for (int k = 0; k < nc; k++)
        oa[na++] = ob[nbb++] = con[k];
    for (int k = 0; k < nr; k++)
        ob[nbb++] = rgt[k];
    if (!arrange(a, oa, na, size) || !arrange(b, ob, nbb, size))
        return false;
    int64_t B = 1, L = 1, C = 1, R = 1, rs[ET_MAX_DIMS];
    int nres = 0;
    for (int k = 0; k < nb; k++)
        B *= size[bat[k]], rs[nres++] = size[bat[k]];
    for (int k = 0; k < nl; k++)
        L *= size[lft[k]], rs[nres++] = size[lft[k]];
    for (int k = 0; k < nc; k++)
        C *= size[con[k]];
    for (int k = 0; k < nr; k++)
        R *= size[rgt[k]], rs[nres++] = size[rgt[k]];
    if (nres > ET_MAX_DIMS) {
        et_set_error(ET_ERR_SHAPE, "einsum: an intermediate result would have %d dims (max %d)",
                     nres, ET_MAX_DIMS);
        return false;
    }
    if (!step(&a->t, etc_reshape(a->t, (const int64_t[]){B, L, C}, 3)) ||
        !step(&b->t, etc_reshape(b->t, (const int64_t[]){B, C, R}, 3)))
        return false;
    et_tensor *m = etc_matmul(a->t, b->t);
    if (!step(&a->t, m) || !step(&a->t, etc_reshape(a->t, rs, nres)))
        return false;
    a->nd = 0;
    for (int k = 0; k < nb; k++)
        a->code[a->nd++] = bat[k];
    for (int k = 0; k < nl; k++)
        a->code[a->nd++] = lft[k];
    for (int k = 0; k < nr; k++)
        a->code[a->nd++] = rgt[k];
    return true;
}

static et_tensor *einsum_impl(const char *eq, et_tensor *const *ops, int n, term *tm)
{
    int raw[EINSUM_MAX_OPERANDS][ET_MAX_DIMS + 1], nraw[EINSUM_MAX_OPERANDS];
    bool ell[EINSUM_MAX_OPERANDS];
    const char *s = eq;
    for (int i = 0; i < n; i++) {
        s = parse_term(s, raw[i], &nraw[i], &ell[i], "operand", i);
        if (!s)
            return NULL;
        if (i < n - 1 && *s != ',') {
            et_set_error(ET_ERR_ARG, "einsum: the equation has fewer subscript lists than the "
                         "%d operands", n);
            return NULL;
        }
        if (i < n - 1)
            s++;
    }
    if (*s == ',') {
        et_set_error(ET_ERR_ARG, "einsum: the equation has more subscript lists than the %d "
                     "operands", n);
        return NULL;
    }
    bool explicit_out = false;
    int outc[ET_MAX_DIMS + 1], nout = 0;
    bool out_ell = false;
    if (*s == '-') {
        if (s[1] != '>') {
            et_set_error(ET_ERR_ARG, "einsum: expected \"->\" in \"%s\"", eq);
            return NULL;
        }
        explicit_out = true;
        const char *e = parse_term(s + 2, outc, &nout, &out_ell, "output", 0);
        if (!e)
            return NULL;
        if (*e) {
            et_set_error(ET_ERR_ARG, "einsum: unexpected '%c' in the output subscripts", *e);
            return NULL;
        }
    }
    /* operands' dims, ellipsis expanded (right-aligned across operands) */
    int E = 0;
    for (int i = 0; i < n; i++) {
        int labels = nraw[i] - (ell[i] ? 1 : 0);
        int nd = ops[i]->ndim;
        if (ell[i] ? nd < labels : nd != labels) {
            et_set_error(ET_ERR_SHAPE, "einsum: operand %d has %d dims but its subscripts name %d%s",
                         i, nd, labels, ell[i] ? " plus an ellipsis" : "");
            return NULL;
        }
        if (ell[i] && nd - labels > E)
            E = nd - labels;
    }
    int64_t size[NCODES];
    for (int c = 0; c < NCODES; c++)
        size[c] = -1;
    int count[NCODES] = {0};
    for (int i = 0; i < n; i++) {
        tm[i].t = etc_ref(ops[i]);
        int nd = ops[i]->ndim, labels = nraw[i] - (ell[i] ? 1 : 0), e = nd - labels, m = 0;
        for (int k = 0; k < nraw[i]; k++) {
            if (raw[i][k] == ELL) {
                for (int j = 0; j < e; j++)
                    tm[i].code[m++] = 52 + (E - e) + j;
            } else {
                tm[i].code[m++] = raw[i][k];
            }
        }
        tm[i].nd = m;
        for (int d = 0; d < m; d++) {
            int c = tm[i].code[d];
            int64_t sz = ops[i]->shape[d];
            count[c]++;
            if (size[c] < 0 || size[c] == 1)
                size[c] = sz;
            else if (sz != 1 && sz != size[c]) {
                et_set_error(ET_ERR_SHAPE, "einsum: operands do not broadcast at subscript %c "
                             "(sizes %lld and %lld)", code_char(c), (long long)size[c],
                             (long long)sz);
                return NULL;
            }
        }
    }
    /* the output labels: given, or torch's implicit form (ellipsis dims,
     * then the labels used once, in code order) */
    int oc[NCODES], no = 0;
    bool keep[NCODES] = {false};
    if (explicit_out) {
        for (int k = 0; k < nout; k++) {
            if (outc[k] == ELL) {
                for (int j = 0; j < E; j++)
                    oc[no++] = 52 + j;
                continue;
            }
            int c = outc[k];
            if (size[c] < 0) {
                et_set_error(ET_ERR_ARG, "einsum: output subscript %c does not appear in the "
                             "equation for any input operand", code_char(c));
                return NULL;
            }
            if (keep[c]) {
                et_set_error(ET_ERR_ARG, "einsum: output subscript %c appears more than once in "
                             "the output", code_char(c));
                return NULL;
            }
            keep[c] = true;
            oc[no++] = c;
        }
        for (int j = 0; j < E; j++)   /* without "..." in the output they are summed, as torch */
            keep[52 + j] = out_ell;
    } else {
        for (int j = 0; j < E; j++) {
            oc[no++] = 52 + j;
            keep[52 + j] = true;
        }
        for (int c = 0; c < 52; c++)
            if (count[c] == 1) {
                oc[no++] = c;
                keep[c] = true;
            }
    }
    if (no > ET_MAX_DIMS) {
        et_set_error(ET_ERR_SHAPE, "einsum: the output would have %d dims (max %d)", no,
                     ET_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!unique_labels(&tm[i], i))
            return NULL;
    /* contract left to right; a label stays while a later operand or the output needs it */
    term *acc = &tm[0];
    for (int i = 1; i < n; i++) {
        bool need[NCODES];
        memcpy(need, keep, sizeof need);
        for (int j = i + 1; j < n; j++)
            for (int d = 0; d < tm[j].nd; d++)
                need[tm[j].code[d]] = true;
        if (!contract(acc, &tm[i], need, size))
            return NULL;
    }
    if (!sum_out(acc, keep) || !arrange(acc, oc, no, size))
        return NULL;
    et_tensor *r = acc->t;
    acc->t = NULL;
    return r;
}

et_tensor *et_einsum(const char *equation, et_tensor *const *operands, int n)
{
    if (!equation || n <= 0 || n > EINSUM_MAX_OPERANDS || !operands) {
        et_set_error(ET_ERR_ARG, "einsum: expected an equation and 1 to %d operands",
                     EINSUM_MAX_OPERANDS);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!etc_null_check(operands[i], "einsum"))
            return NULL;
    term tm[EINSUM_MAX_OPERANDS];
    memset(tm, 0, sizeof tm);
    et_tensor *r = einsum_impl(equation, operands, n, tm);
    for (int i = 0; i < n; i++)
        etc_release(tm[i].t);
    /* a result that is one of the operands itself ("ij->ij") is handed out
     * as a new reference, as any op's */
    return etc_pooled(r);
}
