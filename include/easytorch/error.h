/*
 * error.h - status codes and the per-thread error message.
 *
 * Every function that can fail on user data either returns an et_status
 * (ET_OK on success) or returns NULL; in both cases the reason is kept in a
 * thread-local message readable with et_errmsg() until the next failure on
 * the same thread (a NULL argument left by a failed call keeps the message
 * of that call: see et_set_error_after).  Messages name the problem, e.g.
 *   "matmul: shapes [3,4] and [5,2] do not align"
 * Nothing in easytorch aborts on bad input.
 */
#ifndef EASYTORCH_ERROR_H
#define EASYTORCH_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum et_status {
    ET_OK = 0,
    ET_ERR_SHAPE,     /* shapes do not broadcast / align / match */
    ET_ERR_INDEX,     /* index or dimension out of range */
    ET_ERR_ARG,       /* invalid argument value (negative size, bad option...) */
    ET_ERR_GRAD,      /* autograd misuse: backward without requires_grad, ... */
    ET_ERR_NOMEM,     /* allocation failed or size overflow */
    ET_ERR_IO,        /* file system error */
    ET_ERR_FORMAT,    /* corrupt, truncated or mismatched file / buffer */
    ET_ERR_STATE,     /* object in the wrong state for this call */
    ET_ERR_COUNT
} et_status;

/* Status of the last failure on this thread (ET_OK if none since et_clear_error). */
et_status et_errcode(void);

/* Message of the last failure on this thread; never NULL, owned by the library. */
const char *et_errmsg(void);

/* Static English description of a status code ("shape mismatch", ...). */
const char *et_errstr(et_status code);

/* Forget the last error of this thread. */
void et_clear_error(void);

/* Record an error (printf-style) for this thread and return `code`.
 * Used by the library and by layers built on it (nn, server). */
et_status et_set_error(et_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Record a failure that is most likely the consequence of the previous one:
 * an argument that is NULL because the call that produced it failed, as in
 * et_item(et_module_forward(m, x)).  If this thread's last failure happened
 * with no tensor created since, its message is kept and gains
 * " (then: <this one>)" once, so et_errmsg() names the first failure of the
 * chain; otherwise the message is this one's, as with et_set_error.  Either
 * way et_errcode() and the return value are `code`. */
et_status et_set_error_after(et_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
