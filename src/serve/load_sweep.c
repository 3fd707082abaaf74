/* Output of a load sweep: one CSV row per offered rate, and the latency-against-
 * throughput curve through gnuplot (PNG and SVG).
 *
 * Every file is written atomically through bl_atomic_*: the CSV directly, and each plot
 * by letting gnuplot write into the temporary file that bl_atomic_open created and
 * committing (fsync + rename) only after gnuplot exited cleanly. A missing or failing
 * gnuplot therefore leaves no half-written image, and the error carries gnuplot's own
 * message (its stderr goes to a temporary file, not to our caller's terminal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "batchlab/io.h"
#include "batchlab/serve.h"

bl_status bl_sweep_write_csv(const char *path, const bl_sweep_point *p, int n, bl_error *err) {
    bl_atomic_file af;
    bl_status st = bl_atomic_open(&af, path, err);
    if (st) return st;
    fprintf(af.fp, "offered_rps,throughput_rps,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,ok,failed,"
                   "avg_batch,max_batch\n");
    for (int i = 0; i < n; i++)
        fprintf(af.fp, "%.1f,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f,%ld,%ld,%.2f,%.0f\n", p[i].offered_rps,
                p[i].throughput_rps, p[i].p50_ms, p[i].p90_ms, p[i].p99_ms, p[i].p999_ms,
                p[i].max_ms, p[i].ok, p[i].failed, p[i].avg_batch, p[i].max_batch);
    return bl_atomic_commit(&af, err);
}

static int quotable(const char *s) {
    return s && !strchr(s, '\'') && !strchr(s, '\n');
}

bl_status bl_sweep_plot(const char *csv_path, const char *png_path, const char *svg_path,
                        const char *title, double slo_ms, bl_error *err) {
    if (!quotable(csv_path) || !quotable(png_path) || !quotable(svg_path) || !quotable(title))
        return bl_fail(err, BL_ERR_ARG,
                       "plot: paths and title must not contain quotes or newlines");
    bl_atomic_file png, svg;
    bl_status st = bl_atomic_open(&png, png_path, err);
    if (st) return st;
    st = bl_atomic_open(&svg, svg_path, err);
    if (st) {
        bl_atomic_abort(&png);
        return st;
    }
    char log_path[] = "/tmp/batchlab-gnuplot.XXXXXX";
    int log_fd = mkstemp(log_path);
    if (log_fd < 0) {
        bl_atomic_abort(&png);
        bl_atomic_abort(&svg);
        return bl_fail(err, BL_ERR_IO, "plot: cannot create a temporary file for gnuplot's errors");
    }
    close(log_fd);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gnuplot 2>'%s'", log_path);
    FILE *gp = popen(cmd, "w");
    int rc = -1;
    if (gp) {
        fprintf(gp,
                "set datafile separator ','\n"
                "set title '%s'\n"
                "set xlabel 'throughput (requests/s)'\n"
                "set ylabel 'latency (ms), from intended send time'\n"
                "set logscale y\nset grid\nset key top left\n",
                title);
        char slo[96] = "";
        if (slo_ms > 0)
            snprintf(slo, sizeof slo,
                     ", %g with lines dashtype 2 lc rgb 'gray40' title 'p99 objective'", slo_ms);
        const char *plot = "plot '%s' skip 1 using 2:3 with linespoints pt 7 title 'p50', "
                           "'' skip 1 using 2:5 with linespoints pt 5 title 'p99', "
                           "'' skip 1 using 2:6 with linespoints pt 3 title 'p99.9'%s\n";
        fprintf(gp, "set terminal pngcairo size 900,600\nset output '%s'\n", png.tmp);
        fprintf(gp, plot, csv_path, slo);
        fprintf(gp, "set terminal svg size 900,600 dynamic\nset output '%s'\n", svg.tmp);
        fprintf(gp, plot, csv_path, slo);
        fprintf(gp, "unset output\n");
        int status = pclose(gp);
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    char msg[512] = "";
    FILE *lf = fopen(log_path, "r");
    if (lf) {
        size_t k = fread(msg, 1, sizeof msg - 1, lf);
        msg[k] = '\0';
        fclose(lf);
    }
    unlink(log_path);
    if (rc != 0) {
        bl_atomic_abort(&png);
        bl_atomic_abort(&svg);
        return bl_fail(err, BL_ERR_IO, "plot: gnuplot %s (is gnuplot installed?) %s",
                       gp ? "failed" : "could not be started", msg);
    }
    st = bl_atomic_commit(&png, err);
    if (st) {
        bl_atomic_abort(&svg);
        return st;
    }
    return bl_atomic_commit(&svg, err);
}
