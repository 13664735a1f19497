/*
 * modelfile.h - the on-disk model file of easytorchd (internal): the
 * checksummed container around a model's state (the payload, written by
 * models/train_state.c).
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
#ifndef EASYTORCHD_MODELFILE_H
#define EASYTORCHD_MODELFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/formats/result.h"

#define ETD_FILE_MAGIC "ETMODEL"
#define ETD_FILE_VERSION 1u
#define ETD_FILE_HEADER 32u
#define ETD_FILE_EXT ".etm"

/* CRC-32 (IEEE 802.3, as zlib.crc32) of len bytes. */
uint32_t etd_crc32(const void *data, size_t len);

/* Failures name the file and the system's reason; a full disk or quota
 * (ENOSPC, EDQUOT) is ETD_ENOSPC, any other file system error ETD_EIO, a
 * file that fails verification ETD_EINVAL. */

/* Create dir (and parents) if missing. */
etd_rc etd_modelfile_mkdir(const char *dir, etd_err *e);
/* Atomically write header + payload to dir/<name>.etm: a unique temp file,
 * write, fsync, rename over the old file, fsync the directory.  On failure
 * the temp file is removed and *replaced (may be NULL) tells whether the
 * rename had already happened (only the directory's fsync failed: the new
 * file is in place but not known to be durable); otherwise the previous
 * file is untouched. */
etd_rc etd_modelfile_write(const char *dir, const char *name, const uint8_t *payload, size_t len,
                           bool *replaced, etd_err *e);
/* Read and verify dir/<file>; on success *payload (malloc'ed, caller frees)
 * and *len hold the safetensors bytes. */
etd_rc etd_modelfile_read(const char *dir, const char *file, uint8_t **payload, size_t *len,
                          etd_err *e);
/* Remove dir/<name>.etm (missing is fine); fsyncs the directory. */
etd_rc etd_modelfile_remove(const char *dir, const char *name, etd_err *e);

#endif
