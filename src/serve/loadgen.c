/* The load generator: one thread, a small HTTP/1.1 client of its own over non-blocking
 * keep-alive connections, driven by ppoll.
 *
 * Open loop: the arrival times are fixed in advance (constant gaps 1/rate, or Poisson:
 * exponential gaps) and each request's latency is measured from its INTENDED send
 * time. If the server falls behind and every connection is busy, the next request is
 * sent late but still timed from when it should have gone: that waiting is queueing the
 * server caused, and a generator that timed from the actual send would hide it
 * ("coordinated omission"). The gap between intended and actual send is recorded too
 * (send_lag), so a generator that cannot keep up is visible instead of silent.
 * Closed loop: `concurrency` requests are always in flight; each answer sends the next.
 *
 * Why not libcurl's multi interface (used here before, and still for the one-off GETs
 * in probe.c): measured at 1,000 requests/s on 2 cores, it spent about 30 us of CPU per
 * request in curl and malloc plus two liveness poll()s, and a GET of /v2/health/live
 * took 96 us at p50 against 56 us with a plain send/recv client. That is time of the
 * client's, not the server's, inside every latency this tool reports. So each request is
 * one prebuilt message (request line, headers and body, up to 64 distinct ones) written
 * with one send(), and the answer is read into a fixed buffer per connection: the status
 * code, Content-Length and Connection: close are read from the head, and only the first
 * bytes of the body are kept (for error messages). No allocation per request. Waiting
 * uses ppoll (nanoseconds) rather than a millisecond poll, which would quantise send times
 * at rates above 1,000/s. A reused connection that the server closed before answering is
 * reconnected and the request sent again, once. The server's responses carry
 * Content-Length (or end at close); chunked ones are refused as a transport error. */
#define _GNU_SOURCE /* ppoll, strncasecmp */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "batchlab/serve.h"
#include "core/alloc.h"

#define MAX_BODIES 64
#define MAX_CONNS 1024
#define RESP_BUF 8192 /* response head (and the start of the body) per connection */

typedef enum { X_IDLE, X_CONNECTING, X_SENDING, X_RECEIVING } xfer_state;

typedef struct xfer {
    int fd; /* -1: not connected */
    xfer_state state;
    int reused, retried; /* the connection served a request before; this one was re-sent */
    uint64_t intended_ns, sent_ns, deadline_ns;
    int msg;
    size_t sent, got;       /* bytes of the message sent; bytes of the response read */
    size_t head_len;        /* 0 until the response head is complete */
    long code, content_len; /* content_len -1: the body ends at close */
    int close_after;
    char buf[RESP_BUF];
    struct xfer *next_free;
} xfer;

typedef struct lg {
    const bl_load_config *c;
    bl_load_result *r;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char *msgs[MAX_BODIES]; /* whole requests: request line, headers, body */
    size_t msg_len[MAX_BODIES];
    int n_msgs, next_msg;
    xfer *pool, *free_list;
    int pool_n;
    struct pollfd fds[MAX_CONNS];
    xfer *fd_xfer[MAX_CONNS];
    long outstanding, issued, errors;
    int sending;
    uint64_t t_measure, last_done;
    bl_rng rng;
} lg;

void bl_load_config_default(bl_load_config *c) {
    memset(c, 0, sizeof *c);
    c->url = "http://127.0.0.1:8000";
    c->model = "model";
    c->mode = BL_LOAD_OPEN;
    c->rate = 100;
    c->concurrency = 64;
    c->duration_s = 5;
    c->warmup_s = 0.5;
    c->timeout_s = 30;
    c->format = BL_LOAD_JSON;
    c->per_request = 1;
    c->seed = 1;
}

/* ---- request messages ------------------------------------------------------------------ */

static int append(char **buf, size_t *len, size_t *cap, const void *src, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1)
            c *= 2;
        char *p = bl_realloc(*buf, c);
        if (!p) return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* "http://HOST[:PORT][/PREFIX]": resolve HOST once, and write the request target's
 * prefix and the Host header's value. */
