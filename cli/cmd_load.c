/* batchlab load: a load generator for `batchlab serve` (or any KServe v2 server).
 *
 * Open loop (default): constant or Poisson arrivals at --rate, latency measured from the
 * intended send time. --closed: --concurrency requests always in flight. --sweep runs
 * the open loop at each rate and writes a CSV and a latency-throughput plot.
 * --bare CHECKPOINT times the same requests through the model in this process, paced the
 * same way but with no HTTP and no batcher: the baseline that gives the server's
 * overhead. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include "args.h"
#include "cli.h"
#include "load_report.h"
#include "batchlab/serve.h"
#include "batchlab/train.h"
#include "core/alloc.h"
#include "io/json.h"

/* Samples to send, whatever the file's format (a CSV's every column is a feature). */
static bl_status load_input(bl_dataset *ds, bl_mem *mem, const char *path, bl_error *err) {
    bl_load_opts o;
    bl_load_opts_default(&o);
    o.label_col = BL_LABEL_NONE;
    return bl_dataset_load(ds, mem, path, NULL, &o, NULL, err);
}

/* Pixel-like inputs (uniform 0..255) when no --input is given. */
static float *random_samples(bl_shape s, size_t n, uint64_t seed) {
    size_t dim = bl_shape_size(s);
    float *x = bl_malloc(n * dim * sizeof(float));
    if (!x) return NULL;
    bl_rng r;
    bl_rng_seed(&r, seed);
    for (size_t i = 0; i < n * dim; i++)
        x[i] = (float)(int)(256.0f * bl_rng_uniform(&r));
    return x;
}

