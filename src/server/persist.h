/*
 * persist.h - the on-disk model file format of easytorchd (internal).
 *
 * One file per model, DATA_DIR/<name>.etm:
 *
 *   offset  size  field
 *        0     8  magic "ETMODEL\0"
 *        8     4  format version (1), little-endian u32
 *       12     4  flags (0)
 *       16     8  payload length N, little-endian u64
 *       24     4  CRC-32 (IEEE, as zlib) of the payload
 *       28     4  CRC-32 of bytes 0..27 (the header itself)
 *       32     N  payload: a safetensors file (see serialize.h) whose
 *                 __metadata__ "easytorch" key holds the model's JSON state
 *
 * A file whose size is not exactly 32 + N, or whose checksums disagree, is
 * reported and never loaded.  Writes are atomic: a unique temp file in the
 * same directory, fsync, rename over the old file, fsync the directory.
 */
#ifndef EASYTORCHD_PERSIST_H
#define EASYTORCHD_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETD_FILE_MAGIC "ETMODEL"
#define ETD_FILE_VERSION 1u
#define ETD_FILE_HEADER 32u
#define ETD_FILE_EXT ".etm"

/* CRC-32 (IEEE 802.3, as zlib.crc32) of len bytes. */
uint32_t etd_crc32(const void *data, size_t len);

/* Create dir (and parents) if missing; false + message on failure. */
bool etd_persist_mkdir(const char *dir, char *err, size_t errcap);
/* Atomically write header + payload to dir/<name>.etm. */
bool etd_persist_write(const char *dir, const char *name, const uint8_t *payload, size_t len,
                       char *err, size_t errcap);
/* Read and verify dir/<file>; on success *payload (malloc'ed, caller frees)
 * and *len hold the safetensors bytes. */
bool etd_persist_read(const char *dir, const char *file, uint8_t **payload, size_t *len,
                      char *err, size_t errcap);
/* Remove dir/<name>.etm (missing is fine); fsyncs the directory. */
bool etd_persist_remove(const char *dir, const char *name, char *err, size_t errcap);

#endif
