/* Plots through gnuplot (see include/batchlab/plot.h).
 *
 * Design: one gnuplot script per call, with every series as an inline
 * datablock ($d0 << EOD ... EOD), so there are no data files to clean up; it
 * draws the PNG (pngcairo), then replots into the SVG. The script and both
 * images go to mkstemp names beside the destination, and gnuplot is started
 * with fork/execvp rather than a shell, so no path or title is ever parsed by
 * /bin/sh. Titles reach gnuplot in single quotes (where only '' is special)
 * and with enhanced text off, so underscores stay underscores.
 *
 * gnuplot's stdout and stderr are captured through a pipe and become the
 * error message; the library itself never prints. After gnuplot succeeds each
 * image is checked to be non-empty, fsync'ed and renamed over the final name,
 * then the directory is synced: the same contract as bl_atomic_commit. gnuplot
 * may not notice a failed write of its own (a full disk), so an image is also
 * checked to end as a whole PNG or SVG before it is renamed into place. */
#define _GNU_SOURCE
#include "batchlab/plot.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "io/fileio.h"

enum { N_OUT = 2 };
static const char *const out_ext[N_OUT] = {"png", "svg"};

int bl_plot_available(void) {
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/bin:/bin";
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir - 16) {
            memcpy(dir, path, n);
            snprintf(dir + n, sizeof dir - n, "/gnuplot");
            if (access(dir, X_OK) == 0) return 1;
        }
        path += n;
        if (*path == ':') path++;
    }
    return 0;
}

/* A gnuplot single-quoted string: only the quote itself needs doubling. */
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; s && *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if (*s != '\n' && *s != '\r') fputc(*s, f);
    }
    fputc('\'', f);
}

static int drawable(const bl_plot *p, double x, double y) {
    return isfinite(x) && isfinite(y) && (!p->logx || x > 0) && (!p->logy || y > 0);
}

/* Writes series i as datablock $d<i>; returns the number of drawable points. */
static size_t put_data(FILE *f, const bl_plot *p, int i) {
    const bl_plot_series *s = &p->series[i];
    size_t kept = 0;
    int gap = 0;
    fprintf(f, "$d%d << EOD\n", i);
    for (size_t k = 0; k < s->n; k++) {
        if (!drawable(p, s->x[k], s->y[k])) {
            gap = 1;
            continue;
        }
        if (gap && kept) fputc('\n', f); /* one blank line: a break in the line */
        gap = 0;
        fprintf(f, "%.17g %.17g", s->x[k], s->y[k]);
        if (s->ylo && s->yhi) { /* an open end is not drawn (autoscale would follow it) */
            double lo = s->ylo[k], hi = s->yhi[k];
            if (!isfinite(lo) || (p->logy && lo <= 0)) lo = s->y[k];
            if (!isfinite(hi)) hi = s->y[k];
            fprintf(f, " %.17g %.17g", lo, hi);
        } else if (s->labels) {
            fputs(" \"", f);
            for (const char *c = s->labels[k] ? s->labels[k] : ""; *c; c++)
                if (*c != '"' && *c != '\n' && *c != '\\') fputc(*c, f);
            fputc('"', f);
        }
        fputc('\n', f);
        kept++;
    }
    fputs("EOD\n", f);
    return kept;
}

static void put_plot_command(FILE *f, const bl_plot *p) {
    fputs("plot ", f);
    int first = 1;
    for (int i = 0; i < p->n_series; i++) {
        const bl_plot_series *s = &p->series[i];
        if (!first) fputs(", \\\n     ", f);
        first = 0;
        int lt = i + 1;
        if (s->ylo && s->yhi) {
            fprintf(f, "$d%d using 1:2:3:4 with yerrorbars lt %d pt 7 ps 1.1", i, lt);
            fputs(s->title && *s->title ? " title " : " notitle", f);
            if (s->title && *s->title) put_quoted(f, s->title);
            continue;
        }
        fprintf(f, "$d%d using 1:2 ", i);
        switch (s->style) {
        case BL_PLOT_POINTS:
            fprintf(f, "with points lt %d pt 7 ps 1.3", lt);
            break;
        case BL_PLOT_LINES:
            fprintf(f, "with lines lt %d lw 2", lt);
            break;
        case BL_PLOT_LINESPOINTS:
            fprintf(f, "with linespoints lt %d lw 2 pt 7 ps 1.1", lt);
            break;
        }
        /* gnuplot's colours repeat after 8 series: tell the later ones apart by dashes */
        if (s->style != BL_PLOT_POINTS && (s->dashed || i >= 8))
            fprintf(f, " dt %d", s->dashed ? 2 : 3 + (i / 8) % 3);
        if (s->title && *s->title) {
            fputs(" title ", f);
            put_quoted(f, s->title);
        } else {
            fputs(" notitle", f);
        }
        if (s->labels)
            fprintf(f,
                    ", \\\n     $d%d using 1:2:3 with labels offset char 0.8,0.8 font ',8' notitle",
                    i);
    }
    fputc('\n', f);
}

