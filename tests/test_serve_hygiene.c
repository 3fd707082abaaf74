/* The server under abuse and at its edges (issue 14), in process on loopback with raw
 * sockets, so every byte on the wire is the test's:
 *
 *  - every thread the server starts blocks signals, whoever starts it (D6);
 *  - HEAD works on GET endpoints and a 405 names the endpoint's methods (D9);
 *  - while draining, responses carry Connection: close (D8);
 *  - a request whose client has gone is dropped, not computed (D7);
 *  - a stop cut short answers every accepted request, with 200 or 503;
 *  - a flood of half-requests and slow clients from one address leaves the server
 *    answering everyone else (D1);
 *  - a client trickling its headers or body, a byte at a time within the inactivity
 *    timeout, is answered 408 and closed at the read timeout.
 * Waits are bounded loops; nothing asserts how long anything took. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "batchlab/serve.h"
#include "test_util.h"

#define IN_DIM 7
#define WAIT_MS 30000

static bl_ctx g_ctx;
static bl_model *g_model;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bl_server *start(bl_serve_config *cfg) {
    cfg->port = 0;
    cfg->model_name = "m";
    bl_server *s = NULL;
    bl_error err = {0};
    if (bl_server_start(&s, cfg, g_model, NULL, &err)) fail_msg("start: %s", err.msg);
    return s;
}

static bl_serve_config config(long delay_us) {
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 64;
    cfg.batch.max_delay_us = delay_us;
    return cfg;
}

/* A TCP connection to the server from source address src (NULL: any). */
static int dial(const char *src, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (src) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a)) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_str(int fd, const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        s += k;
        n -= (size_t)k;
    }
}

/* Read until the peer closes or nothing comes for timeout_ms; returns the bytes read. */
static size_t read_until_close(int fd, char *buf, size_t cap, int timeout_ms) {
    size_t n = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) break;
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
        if (n == cap - 1) break;
    }
    buf[n] = '\0';
    return n;
}

static int status_code(const char *resp) {
    int code = 0;
    return sscanf(resp, "HTTP/1.1 %d", &code) == 1 ? code : 0;
}

/* The value of header `name` in resp ("" if absent). */
static const char *header(const char *resp, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strstr(resp, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n"))
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
            const char *v = p + 3 + nl, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            break;
        }
    return out;
}

/* The body of an infer request of n samples, in a static buffer: build it on one thread
 * and only then share it. */
static const char *infer_body(int n) {
    static char b[4096];
    size_t k = (size_t)snprintf(b, sizeof b,
                                "{\"inputs\":[{\"name\":\"input\",\"shape\":[%d,%d],"
                                "\"datatype\":\"FP32\",\"data\":[",
                                n, IN_DIM);
    for (int i = 0; i < n * IN_DIM; i++)
        k += (size_t)snprintf(b + k, sizeof b - k, i ? ",%d" : "%d", i % 5);
    snprintf(b + k, sizeof b - k, "]}]}");
    return b;
}

/* method path [body]; keep_alive 0 adds Connection: close. */
static void request(int fd, const char *method, const char *path, const char *body,
                    int keep_alive) {
    char head[512];
    snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n",
             method, path, keep_alive ? "" : "Connection: close\r\n", body ? strlen(body) : 0);
    send_str(fd, head);
    if (body) send_str(fd, body);
}

/* One request on a fresh connection; the whole response into buf; returns the status. */
static int roundtrip(int port, const char *method, const char *path, const char *body, char *buf,
                     size_t cap) {
    int fd = dial(NULL, port);
    if (fd < 0) return 0;
    request(fd, method, path, body, 0);
    read_until_close(fd, buf, cap, WAIT_MS);
    close(fd);
    return status_code(buf);
}

/* ---- signals ------------------------------------------------------------------------- */

static int list_tasks(long *tids, int cap) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < cap;)
        if (e->d_name[0] != '.') tids[n++] = atol(e->d_name);
    if (d) closedir(d);
    return n;
}

