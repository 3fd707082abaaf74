/* Atomic file replacement: a file is never seen half-written.
 *
 * Writes go to "<path>.tmp.XXXXXX" (mkstemp) in the destination's own
 * directory, so the final rename(2) stays within one filesystem and is atomic:
 * a reader sees either the old file or the complete new one. Before the
 * rename the data is fsync'ed (otherwise a crash could leave the new name
 * pointing to empty blocks); after it the directory is fsync'ed so the rename
 * itself survives a crash. Every failure removes the temp file and leaves the
 * old destination as it was.
 *
 * mkstemp creates files with mode 0600; the temp file is given the mode of
 * the file it replaces, or 0644 for a new file, so the result looks like an
 * ordinary fopen'ed file. (Reading the umask is not thread-safe, hence the
 * fixed default.) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "batchlab/io.h"

static const char tmp_suffix[] = ".tmp.XXXXXX";

bl_status bl_atomic_open(bl_atomic_file *af, const char *path, bl_error *err) {
    memset(af, 0, sizeof *af);
    if (!path || !path[0]) return bl_fail(err, BL_ERR_ARG, "atomic write: empty path");
    size_t len = strlen(path);
    if (len + sizeof tmp_suffix > sizeof af->tmp)
        return bl_fail(err, BL_ERR_ARG, "%.200s...: path is too long (%zu bytes)", path, len);
    memcpy(af->path, path, len + 1);
    memcpy(af->tmp, path, len);
    memcpy(af->tmp + len, tmp_suffix, sizeof tmp_suffix);

    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int e = errno;
        af->tmp[0] = '\0';
        return bl_fail(err, BL_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                       strerror(e));
    }
    struct stat old;
    mode_t mode = stat(path, &old) == 0 ? (old.st_mode & 07777) : 0644;
    (void)fchmod(fd, mode); /* best effort: the data matters more than the mode */
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        af->tmp[0] = '\0';
        return bl_fail(err, BL_ERR_IO, "%s: fdopen of temporary file failed: %s", path,
                       strerror(e));
    }
    return BL_OK;
}

void bl_atomic_abort(bl_atomic_file *af) {
    if (!af) return;
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    if (af->tmp[0]) unlink(af->tmp);
    af->tmp[0] = '\0';
}

/* Directory part of path ("." when there is none, "/" for "/x"). */
static void dir_of(char *out, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
    } else if (slash == path) {
        snprintf(out, cap, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= cap) n = cap - 1;
        memcpy(out, path, n);
        out[n] = '\0';
    }
}

/* Makes the rename durable. Filesystems that cannot fsync a directory
 * (EINVAL, ENOTSUP) are not an error: there is nothing more we could do. */
static bl_status sync_dir(const char *path, bl_error *err) {
    char dir[4096];
    dir_of(dir, sizeof dir, path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return bl_fail(err, BL_ERR_IO, "%s: written, but opening its directory to sync failed: %s",
                       path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return bl_fail(err, BL_ERR_IO, "%s: written, but syncing its directory failed: %s", path,
                       strerror(e));
    return BL_OK;
}

bl_status bl_atomic_commit(bl_atomic_file *af, bl_error *err) {
    if (!af->fp || !af->tmp[0])
        return bl_fail(err, BL_ERR_ARG, "%s: atomic commit without an open file", af->path);
    FILE *fp = af->fp;
    const char *step = NULL;
    int e = 0;
    if (fflush(fp) != 0 || ferror(fp)) {
        step = "writing";
        e = errno ? errno : EIO;
    } else if (fsync(fileno(fp)) != 0) {
        step = "fsync";
        e = errno;
    }
    af->fp = NULL;
    if (fclose(fp) != 0 && !step) {
        step = "closing";
        e = errno;
    }
    if (!step && rename(af->tmp, af->path) != 0) {
        step = "renaming the temporary file into place";
        e = errno;
    }
    if (step) {
        unlink(af->tmp);
        af->tmp[0] = '\0';
        return bl_fail(err, BL_ERR_IO, "%s: %s failed: %s", af->path, step, strerror(e));
    }
    af->tmp[0] = '\0';
    return sync_dir(af->path, err);
}

bl_status bl_atomic_write(const char *path, const void *data, size_t n, bl_error *err) {
    bl_atomic_file af;
    bl_status st = bl_atomic_open(&af, path, err);
    if (st != BL_OK) return st;
    if (n && fwrite(data, 1, n, af.fp) != n) {
        int e = errno;
        bl_atomic_abort(&af);
        return bl_fail(err, BL_ERR_IO, "%s: writing %zu bytes failed: %s", path, n, strerror(e));
    }
    return bl_atomic_commit(&af, err);
}