static void put_script(FILE *f, const bl_plot *p, char tmp_out[N_OUT][4200]) {
    int w = p->width_px > 0 ? p->width_px : 900, h = p->height_px > 0 ? p->height_px : 600;
    for (int i = 0; i < p->n_series; i++)
        put_data(f, p, i);
    fputs("set termoption noenhanced\nset grid\n", f);
    /* a long legend goes beside the plot, where it cannot hide the data */
    fputs(p->n_series > 4 ? "set key outside right top box\n" : "set key top right box opaque\n",
          f);
    if (p->title) fputs("set title ", f), put_quoted(f, p->title), fputc('\n', f);
    if (p->xlabel) fputs("set xlabel ", f), put_quoted(f, p->xlabel), fputc('\n', f);
    if (p->ylabel) fputs("set ylabel ", f), put_quoted(f, p->ylabel), fputc('\n', f);
    if (p->logx) fprintf(f, "set logscale x %d\n", p->logx2 ? 2 : 10);
    if (p->logy) fputs("set logscale y 10\n", f);
    if (p->logx && p->logx2) fputs("set format x '%.0f'\n", f);
    fprintf(f, "set terminal pngcairo noenhanced size %d,%d\nset output ", w, h);
    put_quoted(f, tmp_out[0]);
    fputc('\n', f);
    put_plot_command(f, p);
    fprintf(f, "set terminal svg noenhanced size %d,%d dynamic background '#ffffff'\nset output ",
            w, h);
    put_quoted(f, tmp_out[1]);
    fputs("\nreplot\nunset output\n", f);
}

/* Runs `gnuplot script`, collecting what it prints into msg. Returns the exit
 * status, 127 if gnuplot could not be started, or -1 if it died on a signal. */
