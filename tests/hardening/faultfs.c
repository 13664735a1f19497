/*
 * faultfs.c - an LD_PRELOAD shim that makes the file system fail on demand,
 * for tests/hardening/test_faults.py.
 *
 * write(), fsync() and rename() on files under $ET_FAULT_DIR fail while the
 * file $ET_FAULT_CTL holds a line "<call> <errno name>" naming them, e.g.
 * "write ENOSPC", "fsync EIO" (the file's), "fsyncdir EIO" (the directory's),
 * "rename EIO", "short ENOSPC" (a write cut in half, then ENOSPC).  An empty
 * or missing file means no fault.  Calls outside the directory are never
 * touched; the control file is read on every intercepted call (tests only).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_rename)(const char *, const char *);

static void init(void)
{
    if (!real_write) { /* POSIX's way to take a function from dlsym */
        *(void **)&real_write = dlsym(RTLD_NEXT, "write");
        *(void **)&real_fsync = dlsym(RTLD_NEXT, "fsync");
        *(void **)&real_rename = dlsym(RTLD_NEXT, "rename");
    }
}

/* The fault asked for call (or 0), read with raw syscalls. */
static int fault_for(const char *call)
{
    const char *ctl = getenv("ET_FAULT_CTL");
    if (!ctl)
        return 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char what[32], err[32];
    if (sscanf(buf, "%31s %31s", what, err) != 2 || strcmp(what, call) != 0)
        return 0;
    static const struct { const char *name; int e; } names[] = {
        {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EIO", EIO}, {"EROFS", EROFS}, {"EXDEV", EXDEV}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, err) == 0)
            return names[i].e;
    return EIO;
}

/* Is fd a file (or the directory) under $ET_FAULT_DIR? */
static int in_dir(int fd)
{
    const char *dir = getenv("ET_FAULT_DIR");
    if (!dir)
        return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    return strncmp(path, dir, strlen(dir)) == 0;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    init();
    if (fd > 2 && in_dir(fd)) {
        int e = fault_for("write");
        if (!e && (e = fault_for("short")) && n > 1) {
            static int cut;
            if (!cut++)
                return real_write(fd, buf, n / 2);
            cut = 0;
        }
        if (e) {
            errno = e;
            return -1;
        }
    }
    return real_write(fd, buf, n);
}

int fsync(int fd)
{
    init();
    if (in_dir(fd)) {
        struct stat st;
        int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        int e = fault_for(is_dir ? "fsyncdir" : "fsync");
        if (e) {
            errno = e;
            return -1;
        }
    }
    return real_fsync(fd);
}

int rename(const char *from, const char *to)
{
    init();
    const char *dir = getenv("ET_FAULT_DIR");
    if (dir && strncmp(to, dir, strlen(dir)) == 0) {
        int e = fault_for("rename");
        if (e) {
            errno = e;
            return -1;
        }
    }
    return real_rename(from, to);
}
