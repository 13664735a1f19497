/* modelfile.c - checksummed, atomically written model files (see modelfile.h). */
#include "server/formats/modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t etd_crc32(const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* The code for errno: a full disk is not a broken one. */
static etd_rc io_rc(int err)
{
    return err == ENOSPC || err == EDQUOT ? ETD_ENOSPC : ETD_EIO;
}

etd_rc etd_modelfile_mkdir(const char *dir, etd_err *e)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return etd_fail(e, ETD_EINVAL, "data dir path too long");
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return etd_fail(e, io_rc(errno), "mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return etd_fail(e, io_rc(errno), "mkdir %s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return etd_fail(e, ETD_EIO, "%s is not a directory", path);
    return ETD_OK;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* 0, or the errno of the failing write (a short write that makes no
 * progress is ENOSPC, as the kernel reports it on the next call). */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return ENOSPC;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

etd_rc etd_modelfile_write(const char *dir, const char *name, const uint8_t *payload, size_t len,
                           bool *replaced, etd_err *e)
{
    static atomic_uint counter;
    char tmp[4096], final[4096];
    bool dummy;
    if (!replaced)
        replaced = &dummy;
    *replaced = false;
    snprintf(final, sizeof final, "%s/%s%s", dir, name, ETD_FILE_EXT);
    snprintf(tmp, sizeof tmp, "%s/.%s%s.tmp.%ld.%u", dir, name, ETD_FILE_EXT, (long)getpid(),
             atomic_fetch_add(&counter, 1u));
    uint8_t hdr[ETD_FILE_HEADER];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, ETD_FILE_MAGIC, 8);
    put_u32(hdr + 8, ETD_FILE_VERSION);
    put_u32(hdr + 12, 0);
    put_u64(hdr + 16, (uint64_t)len);
    put_u32(hdr + 24, etd_crc32(payload, len));
    put_u32(hdr + 28, etd_crc32(hdr, 28));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return etd_fail(e, io_rc(errno), "creating a temp file for %s%s: %s", name, ETD_FILE_EXT,
                        strerror(errno));
    const char *step = "writing";
    int err = write_all(fd, hdr, sizeof hdr);
    if (!err)
        err = write_all(fd, payload, len);
    if (!err && fsync(fd) != 0) {
        step = "fsync of";
        err = errno;
    }
    if (close(fd) != 0 && !err) {
        step = "closing";
        err = errno;
    }
    if (!err && rename(tmp, final) != 0) {
        step = "renaming the temp file to";
        err = errno;
    }
    if (err) {
        unlink(tmp);
        return etd_fail(e, io_rc(err), "%s %s%s: %s", step, name, ETD_FILE_EXT, strerror(err));
    }
    *replaced = true;
    if ((err = fsync_dir(dir)) != 0)
        return etd_fail(e, io_rc(err), "fsync of the data directory after writing %s%s: %s", name,
                        ETD_FILE_EXT, strerror(err));
    return ETD_OK;
}

etd_rc etd_modelfile_read(const char *dir, const char *file, uint8_t **payload, size_t *len,
                          etd_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    *payload = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return etd_fail(e, io_rc(errno), "open: %s", strerror(errno));
    uint8_t hdr[ETD_FILE_HEADER];
    uint8_t *buf = NULL;
    struct stat st;
    etd_rc rc = ETD_EINVAL;
    if (fstat(fileno(f), &st) != 0 || fread(hdr, 1, sizeof hdr, f) != sizeof hdr) {
        etd_fail(e, rc, "torn file: shorter than the %u-byte header", ETD_FILE_HEADER);
        goto fail;
    }
    if (memcmp(hdr, ETD_FILE_MAGIC, 8) != 0) {
        etd_fail(e, rc, "not an easytorchd model file (bad magic)");
        goto fail;
    }
    if (get_u32(hdr + 28) != etd_crc32(hdr, 28)) {
        etd_fail(e, rc, "corrupt header (checksum mismatch)");
        goto fail;
    }
    if (get_u32(hdr + 8) != ETD_FILE_VERSION) {
        etd_fail(e, rc, "unsupported format version %u", get_u32(hdr + 8));
        goto fail;
    }
    uint64_t n = get_u64(hdr + 16);
    if ((uint64_t)st.st_size != ETD_FILE_HEADER + n) {
        etd_fail(e, rc, "torn file: %lld bytes, header says %llu", (long long)st.st_size,
                 (unsigned long long)(ETD_FILE_HEADER + n));
        goto fail;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != n) {
        etd_fail(e, buf ? ETD_EIO : ETD_ENOMEM, "read failed");
        goto fail;
    }
    if (etd_crc32(buf, (size_t)n) != get_u32(hdr + 24)) {
        etd_fail(e, rc, "corrupt payload (checksum mismatch)");
        goto fail;
    }
    fclose(f);
    *payload = buf;
    *len = (size_t)n;
    return ETD_OK;
fail:
    free(buf);
    fclose(f);
    return e->rc;
}

etd_rc etd_modelfile_remove(const char *dir, const char *name, etd_err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ETD_FILE_EXT);
    if (unlink(path) != 0 && errno != ENOENT)
        return etd_fail(e, io_rc(errno), "unlink %s%s: %s", name, ETD_FILE_EXT, strerror(errno));
    fsync_dir(dir);
    return ETD_OK;
}
