/* batchlab serve: a checkpoint behind the KServe v2 HTTP protocol, with dynamic
 * batching, Prometheus metrics and a graceful drain on SIGTERM/SIGINT.
 *
 * SIGTERM and SIGINT are blocked before any thread of ours starts, so every such thread
 * inherits the mask and the main thread alone takes them with sigwait(): no flag polling,
 * and the drain runs in ordinary code. Threads started before main (OpenBLAS starts its
 * pool from a constructor) have them unblocked, and the kernel may hand a SIGTERM to one
 * of them: their handler passes it on to the main thread (tgkill), where it waits blocked
 * for sigwait. With the default action instead, a SIGTERM sent right after start-up (the
 * port file is written before the main thread reaches sigwait) killed the process without
 * the drain.
 *
 * The drain runs on a thread of its own while the main thread keeps waiting for
 * signals: a second SIGTERM/SIGINT answers everything not computed yet with 503 and
 * stops at once (bl_server_stop_now), still with the summary. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "args.h"
#include "cli.h"
#include "batchlab/io.h"
#include "batchlab/serve.h"
#include "batchlab/train.h"

static int parse_sizes(const char *s, int *out, int cap, int *n) {
    *n = 0;
    while (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 20 || *n == cap || (*end && *end != ',')) return -1;
        out[(*n)++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return 0;
}

static pid_t g_main_tid; /* CLI-process state: set once, before the handler is installed */

static void pass_to_main_thread(int sig) {
    int e = errno;
    syscall(SYS_tgkill, getpid(), g_main_tid, sig);
    errno = e;
}

typedef struct stopper {
    bl_server *s;
    long grace_ms;
    atomic_int done;
} stopper;

static void *stop_main(void *arg) {
    stopper *st = arg;
    bl_server_stop(st->s, st->grace_ms);
    atomic_store(&st->done, 1);
    return NULL;
}

/* Drain on a thread; a second signal meanwhile stops at once. Returns that signal or 0. */
static int drain(bl_server *s, long grace_ms, const sigset_t *sigs) {
    stopper st = {s, grace_ms, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, stop_main, &st)) { /* no thread: drain here, uninterrupted */
        stop_main(&st);
        return 0;
    }
    int second = 0;
    while (!atomic_load(&st.done)) {
        struct timespec ts = {0, 20000000};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig > 0 && !second) {
            second = sig;
            bl_server_stop_now(s);
        }
    }
    pthread_join(t, NULL);
    return second;
}

