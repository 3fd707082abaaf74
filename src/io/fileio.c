/* File writes through one door (see fileio.h). The stream is a glibc cookie
 * stream (fopencookie): stdio keeps its buffering and formatting, and only the
 * final write(2) calls are ours. */
#define _GNU_SOURCE
#include "io/fileio.h"
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/alloc.h"
#include "core/fault.h"

struct bl_sink {
    int fd;
    int err; /* first write error */
};

int bl_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        size_t chunk = n;
        int fault = bl_fault_write_now(0);
        if (fault > 0) {
            errno = fault;
            return -1;
        }
        if (fault == BL_FAULT_SHORT && n > 1) chunk = n / 2;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) { /* no progress and no reason: what a full device does */
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int bl_fsync(int fd) {
    int fault = bl_fault_write_now(1);
    if (fault > 0) {
        errno = fault;
        return -1;
    }
    return fsync(fd);
}

/* A failed write returns 0, not -1: glibc (2.36) takes a cookie write's -1 as a count, and
 * fwrite then reads past the caller's buffer (found by the fault-injection tests). 0 still
 * marks the stream as failed (ferror). */
static ssize_t sink_write(void *cookie, const char *buf, size_t n) {
    bl_sink *s = cookie;
    if (bl_write_all(s->fd, buf, n) != 0) {
        if (!s->err) s->err = errno;
        return 0;
    }
    return (ssize_t)n;
}

static int sink_close(void *cookie) {
    bl_sink *s = cookie;
    int rc = close(s->fd);
    int e = errno;
    bl_free(s);
    errno = e;
    return rc;
}

FILE *bl_sink_open(int fd, bl_sink **sink) {
    bl_sink *s = bl_malloc(sizeof *s);
    if (!s) return NULL;
    s->fd = fd;
    s->err = 0;
    cookie_io_functions_t io = {.write = sink_write, .close = sink_close};
    FILE *fp = fopencookie(s, "w", io);
    if (!fp) {
        int e = errno;
        bl_free(s);
        errno = e ? e : ENOMEM;
        return NULL;
    }
    if (sink) *sink = s;
    return fp;
}

int bl_sink_fd(const bl_sink *s) {
    return s ? s->fd : -1;
}

int bl_sink_error(const bl_sink *s) {
    return s ? s->err : 0;
}

bl_status bl_write_target(const char *path, char *out, size_t cap, bl_error *err) {
    struct stat sb;
    size_t len = strlen(path);
    if (lstat(path, &sb) != 0 || !S_ISLNK(sb.st_mode)) {
        if (len >= cap)
            return bl_fail(err, BL_ERR_ARG, "%.200s...: path is too long (%zu bytes)", path, len);
        memcpy(out, path, len + 1);
        return BL_OK;
    }
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        int e = errno;
        if (e == ELOOP)
            return bl_fail(err, BL_ERR_IO,
                           "%s: too many levels of symbolic links (a link loop?); not writing "
                           "through it",
                           path);
        if (e == ENOENT)
            return bl_fail(err, BL_ERR_IO,
                           "%s: is a dangling symbolic link (its target does not exist); not "
                           "writing through it",
                           path);
        return bl_fail(err, BL_ERR_IO, "%s: cannot resolve the symbolic link: %s", path,
                       strerror(e));
    }
    if (strlen(real) >= cap)
        return bl_fail(err, BL_ERR_ARG, "%s: the link's target path is too long", path);
    memcpy(out, real, strlen(real) + 1);
    return BL_OK;
}
