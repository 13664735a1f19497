/*
 * core_runner.h - what core_runner.c shares with the files that add op
 * entries to it (core_runner_basic.c, core_runner_ops.c, core_runner_conv.c):
 * the case environment, one op call,
 * the table entry type and the JSON parameter helpers.
 */
#ifndef CORE_RUNNER_H
#define CORE_RUNNER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "easytorch/easytorch.h"

#define MAX_IN 16

typedef struct {
    const char *name;   /* borrowed from the cJSON document; NULL: use own_name */
    et_tensor *t;       /* reference, or NULL */
    bool owned;         /* the runner releases t; false: a pool owns it */
    char own_name[64];  /* for derived names ("y.indices") */
} slot;

static inline const char *slot_name(const slot *s) { return s->name ? s->name : s->own_name; }

typedef struct {
    slot *slots;
    int n, cap;
    bool pool;          /* --pool: run each case's ops inside et_pool_begin/end */
    bool pool_open;
    char where[128];    /* stage/node of the failure, for the report */
} env;

typedef struct {
    env *e;
    const char *out;
    const cJSON *p;
    et_tensor *in[MAX_IN];
    int nin;
} call;

typedef et_tensor *(*op_fn)(call *c);

typedef struct {
    const char *name;
    int nin;   /* inputs; -1: variadic (at least one) */
    op_fn fn;
    bool runner_ref;  /* fn returns et_tensor_ref() of its input, not a library result */
} op_entry;

/* The first release's op entries (core_runner_basic.c), searched first. */
extern const op_entry core_runner_ops_basic[];
extern const size_t core_runner_ops_basic_n;
/* Further op entries (core_runner_ops.c), searched next. */
extern const op_entry core_runner_ops_more[];
extern const size_t core_runner_ops_more_n;
/* conv.h entries (core_runner_conv.c). */
extern const op_entry core_runner_conv[];
extern const size_t core_runner_conv_n;

/* ---- JSON parameter helpers (core_runner.c) ---- */
/* Number p[key] ("inf", "-inf", "nan" strings too), or dflt. */
double num_or(const cJSON *p, const char *key, double dflt);
bool bool_or(const cJSON *p, const char *key, bool dflt);
/* Integer list param into out[cap]; returns the count or -1 if absent. */
int ints_of(const cJSON *p, const char *key, int64_t *out, int cap);
/* The "dims" list of a call as ints (0 if absent). */
int dims_of(call *c, int *dims, int cap);
/* Store a second result of a call under "<base><suffix>" ("y.indices"). */
int env_put_derived(env *e, const char *base, const char *suffix, et_tensor *t);

#endif
