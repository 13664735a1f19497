/*
 * shared_buf.h - reference-counted byte buffers (internal to easytorchd).
 *
 * A request body is one: the transport receives it (one allocation at its
 * Content-Length) and holds a reference until the exchange ends; tensors
 * parsed from a safetensors body alias its bytes instead of copying them
 * (et_safetensors_parse_shared), each holding a reference, so the bytes live
 * as long as the last such tensor -- a job's or a batch's inputs outlive the
 * request.  The bytes start 64-byte aligned.  Handles are the data pointers.
 */
#ifndef EASYTORCHD_SHARED_BUF_H
#define EASYTORCHD_SHARED_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* cap bytes (at least 1), one reference; NULL when out of memory. */
char *etd_sbuf_new(size_t cap);
/* A buffer of cap bytes holding p's first len bytes, p's reference moved to
 * it (p itself when it is large enough); NULL when out of memory (p is then
 * unchanged).  Only for a buffer nobody else references yet. */
char *etd_sbuf_grow(char *p, size_t len, size_t cap);
/* +1 / -1 reference (NULL-safe); the last -1 frees.  Thread-safe. */
void etd_sbuf_ref(void *p);
void etd_sbuf_unref(void *p);

#endif
