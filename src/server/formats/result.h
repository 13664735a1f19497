/*
 * result.h - result codes and error messages of easytorchd's lower layers
 * (formats and models; internal).
 *
 * Nothing below the endpoints knows HTTP: a failing call returns an etd_rc
 * and leaves a message naming the problem in an etd_err
 * ("layers[1].in_features: expected 4 (...), got 3").  The endpoints turn
 * the code into a status with one table (endpoints/common.c).
 */
#ifndef EASYTORCHD_RESULT_H
#define EASYTORCHD_RESULT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum etd_rc {
    ETD_OK = 0,
    ETD_EINVAL,     /* bad input: a field, a shape, a value */
    ETD_ENOTFOUND,  /* no such model */
    ETD_EEXIST,     /* the name is taken */
    ETD_ELIMIT,     /* a configured limit on how many things exist (--max-models) */
    ETD_ESTATE,     /* the model is not in a state for this call (nothing to step) */
    ETD_ETOOBIG,    /* input over a size limit (--max-json-values) */
    ETD_ENOMEM,     /* out of memory */
    ETD_EIO,        /* disk error (the file system failed a write, fsync or rename) */
    ETD_ENOSPC,     /* disk full or over quota */
    ETD_ECANCELED,  /* a long call was cancelled through its progress hook */
    ETD_EFULL,      /* a bounded queue is full: try again later (the job queue) */
    ETD_EINTERNAL,  /* a failure that no input explains */
    ETD_RC_COUNT
} etd_rc;

#define ETD_ERRCAP 1024

/* A failure: its code and the message naming the problem. */
typedef struct etd_err {
    etd_rc rc;
    char msg[ETD_ERRCAP];
} etd_err;

/* Record a failure in e (printf-style message) and return rc. */
etd_rc etd_fail(etd_err *e, etd_rc rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
etd_rc etd_vfail(etd_err *e, etd_rc rc, const char *fmt, va_list ap);

/* Add context after the message: "<msg><suffix>" (truncated to fit). */
void etd_err_append(etd_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The code's name, "ETD_EINVAL" style without the prefix ("EINVAL"). */
const char *etd_rc_name(etd_rc rc);

#endif