static bl_status parse_url(lg *g, const char *url, char *prefix, size_t pcap, char *host_hdr,
                           size_t hcap, bl_error *err) {
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof scheme - 1))
        return bl_fail(err, BL_ERR_ARG, "load: --url '%s' must start with http://", url);
    const char *h = url + sizeof scheme - 1, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= hcap) return bl_fail(err, BL_ERR_ARG, "load: no host in --url '%s'", url);
    snprintf(host_hdr, hcap, "%.*s", (int)hl, h);
    snprintf(prefix, pcap, "%s", slash ? slash : "");
    size_t pl = strlen(prefix);
    if (pl && prefix[pl - 1] == '/') prefix[pl - 1] = '\0';
    char host[256], port[16] = "80";
    const char *colon = strrchr(host_hdr, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon ? (size_t)(colon - host_hdr) : hl), host_hdr);
    if (colon) snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc || !ai)
        return bl_fail(err, BL_ERR_IO, "load: cannot resolve '%s' of --url '%s': %s", host_hdr, url,
                       gai_strerror(rc));
    memcpy(&g->addr, ai->ai_addr, ai->ai_addrlen);
    g->addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return BL_OK;
}

/* The request line and headers, then the body, as one message. */
static int add_msg(lg *g, const char *head, size_t head_len, const char *body, size_t body_len) {
    char *m = bl_malloc(head_len + body_len + 1);
    if (!m) return -1;
    memcpy(m, head, head_len);
    if (body_len) memcpy(m + head_len, body, body_len);
    m[head_len + body_len] = '\0';
    g->msgs[g->n_msgs] = m;
    g->msg_len[g->n_msgs++] = head_len + body_len;
    return 0;
}

