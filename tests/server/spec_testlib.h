/* spec_testlib.h - helpers of the model-specification tests (check_spec.c,
 * check_spec_optim.c): torch's defaults, read once from torch's own
 * signatures (inspect.signature via /usr/bin/python3), and parsing helpers
 * that fail the running Check test. */
#ifndef SPEC_TESTLIB_H
#define SPEC_TESTLIB_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "check_server.h"
#include "server/models/spec.h"

#define BASE_LAYERS "\"layers\":[{\"type\":\"Linear\",\"in_features\":3,\"out_features\":2}]"
#define BASE_LOSS "\"loss\":\"MSELoss\""
#define BASE_OPT "\"optimizer\":{\"type\":\"SGD\",\"lr\":0.1}"

extern cJSON *torch_defaults; /* object "Class.param" -> value */

/* Fill torch_defaults (before the forked tests start: they inherit it). */
void load_torch_defaults(void);
/* torch's default for key ("Adam.eps"), which must exist. */
const cJSON *tdef(const char *key);
/* got equals torch's default for key (a number or bool / a string). */
void eq_num(const char *key, double got);
void eq_str(const char *key, const char *got);

/* Parse text as a spec: true, or false with the message in err (the code
 * must be ETD_EINVAL). */
bool parse_spec(const char *text, etd_spec *s, char *err, size_t cap);
void must_parse(const char *text, etd_spec *s);
/* Refused with a message containing want1 and (unless NULL) want2. */
void must_fail(const char *text, const char *want1, const char *want2);
/* A spec of Linear(3, 2) followed by layer_json, parsed. */
void layer_spec(const char *layer_json, etd_spec *s);

#endif
