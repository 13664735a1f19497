/* result.c - etd_err helpers (see result.h). */
#include "server/formats/result.h"

#include <stdio.h>
#include <string.h>

etd_rc etd_vfail(etd_err *e, etd_rc rc, const char *fmt, va_list ap)
{
    if (e) {
        e->rc = rc;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return rc;
}

etd_rc etd_fail(etd_err *e, etd_rc rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    etd_vfail(e, rc, fmt, ap);
    va_end(ap);
    return rc;
}

void etd_err_append(etd_err *e, const char *fmt, ...)
{
    size_t n = strlen(e->msg);
    if (n + 1 >= sizeof e->msg)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg + n, sizeof e->msg - n, fmt, ap);
    va_end(ap);
}

const char *etd_rc_name(etd_rc rc)
{
    static const char *const names[] = {"OK", "EINVAL", "ENOTFOUND", "EEXIST", "ELIMIT",
                                        "ESTATE", "ETOOBIG", "ENOMEM", "EIO", "ENOSPC",
                                        "ECANCELED", "EFULL", "EINTERNAL"};
    _Static_assert(sizeof names / sizeof names[0] == ETD_RC_COUNT, "one name per etd_rc");
    return (unsigned)rc < ETD_RC_COUNT ? names[rc] : "?";
}
