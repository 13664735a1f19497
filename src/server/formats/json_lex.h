/*
 * json_lex.h - the JSON number lexer of easytorchd (internal).
 *
 * One lexer for every place that reads JSON numbers from bytes: the strict
 * scan of a request body (json_in.c) and the fast tensor path
 * (tensor_json.c).  cJSON itself is lenient ("01", "1." pass), so every
 * number in a body goes through this grammar once.
 */
#ifndef EASYTORCHD_JSON_LEX_H
#define EASYTORCHD_JSON_LEX_H

#include <stdbool.h>
#include <stddef.h>

/* The JSON number at p in the strict grammar
 *   -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * and not followed by more number characters ("01", "1.", "1e", "1.5.3"
 * are not numbers).  Returns the end of the number, or NULL.
 * With v non-NULL, *v receives a double that rounds to the same float32 as
 * strtod's result would (exact Clinger fast path for <= 15 digits and
 * |exponent| <= 22; 16-19 digits computed in double unless within a few
 * ulp of a float32 rounding midpoint; strtod otherwise). */
const char *etd_json_number(const char *p, const char *end, double *v);

/* p past JSON whitespace (space, tab, CR, LF), at most to end. */
static inline const char *etd_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

#endif
