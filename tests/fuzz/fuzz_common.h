/*
 * fuzz_common.h - helpers shared by the libFuzzer harnesses (tests/fuzz).
 *
 * Each harness keeps one scratch directory (under /dev/shm when it exists,
 * else $TMPDIR or /tmp) for model files and empties it after every input, so
 * an input never sees what an earlier one left behind.
 */
#ifndef ET_FUZZ_COMMON_H
#define ET_FUZZ_COMMON_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Scratch directory made once per process; removed at exit. */
static char fz_dir[512];

static void fz_empty_dir(void)
{
    DIR *d = opendir(fz_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void fz_remove_dir(void)
{
    fz_empty_dir();
    rmdir(fz_dir);
}

static const char *fz_scratch(void)
{
    if (fz_dir[0])
        return fz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(fz_dir, sizeof fz_dir, "%s/et-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(fz_dir)) {
        perror("mkdtemp");
        abort(); /* harness setup, not input: nothing to fuzz without it */
    }
    atexit(fz_remove_dir);
    return fz_dir;
}

#endif
