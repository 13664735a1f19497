/*
 * st_bytes.h - the byte helpers the safetensors writer (serialize.c) and
 * parser (safetensors_parse.c) share: byte order, u64 fields, element sizes.
 */
#ifndef EASYTORCH_NN_ST_BYTES_H
#define EASYTORCH_NN_ST_BYTES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "easytorch/tensor.h"

static inline bool host_is_little(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static inline void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void swap32(uint8_t *p, size_t nfloats)
{
    for (size_t i = 0; i < nfloats; i++, p += 4) {
        uint8_t t = p[0];
        p[0] = p[3];
        p[3] = t;
        t = p[1];
        p[1] = p[2];
        p[2] = t;
    }
}

static inline void swap64(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++, p += 8)
        for (int k = 0; k < 4; k++) {
            uint8_t t = p[k];
            p[k] = p[7 - k];
            p[7 - k] = t;
        }
}

static inline size_t st_elsize(et_dtype d) { return d == ET_INT64 ? 8 : 4; }

#endif
