/* check_persist.c - easytorchd's model file format (formats/modelfile.h): CRC-32,
 * write/read round trip, every truncation and every single-bit flip of a
 * small file rejected, atomic replace, remove, mkdir. */
#include "check_server.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/formats/modelfile.h"

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_persist_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    remove_scratch_dir(dir);
}

static uint8_t *slurp(const char *file, size_t *len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *file, const uint8_t *b, size_t len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

static int count_files(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A small stand-in payload (the format does not interpret it). */
static const uint8_t payload[] = "{\"__metadata__\":{\"easytorch\":\"{}\"}}\x01\x02\x03\x00\xff";

START_TEST(test_crc32_check_value)
{
    /* the CRC-32/ISO-HDLC check value (zlib.crc32(b"123456789") == 0xCBF43926) */
    ck_assert_uint_eq(etd_crc32("123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(etd_crc32("", 0), 0);
}
END_TEST

START_TEST(test_write_read_round_trip)
{
    etd_err err = {0};
    ck_assert_msg((etd_modelfile_write(dir, "m1", payload, sizeof payload, NULL, &err) == ETD_OK), "%s", err.msg);
    uint8_t *got = NULL;
    size_t len = 0;
    ck_assert_msg((etd_modelfile_read(dir, "m1" ETD_FILE_EXT, &got, &len, &err) == ETD_OK), "%s", err.msg);
    ck_assert_uint_eq(len, sizeof payload);
    ck_assert_mem_eq(got, payload, len);
    free(got);
    /* the header is as persist.h documents it */
    size_t flen;
    uint8_t *f = slurp("m1" ETD_FILE_EXT, &flen);
    ck_assert_uint_eq(flen, ETD_FILE_HEADER + sizeof payload);
    ck_assert_mem_eq(f, "ETMODEL\0", 8);
    ck_assert_uint_eq(f[8], ETD_FILE_VERSION);
    ck_assert_uint_eq(f[16], sizeof payload);
    free(f);
    /* an empty payload is a valid file too */
    ck_assert((etd_modelfile_write(dir, "empty", payload, 0, NULL, &err) == ETD_OK));
    ck_assert((etd_modelfile_read(dir, "empty" ETD_FILE_EXT, &got, &len, &err) == ETD_OK));
    ck_assert_uint_eq(len, 0);
    free(got);
}
END_TEST

START_TEST(test_every_truncation_rejected)
{
    etd_err err = {0};
    ck_assert((etd_modelfile_write(dir, "m", payload, sizeof payload, NULL, &err) == ETD_OK));
    size_t flen;
    uint8_t *f = slurp("m" ETD_FILE_EXT, &flen);
    for (size_t n = 0; n < flen; n++) {
        spit("t" ETD_FILE_EXT, f, n);
        uint8_t *got = (uint8_t *)"untouched";
        size_t len = 0;
        err.msg[0] = '\0';
        ck_assert_msg(!(etd_modelfile_read(dir, "t" ETD_FILE_EXT, &got, &len, &err) == ETD_OK),
                      "a file cut to %zu of %zu bytes was accepted", n, flen);
        ck_assert_msg(err.msg[0] != '\0', "no message for a cut at %zu", n);
    }
    /* and a trailing byte too many */
    uint8_t *longer = malloc(flen + 1);
    memcpy(longer, f, flen);
    longer[flen] = 0;
    spit("t" ETD_FILE_EXT, longer, flen + 1);
    uint8_t *got;
    size_t len;
    ck_assert(!(etd_modelfile_read(dir, "t" ETD_FILE_EXT, &got, &len, &err) == ETD_OK));
    free(longer);
    free(f);
}
END_TEST

START_TEST(test_every_bit_flip_rejected)
{
    etd_err err = {0};
    ck_assert((etd_modelfile_write(dir, "m", payload, sizeof payload, NULL, &err) == ETD_OK));
    size_t flen;
    uint8_t *f = slurp("m" ETD_FILE_EXT, &flen);
    for (size_t i = 0; i < flen; i++)
        for (int bit = 0; bit < 8; bit++) {
            f[i] ^= (uint8_t)(1u << bit);
            spit("t" ETD_FILE_EXT, f, flen);
            uint8_t *got = NULL;
            size_t len = 0;
            ck_assert_msg(!(etd_modelfile_read(dir, "t" ETD_FILE_EXT, &got, &len, &err) == ETD_OK),
                          "bit %d of byte %zu flipped was accepted", bit, i);
            f[i] ^= (uint8_t)(1u << bit);
        }
    free(f);
}
END_TEST

START_TEST(test_missing_file_rejected)
{
    etd_err err = {0};
    uint8_t *got;
    size_t len;
    ck_assert(!(etd_modelfile_read(dir, "nope" ETD_FILE_EXT, &got, &len, &err) == ETD_OK));
    ck_assert(err.msg[0] != '\0');
}
END_TEST

START_TEST(test_write_replaces_atomically_and_leaves_no_temp_files)
{
    etd_err err = {0};
    const uint8_t v2[] = "second version, longer than the first one";
    ck_assert((etd_modelfile_write(dir, "m", payload, sizeof payload, NULL, &err) == ETD_OK));
    ck_assert((etd_modelfile_write(dir, "m", v2, sizeof v2, NULL, &err) == ETD_OK));
    uint8_t *got;
    size_t len;
    ck_assert((etd_modelfile_read(dir, "m" ETD_FILE_EXT, &got, &len, &err) == ETD_OK));
    ck_assert_uint_eq(len, sizeof v2);
    ck_assert_mem_eq(got, v2, len);
    free(got);
    ck_assert_int_eq(count_files(), 1); /* temp file renamed, none left behind */
    /* writing into a directory that is gone fails and leaves nothing */
    char gone[300];
    snprintf(gone, sizeof gone, "%s/no/such/dir", dir);
    ck_assert(!(etd_modelfile_write(gone, "m", v2, sizeof v2, NULL, &err) == ETD_OK));
    ck_assert_int_eq(count_files(), 1);
}
END_TEST

START_TEST(test_remove_and_mkdir)
{
    etd_err err = {0};
    char sub[300], sub2[320];
    ck_assert((etd_modelfile_write(dir, "m", payload, sizeof payload, NULL, &err) == ETD_OK));
    ck_assert((etd_modelfile_remove(dir, "m", &err) == ETD_OK));
    ck_assert_int_eq(count_files(), 0);
    ck_assert_msg((etd_modelfile_remove(dir, "m", &err) == ETD_OK), "missing is fine: %s", err.msg);
    snprintf(sub, sizeof sub, "%s/a", dir);
    snprintf(sub2, sizeof sub2, "%s/a/b", dir);
    ck_assert_msg((etd_modelfile_mkdir(sub2, &err) == ETD_OK), "%s", err.msg);
    struct stat st;
    ck_assert_int_eq(stat(sub2, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert((etd_modelfile_mkdir(sub2, &err) == ETD_OK)); /* existing is fine */
    rmdir(sub2);
    rmdir(sub);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("persist");
    TCase *tc = tcase_create("crc32");
    tcase_add_test(tc, test_crc32_check_value);
    suite_add_tcase(s, tc);
    tc = tcase_create("write_read");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_write_read_round_trip);
    tcase_add_test(tc, test_every_truncation_rejected);
    tcase_add_test(tc, test_every_bit_flip_rejected);
    tcase_add_test(tc, test_missing_file_rejected);
    tcase_add_test(tc, test_write_replaces_atomically_and_leaves_no_temp_files);
    suite_add_tcase(s, tc);
    tc = tcase_create("remove_mkdir");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_remove_and_mkdir);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
