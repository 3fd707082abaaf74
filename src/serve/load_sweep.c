/* Output of a load sweep (`batchlab load --sweep`): one CSV row per offered rate, and
 * the latency-against-throughput curve, drawn by src/io/plot.c like every other plot
 * (no shell, no temporary file of our own; each image written atomically). */
#include <math.h>
#include <stdio.h>
#include "batchlab/io.h"
#include "batchlab/plot.h"
#include "batchlab/serve.h"
#include "core/alloc.h"

bl_status bl_load_sweep_write_csv(const char *path, const bl_load_sweep_point *p, int n,
                                  bl_error *err) {
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

bl_status bl_load_sweep_plot(const bl_load_sweep_point *p, int n, const char *base,
                             const char *title, double slo_ms, bl_error *err) {
    if (n < 1) return bl_fail(err, BL_ERR_ARG, "plot: a sweep with no points");
    double *v = bl_malloc((size_t)n * 4 * sizeof(double));
    if (!v) return bl_fail(err, BL_ERR_NOMEM, "plot: out of memory");
    double *x = v, *p50 = v + n, *p99 = v + 2 * n, *p999 = v + 3 * n;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] = p[i].throughput_rps;
        p50[i] = p[i].p50_ms;
        p99[i] = p[i].p99_ms;
        p999[i] = p[i].p999_ms;
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    double slo_x[2] = {lo, hi}, slo_y[2] = {slo_ms, slo_ms};
    bl_plot_series s[4] = {
        {.title = "p50", .x = x, .y = p50, .n = (size_t)n, .style = BL_PLOT_LINESPOINTS},
        {.title = "p99", .x = x, .y = p99, .n = (size_t)n, .style = BL_PLOT_LINESPOINTS},
        {.title = "p99.9", .x = x, .y = p999, .n = (size_t)n, .style = BL_PLOT_LINESPOINTS},
        {.title = "p99 objective",
         .x = slo_x,
         .y = slo_y,
         .n = 2,
         .style = BL_PLOT_LINES,
         .dashed = 1},
    };
    bl_plot pl = {.title = title,
                  .xlabel = "throughput (requests/s)",
                  .ylabel = "latency (ms), from intended send time",
                  .logy = 1,
                  .series = s,
                  .n_series = slo_ms > 0 ? 4 : 3};
    bl_status st = bl_plot_write(&pl, base, err);
    bl_free(v);
    return st;
}
