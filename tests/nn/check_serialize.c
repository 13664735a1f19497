/*
 * check_serialize.c - unit tests of serialize.h: tensor dicts, safetensors
 * dump/parse (including every truncation and header bit flips of a small
 * file), atomic files and module state_dict.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nn_check.h"

/* A dict with a 2x3, a 0-d, an empty [0, 4] tensor and one metadata key. */
static et_tensor_dict *sample_dict(void)
{
    et_tensor_dict *d = et_tensor_dict_new();
    float v[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 65504};
    et_tensor *a = et_tensor_new(v, ET_SHAPE(2, 3));
    et_tensor *s = et_scalar(7.25f);
    et_tensor *e = et_zeros(ET_SHAPE(0, 4));
    et_tensor_dict_set(d, "layer.weight", a);
    et_tensor_dict_set(d, "scalar", s);
    et_tensor_dict_set(d, "empty", e);
    et_tensor_dict_set_meta(d, "format", "pt");
    et_tensor_free(a);
    et_tensor_free(s);
    et_tensor_free(e);
    return d;
}

static void assert_same_dict(const et_tensor_dict *a, const et_tensor_dict *b)
{
    ck_assert_int_eq(et_tensor_dict_len(a), et_tensor_dict_len(b));
    for (int i = 0; i < et_tensor_dict_len(a); i++) {
        const char *name = et_tensor_dict_name(a, i);
        et_tensor *x = et_tensor_dict_tensor(a, i), *y = et_tensor_dict_get(b, name);
        ck_assert_msg(y != NULL, "missing %s", name);
        ck_assert(et_same_shape(x, y));
        ck_assert_int_eq(memcmp(et_data(x), et_data(y), (size_t)et_numel(x) * 4), 0);
    }
}

START_TEST(dict_set_get_replace_and_meta)
{
    et_tensor_dict *d = sample_dict();
    ck_assert_int_eq(et_tensor_dict_len(d), 3);
    ck_assert_str_eq(et_tensor_dict_name(d, 1), "scalar");
    ck_assert_ptr_null(et_tensor_dict_get(d, "nope"));
    et_tensor *t = et_ones(ET_SHAPE(1));
    ck_assert_int_eq(et_tensor_dict_set(d, "scalar", t), ET_OK);
    ck_assert_int_eq(et_tensor_dict_len(d), 3);
    ck_assert_ptr_eq(et_tensor_dict_get(d, "scalar"), t);
    ck_assert_int_eq(et_tensor_dict_set(d, "__metadata__", t), ET_ERR_ARG);
    et_tensor_free(t);
    ck_assert_str_eq(et_tensor_dict_get_meta(d, "format"), "pt");
    et_tensor_dict_set_meta(d, "format", "easytorch");
    ck_assert_str_eq(et_tensor_dict_get_meta(d, "format"), "easytorch");
    ck_assert_ptr_null(et_tensor_dict_get_meta(d, "x"));
    ck_assert_ptr_null(et_tensor_dict_name(d, 3));
    /* the metadata in order: a replaced value keeps its place */
    ck_assert_int_eq(et_tensor_dict_meta_len(d), 1);
    et_tensor_dict_set_meta(d, "epochs", "2");
    ck_assert_int_eq(et_tensor_dict_meta_len(d), 2);
    ck_assert_str_eq(et_tensor_dict_meta_key(d, 0), "format");
    ck_assert_str_eq(et_tensor_dict_meta_key(d, 1), "epochs");
    ck_assert_ptr_null(et_tensor_dict_meta_key(d, 2));
    ck_assert_ptr_null(et_tensor_dict_meta_key(d, -1));
    ck_assert_int_eq(et_tensor_dict_meta_len(NULL), 0);
    et_tensor_dict_free(d);
    et_tensor_dict_free(NULL);
}
END_TEST

START_TEST(dump_layout_and_parse_round_trip)
{
    et_tensor_dict *d = sample_dict();
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(et_safetensors_dump(d, &buf, &len), ET_OK);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    ck_assert_int_eq(n % 8, 0);
    ck_assert_uint_eq(len, 8 + n + 4 * (6 + 1));
    ck_assert_int_eq(buf[8], '{');
    et_tensor_dict *back;
    ck_assert_int_eq(et_safetensors_parse(buf, len, &back), ET_OK);
    assert_same_dict(d, back);
    ck_assert_int_eq(et_ndim(et_tensor_dict_get(back, "scalar")), 0);
    ck_assert_str_eq(et_tensor_dict_get_meta(back, "format"), "pt");
    et_tensor_dict_free(back);
    free(buf);
    et_tensor_dict_free(d);
}
END_TEST

