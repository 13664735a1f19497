/* error.c - per-thread status and message (see error.h). */
#include <stdarg.h>
#include <stdio.h>

#include "easytorch/error.h"

static _Thread_local et_status tl_code = ET_OK;
static _Thread_local char tl_msg[512];

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
}

et_status et_set_error(et_status code, const char *fmt, ...)
{
    tl_code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
        va_end(ap);
    } else {
        snprintf(tl_msg, sizeof tl_msg, "%s", et_errstr(code));
    }
    return code;
}
