/*
 * serialize.c - tensor dicts, safetensors buffers and files, module
 * state_dict.  The parser trusts nothing in the buffer: every length, offset,
 * shape and name is checked before any tensor is created.
 */
#include "nn/nn_internal.h"
#include "nn/st_bytes.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* ----------------------------------------------------------- tensor dict */

struct et_tensor_dict {
    int n, cap;
    char **names;
    et_tensor **tensors;
    int nmeta, metacap;
    char **keys;
    char **values;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

et_tensor_dict *et_tensor_dict_new(void)
{
    et_tensor_dict *d = calloc(1, sizeof(*d));
    if (!d)
        et_set_error(ET_ERR_NOMEM, "tensor_dict_new: out of memory");
    return d;
}

void et_tensor_dict_free(et_tensor_dict *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++) {
        free(d->names[i]);
        et_tensor_free(d->tensors[i]);
    }
    for (int i = 0; i < d->nmeta; i++) {
        free(d->keys[i]);
        free(d->values[i]);
    }
    free(d->names);
    free(d->tensors);
    free(d->keys);
    free(d->values);
    free(d);
}

static int find_name(char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* Grows two parallel arrays of pointers to hold one more entry. */
static bool grow2(void ***a, void ***b, int n, int *cap)
{
    if (n < *cap)
        return true;
    int nc = *cap ? *cap * 2 : 8;
    void **na = realloc(*a, (size_t)nc * sizeof(void *));
    if (!na)
        return false;
    *a = na;
    void **nb = realloc(*b, (size_t)nc * sizeof(void *));
    if (!nb)
        return false;
    *b = nb;
    *cap = nc;
    return true;
}

et_status et_tensor_dict_set(et_tensor_dict *d, const char *name, et_tensor *t)
{
    if (!d || !name || !t)
        return et_set_error_after(ET_ERR_ARG, "tensor_dict_set: NULL argument");
    if (strcmp(name, "__metadata__") == 0)
        return et_set_error(ET_ERR_ARG, "tensor_dict_set: \"__metadata__\" is reserved");
    int i = find_name(d->names, d->n, name);
    if (i >= 0) {
        et_tensor_ref(t);
        et_tensor_free(d->tensors[i]);
        d->tensors[i] = t;
        return ET_OK;
    }
    char *copy = dup_str(name);
    if (!copy || !grow2((void ***)&d->names, (void ***)&d->tensors, d->n, &d->cap)) {
        free(copy);
        return et_set_error(ET_ERR_NOMEM, "tensor_dict_set: out of memory");
    }
    d->names[d->n] = copy;
    d->tensors[d->n] = et_tensor_ref(t);
    d->n++;
    return ET_OK;
}

et_tensor *et_tensor_dict_get(const et_tensor_dict *d, const char *name)
{
    if (!d || !name)
        return NULL;
    int i = find_name(d->names, d->n, name);
    return i >= 0 ? d->tensors[i] : NULL;
}

int et_tensor_dict_len(const et_tensor_dict *d) { return d ? d->n : 0; }

const char *et_tensor_dict_name(const et_tensor_dict *d, int i)
{
    return d && i >= 0 && i < d->n ? d->names[i] : NULL;
}

et_tensor *et_tensor_dict_tensor(const et_tensor_dict *d, int i)
{
    return d && i >= 0 && i < d->n ? d->tensors[i] : NULL;
}

et_status et_tensor_dict_set_meta(et_tensor_dict *d, const char *key, const char *value)
{
    if (!d || !key || !value)
        return et_set_error(ET_ERR_ARG, "tensor_dict_set_meta: NULL argument");
    char *v = dup_str(value);
    if (!v)
        return et_set_error(ET_ERR_NOMEM, "tensor_dict_set_meta: out of memory");
    int i = find_name(d->keys, d->nmeta, key);
    if (i >= 0) {
        free(d->values[i]);
        d->values[i] = v;
        return ET_OK;
    }
    char *k = dup_str(key);
    if (!k || !grow2((void ***)&d->keys, (void ***)&d->values, d->nmeta, &d->metacap)) {
        free(k);
        free(v);
        return et_set_error(ET_ERR_NOMEM, "tensor_dict_set_meta: out of memory");
    }
    d->keys[d->nmeta] = k;
    d->values[d->nmeta] = v;
    d->nmeta++;
    return ET_OK;
}

const char *et_tensor_dict_get_meta(const et_tensor_dict *d, const char *key)
{
    if (!d || !key)
        return NULL;
    int i = find_name(d->keys, d->nmeta, key);
    return i >= 0 ? d->values[i] : NULL;
}

int et_tensor_dict_meta_len(const et_tensor_dict *d) { return d ? d->nmeta : 0; }

const char *et_tensor_dict_meta_key(const et_tensor_dict *d, int i)
{
    return d && i >= 0 && i < d->nmeta ? d->keys[i] : NULL;
}

/* ------------------------------------------------------------ byte order */

/* safetensors dtype names of the two tensor dtypes */
static const char *st_dtype(et_dtype d) { return d == ET_INT64 ? "I64" : "F32"; }

/* ------------------------------------------------------------------ dump */

et_status et_safetensors_dump(const et_tensor_dict *d, uint8_t **buf, size_t *len)
{
    if (!d || !buf || !len)
        return et_set_error(ET_ERR_ARG, "safetensors_dump: NULL argument");
    *buf = NULL;
    *len = 0;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return et_set_error(ET_ERR_NOMEM, "safetensors_dump: out of memory");
    bool ok = true;
    if (d->nmeta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; ok && i < d->nmeta; i++)
            ok = meta && cJSON_AddStringToObject(meta, d->keys[i], d->values[i]);
        ok = ok && meta;
    }
    uint64_t offset = 0;
    for (int i = 0; ok && i < d->n; i++) {
        et_tensor *t = d->tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, d->names[i]);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = offs && cJSON_AddStringToObject(e, "dtype", st_dtype(et_tensor_dtype(t)));
        for (int k = 0; ok && k < et_ndim(t); k++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)et_shape(t)[k]));
        uint64_t bytes = (uint64_t)et_numel(t) * st_elsize(et_tensor_dtype(t));
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return et_set_error(ET_ERR_NOMEM, "safetensors_dump: out of memory building the header");
    size_t hlen = strlen(json);
    size_t hpad = (hlen + 7) & ~(size_t)7;
    if (offset > SIZE_MAX - 8 - hpad) {
        free(json);
        return et_set_error(ET_ERR_NOMEM, "safetensors_dump: tensors too large");
    }
    size_t total = 8 + hpad + (size_t)offset;
    uint8_t *out = malloc(total);
    if (!out) {
        free(json);
        return et_set_error(ET_ERR_NOMEM, "safetensors_dump: out of memory (%zu bytes)", total);
    }
    put_u64le(out, hpad);
    memcpy(out + 8, json, hlen);
    memset(out + 8 + hlen, ' ', hpad - hlen);
    free(json);
    uint8_t *data = out + 8 + hpad;
    for (int i = 0; i < d->n; i++) {
        et_tensor *t = d->tensors[i];
        size_t k = (size_t)et_numel(t);
        if (et_tensor_dtype(t) == ET_INT64) {
            /* offsets are multiples of 4 only: go through an aligned copy */
            et_tensor *c = nn_keep_clone(t);
            if (!c) {
                free(out);
                return et_errcode();
            }
            if (k)
                memcpy(data, et_data_int64(c), k * 8);
            et_tensor_free(c);
            if (!host_is_little())
                swap64(data, k);
            data += k * 8;
            continue;
        }
        /* data is 8-aligned (malloc + 8 + hpad) and offsets are multiples of 4 */
        et_copy_to(t, (float *)(void *)data);
        if (!host_is_little())
            swap32(data, k);
        data += k * 4;
    }
    *buf = out;
    *len = total;
    return ET_OK;
}

