/*
 * serialize.h - safetensors files and buffers.
 *
 * Format: u64 little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32" or "I64", "shape": [...], "data_offsets": [b, e]},
 *  "__metadata__": {"key": "string value"}} padded with spaces to a multiple
 * of 8, then the raw little-endian data.  Files written here load with
 * safetensors.torch.load_file and into nn.Sequential.load_state_dict.
 *
 * Loading is all-or-nothing: a truncated, corrupt or mismatched buffer gives
 * ET_ERR_FORMAT with a message naming the problem and nothing is changed.
 */
#ifndef EASYTORCH_SERIALIZE_H
#define EASYTORCH_SERIALIZE_H

#include "easytorch/nn.h"
#include "easytorch/optim.h"
#include "easytorch/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A list of named tensors (owns its names and tensor references). */
typedef struct et_tensor_dict et_tensor_dict;
et_tensor_dict *et_tensor_dict_new(void);
void et_tensor_dict_free(et_tensor_dict *d);
/* Adds a reference to t and a copy of name; replaces an existing name. */
et_status et_tensor_dict_set(et_tensor_dict *d, const char *name, et_tensor *t);
et_tensor *et_tensor_dict_get(const et_tensor_dict *d, const char *name); /* borrowed or NULL */
int et_tensor_dict_len(const et_tensor_dict *d);
const char *et_tensor_dict_name(const et_tensor_dict *d, int i);
et_tensor *et_tensor_dict_tensor(const et_tensor_dict *d, int i);
/* String metadata (safetensors "__metadata__"); copies both strings. */
et_status et_tensor_dict_set_meta(et_tensor_dict *d, const char *key, const char *value);
const char *et_tensor_dict_get_meta(const et_tensor_dict *d, const char *key); /* borrowed or NULL */
/* The metadata entries in order: their number and the i-th key (borrowed or NULL). */
int et_tensor_dict_meta_len(const et_tensor_dict *d);
const char *et_tensor_dict_meta_key(const et_tensor_dict *d, int i);

/* Serialize to a malloc'ed buffer (caller frees with free()). */
et_status et_safetensors_dump(const et_tensor_dict *d, uint8_t **buf, size_t *len);
/* Parse a buffer; *out is a new dict the caller frees.  F32 and I64
 * (int64) tensors are accepted (F64/F16/BF16/... files give a clear error). */
et_status et_safetensors_parse(const uint8_t *buf, size_t len, et_tensor_dict **out);
/* The same without copying: every tensor whose bytes are aligned to its
 * element size (and the host little-endian) aliases buf (external storage,
 * et_tensor_from_external) -- retain(arg) is called once for each such
 * tensor as it is made, release(arg) once when that tensor's storage dies;
 * the other tensors are copied.  buf must stay valid until the last
 * release; tensors may write their elements (in-place ops).  On failure no
 * reference is left taken. */
et_status et_safetensors_parse_shared(uint8_t *buf, size_t len, void (*retain)(void *arg),
                                      et_release_fn release, void *arg, et_tensor_dict **out);
/* Files: save writes atomically (temp file, fsync, rename, fsync dir). */
et_status et_safetensors_save(const et_tensor_dict *d, const char *path);
et_status et_safetensors_load(const char *path, et_tensor_dict **out);

/* Module state_dict helpers.  load checks every name and shape first
 * (missing, unexpected or mis-shaped entries -> error, nothing changed). */
et_tensor_dict *et_module_state_dict(const et_module *m);
et_status et_module_load_state_dict(et_module *m, const et_tensor_dict *d);

/* ---- full training checkpoints ----
 * One safetensors file with everything a training run needs to resume:
 * the module's parameters ("model.<state_dict name>"), the optimizer's state
 * tensors ("optim.<state name>", see et_optim_state_name) and, in
 * "__metadata__": format, step, optimizer type / step count / lr, scheduler
 * type / last_epoch / last_lr, generator state (for Dropout).  Floats are
 * stored raw and doubles with 17 significant digits, so the steps after a
 * restore give bit-identical numbers to an uninterrupted run.
 * To resume, build the same objects as the original run (architecture,
 * optimizer kind and hyper-parameters, scheduler kind and arguments) and
 * load into them.  `o`, `s` and `g` may be NULL (not saved / not restored);
 * a scheduler needs its optimizer.  Limitation (et_optim_load_state's): the
 * per-parameter step counts are restored as the optimizer's step count,
 * exact when every parameter had a gradient at every step. */

/* The checkpoint as a tensor dict (new; caller frees with
 * et_tensor_dict_free).  Its tensors are references to the live
 * parameters and optimizer state: dump or save it before the next step. */
et_tensor_dict *et_checkpoint_state(const et_module *m, const et_optim *o, const et_scheduler *s,
                                    const et_generator *g, int64_t step);
/* Restore from a dict made by et_checkpoint_state (or parsed from a file).
 * Checks every name, shape, type and metadata value first: on any error
 * (ET_ERR_FORMAT / ET_ERR_SHAPE, message names the entry) nothing is
 * changed.  *step (may be NULL) receives the saved step. */
et_status et_checkpoint_restore(const et_tensor_dict *d, et_module *m, et_optim *o,
                                et_scheduler *s, et_generator *g, int64_t *step);
/* File forms (atomic write as et_safetensors_save; truncated or corrupt
 * files give ET_ERR_FORMAT and change nothing). */
et_status et_checkpoint_save(const char *path, const et_module *m, const et_optim *o,
                             const et_scheduler *s, const et_generator *g, int64_t step);
et_status et_checkpoint_load(const char *path, et_module *m, et_optim *o, et_scheduler *s,
                             et_generator *g, int64_t *step);

#ifdef __cplusplus
}
#endif
#endif
