/*
 * json_in.h - strict JSON input for easytorchd (internal).
 *
 * Key checks shared by every reader of a JSON object (model specs, request
 * bodies): unknown and repeated keys are refused with a message naming the
 * key, what is accepted, and the name the user probably meant.
 */
#ifndef EASYTORCHD_JSON_IN_H
#define EASYTORCHD_JSON_IN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/formats/result.h"

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

#endif