/* ----------------------------------------------------------------- files */

static et_status write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return et_set_error(ET_ERR_IO, "safetensors_save: writing %s: %s", path,
                                strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return ET_OK;
}

static void fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = dup_str(".");
    } else {
        size_t k = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(k + 1);
        if (dir) {
            memcpy(dir, path, k);
            dir[k] = '\0';
        }
    }
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

et_status et_safetensors_save(const et_tensor_dict *d, const char *path)
{
    if (!d || !path || !*path)
        return et_set_error(ET_ERR_ARG, "safetensors_save: NULL argument");
    uint8_t *buf;
    size_t len;
    et_status st = et_safetensors_dump(d, &buf, &len);
    if (st != ET_OK)
        return st;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(buf);
        return et_set_error(ET_ERR_NOMEM, "safetensors_save: out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = et_set_error(ET_ERR_IO, "safetensors_save: cannot create a file next to %s: %s",
                          path, strerror(errno));
        free(tmp);
        free(buf);
        return st;
    }
    st = write_all(fd, buf, len, path);
    free(buf);
    if (st == ET_OK && fsync(fd) != 0)
        st = et_set_error(ET_ERR_IO, "safetensors_save: fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == ET_OK)
        st = et_set_error(ET_ERR_IO, "safetensors_save: close %s: %s", tmp, strerror(errno));
    if (st == ET_OK && rename(tmp, path) != 0)
        st = et_set_error(ET_ERR_IO, "safetensors_save: rename to %s: %s", path,
                          strerror(errno));
    if (st != ET_OK)
        unlink(tmp);
    else
        fsync_dir_of(path);
    free(tmp);
    return st;
}