static unsigned long long blocked_mask(long tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    FILE *f = fopen(path, "r");
    unsigned long long m = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "SigBlk:", 7)) m = strtoull(line + 7, NULL, 16);
    if (f) fclose(f);
    return m;
}

/* A library user starting the server from a thread that takes signals must still get
 * every SIGTERM on its own threads: the server's threads (HTTP, batcher) block them. */
static void server_threads_block_signals(void **state) {
    (void)state;
    sigset_t none, old;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &old);
    long before[256], after[256];
    int nb = list_tasks(before, 256);
    bl_serve_config cfg = config(0);
    cfg.http_threads = 2;
    bl_server *s = start(&cfg);
    int na = list_tasks(after, 256), fresh = 0;
    for (int i = 0; i < na; i++) {
        int seen = 0;
        for (int j = 0; j < nb; j++)
            seen |= after[i] == before[j];
        if (seen) continue;
        fresh++;
        unsigned long long m = blocked_mask(after[i]);
        if (!(m & (1ULL << (SIGTERM - 1))) || !(m & (1ULL << (SIGINT - 1))))
            fail_msg("server thread %ld takes SIGTERM/SIGINT (SigBlk %llx)", after[i], m);
    }
    assert_true(fresh >= 3); /* the batcher and two HTTP threads at least */
    /* and the caller's own mask is as it was */
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    assert_false(sigismember(&now, SIGTERM));
    bl_server_free(s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- methods -------------------------------------------------------------------------- */

static void head_and_allow(void **state) {
    (void)state;
    bl_serve_config cfg = config(0);
    bl_server *s = start(&cfg);
    int port = bl_server_port(s);
    char buf[8192], v[128];
    const char *get_paths[] = {"/v2/health/live", "/v2/health/ready",   "/v2",
                               "/v2/models/m",    "/v2/models/m/ready", "/metrics"};
    for (size_t i = 0; i < sizeof get_paths / sizeof get_paths[0]; i++) {
        if (roundtrip(port, "HEAD", get_paths[i], NULL, buf, sizeof buf) != 200)
            fail_msg("HEAD %s: %.80s", get_paths[i], buf);
        const char *body = strstr(buf, "\r\n\r\n");
        assert_non_null(body);
        assert_string_equal(body + 4, ""); /* headers only */
        assert_int_equal(roundtrip(port, "DELETE", get_paths[i], NULL, buf, sizeof buf), 405);
        assert_string_equal(header(buf, "Allow", v, sizeof v), "GET, HEAD");
    }
    assert_int_equal(roundtrip(port, "GET", "/v2/models/m/infer", NULL, buf, sizeof buf), 405);
    assert_string_equal(header(buf, "Allow", v, sizeof v), "POST");
    assert_non_null(strstr(buf, "infer takes POST"));
    assert_int_equal(roundtrip(port, "HEAD", "/v2/models/m/infer", NULL, buf, sizeof buf), 405);
    assert_string_equal(header(buf, "Allow", v, sizeof v), "POST");
    bl_server_free(s);
}

/* ---- draining ------------------------------------------------------------------------- */

/* A keep-alive client that sends during the drain is told the connection closes, and it
 * does: its next request would otherwise go to a server about to stop. */
static void drain_responses_close_the_connection(void **state) {
    (void)state;
    bl_serve_config cfg = config(0);
    bl_server *s = start(&cfg);
    int port = bl_server_port(s);
    char buf[8192], v[64];
    int fd = dial(NULL, port); /* opened before the drain, kept alive */
    assert_true(fd >= 0);
    request(fd, "GET", "/v2/health/live", NULL, 1);
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(k > 0);
    buf[k] = '\0';
    assert_int_equal(status_code(buf), 200);
    assert_string_not_equal(header(buf, "Connection", v, sizeof v), "close");

    bl_server_begin_drain(s);
    request(fd, "POST", "/v2/models/m/infer", infer_body(1), 1);
    read_until_close(fd, buf, sizeof buf, 5000); /* returns at the server's close */
    close(fd);
    assert_int_equal(status_code(buf), 503);
    assert_string_equal(header(buf, "Connection", v, sizeof v), "close");
    assert_non_null(strstr(buf, "shutting down"));
    assert_int_equal(roundtrip(port, "GET", "/v2/health/ready", NULL, buf, sizeof buf), 503);
    assert_string_equal(header(buf, "Connection", v, sizeof v), "close");
    bl_server_free(s);
}

/* Requests wait behind a 5 s delay; their clients close; the batcher drops them instead
 * of computing their samples. */
static void clients_that_left_are_not_computed(void **state) {
    (void)state;
    bl_serve_config cfg = config(5000000);
    bl_server *s = start(&cfg);
    int port = bl_server_port(s);
    bl_batcher *b = bl_server_batcher(s);
    enum { K = 4 };
    for (int i = 0; i < K; i++) {
        int fd = dial(NULL, port);
        assert_true(fd >= 0);
        request(fd, "POST", "/v2/models/m/infer", infer_body(2), 1);
        /* queued (those closed before may be dropped already: a submit wakes the batcher) */
        for (int t = 0;
             t < WAIT_MS && bl_batcher_queue_requests(b) + bl_batcher_abandoned(b) < i + 1; t++)
            sleep_ms(1);
        assert_int_equal(bl_batcher_queue_requests(b) + bl_batcher_abandoned(b), i + 1);
        close(fd);
    }
    for (int t = 0; t < WAIT_MS && bl_batcher_abandoned(b) < K; t++)
        sleep_ms(1);
    assert_int_equal(bl_batcher_abandoned(b), K);
    bl_serve_metrics *m = bl_server_metrics(s);
    assert_int_equal(bl_metrics_inferences(m), 0);
    /* and the server goes on answering those who stay */
    bl_server_stop(s, 0);
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    assert_int_equal(st.accepted, K);
    assert_int_equal(st.abandoned, K);
    assert_int_equal(st.answered, 0);
    bl_server_free(s);
}

static long g_computed;   /* samples the fake model computed */
static int g_alive_calls; /* batcher thread only */
static atomic_int g_done;

static int count_rows(void *user, float *x, int B, float *out) {
    (void)user;
    (void)x;
    g_computed += B;
    memset(out, 0, (size_t)B * sizeof *out);
    return 0;
}
static int alive_once(const bl_infer_req *r) {
    (void)r;
    return g_alive_calls++ == 0;
}
static void mark_done(bl_infer_req *r) {
    (void)r;
    atomic_store(&g_done, 1);
}

/* A request that spans batches is asked before each of its batches: once its client has
 * gone, its remaining rows are skipped. */
static void a_spanning_request_stops_when_its_client_leaves(void **state) {
    (void)state;
    bl_batcher_config c;
    bl_batcher_config_default(&c);
    c.max_batch = 4;
    bl_batcher *b = NULL;
    bl_error err = {0};
    assert_int_equal(bl_batcher_create(&b, &c, 1, 1, count_rows, NULL, &err), BL_OK);
    static float x[20], out[20];
    bl_infer_req r = {.x = x, .out = out, .n = 20, .done = mark_done, .alive = alive_once};
    assert_int_equal(bl_batcher_submit(b, &r, &err), BL_OK);
    for (int t = 0; t < WAIT_MS && !atomic_load(&g_done); t++)
        sleep_ms(1);
    assert_true(atomic_load(&g_done));
    assert_int_equal(r.outcome, BL_REQ_ABANDONED);
    assert_int_equal(g_computed, 4); /* its first batch, then nothing */
    assert_int_equal(bl_batcher_abandoned(b), 1);
    bl_batcher_free(b);
}

typedef struct client {
    int port, code;
    const char *body; /* shared, read-only: infer_body's buffer must not be rebuilt while
                       * another client sends it (that race was this test's "defect") */
    char buf[4096];
} client;

static void *send_one(void *arg) {
    client *c = arg;
    c->code = roundtrip(c->port, "POST", "/v2/models/m/infer", c->body, c->buf, sizeof c->buf);
    return NULL;
}

/* A stop told to hurry (a second signal) still answers every accepted request: computed
 * ones with 200, the rest with 503; none is left without a response. */
static void stop_now_answers_every_accepted_request(void **state) {
    (void)state;
    /* A delay no run reaches: the three requests must all be waiting when the stop comes
     * (with 5 s, a loaded sanitizer run once dispatched the first before the third came). */
    bl_serve_config cfg = config(600000000L);
    bl_server *s = start(&cfg);
    bl_batcher *b = bl_server_batcher(s);
    enum { K = 3 };
    client c[K];
    pthread_t t[K];
    const char *body = infer_body(3); /* built once, before the clients run */
    for (int i = 0; i < K; i++) {
        c[i].port = bl_server_port(s);
        c[i].code = -1;
        c[i].body = body;
        pthread_create(&t[i], NULL, send_one, &c[i]);
    }
    for (int w = 0; w < WAIT_MS && bl_batcher_queue_requests(b) < K; w++)
        sleep_ms(1);
    if (bl_batcher_queue_requests(b) != K) {
        bl_server_stats d;
        bl_server_get_stats(s, &d);
        print_message("queued %ld of %d after %d ms: accepted %llu, answered %llu, abandoned %ld\n",
                      bl_batcher_queue_requests(b), K, WAIT_MS, (unsigned long long)d.accepted,
                      (unsigned long long)d.answered, bl_batcher_abandoned(b));
    }
    assert_int_equal(bl_batcher_queue_requests(b), K);
    bl_server_stop_now(s);
    bl_server_stop(s, 60000);
    for (int i = 0; i < K; i++)
        pthread_join(t[i], NULL);
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    int ok = 0, unavailable = 0;
    for (int i = 0; i < K; i++) {
        ok += c[i].code == 200;
        unavailable += c[i].code == 503;
        if (c[i].code == 503) assert_non_null(strstr(c[i].buf, "stopped before computing"));
    }
    assert_int_equal(ok + unavailable, K);
    assert_int_equal(st.accepted, K);
    assert_int_equal(st.answered, K);
    assert_int_equal(st.cancelled, (uint64_t)unavailable);
    bl_server_free(s);
}

/* A client that sends part of a request and half-closes (shutdown SHUT_WR) is closed by
 * the server at once, not after the connection timeout (an hour here): such sockets sat
 * in CLOSE-WAIT for the 120 s timeout (D1). */
static void half_closed_connections_are_closed(void **state) {
    (void)state;
    bl_serve_config cfg = config(0);
    cfg.conn_timeout_s = 3600;
    bl_server *s = start(&cfg);
    int port = bl_server_port(s);
    enum { N = 50 };
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = dial(NULL, port);
        assert_true(fd[i] >= 0);
        send_str(fd[i], i % 2 ? "POST /v2/models/m/infer HTTP/1.1\r\nContent-Length: 900\r\n\r\n{"
                              : "GET /v2/health/li");
        shutdown(fd[i], SHUT_WR);
    }
    char buf[4096];
    for (int i = 0; i < N; i++) { /* the server's close is an end of stream here */
        struct pollfd p = {fd[i], POLLIN, 0};
        if (poll(&p, 1, WAIT_MS) != 1) fail_msg("connection %d still open after %d ms", i, WAIT_MS);
        while (recv(fd[i], buf, sizeof buf, 0) > 0)
            ;
        close(fd[i]);
    }
    bl_server_free(s);
}

