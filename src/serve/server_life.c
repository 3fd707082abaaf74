/* Starting and stopping `batchlab serve`'s HTTP server (the requests are server.c's).
 *
 * The threads it starts (libmicrohttpd's and the batcher's) block every signal, whoever
 * calls bl_server_start, so a process's SIGTERM reaches the thread that waits for it.
 * Connections are bounded per address and in all, a silent one is closed, and so is one
 * whose client half-closed it.
 *
 * Graceful stop: readiness goes false and every response from then on says Connection:
 * close; new infer requests get 503. The batcher computes its queue for up to the grace
 * period; what is still queued then is cancelled and answered 503, as it is at once after
 * bl_server_stop_now (a second signal). Then we wait until every accepted request's
 * response has been written (counted in the completion callback; 200 ms more at most for
 * the 503s) and only then stop the daemon. `accepted == answered` is what the SIGTERM
 * tests check. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "server_internal.h"
#include "core/alloc.h"

void bl_serve_config_default(bl_serve_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->model_name = "model";
    c->http_threads = 1;
    c->max_body_bytes = 64u << 20;
    c->conn_timeout_s = 10;
    c->read_timeout_s = 30;
    c->max_connections = 1000;
    c->max_conn_per_ip = 256;
    bl_batcher_config_default(&c->batch);
}

static int valid_name(const char *n) {
    if (!n || !*n || strlen(n) > 100) return 0;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '_' || *n == '-' || *n == '.'))
            return 0;
    return 1;
}

/* Everything but the daemon (stopped by then, or never started). */
static void release(bl_server *s) {
    read_deadlines_stop(&s->deadlines);
    bl_batcher_free(s->b);
    bl_free(s->metadata);
    bl_free(s->stages);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->stop_mu);
    pthread_mutex_destroy(&s->stage_mu);
    bl_free(s);
}

bl_status bl_serve_config_check(const bl_serve_config *cfg, bl_error *err) {
    if (!valid_name(cfg->model_name))
        return bl_fail(err, BL_ERR_ARG, "--name '%s' is invalid: use 1 to 100 of A-Z a-z 0-9 _ - .",
                       cfg->model_name ? cfg->model_name : "");
    if (cfg->port < 0 || cfg->port > 65535)
        return bl_fail(err, BL_ERR_ARG, "--port %d is invalid: it must be in [0, 65535]",
                       cfg->port);
    if (cfg->http_threads < 1 || cfg->http_threads > 64)
        return bl_fail(err, BL_ERR_ARG, "--http-threads %d is invalid: it must be in [1, 64]",
                       cfg->http_threads);
    if (cfg->max_body_bytes < 64)
        return bl_fail(err, BL_ERR_ARG, "--max-body-bytes %zu is invalid: it must be at least 64",
                       cfg->max_body_bytes);
    /* The limits are printed as int: a negative number given on the command line arrives
     * here wrapped, and the message shows it as typed. */
    if (cfg->conn_timeout_s < 1 || cfg->conn_timeout_s > 3600)
        return bl_fail(err, BL_ERR_ARG, "--conn-timeout-s %d is invalid: it must be in [1, 3600]",
                       (int)cfg->conn_timeout_s);
    if (cfg->read_timeout_s < 1 || cfg->read_timeout_s > 3600)
        return bl_fail(err, BL_ERR_ARG, "--read-timeout-s %d is invalid: it must be in [1, 3600]",
                       (int)cfg->read_timeout_s);
    if (cfg->max_connections < 1 || cfg->max_connections > 100000)
        return bl_fail(err, BL_ERR_ARG,
                       "--max-connections %d is invalid: it must be in [1, 100000]",
                       (int)cfg->max_connections);
    if (cfg->max_conn_per_ip > 100000)
        return bl_fail(err, BL_ERR_ARG,
                       "--max-conn-per-ip %d is invalid: it must be in [0, 100000]",
                       (int)cfg->max_conn_per_ip);
    struct in_addr a;
    if (inet_pton(AF_INET, cfg->host ? cfg->host : "127.0.0.1", &a) != 1)
        return bl_fail(err, BL_ERR_ARG, "--host '%s' is not an IPv4 address", cfg->host);
    return bl_batcher_config_check(&cfg->batch, err);
}