static bl_status build_msgs(lg *g, bl_error *err) {
    const bl_load_config *c = g->c;
    char prefix[512], host[300], head[1400];
    bl_status st = parse_url(g, c->url, prefix, sizeof prefix, host, sizeof host, err);
    if (st) return st;
    if (c->get_path) {
        int n = snprintf(head, sizeof head, "GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", prefix,
                         c->get_path, host);
        if (n >= (int)sizeof head) return bl_fail(err, BL_ERR_ARG, "load: --get path too long");
        if (add_msg(g, head, (size_t)n, NULL, 0))
            return bl_fail(err, BL_ERR_NOMEM, "load: out of memory");
        return BL_OK;
    }
    size_t dim = bl_shape_size(c->shape);
    int k = c->per_request;
    size_t distinct = c->n_samples < MAX_BODIES ? c->n_samples : MAX_BODIES;
    char shape[128];
    snprintf(shape, sizeof shape, "[%d,%d,%d,%d]", k, c->shape.c, c->shape.h, c->shape.w);
    for (size_t b = 0; b < distinct; b++) {
        char *buf = NULL, extra[80] = "";
        size_t len = 0, cap = 0;
        char json[512];
        int bad = 0;
        const char *type = "application/json";
        if (c->format == BL_LOAD_BINARY) {
            int jl = snprintf(json, sizeof json,
                              "{\"inputs\":[{\"name\":\"input\",\"shape\":%s,\"datatype\":\"FP32\","
                              "\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":[{\"name\":"
                              "\"logits\",\"parameters\":{\"binary_data\":true}}]}",
                              shape, (size_t)k * dim * sizeof(float));
            bad |= append(&buf, &len, &cap, json, (size_t)jl);
            for (int i = 0; i < k; i++) {
                const float *row = c->samples + ((b * (size_t)k + (size_t)i) % c->n_samples) * dim;
                bad |= append(&buf, &len, &cap, row, dim * sizeof(float));
            }
            snprintf(extra, sizeof extra, "Inference-Header-Content-Length: %d\r\n", jl);
            type = "application/octet-stream";
        } else {
            int jl = snprintf(json, sizeof json,
                              "{\"inputs\":[{\"name\":\"input\",\"shape\":%s,\"datatype\":\"FP32\","
                              "\"data\":[",
                              shape);
            bad |= append(&buf, &len, &cap, json, (size_t)jl);
            for (int i = 0; i < k; i++) {
                const float *row = c->samples + ((b * (size_t)k + (size_t)i) % c->n_samples) * dim;
                for (size_t j = 0; j < dim; j++) {
                    char num[32];
                    int nl = snprintf(num, sizeof num, (i || j) ? ",%.9g" : "%.9g", (double)row[j]);
                    bad |= append(&buf, &len, &cap, num, (size_t)nl);
                }
            }
            bad |= append(&buf, &len, &cap, "]}]}", 4);
        }
        int hl = snprintf(head, sizeof head,
                          "POST %s/v2/models/%s/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                          "%sContent-Length: %zu\r\n\r\n",
                          prefix, c->model, host, type, extra, len);
        if (hl >= (int)sizeof head) bad = 1;
        if (!bad) bad = add_msg(g, head, (size_t)hl, buf, len);
        bl_free(buf);
        if (bad) return bl_fail(err, BL_ERR_NOMEM, "load: out of memory building requests");
    }
    return BL_OK;
}

/* ---- connections -------------------------------------------------------------------- */

static void close_conn(xfer *x) {
    if (x->fd >= 0) close(x->fd);
    x->fd = -1;
    x->reused = 0;
}

/* Start a non-blocking connect; 0 on success or in progress. */
static int open_conn(lg *g, xfer *x) {
    x->fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (x->fd < 0) return -1;
    int one = 1;
    setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    x->reused = 0;
    if (connect(x->fd, (struct sockaddr *)&g->addr, g->addr_len) == 0) {
        x->state = X_SENDING;
        return 0;
    }
    if (errno == EINPROGRESS) {
        x->state = X_CONNECTING;
        return 0;
    }
    return -1;
}

static void record(lg *g, xfer *x, int ok, long code, const char *transport_err) {
    uint64_t now = bl_now_ns();
    bl_load_result *r = g->r;
    g->outstanding--;
    if (!ok) {
        g->errors++;
        if (transport_err)
            snprintf(r->last_error, sizeof r->last_error, "%s", transport_err);
        else
            snprintf(r->last_error, sizeof r->last_error, "HTTP %ld: %.200s", code,
                     x->head_len && x->got > x->head_len ? x->buf + x->head_len : "");
        if (g->c->max_errors && g->errors >= g->c->max_errors) g->sending = 0;
    }
    if (x->intended_ns >= g->t_measure) {
        r->sent++;
        bl_latency_hist_record(&r->send_lag, x->sent_ns - x->intended_ns);
        if (ok) {
            r->ok++;
            bl_latency_hist_record(&r->latency, now - x->intended_ns);
            g->last_done = now;
        } else {
            r->failed++;
            if (transport_err)
                r->transport++;
            else if (code == 503)
                r->http_503++;
            else if (code >= 500)
                r->http_5xx++;
            else
                r->http_4xx++;
        }
    }
    x->state = X_IDLE;
    x->next_free = g->free_list;
    g->free_list = x;
}

/* A transport failure: the connection is gone; a request on a reused connection that got
 * no byte of an answer is sent again once on a fresh one (the server closed an idle
 * keep-alive connection under it). */
static void fail_transport(lg *g, xfer *x, const char *what, int err_no) {
    int retry = x->reused && !x->retried && x->got == 0;
    close_conn(x);
    if (retry) {
        x->retried = 1;
        x->sent = 0;
        if (open_conn(g, x) == 0) return;
        close_conn(x);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", what, err_no ? strerror(err_no) : "connection closed");
    record(g, x, 0, 0, msg);
}

static void start(lg *g, uint64_t intended) {
    xfer *x = g->free_list;
    if (!x) return;
    g->free_list = x->next_free;
    x->intended_ns = intended;
    x->sent_ns = bl_now_ns();
    x->deadline_ns = x->sent_ns + (uint64_t)(g->c->timeout_s * 1e9);
    x->msg = g->next_msg;
    g->next_msg = (g->next_msg + 1) % g->n_msgs;
    x->sent = x->got = x->head_len = 0;
    x->code = 0;
    x->content_len = -1;
    x->close_after = 0;
    x->retried = 0;
    g->outstanding++;
    g->issued++;
    if (g->c->max_requests && g->issued >= g->c->max_requests) g->sending = 0;
    if (x->fd >= 0)
        x->state = X_SENDING;
    else if (open_conn(g, x)) {
        int e = errno;
        close_conn(x);
        char msg[160];
        snprintf(msg, sizeof msg, "connect: %s", strerror(e));
        record(g, x, 0, 0, msg);
    }
}

static void try_send(lg *g, xfer *x) {
    while (x->sent < g->msg_len[x->msg]) {
        ssize_t n =
            send(x->fd, g->msgs[x->msg] + x->sent, g->msg_len[x->msg] - x->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            fail_transport(g, x, "send", errno);
            return;
        }
        x->sent += (size_t)n;
    }
    x->state = X_RECEIVING;
}

/* Parse the response head in x->buf[0, end): 0 on success. */
static int parse_head(xfer *x, size_t end) {
    x->head_len = end;
    if (strncmp(x->buf, "HTTP/1.", 7) || end < 12) return -1;
    x->code = strtol(x->buf + 9, NULL, 10);
    x->close_after = x->buf[7] == '0';
    for (const char *p = strstr(x->buf, "\r\n"); p && (size_t)(p - x->buf) + 2 < end;
         p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (!strncasecmp(h, "Content-Length:", 15))
            x->content_len = strtol(h + 15, NULL, 10);
        else if (!strncasecmp(h, "Transfer-Encoding:", 18))
            return -2;
        else if (!strncasecmp(h, "Connection:", 11)) {
            const char *v = h + 11;
            while (*v == ' ')
                v++;
            x->close_after = !strncasecmp(v, "close", 5);
        }
    }
    return 0;
}

static void try_recv(lg *g, xfer *x) {
    for (;;) {
        /* Keep the head and the start of the body; later body bytes are only counted. */
        char sink[RESP_BUF];
        size_t keep = x->got < sizeof x->buf - 1 ? sizeof x->buf - 1 - x->got : 0;
        char *dst = keep ? x->buf + x->got : sink;
        ssize_t n = recv(x->fd, dst, keep ? keep : sizeof sink, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fail_transport(g, x, "recv", errno);
            return;
        }
        if (n == 0) { /* closed: the end of a body without Content-Length, or a failure */
            if (x->head_len && x->content_len < 0) break;
            fail_transport(g, x, "recv", 0);
            return;
        }
        size_t before = x->got;
        x->got += (size_t)n;
        if (keep) x->buf[x->got < sizeof x->buf ? x->got : sizeof x->buf - 1] = '\0';
        if (!x->head_len) {
            size_t from = before > 3 ? before - 3 : 0;
            char *e = x->got <= sizeof x->buf - 1 ? strstr(x->buf + from, "\r\n\r\n") : NULL;
            if (!e) {
                if (x->got >= sizeof x->buf - 1) {
                    close_conn(x);
                    record(g, x, 0, 0, "response head too long");
                    return;
                }
                continue;
            }
            int bad = parse_head(x, (size_t)(e - x->buf) + 4);
            if (bad) {
                close_conn(x);
                record(g, x, 0, 0,
                       bad == -2 ? "chunked responses are not supported" : "not an HTTP response");
                return;
            }
        }
        if (x->content_len >= 0 && x->got >= x->head_len + (size_t)x->content_len) break;
    }
    if (x->close_after || x->content_len < 0) close_conn(x);
    x->reused = 1;
    record(g, x, x->code == 200, x->code, NULL);
}

static void on_ready(lg *g, xfer *x, short revents) {
    if (x->state == X_IDLE) { /* an idle connection is readable: the server closed it */
        close_conn(x);
        return;
    }
    if (x->state == X_CONNECTING) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e) {
            fail_transport(g, x, "connect", e);
            return;
        }
        x->state = X_SENDING;
    }
    if (x->state == X_SENDING) try_send(g, x);
    if (x->state == X_RECEIVING && (revents & (POLLIN | POLLHUP | POLLERR))) try_recv(g, x);
}

/* ---- the loop ----------------------------------------------------------------------- */

static double next_gap_ns(lg *g) {
    double mean = 1e9 / g->c->rate;
    if (!g->c->poisson) return mean;
    double u = bl_rng_uniform_double(&g->rng);
    return -log(1.0 - u) * mean;
}

/* Send what start() queued, wait for socket events until `until` (or the earliest request
 * deadline), handle them, and time out overdue requests. */
static void wait_events(lg *g, uint64_t until) {
    int n = 0;
    for (int i = 0; i < g->pool_n; i++) {
        xfer *x = &g->pool[i];
        if (x->state == X_SENDING) try_send(g, x);
        if (x->fd < 0) continue;
        if (x->state != X_IDLE && x->deadline_ns < until) until = x->deadline_ns;
        g->fds[n] = (struct pollfd){
            x->fd, (short)(x->state == X_CONNECTING || x->state == X_SENDING ? POLLOUT : POLLIN),
            0};
        g->fd_xfer[n++] = x;
    }
    uint64_t now = bl_now_ns();
    uint64_t wait = until > now ? until - now : 0;
    struct timespec ts = {(time_t)(wait / 1000000000ULL), (long)(wait % 1000000000ULL)};
    if (ppoll(g->fds, (nfds_t)n, &ts, NULL) > 0)
        for (int i = 0; i < n; i++)
            if (g->fds[i].revents && g->fd_xfer[i]->fd == g->fds[i].fd)
                on_ready(g, g->fd_xfer[i], g->fds[i].revents);
    now = bl_now_ns();
    for (int i = 0; i < g->pool_n; i++) {
        xfer *x = &g->pool[i];
        if (x->state != X_IDLE && now >= x->deadline_ns) {
            close_conn(x);
            record(g, x, 0, 0, "no answer within --timeout");
        }
    }
}

static void run_loop(lg *g) {
    const bl_load_config *c = g->c;
    uint64_t t0 = bl_now_ns();
    g->t_measure = t0 + (uint64_t)(c->warmup_s * 1e9);
    uint64_t t_end = g->t_measure + (uint64_t)(c->duration_s * 1e9);
    uint64_t hard_stop = t_end + (uint64_t)((c->timeout_s + 1.0) * 1e9);
    double next_send = (double)t0;
    int open = c->mode == BL_LOAD_OPEN;
    g->sending = 1;
    for (;;) {
        uint64_t now = bl_now_ns();
        if (g->sending) {
            if (open) {
                while (g->sending && (uint64_t)next_send <= now &&
                       g->outstanding < c->concurrency) {
                    if ((uint64_t)next_send >= t_end) {
                        g->sending = 0;
                        break;
                    }
                    start(g, (uint64_t)next_send);
                    next_send += next_gap_ns(g);
                }
                if ((uint64_t)next_send >= t_end) g->sending = 0;
            } else {
                while (g->sending && g->outstanding < c->concurrency && now < t_end)
                    start(g, bl_now_ns());
                if (now >= t_end) g->sending = 0;
            }
        }
        if (!g->sending && g->outstanding == 0) break;
        if (now >= hard_stop) break;
        uint64_t until = now + 50000000ULL; /* re-check at least every 50 ms */
        if (g->sending && open && g->outstanding < c->concurrency && (uint64_t)next_send < until)
            until = (uint64_t)next_send;
        if (hard_stop < until) until = hard_stop;
        wait_events(g, until);
    }
    /* Open loop: intents that never got a connection before the hard stop. */
    if (open && g->sending) {
        while ((uint64_t)next_send < t_end) {
            if ((uint64_t)next_send >= g->t_measure) g->r->unsent++;
            next_send += next_gap_ns(g);
        }
    }
    /* Requests still in flight at the hard stop count as transport failures. */
    for (int i = 0; i < g->pool_n; i++) {
        xfer *x = &g->pool[i];
        if (x->state == X_IDLE) continue;
        close_conn(x);
        record(g, x, 0, 0, "no answer within the run's time limit");
    }
    uint64_t end = g->last_done ? g->last_done : bl_now_ns();
    g->r->elapsed_s = end > g->t_measure ? (double)(end - g->t_measure) * 1e-9 : 0;
    g->r->throughput_rps = g->r->elapsed_s > 0 ? (double)g->r->ok / g->r->elapsed_s : 0;
    g->r->offered_rps = open ? c->rate : 0;
}

static bl_status check_config(const bl_load_config *c, bl_error *err) {
    if (!c->url || !c->model) return bl_fail(err, BL_ERR_ARG, "load: --url and --model are needed");
    if (c->mode == BL_LOAD_OPEN && !(c->rate > 0))
        return bl_fail(err, BL_ERR_ARG, "--rate %g is invalid: it must be positive", c->rate);
    if (c->concurrency < 1 || c->concurrency > MAX_CONNS - 24)
        return bl_fail(err, BL_ERR_ARG, "--concurrency %d is invalid: it must be in [1, %d]",
                       c->concurrency, MAX_CONNS - 24);
    if (!(c->duration_s > 0) || c->warmup_s < 0 || !(c->timeout_s > 0))
        return bl_fail(err, BL_ERR_ARG, "--duration and --timeout must be positive, --warmup >= 0");
    if (c->per_request < 1)
        return bl_fail(err, BL_ERR_ARG, "--per-request %d is invalid: it must be at least 1",
                       c->per_request);
    if (c->get_path && c->get_path[0] != '/')
        return bl_fail(err, BL_ERR_ARG, "--get '%s' must be a path starting with /", c->get_path);
    if (!c->get_path && (!c->samples || !c->n_samples || !bl_shape_size(c->shape)))
        return bl_fail(err, BL_ERR_ARG, "load: no input samples");
    return BL_OK;
}

bl_status bl_load_run(const bl_load_config *c, bl_load_result *r, bl_error *err) {
    memset(r, 0, sizeof *r);
    bl_latency_hist_reset(&r->latency);
    bl_latency_hist_reset(&r->send_lag);
    bl_status st = check_config(c, err);
    if (st) return st;
    lg *g = bl_calloc(1, sizeof *g);
    if (!g) return bl_fail(err, BL_ERR_NOMEM, "load: out of memory");
    g->c = c;
    g->r = r;
    bl_rng_seed(&g->rng, c->seed);
    st = build_msgs(g, err);
    g->pool_n = c->concurrency;
    g->pool = bl_calloc((size_t)g->pool_n, sizeof *g->pool);
    if (!st && !g->pool) st = bl_fail(err, BL_ERR_NOMEM, "load: out of memory");
    for (int i = g->pool_n - 1; !st && i >= 0; i--) {
        g->pool[i].fd = -1;
        g->pool[i].next_free = g->free_list;
        g->free_list = &g->pool[i];
    }
    if (!st) run_loop(g);
    for (int i = 0; g->pool && i < g->pool_n; i++)
        close_conn(&g->pool[i]);
    bl_free(g->pool);
    for (int b = 0; b < g->n_msgs; b++)
        bl_free(g->msgs[b]);
    bl_free(g);
    return st;
}