START_TEST(every_truncation_is_an_error)
{
    et_tensor_dict *d = sample_dict();
    uint8_t *buf;
    size_t len;
    et_safetensors_dump(d, &buf, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(copy, buf, cut);
        et_tensor_dict *out = (et_tensor_dict *)1;
        ck_assert_int_eq(et_safetensors_parse(copy, cut, &out), ET_ERR_FORMAT);
        ck_assert_ptr_null(out);
        free(copy);
    }
    free(buf);
    et_tensor_dict_free(d);
}
END_TEST

START_TEST(header_bit_flips_never_crash)
{
    et_tensor_dict *d = sample_dict();
    uint8_t *buf;
    size_t len;
    et_safetensors_dump(d, &buf, &len);
    uint64_t n = 0; /* the header spans bytes [0, 8 + n) */
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    size_t hend = 8 + (size_t)n;
    int errors = 0, oks = 0;
    for (size_t i = 0; i < hend; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *copy = malloc(len);
            memcpy(copy, buf, len);
            copy[i] ^= (uint8_t)(1u << bit);
            et_tensor_dict *out = NULL;
            et_status st = et_safetensors_parse(copy, len, &out);
            if (st == ET_OK) {
                /* e.g. a flipped letter of a name: still a valid file */
                ck_assert_ptr_nonnull(out);
                oks++;
            } else {
                ck_assert_int_eq(st, ET_ERR_FORMAT);
                ck_assert_ptr_null(out);
                errors++;
            }
            et_tensor_dict_free(out);
            free(copy);
        }
    }
    ck_assert_int_gt(errors, oks);
    free(buf);
    et_tensor_dict_free(d);
}
END_TEST

START_TEST(random_byte_mutations_never_crash)
{
    et_tensor_dict *d = sample_dict();
    uint8_t *buf;
    size_t len;
    et_safetensors_dump(d, &buf, &len);
    et_generator *g = et_generator_new(99);
    for (int it = 0; it < 3000; it++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        int k = 1 + (int)(et_generator_next(g) % 3);
        for (int j = 0; j < k; j++) /* mostly the header and its length field */
            copy[et_generator_next(g) % (len < 96 ? len : 96)] = (uint8_t)et_generator_next(g);
        et_tensor_dict *out = NULL;
        et_status st = et_safetensors_parse(copy, len, &out);
        ck_assert(st == ET_OK || st == ET_ERR_FORMAT);
        ck_assert((st == ET_OK) == (out != NULL));
        et_tensor_dict_free(out);
        free(copy);
    }
    et_generator_free(g);
    free(buf);
    et_tensor_dict_free(d);
}
END_TEST

/* Builds a file from a header string and `data_len` bytes of data. */
static et_status parse_header_text(const char *json, size_t data_len)
{
    size_t n = strlen(json), len = 8 + n + data_len;
    uint8_t *b = calloc(1, len);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, json, n);
    et_tensor_dict *out = NULL;
    et_status st = et_safetensors_parse(b, len, &out);
    if (st == ET_OK)
        et_tensor_dict_free(out);
    else
        ck_assert_ptr_null(out);
    free(b);
    return st;
}

START_TEST(malformed_headers_are_rejected_with_reasons)
{
    static const struct {
        const char *json;
        size_t data;
        const char *why;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "F64"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "F16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "start"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "start"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, "cover"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, "cover"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "dimension"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "dimension"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,4]}}", 4, "large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown"},
        {"{\"a\":[1,2]}", 0, "object"},
        {"[1,2,3]", 0, "object"},
        {"{\"a\":", 0, "JSON"},
        {"{} x", 0, "JSON"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "string"},
        {"{\"__metadata__\":[]}", 0, "metadata"},
        {"\001{}", 0, "start with '{'"},   /* cJSON skips any byte below 33 */
        {"\t\t\v{}", 0, "start with '{'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse_header_text(bad[i].json, bad[i].data) == ET_ERR_FORMAT,
                      "accepted: %s", bad[i].json);
        ck_assert_msg(strstr(et_errmsg(), bad[i].why) != NULL, "%s: message \"%s\" lacks \"%s\"",
                      bad[i].json, et_errmsg(), bad[i].why);
    }
    /* valid corner cases: empty header object, trailing spaces, metadata */
    ck_assert_int_eq(parse_header_text("{}      ", 0), ET_OK);
    ck_assert_int_eq(parse_header_text(" \t\r\n{}", 0), ET_OK);
    ck_assert_int_eq(parse_header_text("{\"__metadata__\":{\"a\":\"b\"},\"t\":{\"dtype\":\"F32\","
                                       "\"shape\":[],\"data_offsets\":[0,4]}}", 4), ET_OK);
}
END_TEST

