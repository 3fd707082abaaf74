/* Atomic file replacement: a file is never seen half-written.
 *
 * Writes go to "<path>.tmp.<pid>.XXXXXX" (mkstemp) in the destination's own
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
 * fixed default.)
 *
 * A writer killed mid-write (kill -9, power loss) leaves its temporary file
 * behind: a checkpoint's is as big as the checkpoint. The next write of the
 * same target removes such orphans, and only those: names that are exactly
 * "<path>.tmp.<pid>.XXXXXX" whose pid is not a live process here (our own
 * pid never counts as dead: another thread may be writing), or the
 * "<path>.tmp.XXXXXX" of versions before the pid was in the name when
 * nothing has touched them for ORPHAN_AGE_S (their writer cannot be asked).
 *
 * A symbolic link at path is written through, as editors and cp do: the link
 * is resolved (realpath, every level) and its target replaced atomically in
 * the target's own folder, so the link stays a link and points to the new
 * contents. Replacing the link itself with a regular file would leave its
 * target stale, which is what the user did not ask for. A dangling link or a
 * loop is refused with an error naming the path: following a dangling link
 * would create a file somewhere the user may not expect.
 *
 * Every byte goes through io/fileio.c (bl_sink_open, bl_fsync), where tests
 * inject write failures; the first write error of the stream is kept, since
 * stdio may have lost errno by the time fflush reports it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "batchlab/io.h"
#include "io/fileio.h"

#define ORPHAN_AGE_S 600

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

/* The 6 characters mkstemp puts in place of XXXXXX, and nothing after them. */
static int is_mkstemp_tail(const char *s) {
    for (int i = 0; i < 6; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return s[6] == '\0';
}

/* Is `name` (in the target's folder) an orphaned temporary file of target `base`? */
static int is_orphan(const char *dir, const char *base, const char *name, time_t now) {
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) || strncmp(name + bl, ".tmp.", 5)) return 0;
    const char *rest = name + bl + 5;
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", dir, name);
    struct stat sb;
    if (lstat(full, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    if (is_mkstemp_tail(rest)) /* an older version's name: no pid to ask */
        return now - sb.st_mtime > ORPHAN_AGE_S;
    char *end;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (errno || end == rest || *rest < '1' || *rest > '9' || *end != '.' ||
        !is_mkstemp_tail(end + 1) || pid <= 0 || pid > INT_MAX)
        return 0;
    if ((pid_t)pid == getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Remove the orphans of path's earlier writes (best effort: a failure changes nothing). */
static void remove_orphans(const char *path) {
    char dir[4096];
    dir_of(dir, sizeof dir, path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    DIR *d = opendir(dir);
    if (!d) return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_orphan(dir, base, e->d_name, now)) {
            char full[8192];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            unlink(full);
        }
    closedir(d);
}

bl_status bl_atomic_open(bl_atomic_file *af, const char *path, bl_error *err) {
    memset(af, 0, sizeof *af);
    if (!path || !path[0]) return bl_fail(err, BL_ERR_ARG, "atomic write: empty path");
    bl_status st = bl_write_target(path, af->path, sizeof af->path, err);
    if (st != BL_OK) return st;
    path = af->path;
    size_t len = strlen(path);
    char suffix[48];
    int sl = snprintf(suffix, sizeof suffix, ".tmp.%ld.XXXXXX", (long)getpid());
    if (len + (size_t)sl + 1 > sizeof af->tmp)
        return bl_fail(err, BL_ERR_ARG, "%.200s...: path is too long (%zu bytes)", path, len);
    memcpy(af->tmp, path, len);
    memcpy(af->tmp + len, suffix, (size_t)sl + 1);
    remove_orphans(path);

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
    af->fp = bl_sink_open(fd, &af->sink);
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        af->tmp[0] = '\0';
        return bl_fail(err, e == ENOMEM ? BL_ERR_NOMEM : BL_ERR_IO,
                       "%s: cannot open a stream on the temporary file: %s", path,
                       e == ENOMEM ? "out of memory" : strerror(e));
    }
    return BL_OK;
}

void bl_atomic_abort(bl_atomic_file *af) {
    if (!af) return;
    if (af->fp) __fpurge(af->fp); /* what is still buffered would only be written to be deleted */
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    af->sink = NULL;
    if (af->tmp[0]) unlink(af->tmp);
    af->tmp[0] = '\0';
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
    int rc = bl_fsync(fd);
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
        e = bl_sink_error(af->sink) ? bl_sink_error(af->sink) : errno ? errno : EIO;
    } else if (bl_fsync(bl_sink_fd(af->sink)) != 0) {
        step = "fsync";
        e = errno;
    }
    af->fp = NULL;
    af->sink = NULL; /* freed by fclose */
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
        int e = bl_sink_error(af.sink) ? bl_sink_error(af.sink) : errno;
        bl_atomic_abort(&af);
        return bl_fail(err, BL_ERR_IO, "%s: writing %zu bytes failed: %s", path, n, strerror(e));
    }
    return bl_atomic_commit(&af, err);
}