et_status et_safetensors_load(const char *path, et_tensor_dict **out)
{
    if (!path || !out)
        return et_set_error(ET_ERR_ARG, "safetensors_load: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return et_set_error(ET_ERR_IO, "safetensors_load: cannot open %s: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return et_set_error(ET_ERR_IO, "safetensors_load: %s is not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (!buf) {
        close(fd);
        return et_set_error(ET_ERR_NOMEM, "safetensors_load: out of memory for %s", path);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    et_status st = got == len ? et_safetensors_parse(buf, len, out)
                              : et_set_error(ET_ERR_IO, "safetensors_load: short read on %s",
                                             path);
    free(buf);
    return st;
}

/* ------------------------------------------------------------ state dict */

et_tensor_dict *et_module_state_dict(const et_module *m)
{
    if (!m) {
        et_set_error(ET_ERR_ARG, "module_state_dict: NULL module");
        return NULL;
    }
    et_tensor_dict *d = et_tensor_dict_new();
    for (int i = 0; d && i < et_module_num_state(m); i++) {
        et_tensor *t = nn_keep_detach(et_module_state_tensor(m, i));
        et_status st = t ? et_tensor_dict_set(d, et_module_state_name(m, i), t) : ET_ERR_NOMEM;
        et_tensor_free(t);
        if (st != ET_OK) {
            et_tensor_dict_free(d);
            return NULL;
        }
    }
    return d;
}

/* Is src's every value representable in dst's dtype (torch's
 * load_state_dict copies across dtypes; an int64 buffer takes integral
 * floats only)? */
static et_status check_convertible(const char *name, const et_tensor *src, const et_tensor *dst)
{
    if (et_tensor_dtype(dst) != ET_INT64 || et_tensor_dtype(src) == ET_INT64)
        return ET_OK;
    nn_buf b;
    et_status st = nn_buf_acquire(&b, (et_tensor *)src);
    if (st != ET_OK)
        return st;
    for (int64_t k = 0; st == ET_OK && k < et_numel(src); k++)
        if (b.p[k] != floorf(b.p[k]) || !(fabsf(b.p[k]) < 9.2e18f))
            st = et_set_error(ET_ERR_FORMAT, "load_state_dict: %s is int64 but element %lld of "
                              "the given tensor is %g", name, (long long)k, (double)b.p[k]);
    nn_buf_release(&b, false);
    return st;
}

/* dst = src converted to dst's dtype (checked by check_convertible). */
static et_status copy_entry(et_tensor *dst, et_tensor *src)
{
    et_status st;
    if (et_tensor_dtype(dst) == ET_INT64) {
        int64_t *tmp = malloc((size_t)(et_numel(dst) > 0 ? et_numel(dst) : 1) * sizeof *tmp);
        if (!tmp)
            return et_set_error(ET_ERR_NOMEM, "load_state_dict: out of memory");
        st = et_copy_to_int64(src, tmp);
        if (st == ET_OK)
            st = et_copy_from_int64(dst, tmp);
        free(tmp);
        return st;
    }
    et_pool_begin();
    et_tensor *f = et_to_dtype(src, ET_FLOAT32);
    nn_buf b;
    st = f ? nn_buf_acquire(&b, f) : et_errcode();
    if (st == ET_OK) {
        st = et_copy_from(dst, b.p);
        nn_buf_release(&b, false);
    }
    et_pool_end();
    return st;
}

et_status et_module_load_state_dict(et_module *m, const et_tensor_dict *d)
{
    if (!m || !d)
        return et_set_error(ET_ERR_ARG, "module_load_state_dict: NULL argument");
    int ns = et_module_num_state(m);
    for (int i = 0; i < d->n; i++) {
        bool known = false;
        for (int k = 0; k < ns && !known; k++)
            known = strcmp(et_module_state_name(m, k), d->names[i]) == 0;
        if (!known)
            return et_set_error(ET_ERR_FORMAT, "load_state_dict: unexpected key \"%s\"",
                                d->names[i]);
    }
    for (int i = 0; i < ns; i++) {
        const char *name = et_module_state_name(m, i);
        et_tensor *src = et_tensor_dict_get(d, name);
        if (!src)
            return et_set_error(ET_ERR_FORMAT, "load_state_dict: missing key \"%s\"", name);
        et_tensor *p = et_module_state_tensor(m, i);
        if (!et_same_shape(src, p)) {
            char a[96], b[96];
            return et_set_error(ET_ERR_SHAPE, "load_state_dict: size mismatch for %s: copying "
                                "a param with shape %s, the shape in current model is %s", name,
                                NN_SHAPE_STR(src, a), NN_SHAPE_STR(p, b));
        }
        et_status st = check_convertible(name, src, p);
        if (st != ET_OK)
            return st;
    }
    for (int i = 0; i < ns; i++) {
        et_status st = copy_entry(et_module_state_tensor(m, i),
                                  et_tensor_dict_get(d, et_module_state_name(m, i)));
        if (st != ET_OK)
            return st;
    }
    return ET_OK;
}