static int run_gnuplot(const char *script, char *msg, size_t cap) {
    int fds[2];
    msg[0] = '\0';
    if (pipe(fds) != 0) {
        snprintf(msg, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(msg, cap, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, STDIN_FILENO);
        char *const argv[] = {"gnuplot", (char *)script, NULL};
        execvp("gnuplot", argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    char buf[512];
    for (;;) {
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r && len + 1 < cap; i++)
            msg[len++] = buf[i];
    }
    msg[len] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return -1;
}

static int make_temp(char *out, size_t cap, const char *prefix) {
    if (strlen(prefix) + 12 > cap) {
        out[0] = '\0';
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(out, prefix, strlen(prefix));
    memcpy(out + strlen(prefix), ".tmp.XXXXXX", 12);
    int fd = mkstemp(out);
    if (fd < 0) {
        out[0] = '\0';
        return -1;
    }
    (void)fchmod(fd, 0644);
    close(fd);
    return 0;
}

/* Does the image end as a whole PNG (its IEND chunk) or SVG (its closing tag)? gnuplot
 * does not always notice that a write of its output failed (a full disk), and a torn
 * image must not be renamed into place. */
static int image_complete(int fd, off_t size, const char *ext) {
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char tail[64];
    size_t want = size < (off_t)sizeof tail ? (size_t)size : sizeof tail;
    if (pread(fd, tail, want, size - (off_t)want) != (ssize_t)want) return 0;
    if (!strcmp(ext, "png")) return want >= 12 && !memcmp(tail + want - 12, iend, 12);
    return memmem(tail, want, "</svg>", 6) != NULL;
}

/* Check a finished image, fsync it and rename it into place. */
static bl_status commit_file(const char *tmp, const char *final, const char *ext, bl_error *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return bl_fail(err, BL_ERR_IO, "%s: gnuplot's output is missing: %s", final, strerror(e));
    }
    int whole = st.st_size > 0 && image_complete(fd, st.st_size, ext);
    int rc = whole ? bl_fsync(fd) : 0, e = errno;
    close(fd);
    if (st.st_size == 0) return bl_fail(err, BL_ERR_IO, "%s: gnuplot wrote an empty image", final);
    if (!whole)
        return bl_fail(err, BL_ERR_IO, "%s: gnuplot's image is incomplete (was the disk full?)",
                       final);
    if (rc != 0 && e != EINVAL)
        return bl_fail(err, BL_ERR_IO, "%s: fsync failed: %s", final, strerror(e));
    if (rename(tmp, final) != 0)
        return bl_fail(err, BL_ERR_IO, "%s: renaming the temporary file into place failed: %s",
                       final, strerror(errno));
    return BL_OK;
}

static bl_status sync_dir_of(const char *path, bl_error *err) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%.4100s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return BL_OK; /* nothing to sync through; the images are in place */
    int rc = bl_fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return bl_fail(err, BL_ERR_IO, "%s: drawn, but syncing its folder failed: %s", path,
                       strerror(e));
    return BL_OK;
}

/* The gnuplot script, through io/fileio.c like every file the library writes. */
static bl_status write_script(const char *script, const bl_plot *p, char tmp_out[N_OUT][4200],
                              bl_error *err) {
    int fd = open(script, O_WRONLY | O_TRUNC | O_CLOEXEC);
    bl_sink *sink = NULL;
    FILE *f = fd < 0 ? NULL : bl_sink_open(fd, &sink);
    if (!f) {
        int e = errno;
        if (fd >= 0) close(fd);
        return bl_fail(err, e == ENOMEM ? BL_ERR_NOMEM : BL_ERR_IO,
                       "%s: cannot write the gnuplot script: %s", script,
                       e == ENOMEM ? "out of memory" : strerror(e));
    }
    put_script(f, p, tmp_out);
    int e = fflush(f) != 0 || ferror(f) ? (bl_sink_error(sink) ? bl_sink_error(sink) : EIO) : 0;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    if (e)
        return bl_fail(err, BL_ERR_IO, "%s: writing the gnuplot script failed: %s", script,
                       strerror(e));
    return BL_OK;
}

bl_status bl_plot_write(const bl_plot *p, const char *base, bl_error *err) {
    if (!base || !*base || strlen(base) > 4000)
        return bl_fail(err, BL_ERR_ARG, "plot: empty or over-long output path");
    size_t points = 0;
    for (int i = 0; i < p->n_series; i++)
        for (size_t k = 0; k < p->series[i].n; k++)
            points += drawable(p, p->series[i].x[k], p->series[i].y[k]);
    if (points == 0)
        return bl_fail(err, BL_ERR_ARG, "%s: the plot '%s' has no point to draw", base,
                       p->title ? p->title : "");
    if (!bl_plot_available())
        return bl_fail(err, BL_ERR_UNSUPPORTED,
                       "%s: gnuplot is not on PATH, so no plot was drawn (apt-get install "
                       "gnuplot-nox)",
                       base);
    /* Each image lands where its name points: through a symbolic link to its target (see
     * bl_write_target), with the temporary file beside the target, so the rename stays in
     * one folder. */
    char script[4200], final[N_OUT][4200], tmp_out[N_OUT][4200] = {{0}};
    bl_status st = BL_OK;
    for (int i = 0; i < N_OUT && !st; i++) {
        char name[4200];
        snprintf(name, sizeof name, "%s.%s", base, out_ext[i]);
        st = bl_write_target(name, final[i], sizeof final[i] - 16, err);
    }
    if (st) return st;
    char gp[4200];
    snprintf(gp, sizeof gp, "%s.gp", base);
    if (make_temp(script, sizeof script, gp) != 0)
        return bl_fail(err, BL_ERR_IO, "%s.gp: cannot create a temporary file: %s", base,
                       strerror(errno));
    for (int i = 0; i < N_OUT && !st; i++)
        if (make_temp(tmp_out[i], sizeof tmp_out[i], final[i]) != 0)
            st = bl_fail(err, BL_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                         final[i], strerror(errno));
    if (!st) st = write_script(script, p, tmp_out, err);
    if (!st) {
        char msg[768];
        int rc = run_gnuplot(script, msg, sizeof msg);
        size_t ml = strlen(msg);
        while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
            msg[--ml] = '\0';
        if (rc == 127)
            st = bl_fail(err, BL_ERR_UNSUPPORTED,
                         "%s: gnuplot could not be started (apt-get install gnuplot-nox)", base);
        else if (rc != 0)
            st = bl_fail(err, BL_ERR_IO, "%s: gnuplot failed (%s%d): %s", base,
                         rc < 0 ? "signal or " : "status ", rc, ml ? msg : "no message");
    }
    for (int i = 0; i < N_OUT && !st; i++) {
        st = commit_file(tmp_out[i], final[i], out_ext[i], err);
        if (!st) tmp_out[i][0] = '\0';
    }
    for (int i = 0; i < N_OUT && !st; i++)
        st = sync_dir_of(final[i], err);
    unlink(script);
    for (int i = 0; i < N_OUT; i++)
        if (tmp_out[i][0]) unlink(tmp_out[i]);
    return st;
}
