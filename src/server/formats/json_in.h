/*
 * json_in.h - strict JSON input for easytorchd (internal).
 *
 * Bodies are parsed with cJSON_ParseWithLengthOpts(.., require_null_
 * terminated) on a NUL-terminated copy, so trailing garbage fails and the
 * error position comes from a local pointer (cJSON_GetErrorPtr, a process
 * global, is never read).  Around it:
 *   1. NUL bytes are refused;
 *   2. the fast path (tensor_json.h) may take the big tensors of the top-level
 *      members named by the caller straight into floats, leaving null in
 *      their place, so cJSON only sees the small rest.  It gives up without
 *      effect on anything unusual, so it changes speed, never behaviour;
 *   3. one pass over the remaining bytes checks nesting depth, the strict
 *      number grammar (json_lex.h), \u0000 escapes and the number of values
 *      (which bounds cJSON's memory);
 *   4. after parsing, non-finite numbers (cJSON reads 1e999 as infinity) are
 *      refused with their path ("targets[0][0]").
 * Key checks are shared by every reader of a JSON object (specs, bodies):
 * unknown and repeated keys are refused with a message naming the key, what
 * is accepted and the name the user probably meant.
 */
#ifndef EASYTORCHD_JSON_IN_H
#define EASYTORCHD_JSON_IN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/formats/result.h"
#include "server/formats/tensor_json.h"

/* The first member of obj whose key repeats an earlier one (*repeated set)
 * or is neither in allowed[] (NULL-terminated) nor equal to `also` (may be
 * NULL), or NULL when every key is fine. */
const cJSON *etd_bad_key(const cJSON *obj, const char *const *allowed, const char *also,
                         bool *repeated);

/* names[] (NULL-terminated) joined by ", " into buf (truncated to cap). */
void etd_join_names(const char *const *names, char *buf, size_t cap);

/* The entry of names[] a user most likely meant by `got`: the same letters
 * in another case ("adam" -> "Adam"), else the one closest within two
 * edits, when exactly one is that close.  NULL when none is. */
const char *etd_suggest(const char *got, const char *const *names);

/* Append "; did you mean \"X\"?" to e's message when etd_suggest finds X. */
void etd_err_suggest(etd_err *e, const char *got, const char *const *names);

/* Every key of obj in allowed[] (or equal to `also`), none twice.  On a bad
 * key: false + ETD_EINVAL, "<path>.<key>: unknown field<for> (accepted:
 * ...); did you mean \"...\"?" or "<path>.<key>: repeated field".  path
 * may be "" (top level: "<key>: ..."); `for_what` (may be NULL) is added
 * after "unknown field", e.g. " for Linear". */
bool etd_check_keys(const cJSON *obj, const char *path, const char *for_what,
                    const char *const *allowed, const char *also, etd_err *e);

/* ---- bodies ---- */

typedef struct etd_json_limits {
    int max_depth;              /* nesting levels (--max-depth) */
    size_t max_values;          /* values parsed into a tree, fast-path tensors excluded */
    int64_t max_elems;          /* elements of one tensor (--max-elements) */
} etd_json_limits;

/* A parsed body: the tree, and the tensors the fast path took out of it
 * (their members are null in the tree; etd_json_take_array finds them). */
typedef struct etd_json_doc {
    cJSON *root;
    int nfast;
    char fast_key[2][16];
    etd_array fast[2];
} etd_json_doc;

/* Parse body[0..len) (body[len] must be NUL) as one strict JSON value.
 * fast_keys (NULL-terminated, at most 2, may be NULL) name the top-level
 * members the fast path may take.  false + e on bad input: ETD_EINVAL
 * ("body: invalid JSON near byte 12", "inputs[0][0]: number is not
 * finite ...") or ETD_ETOOBIG (more than max_values values).  Free the doc
 * with etd_json_doc_free, also after a failure. */
bool etd_json_parse(const char *body, size_t len, const etd_json_limits *lim,
                    const char *const *fast_keys, etd_json_doc *doc, etd_err *e);
void etd_json_doc_free(etd_json_doc *doc);

/* The tensor in top-level member `key` of the doc (taken over by *a: free
 * it with etd_array_free).  false + "key: required field is missing" or the
 * tensor's own message. */
bool etd_json_take_array(etd_json_doc *doc, const char *key, int64_t max_elems, etd_array *a,
                         etd_err *e);
/* The same as a tensor of dtype dt: ET_INT64 reads the numbers as whole
 * numbers (exact to 2^53; keep the key out of the fast path, which reads
 * float32, when the values may exceed 2^24). */
bool etd_json_take_array_as(etd_json_doc *doc, const char *key, int64_t max_elems, et_dtype dt,
                            etd_array *a, etd_err *e);

#endif