START_TEST(int64_tensors_round_trip_as_I64)
{
    et_tensor_dict *d = et_tensor_dict_new();
    const int64_t big[3] = {((int64_t)1 << 40) + 1, -7, INT64_MAX};
    et_tensor *i = et_tensor_new_int64(big, ET_SHAPE(3));
    et_tensor *n = et_tensor_new_int64((int64_t[]){5}, NULL, 0);   /* like num_batches_tracked */
    et_tensor *f = et_tensor_new((float[]){1.5f}, ET_SHAPE(1));
    ck_assert_int_eq(et_tensor_dict_set(d, "f", f), ET_OK);          /* 4 bytes: I64 at offset 4 */
    ck_assert_int_eq(et_tensor_dict_set(d, "i", i), ET_OK);
    ck_assert_int_eq(et_tensor_dict_set(d, "n", n), ET_OK);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(et_safetensors_dump(d, &buf, &len), ET_OK);
    char *hdr = strndup((const char *)buf + 8, len - 8);
    ck_assert_ptr_nonnull(strstr(hdr, "\"i\":{\"shape\":[3],\"data_offsets\":[4,28],\"dtype\":\"I64\"}"));
    free(hdr);
    et_tensor_dict *back;
    ck_assert_int_eq(et_safetensors_parse(buf, len, &back), ET_OK);
    et_tensor *bi = et_tensor_dict_get(back, "i"), *bn = et_tensor_dict_get(back, "n");
    ck_assert_int_eq(et_tensor_dtype(bi), ET_INT64);
    ck_assert_int_eq(et_ndim(bn), 0);
    for (int k = 0; k < 3; k++)
        ck_assert(et_data_int64(bi)[k] == big[k]);
    ck_assert(et_data_int64(bn)[0] == 5);
    ck_assert_int_eq(et_tensor_dtype(et_tensor_dict_get(back, "f")), ET_FLOAT32);
    /* an I64 entry whose offsets give 4 bytes per element is rejected */
    ck_assert_int_eq(parse_header_text("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],"
                                       "\"data_offsets\":[0,8]}}", 8), ET_ERR_FORMAT);
    et_tensor_dict_free(back);
    free(buf);
    et_tensor_free(i);
    et_tensor_free(n);
    et_tensor_free(f);
    et_tensor_dict_free(d);
}
END_TEST

START_TEST(header_length_field_is_checked)
{
    uint8_t b[16] = {0};
    et_tensor_dict *out = NULL;
    /* length larger than the buffer, all ones, and one with a NUL in the JSON */
    b[0] = 100;
    ck_assert_int_eq(et_safetensors_parse(b, sizeof b, &out), ET_ERR_FORMAT);
    memset(b, 0xff, 8);
    ck_assert_int_eq(et_safetensors_parse(b, sizeof b, &out), ET_ERR_FORMAT);
    memset(b, 0, sizeof b);
    b[0] = 4;
    memcpy(b + 8, "{}\0 ", 4);
    ck_assert_int_eq(et_safetensors_parse(b, 12, &out), ET_ERR_FORMAT);
    ck_assert_int_eq(et_safetensors_parse(NULL, 0, &out), ET_ERR_FORMAT);
    ck_assert_int_eq(et_safetensors_parse(b, 12, NULL), ET_ERR_ARG);
    ck_assert_ptr_null(out);
}
END_TEST

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/et_check_serialize_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(save_and_load_files_atomically)
{
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    et_tensor_dict *d = sample_dict(), *back = NULL;
    ck_assert_int_eq(et_safetensors_save(d, path), ET_OK);
    ck_assert_int_eq(et_safetensors_save(d, path), ET_OK); /* replaces */
    ck_assert_int_eq(count_dir_entries(tmpdir), 1);        /* no temp file left */
    ck_assert_int_eq(et_safetensors_load(path, &back), ET_OK);
    assert_same_dict(d, back);
    et_tensor_dict_free(back);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/dir/x.safetensors", tmpdir);
    ck_assert_int_eq(et_safetensors_save(d, bad), ET_ERR_IO);
    ck_assert_int_eq(et_safetensors_load(bad, &back), ET_ERR_IO);
    ck_assert_ptr_null(back);
    ck_assert_int_eq(et_safetensors_load(tmpdir, &back), ET_ERR_IO); /* a directory */
    /* a truncated file is a format error */
    FILE *f = fopen(path, "r+b");
    ck_assert_int_eq(ftruncate(fileno(f), 20), 0);
    fclose(f);
    ck_assert_int_eq(et_safetensors_load(path, &back), ET_ERR_FORMAT);
    unlink(path);
    rmdir(tmpdir);
    et_tensor_dict_free(d);
}
END_TEST