/* ---- the read timeout ----------------------------------------------------------------- */

/* Send one byte of `bytes` (cycled) every gap_ms until the server answers or closes;
 * the answer goes to buf. Returns 1 when the server ended it within WAIT_MS, else 0. */
static int trickle_until_closed(int fd, const char *bytes, long gap_ms, char *buf, size_t cap) {
    size_t n = strlen(bytes);
    buf[0] = '\0';
    for (long t = 0, i = 0; t < WAIT_MS; t += gap_ms, i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)gap_ms) == 1) {
            read_until_close(fd, buf, cap, WAIT_MS);
            return 1;
        }
        if (send(fd, bytes + (size_t)i % n, 1, MSG_NOSIGNAL) != 1) return 1; /* reset */
    }
    return 0;
}

static uint64_t read_timeout_metric(bl_server *s) {
    return bl_metrics_failures(bl_server_metrics(s), BL_FAIL_READ_TIMEOUT);
}

/* Headers trickled a byte every 50 ms never trip the inactivity timeout (an hour here),
 * but the whole request must arrive within the read timeout: 408, then closed. A valid
 * request on another connection is answered meanwhile. */
static void trickled_headers_get_408(void **state) {
    (void)state;
    bl_serve_config cfg = config(0);
    cfg.conn_timeout_s = 3600;
    cfg.read_timeout_s = 1;
    bl_server *s = start(&cfg);
    int fd = dial(NULL, bl_server_port(s));
    assert_true(fd >= 0);
    send_str(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    char buf[4096], ok[4096];
    assert_int_equal(
        roundtrip(bl_server_port(s), "POST", "/v2/models/m/infer", infer_body(1), ok, sizeof ok),
        200);
    if (!trickle_until_closed(fd, "abcdefgh", 50, buf, sizeof buf))
        fail_msg("a header trickle was still open after %d ms", WAIT_MS);
    close(fd);
    if (buf[0]) { /* unless the server's reset overtook its answer */
        assert_int_equal(status_code(buf), 408);
        assert_non_null(strstr(buf, "read timeout"));
    }
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    assert_int_equal(st.read_timeouts, 1);
    assert_int_equal(read_timeout_metric(s), 1);
    assert_int_equal(st.accepted, 1);
    bl_server_free(s);
}

/* The same for a body: headers whole, Content-Length 100000, the body a byte at a time.
 * And the clock restarts after each response: on one kept-alive connection, requests
 * spaced 300 ms apart keep being answered past the read timeout, and a trickle that
 * follows them is cut. */
static void trickled_body_gets_408_and_kept_alive_requests_do_not(void **state) {
    (void)state;
    bl_serve_config cfg = config(0);
    cfg.conn_timeout_s = 3600;
    cfg.read_timeout_s = 1;
    bl_server *s = start(&cfg);
    int port = bl_server_port(s);
    char buf[8192];

    int fd = dial(NULL, port);
    assert_true(fd >= 0);
    send_str(fd, "POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                 "{\"inputs\":[{\"name\":\"input\",\"data\":[");
    if (!trickle_until_closed(fd, "1,", 50, buf, sizeof buf))
        fail_msg("a body trickle was still open after %d ms", WAIT_MS);
    close(fd);
    if (buf[0]) assert_int_equal(status_code(buf), 408);

    fd = dial(NULL, port);
    assert_true(fd >= 0);
    for (int i = 0; i < 6; i++) { /* 6 x 300 ms: past the 1 s timeout counted from connect */
        sleep_ms(300);
        request(fd, "GET", "/v2/health/live", NULL, 1);
        size_t n = 0;
        while (!strstr(buf, "{\"live\":true}") && n < sizeof buf - 1) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, WAIT_MS) != 1) fail_msg("request %d: no answer", i);
            ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
            if (k <= 0) fail_msg("request %d: the kept-alive connection was closed", i);
            n += (size_t)k;
            buf[n] = '\0';
        }
        assert_int_equal(status_code(buf), 200);
        buf[0] = '\0';
    }
    send_str(fd, "GET /v2/health/live HTTP/1.1\r\nX-Slow: ");
    if (!trickle_until_closed(fd, "z", 50, buf, sizeof buf))
        fail_msg("a trickle after kept-alive requests was still open after %d ms", WAIT_MS);
    close(fd);
    if (buf[0]) assert_int_equal(status_code(buf), 408);
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    assert_int_equal(st.read_timeouts, 2);
    bl_server_free(s);
}

