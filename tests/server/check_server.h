/* check_server.h - small helpers shared by the daemon's Check tests. */
#ifndef CHECK_SERVER_H
#define CHECK_SERVER_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Remove the files of a flat scratch directory, then the directory. */
static inline void remove_scratch_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* A new scratch directory (name in buf) holding copies of the model files
 * (non-dot files) of src: a second registry over the same models needs a
 * data dir of its own, as a data dir has one owner at a time. */
static inline const char *copy_scratch_dir(const char *src, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.copy_XXXXXX", src);
    ck_assert_ptr_nonnull(mkdtemp(buf));
    DIR *d = opendir(src);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char p[700], q[700];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", src, e->d_name);
        snprintf(q, sizeof q, "%s/%s", buf, e->d_name);
        FILE *in = fopen(p, "rb"), *out = fopen(q, "wb");
        ck_assert(in && out);
        char chunk[8192];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
            ck_assert_uint_eq(fwrite(chunk, 1, n, out), n);
        fclose(in);
        fclose(out);
    }
    closedir(d);
    return buf;
}

/* Run s; the process exit status (0 when every check passed). */
static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