bl_status bl_server_start(bl_server **out, const bl_serve_config *cfg, bl_model *m,
                          const bl_norm *norm, bl_error *err) {
    *out = NULL;
    bl_status cst = bl_serve_config_check(cfg, err);
    if (cst) return cst;
    if (cfg->batch.max_batch > bl_model_max_batch(m))
        return bl_fail(err, BL_ERR_ARG,
                       "--max-batch %d exceeds the batch the model was allocated "
                       "for (%d)",
                       cfg->batch.max_batch, bl_model_max_batch(m));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    inet_pton(AF_INET, host, &sa.sin_addr); /* checked above */
    bl_server *s = bl_calloc(1, sizeof *s);
    if (!s) return bl_fail(err, BL_ERR_NOMEM, "server: out of memory");
    snprintf(s->name, sizeof s->name, "%s", cfg->model_name);
    s->max_body = cfg->max_body_bytes;
    s->runner = (bl_model_runner){m, norm};
    bl_shape in = bl_model_input_shape(m);
    s->km = (bl_kserve_model){s->name,
                              bl_model_spec(m),
                              in,
                              (int)bl_shape_size(in),
                              bl_model_output_dim(m),
                              cfg->batch.max_batch};
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_mutex_init(&s->stop_mu, NULL);
    pthread_mutex_init(&s->stage_mu, NULL);
    s->metadata = bl_kserve_metadata_json(&s->km);
    s->stages = bl_malloc(BL_STAGES * sizeof *s->stages);
    for (int i = 0; s->stages && i < BL_STAGES; i++)
        bl_latency_hist_reset(&s->stages[i]);
    bl_status st =
        s->metadata && s->stages ? BL_OK : bl_fail(err, BL_ERR_NOMEM, "server: out of memory");
    /* Threads start with their creator's signal mask: ours take no signal, so the
     * process's handler (or sigwait) sees every one, whoever starts the server. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (!st)
        st = bl_batcher_create(&s->b, &cfg->batch, s->km.in_dim, s->km.out_dim, bl_model_runner_fn,
                               &s->runner, err);
    if (!st) {
        s->m = bl_batcher_metrics(s->b);
        st = read_deadlines_start(&s->deadlines, cfg->read_timeout_s, s->m, err);
    }
    if (!st) {
        /* poll(), not epoll: with epoll (edge-triggered in libmicrohttpd) a request's last
         * bytes and the client's FIN in one wake-up were read as data only, and the end of
         * stream was never seen, so a half-closed socket sat in CLOSE-WAIT until the
         * timeout (D1); poll is level-triggered and sees it at once. */
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME;
        s->d = MHD_start_daemon(
            flags, (uint16_t)cfg->port, NULL, NULL, server_handle, s, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, server_on_completed, s,
            MHD_OPTION_NOTIFY_CONNECTION, read_deadlines_notify, s, MHD_OPTION_THREAD_POOL_SIZE,
            (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout_s,
            MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            cfg->max_conn_per_ip, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
        if (!s->d)
            st = bl_fail(err, BL_ERR_IO,
                         "cannot listen on %s:%d (port in use, or not a local "
                         "address?)",
                         host, cfg->port);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st) {
        release(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return BL_OK;
}

int bl_server_port(const bl_server *s) {
    return s->port;
}
bl_serve_metrics *bl_server_metrics(bl_server *s) {
    return s->m;
}
bl_batcher *bl_server_batcher(bl_server *s) {
    return s->b;
}

void bl_server_begin_drain(bl_server *s) {
    atomic_store(&s->draining, 1);
}

void bl_server_stop_now(bl_server *s) {
    atomic_store(&s->stop_now, 1);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait (polling each ms) until cond(s), the deadline, or (heed_stop_now) a stop_now;
 * returns cond(s). */
static int wait_for(bl_server *s, int (*cond)(bl_server *), uint64_t deadline, int heed_stop_now) {
    while (!cond(s) && bl_now_ns() < deadline && !(heed_stop_now && atomic_load(&s->stop_now)))
        sleep_ms(1);
    return cond(s);
}
static int queue_empty(bl_server *s) {
    return bl_batcher_queue_requests(s->b) == 0;
}
static int all_answered(bl_server *s) {
    return atomic_load(&s->inflight) == 0;
}

void bl_server_stop(bl_server *s, long grace_ms) {
    pthread_mutex_lock(&s->stop_mu);
    if (!s->stopped) {
        bl_server_begin_drain(s);
        uint64_t deadline = bl_now_ns() + (uint64_t)(grace_ms > 0 ? grace_ms : 0) * 1000000ULL;
        s->queued_at_stop = bl_batcher_begin_drain(s->b);
        if (!wait_for(s, queue_empty, deadline, 1)) bl_batcher_cancel_waiting(s->b);
        bl_batcher_drain(s->b); /* a batch running now, or a request that spans batches */
        if (!wait_for(s, all_answered, deadline, 1))
            wait_for(s, all_answered, bl_now_ns() + 200000000ULL, 0); /* the 503s, if any */
        MHD_stop_daemon(s->d);
        s->d = NULL;
        s->stopped = 1;
    }
    pthread_mutex_unlock(&s->stop_mu);
}

void bl_server_get_stats(bl_server *s, bl_server_stats *st) {
    st->accepted = atomic_load(&s->accepted);
    st->answered = atomic_load(&s->answered);
    st->unanswered = atomic_load(&s->unanswered);
    st->cancelled = atomic_load(&s->cancelled);
    st->abandoned = (uint64_t)bl_batcher_abandoned(s->b);
    st->read_timeouts = atomic_load(&s->deadlines.expired);
    pthread_mutex_lock(&s->stop_mu);
    st->queued_at_stop = s->queued_at_stop;
    pthread_mutex_unlock(&s->stop_mu);
}

void bl_server_free(bl_server *s) {
    if (!s) return;
    bl_server_stop(s, 5000);
    release(s);
}

const char *bl_stage_name(bl_stage st) {
    static const char *names[BL_STAGES] = {"receive", "parse",    "queue",
                                           "compute", "handback", "respond"};
    return st >= 0 && st < BL_STAGES ? names[st] : "?";
}

uint64_t bl_server_stage_ns(bl_server *s, bl_stage st, double q) {
    if (st < 0 || st >= BL_STAGES) return 0;
    pthread_mutex_lock(&s->stage_mu);
    uint64_t v = bl_latency_hist_percentile(&s->stages[st], q);
    pthread_mutex_unlock(&s->stage_mu);
    return v;
}