int cli_serve(int argc, char **argv) {
    const char *cmd = "serve";
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    const char *ckpt = NULL, *port_file = NULL, *preferred = NULL;
    int threads = 1, quiet = 0, port = cfg.port;
    cli_device device = {0};
    int conn_timeout = (int)cfg.conn_timeout_s, read_timeout = (int)cfg.read_timeout_s,
        max_conn = (int)cfg.max_connections, max_per_ip = (int)cfg.max_conn_per_ip;
    long grace_ms = 10000;
    size_t max_body = cfg.max_body_bytes;
    cli_opt opts[] = {
        {"checkpoint", ARG_STR, &ckpt, "checkpoint to serve (or give it as the first argument)", 0},
        {"host", ARG_STR, &cfg.host, "IPv4 address to listen on (default 127.0.0.1)", 0},
        {"port", ARG_INT, &port, "TCP port (default 8000; 0 = any free port, printed)", 0},
        {"port-file", ARG_STR, &port_file, "write the bound port number to this file", 0},
        {"name", ARG_STR, &cfg.model_name, "model name in /v2/models/NAME (default model)", 0},
        {"max-batch", ARG_INT, &cfg.batch.max_batch,
         "largest batch (and the model's allocation; default 64)", 0},
        {"max-delay-us", ARG_LONG, &cfg.batch.max_delay_us,
         "wait at most this long for a batch to fill (default 0: dispatch what is queued)", 0},
        {"preferred-batch", ARG_STR, &preferred,
         "sizes dispatched as soon as they form, e.g. 8,16,32", 0},
        {"max-queue", ARG_INT, &cfg.batch.max_queue, "requests waiting before 503 (default 1024)",
         0},
        {"timeout-ms", ARG_LONG, &cfg.batch.timeout_ms,
         "queue timeout per request, 504 after it (default 0: none; requests may lower it)", 0},
        {"slo-p99-ms", ARG_DOUBLE, &cfg.batch.slo_p99_ms,
         "adapt the batching delay to keep p99 under this; the max batch stays at "
         "--max-batch",
         0},
        {"max-body-bytes", ARG_SIZE, &max_body, "larger request bodies get 413 (default 64 MiB)",
         0},
        {"http-threads", ARG_INT, &cfg.http_threads, "HTTP polling threads (default 1)", 0},
        {"conn-timeout-s", ARG_INT, &conn_timeout,
         "close a connection silent this long: stalled headers or body, idle keep-alive "
         "(default 10)",
         0},
        {"read-timeout-s", ARG_INT, &read_timeout,
         "a whole request, headers and body, must arrive within this, else 408 and close "
         "(default 30)",
         0},
        {"max-connections", ARG_INT, &max_conn, "open connections, all clients (default 1000)", 0},
        {"max-conn-per-ip", ARG_INT, &max_per_ip,
         "open connections from one address (default 256; 0: no limit)", 0},
        {"threads", ARG_INT, &threads, "BLAS threads of the batcher (default 1)", 0},
        CLI_DEVICE_OPTS(device),
        {"grace-ms", ARG_LONG, &grace_ms,
         "on shutdown, compute and answer what is queued for at most this long, then 503 the "
         "rest (default 10000); a second signal stops at once",
         0},
        {"quiet", ARG_FLAG, &quiet, "print only errors and the final summary", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    int rc = cli_parse(cmd, "CHECKPOINT [--port N] [--max-batch N] [--max-delay-us US] ...", opts,
                       n_opts, argc, argv, pos, 1, &n_pos);
    if (rc) return rc == 1 ? 0 : rc;
    if (n_pos) {
        if (ckpt) return cli_error(cmd, "give the checkpoint once (argument or --checkpoint)");
        ckpt = pos[0];
    }
    if (!ckpt) return cli_error(cmd, "a CHECKPOINT is required (see batchlab serve --help)");
    cfg.port = port;
    cfg.max_body_bytes = max_body;
    if (grace_ms < 0) return cli_error(cmd, "--grace-ms %ld is invalid: it must be >= 0", grace_ms);
    cfg.conn_timeout_s = (unsigned)conn_timeout;
    cfg.read_timeout_s = (unsigned)read_timeout;
    cfg.max_connections = (unsigned)max_conn;
    cfg.max_conn_per_ip = (unsigned)max_per_ip;
    if (preferred &&
        parse_sizes(preferred, cfg.batch.preferred, BL_MAX_PREFERRED, &cfg.batch.n_preferred))
        return cli_error(cmd, "--preferred-batch '%s' must be up to %d comma-separated sizes >= 1",
                         preferred, BL_MAX_PREFERRED);
    if (cli_opt_find(opts, n_opts, "slo-p99-ms")->seen && !(cfg.batch.slo_p99_ms > 0))
        return cli_error(cmd, "--slo-p99-ms %g is invalid: it must be positive",
                         cfg.batch.slo_p99_ms);
    /* With an objective the delay cap defaults to a tenth of it (bl_delay_ctl_init). */
    if (cfg.batch.slo_p99_ms > 0 && !cli_opt_find(opts, n_opts, "max-delay-us")->seen)
        cfg.batch.max_delay_us = (long)(cfg.batch.slo_p99_ms * 100.0);
    bl_error err = {0};
    if (bl_serve_config_check(&cfg, &err))
        return cli_error(cmd, "%s", err.msg); /* before loading */

    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* microsecond batching delays, not 50 us slack */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    g_main_tid = (pid_t)syscall(SYS_gettid);
    struct sigaction sa = {.sa_handler = pass_to_main_thread};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    bl_model *m = NULL;
    bl_norm norm;
    if (bl_checkpoint_load_model(&m, &norm, &ctx, ckpt, cfg.batch.max_batch, &err))
        return bl_ctx_free(&ctx), cli_fail(cmd, "%s", err.msg);
    bl_server *s = NULL;
    if (bl_server_start(&s, &cfg, m, &norm, &err)) {
        rc = err.code == BL_ERR_ARG ? cli_error(cmd, "%s", err.msg) : cli_fail(cmd, "%s", err.msg);
        bl_norm_free(&norm, &ctx.mem);
        bl_model_free(m);
        bl_ctx_free(&ctx);
        return rc;
    }
    int bound = bl_server_port(s);
    if (port_file) {
        char txt[32];
        int k = snprintf(txt, sizeof txt, "%d\n", bound);
        if (bl_atomic_write(port_file, txt, (size_t)k, &err)) {
            rc = cli_fail(cmd, "%s", err.msg);
            bl_server_free(s);
            bl_norm_free(&norm, &ctx.mem);
            bl_model_free(m);
            bl_ctx_free(&ctx);
            return rc;
        }
    }
    if (!quiet) {
        printf("batchlab serve: %s (%s) at http://%s:%d/v2/models/%s\n", ckpt, bl_model_spec(m),
               cfg.host, bound, cfg.model_name);
        if (cfg.batch.slo_p99_ms > 0)
            printf("  adaptive: p99 objective %g ms, max batch up to %d, delay up to %ld us\n",
                   cfg.batch.slo_p99_ms, cfg.batch.max_batch, cfg.batch.max_delay_us);
        else
            printf("  max batch %d, max delay %ld us, queue %d, timeout %ld ms\n",
                   cfg.batch.max_batch, cfg.batch.max_delay_us, cfg.batch.max_queue,
                   cfg.batch.timeout_ms);
        printf("  listening on %s:%d; SIGTERM or Ctrl-C drains the queue and stops\n", cfg.host,
               bound);
        fflush(stdout);
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    if (!quiet) {
        fprintf(stderr, "batchlab serve: %s: draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    int second = drain(s, grace_ms, &sigs);
    if (second)
        fprintf(stderr, "batchlab serve: second %s: stopped without finishing the drain\n",
                second == SIGINT ? "SIGINT" : "SIGTERM");
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    bl_serve_metrics *mt = bl_server_metrics(s);
    uint64_t inf = bl_metrics_inferences(mt), ex = bl_metrics_executions(mt);
    fprintf(stderr,
            "batchlab serve: stopped: accepted=%llu answered=%llu unanswered=%llu "
            "cancelled=%llu abandoned=%llu queued_at_stop=%ld batches=%llu samples=%llu "
            "avg_batch=%.2f read_timeouts=%llu\n",
            (unsigned long long)st.accepted, (unsigned long long)st.answered,
            (unsigned long long)st.unanswered, (unsigned long long)st.cancelled,
            (unsigned long long)st.abandoned, st.queued_at_stop, (unsigned long long)ex,
            (unsigned long long)inf, ex ? (double)inf / (double)ex : 0.0,
            (unsigned long long)st.read_timeouts);
    if (st.answered) {
        fprintf(stderr, "batchlab serve: per request, p50/p99 us:");
        for (int i = 0; i < BL_STAGES; i++)
            fprintf(stderr, " %s %.1f/%.1f", bl_stage_name((bl_stage)i),
                    (double)bl_server_stage_ns(s, (bl_stage)i, 50) * 1e-3,
                    (double)bl_server_stage_ns(s, (bl_stage)i, 99) * 1e-3);
        fprintf(stderr, "\n");
    }
    rc = 0;
    bl_server_free(s);
    bl_norm_free(&norm, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return rc;
}