/* In-process baseline: the model runner the batcher uses, paced like the open loop. */
static bl_status run_bare(bl_model *m, const bl_norm *norm, const bl_load_config *c, long n_req,
                          bl_load_result *r, bl_error *err) {
    memset(r, 0, sizeof *r);
    bl_latency_hist_reset(&r->latency);
    bl_latency_hist_reset(&r->send_lag);
    bl_model_runner mr = {m, norm};
    size_t dim = bl_shape_size(c->shape);
    int k = c->per_request;
    float *x = bl_malloc((size_t)k * dim * sizeof(float));
    float *out = bl_malloc((size_t)k * (size_t)bl_model_output_dim(m) * sizeof(float));
    if (!x || !out) {
        bl_free(x);
        bl_free(out);
        return bl_fail(err, BL_ERR_NOMEM, "--bare: out of memory for a batch of %d samples", k);
    }
    bl_rng rng;
    bl_rng_seed(&rng, c->seed);
    long warm = (long)(c->warmup_s * c->rate);
    double gap = 1e9 / c->rate, t = (double)bl_now_ns() + 1e6;
    uint64_t first = 0, last = 0;
    for (long i = 0; i < warm + n_req; i++) {
        uint64_t intended = (uint64_t)t;
        struct timespec ts = {(time_t)(intended / 1000000000ULL), (long)(intended % 1000000000ULL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        uint64_t sent = bl_now_ns();
        for (int j = 0; j < k; j++)
            memcpy(x + (size_t)j * dim, c->samples + (((size_t)i * k + j) % c->n_samples) * dim,
                   dim * sizeof(float));
        bl_model_runner_fn(&mr, x, k, out);
        uint64_t done = bl_now_ns();
        if (i >= warm) {
            if (!first) first = intended;
            last = done;
            r->sent++;
            r->ok++;
            bl_latency_hist_record(&r->latency, done - intended);
            bl_latency_hist_record(&r->send_lag, sent - intended);
        }
        t += c->poisson ? -log(1.0 - bl_rng_uniform_double(&rng)) * gap : gap;
    }
    r->elapsed_s = last > first ? (double)(last - first) * 1e-9 : 0;
    r->throughput_rps = r->elapsed_s > 0 ? (double)r->ok / r->elapsed_s : 0;
    r->offered_rps = c->rate;
    bl_free(x);
    bl_free(out);
    return BL_OK;
}

static int parse_rates(const char *s, double *out, int cap) {
    int n = 0;
    while (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || !(v > 0) || n == cap || (*end && *end != ',')) return -1;
        out[n++] = v;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* One run against the server, with the server's batch statistics over the run. */
static bl_status run_http(const bl_load_config *c, bl_load_result *r, bl_load_sweep_point *p,
                          bl_error *err) {
    double inf0 = NAN, ex0 = NAN, inf1 = NAN, ex1 = NAN, mb = NAN;
    bl_load_scrape(c->url, &inf0, &ex0, NULL, NULL);
    bl_status st = bl_load_run(c, r, err);
    if (st) return st;
    load_to_point(r, p);
    if (!bl_load_scrape(c->url, &inf1, &ex1, &mb, NULL) && ex1 > ex0) {
        p->avg_batch = (inf1 - inf0) / (ex1 - ex0);
        p->max_batch = mb;
    }
    return BL_OK;
}

int cli_load(int argc, char **argv) {
    const char *cmd = "load";
    bl_load_config c;
    bl_load_config_default(&c);
    const char *arrivals = "constant", *format = "json", *input = NULL, *sweep = NULL;
    const char *csv = NULL, *plot = NULL, *bare = NULL, *get = NULL;
    int closed = 0, json = 0, threads = 1;
    cli_device device = {0};
    long requests = 0, seed = 1;
    double slo_ms = 0;
    cli_opt opts[] = {
        {"url", ARG_STR, &c.url, "server base URL (default http://127.0.0.1:8000)", 0},
        {"model", ARG_STR, &c.model, "model name (default model)", 0},
        {"rate", ARG_DOUBLE, &c.rate, "open loop: intended requests per second (default 100)", 0},
        {"arrivals", ARG_STR, &arrivals, "open loop: constant (default) or poisson", 0},
        {"closed", ARG_FLAG, &closed, "closed loop: --concurrency requests always in flight", 0},
        {"concurrency", ARG_INT, &c.concurrency,
         "closed loop: requests in flight; open loop: connections (default 64)", 0},
        {"duration", ARG_DOUBLE, &c.duration_s, "seconds of measured load (default 5)", 0},
        {"warmup", ARG_DOUBLE, &c.warmup_s, "seconds sent first and not counted (default 0.5)", 0},
        {"requests", ARG_LONG, &requests, "stop after this many requests (default: no limit)", 0},
        {"max-errors", ARG_LONG, &c.max_errors, "stop sending after this many failures", 0},
        {"timeout", ARG_DOUBLE, &c.timeout_s, "client timeout per request in seconds (default 30)",
         0},
        {"format", ARG_STR, &format, "json (default) or binary (binary-data extension)", 0},
        {"input", ARG_STR, &input, "samples to send: X.npy, X.csv or IDX images (default: random)",
         0},
        {"per-request", ARG_INT, &c.per_request, "samples per request (default 1)", 0},
        {"seed", ARG_LONG, &seed, "seed of Poisson gaps and random inputs (default 1)", 0},
        {"sweep", ARG_STR, &sweep, "open loop at each rate, e.g. 500,1000,2000", 0},
        {"csv", ARG_STR, &csv, "sweep: write the points to this CSV", 0},
        {"plot", ARG_STR, &plot, "sweep: write PREFIX.png and PREFIX.svg (gnuplot)", 0},
        {"slo-ms", ARG_DOUBLE, &slo_ms, "sweep: draw this p99 objective on the plot", 0},
        {"get", ARG_STR, &get,
         "GET this path (e.g. /v2/health/live) instead of infer: the HTTP floor", 0},
        {"bare", ARG_STR, &bare, "time CHECKPOINT's forward pass in-process instead (no HTTP)", 0},
        {"threads", ARG_INT, &threads, "--bare: BLAS threads (default 1)", 0},
        CLI_DEVICE_OPTS(device),
        {"json", ARG_FLAG, &json, "print the result as JSON", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd,
                       "[--url URL] [--model NAME] (--rate R | --closed --concurrency N | "
                       "--sweep R1,R2,..) ...",
                       opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (strcmp(arrivals, "constant") && strcmp(arrivals, "poisson"))
        return cli_error(cmd, "--arrivals must be constant or poisson, got '%s'", arrivals);
    c.poisson = !strcmp(arrivals, "poisson");
    if (strcmp(format, "json") && strcmp(format, "binary"))
        return cli_error(cmd, "--format must be json or binary, got '%s'", format);
    c.format = !strcmp(format, "binary") ? BL_LOAD_BINARY : BL_LOAD_JSON;
    c.mode = closed ? BL_LOAD_CLOSED : BL_LOAD_OPEN;
    c.max_requests = requests;
    c.seed = (uint64_t)seed;
    if (requests < 0) return cli_error(cmd, "--requests %ld is invalid: it must be >= 0", requests);
    if (closed && sweep) return cli_error(cmd, "--sweep is an open-loop mode; drop --closed");
    if ((csv || plot) && !sweep) return cli_error(cmd, "--csv and --plot go with --sweep");
    if (sweep && !csv) return cli_error(cmd, "--sweep needs --csv PATH");
    if (bare && (closed || sweep)) return cli_error(cmd, "--bare times the open loop only");
    if (get && bare) return cli_error(cmd, "--get and --bare are different runs");
    c.get_path = get;
    if (c.per_request < 1)
        return cli_error(cmd, "--per-request %d is invalid: it must be at least 1", c.per_request);
    double rates[64];
    int n_rates = 0;
    if (sweep && (n_rates = parse_rates(sweep, rates, 64)) <= 0)
        return cli_error(cmd, "--sweep '%s' must be up to 64 comma-separated positive rates",
                         sweep);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* send times to the microsecond */

    bl_error err = {0};
    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    bl_model *m = NULL;
    bl_norm norm = {0};
    bl_dataset ds = {0};
    float *rnd = NULL;
    bl_load_result *res = bl_malloc(sizeof *res);
    if (!res) return bl_ctx_free(&ctx), cli_fail(cmd, "out of memory");
    if (bare && bl_checkpoint_load_model(&m, &norm, &ctx, bare, c.per_request, &err))
        rc = cli_fail(cmd, "%s", err.msg);
    if (!rc && input) {
        if (load_input(&ds, &ctx.mem, input, &err)) rc = cli_fail(cmd, "%s", err.msg);
        c.samples = ds.x;
        c.n_samples = ds.n;
        c.shape = ds.shape;
    } else if (!rc && !get) {
        if (m)
            c.shape = bl_model_input_shape(m);
        else if (bl_load_fetch_shape(c.url, c.model, &c.shape, &err))
            rc = cli_fail(cmd, "%s", err.msg);
        if (!rc) {
            c.n_samples = 256;
            c.samples = rnd = random_samples(c.shape, c.n_samples, c.seed);
            if (!rnd) rc = cli_fail(cmd, "out of memory");
        }
    }
    if (!rc && m && bl_model_check_input(m, bl_shape_size(c.shape), input ? input : "input", &err))
        rc = cli_fail(cmd, "%s", err.msg);
    bl_load_sweep_point pt;
    if (!rc && bare) {
        long n = requests ? requests : (long)ceil(c.rate * c.duration_s);
        if (!json)
            printf("bare forward of %s in-process: %ld requests of %d sample(s), %s arrivals at "
                   "%g/s\n",
                   bare, n, c.per_request, arrivals, c.rate);
        if (run_bare(m, &norm, &c, n < 1 ? 1 : n, res, &err))
            rc = cli_fail(cmd, "%s", err.msg);
        else
            load_to_point(res, &pt);
    } else if (!rc && !sweep) {
        if (!json) {
            if (closed)
                printf("closed loop: %d in flight for %g s (+%g s warm-up), %s, %d "
                       "sample(s)/request\n",
                       c.concurrency, c.duration_s, c.warmup_s, format, c.per_request);
            else
                printf(
                    "open loop: %s arrivals at %g req/s for %g s (+%g s warm-up), %d connections, "
                    "%s, %d sample(s)/request\n",
                    arrivals, c.rate, c.duration_s, c.warmup_s, c.concurrency, format,
                    c.per_request);
            fflush(stdout);
        }
        if (run_http(&c, res, &pt, &err)) rc = cli_fail(cmd, "%s", err.msg);
    }
    if (!rc && !sweep) {
        if (json) {
            unsigned mark = bl_alloc_failures();
            cJSON *j = load_result_json(res, &pt, c.per_request);
            cJSON_AddStringToObject(j, "mode", bare ? "bare" : closed ? "closed" : "open");
            rc = cli_print_json(cmd, j, mark);
            cJSON_Delete(j);
        } else {
            load_print_result(res, &pt, c.per_request);
        }
    }
    if (!rc && sweep) {
        bl_load_sweep_point pts[64];
        unsigned mark = bl_alloc_failures();
        cJSON *arr = json ? cJSON_CreateArray() : NULL;
        if (!json)
            printf("%10s %12s %9s %9s %9s %9s %8s %9s\n", "offered/s", "achieved/s", "p50 ms",
                   "p99 ms", "p99.9 ms", "failed", "avg B", "max B");
        for (int i = 0; i < n_rates && !rc; i++) {
            c.rate = rates[i];
            if (run_http(&c, res, &pts[i], &err)) {
                rc = cli_fail(cmd, "%s", err.msg);
                break;
            }
            if (json) {
                bl_json_append(arr, load_result_json(res, &pts[i], c.per_request));
            } else {
                printf("%10.0f %12.1f %9.3f %9.3f %9.3f %9ld %8.2f %9.0f\n", pts[i].offered_rps,
                       pts[i].throughput_rps, pts[i].p50_ms, pts[i].p99_ms, pts[i].p999_ms,
                       pts[i].failed, pts[i].avg_batch, pts[i].max_batch);
                fflush(stdout);
            }
        }
        if (!rc && bl_load_sweep_write_csv(csv, pts, n_rates, &err))
            rc = cli_fail(cmd, "%s", err.msg);
        if (!rc && plot) {
            char title[256];
            snprintf(title, sizeof title, "batchlab serve: latency against throughput (%s)",
                     format);
            if (bl_load_sweep_plot(pts, n_rates, plot, title, slo_ms, &err))
                rc = cli_fail(cmd, "%s", err.msg);
        }
        if (json && !rc) rc = cli_print_json(cmd, arr, mark);
        cJSON_Delete(arr);
        if (!rc && !json)
            fprintf(stderr, "wrote %s%s%s%s\n", csv, plot ? " and " : "", plot ? plot : "",
                    plot ? ".{png,svg}" : "");
    }
    bl_free(res);
    bl_free(rnd);
    bl_dataset_free(&ds, &ctx.mem);
    bl_norm_free(&norm, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return rc;
}
