/* error.c - per-thread status and message (see error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core_internal.h"

static _Thread_local et_status tl_code = ET_OK;
static _Thread_local char tl_msg[512];
/* etc_made when the last failure was recorded, and whether a consequence
 * has been added to its message */
static _Thread_local unsigned long tl_made_at;
static _Thread_local bool tl_chained;
_Thread_local unsigned long etc_made;

static const char *const errstr_table[] = {
    "success",                 /* ET_OK */
    "shape mismatch",          /* ET_ERR_SHAPE */
    "index out of range",      /* ET_ERR_INDEX */
    "invalid argument",        /* ET_ERR_ARG */
    "autograd error",          /* ET_ERR_GRAD */
    "out of memory",           /* ET_ERR_NOMEM */
    "i/o error",               /* ET_ERR_IO */
    "bad format",              /* ET_ERR_FORMAT */
    "invalid state",           /* ET_ERR_STATE */
};
_Static_assert(sizeof errstr_table / sizeof errstr_table[0] == ET_ERR_COUNT,
               "one description per et_status");

et_status et_errcode(void) { return tl_code; }

const char *et_errmsg(void) { return tl_msg; }

const char *et_errstr(et_status code)
{
    if ((int)code < 0 || code >= ET_ERR_COUNT)
        return "unknown error";
    return errstr_table[code];
}

void et_clear_error(void)
{
    tl_code = ET_OK;
    tl_msg[0] = '\0';
    tl_chained = false;
}

static void record(et_status code, const char *fmt, va_list ap)
{
    tl_code = code;
    tl_made_at = etc_made;
    tl_chained = false;
    if (fmt)
        vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    else
        snprintf(tl_msg, sizeof tl_msg, "%s", et_errstr(code));
}

et_status et_set_error(et_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(code, fmt, ap);
    va_end(ap);
    return code;
}

et_status et_set_error_after(et_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* nothing was made since the last failure: this one follows from it */
    if (tl_code != ET_OK && tl_made_at == etc_made && fmt) {
        tl_code = code; /* the last failure's code, as et_errcode() promises */
        if (!tl_chained) {
            char then[256];
            vsnprintf(then, sizeof then, fmt, ap);
            size_t n = strlen(tl_msg);
            snprintf(tl_msg + n, sizeof tl_msg - n, " (then: %s)", then);
            tl_chained = true;
        }
    } else {
        record(code, fmt, ap);
    }
    va_end(ap);
    return code;
}