static et_module *mlp(uint64_t seed)
{
    et_generator *g = et_generator_new(seed);
    et_module *s = et_sequential_new();
    et_sequential_append(s, et_linear_new(3, 4, true, g));
    et_sequential_append(s, et_relu_new());
    et_sequential_append(s, et_linear_new(4, 2, true, g));
    et_generator_free(g);
    return s;
}

START_TEST(state_dict_round_trip_through_a_buffer)
{
    et_module *a = mlp(1), *b = mlp(2);
    et_tensor_dict *sd = et_module_state_dict(a);
    ck_assert_int_eq(et_tensor_dict_len(sd), 4);
    ck_assert_str_eq(et_tensor_dict_name(sd, 2), "2.weight");
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(et_safetensors_dump(sd, &buf, &len), ET_OK);
    et_tensor_dict *back;
    ck_assert_int_eq(et_safetensors_parse(buf, len, &back), ET_OK);
    ck_assert_int_eq(et_module_load_state_dict(b, back), ET_OK);
    et_tensor *x = et_ones(ET_SHAPE(2, 3));
    et_tensor *ya = et_module_forward(a, x), *yb = et_module_forward(b, x);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(et_data(ya)[i], et_data(yb)[i]);
    et_tensor_free(ya);
    et_tensor_free(yb);
    et_tensor_free(x);
    et_tensor_dict_free(back);
    et_tensor_dict_free(sd);
    free(buf);
    et_module_free(a);
    et_module_free(b);
}
END_TEST

START_TEST(load_state_dict_is_all_or_nothing)
{
    et_module *a = mlp(1), *b = mlp(2);
    float before = et_data(et_module_param(b, 0))[0];
    for (int k = 0; k < 3; k++) {
        et_tensor_dict *sd = et_module_state_dict(a);
        et_tensor *odd = et_zeros(ET_SHAPE(4, 4));
        et_status want;
        if (k == 0) { /* mis-shaped last entry */
            et_tensor_dict_set(sd, "2.bias", odd);
            want = ET_ERR_SHAPE;
        } else if (k == 1) { /* unexpected entry */
            et_tensor_dict_set(sd, "3.weight", odd);
            want = ET_ERR_FORMAT;
        } else { /* missing entry: a dict without 2.bias */
            et_tensor_dict *part = et_tensor_dict_new();
            for (int i = 0; i < 3; i++)
                et_tensor_dict_set(part, et_tensor_dict_name(sd, i), et_tensor_dict_tensor(sd, i));
            et_tensor_dict_free(sd);
            sd = part;
            want = ET_ERR_FORMAT;
        }
        ck_assert_int_eq(et_module_load_state_dict(b, sd), want);
        ck_assert_float_eq(et_data(et_module_param(b, 0))[0], before);
        et_tensor_free(odd);
        et_tensor_dict_free(sd);
    }
    et_module_free(a);
    et_module_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_serialize");
    TCase *tc = tcase_create("dict");
    tcase_add_test(tc, dict_set_get_replace_and_meta);
    suite_add_tcase(s, tc);
    tc = tcase_create("safetensors");
    tcase_add_test(tc, dump_layout_and_parse_round_trip);
    tcase_add_test(tc, int64_tensors_round_trip_as_I64);
    tcase_add_test(tc, every_truncation_is_an_error);
    tcase_add_test(tc, header_bit_flips_never_crash);
    tcase_add_test(tc, random_byte_mutations_never_crash);
    tcase_add_test(tc, malformed_headers_are_rejected_with_reasons);
    tcase_add_test(tc, header_length_field_is_checked);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_test(tc, save_and_load_files_atomically);
    suite_add_tcase(s, tc);
    tc = tcase_create("state_dict");
    tcase_add_test(tc, state_dict_round_trip_through_a_buffer);
    tcase_add_test(tc, load_state_dict_is_all_or_nothing);
    suite_add_tcase(s, tc);
    return nn_run_suite(s);
}