/* ---- a flood ---------------------------------------------------------------------------- */

/* From 127.0.0.2: connections that send half a request and hang up, and connections that
 * send half a request and stay, more than the server's connection limit. From 127.0.0.1,
 * every valid request must still be answered. With one shared limit the stayers filled
 * it and the server was unreachable (D1). */
static void flood_from_one_address_leaves_others_served(void **state) {
    (void)state;
    enum { HALF = 300, STAY = 1100, VALID = 20 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4 * STAY && rl.rlim_max >= 4 * STAY) {
        rl.rlim_cur = 4 * STAY;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4 * STAY) {
        print_message("skipped: %llu file descriptors, need %d\n", (unsigned long long)rl.rlim_cur,
                      4 * STAY);
        skip();
    }
    int probe = dial("127.0.0.2", 9); /* is 127.0.0.2 a usable source? (any answer will do) */
    if (probe < 0 && errno == EADDRNOTAVAIL) skip();
    if (probe >= 0) close(probe);

    bl_serve_config cfg = config(0);
    bl_server *s = start(&cfg); /* the defaults: 1000 connections, 256 per address */
    int port = bl_server_port(s);
    static int stay[STAY];
    int n_stay = 0;
    for (int i = 0; i < HALF; i++) {
        int fd = dial("127.0.0.2", port);
        if (fd < 0) continue;
        send_str(fd, i % 2 ? "POST /v2/models/m/infer HTTP/1.1\r\nContent-Length: 900\r\n\r\n{\"in"
                           : "GET /v2/health/li");
        close(fd);
    }
    for (int i = 0; i < STAY; i++) {
        int fd = dial("127.0.0.2", port);
        if (fd < 0) continue;
        send_str(fd, i % 2 ? "POST /v2/models/m/infer HTTP/1.1\r\nContent-Length: 900\r\n\r\n{"
                           : "GET /v2/hea");
        stay[n_stay++] = fd;
    }
    int answered = 0;
    char buf[4096];
    double slowest_ms = 0; /* reported, not asserted: the machine is shared */
    for (int i = 0; i < VALID; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int code = roundtrip(port, "POST", "/v2/models/m/infer", infer_body(1), buf, sizeof buf);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms =
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
        if (ms > slowest_ms) slowest_ms = ms;
        answered += code == 200;
        if (code != 200) print_message("valid request %d: %d %.120s\n", i, code, buf);
    }
    print_message(
        "flood: %d stayers held, %d of %d valid requests answered, the slowest in %.1f ms\n",
        n_stay, answered, VALID, slowest_ms);
    for (int i = 0; i < n_stay; i++)
        close(stay[i]);
    assert_int_equal(answered, VALID);
    bl_server_free(s);
}

static int setup(void **state) {
    (void)state;
    bl_ctx_init(&g_ctx, 1);
    bl_error err = {0};
    if (bl_model_create(&g_model, "dense:16,relu,dense:5", (bl_shape){IN_DIM, 1, 1}, 5, &err) ||
        bl_model_alloc(g_model, &g_ctx, 64, &err))
        return -1;
    tu_init(g_model, 42);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    bl_model_free(g_model);
    bl_ctx_free(&g_ctx);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_threads_block_signals),
        cmocka_unit_test(head_and_allow),
        cmocka_unit_test(drain_responses_close_the_connection),
        cmocka_unit_test(clients_that_left_are_not_computed),
        cmocka_unit_test(a_spanning_request_stops_when_its_client_leaves),
        cmocka_unit_test(stop_now_answers_every_accepted_request),
        cmocka_unit_test(half_closed_connections_are_closed),
        cmocka_unit_test(flood_from_one_address_leaves_others_served),
        cmocka_unit_test(trickled_headers_get_408),
        cmocka_unit_test(trickled_body_gets_408_and_kept_alive_requests_do_not),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
