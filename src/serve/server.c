/* The HTTP side of `batchlab serve`: libmicrohttpd routing for the KServe v2 endpoints,
 * /metrics, and the hand-off of infer requests to the batcher.
 *
 * Under load, request threads never block on the model. An infer request is parsed on
 * the HTTP thread, queued to the batcher, and its connection is SUSPENDED
 * (MHD_suspend_connection) so the same few polling threads keep serving other
 * connections; the batcher's completion callback RESUMES it, MHD calls the handler again,
 * and the response is formatted there. One server-wide mutex orders "suspend" before
 * "resume": the handler holds it from submit to suspend, and the callback takes it before
 * resuming, so a fast batch can never resume a connection that is not suspended yet. (A
 * per-request mutex would be freed by the HTTP thread while the batcher might still be
 * unlocking it.) When the model is idle the batcher lets the HTTP thread claim the batch
 * (bl_batcher_submit_claim): the handler runs it after dropping that mutex, since the
 * batch may hold other, suspended requests whose callbacks take it, and answers in the
 * same call, with no suspend, no resume and no thread hand-off.
 *
 * Starting and stopping the server is server_life.c. Bodies larger than max_body_bytes
 * are read and dropped, then answered 413: replying before reading them would make the
 * kernel reset the connection and the client could lose the answer. Each successful
 * request's time is split into stages (receive, parse, queue, compute, handback, respond;
 * latency histograms) so the overhead over the bare forward pass can be located. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "server_internal.h"
#include "core/alloc.h"

typedef enum {
    R_LIVE,
    R_READY,
    R_SERVER_META,
    R_METRICS,
    R_MODEL_META,
    R_MODEL_READY,
    R_INFER,
    R_NOT_FOUND,
    R_UNKNOWN_MODEL,
    R_UNKNOWN_VERSION
} route_kind;

typedef struct conn_ctx {
    bl_server *s;
    struct MHD_Connection *conn;
    route_kind route;
    char what[160]; /* the model or version named in the URL, for 404 messages */
    uint64_t t0, t_body, t_resumed;
    char *body;
    size_t len, cap;
    size_t declared; /* Content-Length, 0 if absent */
    int too_large;
    size_t dropped; /* bytes read and discarded after too_large */
    int submitted, completed, accepted, orphaned;
    int fd; /* the connection's socket, to see whether the client is still there */
    bl_kserve_request rq;
    float *out;
    bl_infer_req ir;
} conn_ctx;

/* ---- responses ------------------------------------------------------------------ */

/* Every response goes out here. While draining it carries Connection: close, so a
 * keep-alive client does not send its next request into a server about to stop; a 405
 * says which methods this endpoint takes. */
static enum MHD_Result send_body(conn_ctx *c, unsigned code, char *body, size_t len,
                                 const char *type, size_t json_len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        bl_free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (json_len) {
        char v[32];
        snprintf(v, sizeof v, "%zu", json_len);
        MHD_add_response_header(r, "Inference-Header-Content-Length", v);
    }
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                c->route == R_INFER ? "POST" : "GET, HEAD");
    if (atomic_load(&c->s->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c->conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(conn_ctx *c, unsigned code, const char *json) {
    char *b = bl_strdup(json);
    return send_body(c, code, b, b ? strlen(b) : 0, "application/json", 0);
}

static enum MHD_Result send_error(conn_ctx *c, unsigned code, bl_fail_kind kind, const char *fmt,
                                  ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(conn_ctx *c, unsigned code, bl_fail_kind kind, const char *fmt,
                                  ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bl_metrics_count_failure(c->s->m, kind);
    char *b = bl_kserve_error_json(msg);
    return send_body(c, code, b, b ? strlen(b) : 0, "application/json", 0);
}

/* ---- routing --------------------------------------------------------------------- */

static route_kind route(bl_server *s, const char *url, char *what, size_t what_cap) {
    if (!strcmp(url, "/v2/health/live")) return R_LIVE;
    if (!strcmp(url, "/v2/health/ready")) return R_READY;
    if (!strcmp(url, "/v2") || !strcmp(url, "/v2/")) return R_SERVER_META;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    static const char pfx[] = "/v2/models/";
    if (strncmp(url, pfx, sizeof pfx - 1)) return R_NOT_FOUND;
    const char *name = url + sizeof pfx - 1, *slash = strchr(name, '/');
    size_t nlen = slash ? (size_t)(slash - name) : strlen(name);
    snprintf(what, what_cap, "%.*s", (int)(nlen < 120 ? nlen : 120), name);
    if (nlen != strlen(s->name) || strncmp(name, s->name, nlen)) return R_UNKNOWN_MODEL;
    const char *rest = name + nlen;
    static const char ver[] = "/versions/";
    if (!strncmp(rest, ver, sizeof ver - 1)) {
        const char *v = rest + sizeof ver - 1, *vs = strchr(v, '/');
        size_t vlen = vs ? (size_t)(vs - v) : strlen(v);
        if (vlen != 1 || v[0] != '1') {
            snprintf(what, what_cap, "%.*s", (int)(vlen < 120 ? vlen : 120), v);
            return R_UNKNOWN_VERSION;
        }
        rest = v + vlen;
    }
    if (!*rest) return R_MODEL_META;
    if (!strcmp(rest, "/ready")) return R_MODEL_READY;
    if (!strcmp(rest, "/infer")) return R_INFER;
    return R_NOT_FOUND;
}

/* ---- infer ----------------------------------------------------------------------- */

static void free_ctx(conn_ctx *c) {
    bl_kserve_request_free(&c->rq);
    bl_free(c->out);
    bl_free(c->body);
    bl_free(c);
}

/* Batcher thread. Once the connection is resumed, MHD may finish it and free c at any
 * moment (a client that gave up is closed without calling the handler again), so c is
 * not touched after MHD_resume_connection, not even to find the lock. */
static void on_batch_done(bl_infer_req *r) {
    conn_ctx *c = r->user;
    bl_server *s = c->s;
    pthread_mutex_lock(&s->conn_mu);
    if (c->orphaned) { /* MHD already gave the connection up (see on_completed) */
        pthread_mutex_unlock(&s->conn_mu);
        free_ctx(c);
        return;
    }
    c->completed = 1;
    MHD_resume_connection(c->conn);
    pthread_mutex_unlock(&s->conn_mu);
}

/* Batcher lock held: one non-blocking peek. End of stream or a reset means the client
 * closed (or half-closed) its side, and nobody will read the answer. */
static int client_alive(const bl_infer_req *r) {
    const conn_ctx *c = r->user;
    char b;
    ssize_t k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k > 0 || (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

static enum MHD_Result infer_respond(bl_server *s, conn_ctx *c) {
    bl_infer_req *r = &c->ir;
    if (r->outcome == BL_REQ_TIMEOUT)
        return send_error(c, MHD_HTTP_GATEWAY_TIMEOUT, BL_FAIL_TIMEOUT,
                          "the request waited %.1f ms in the queue, past its timeout",
                          (double)(r->t_end_ns - r->t_enqueue_ns) * 1e-6);
    if (r->outcome == BL_REQ_ABANDONED) return MHD_NO; /* nobody to answer: close */
    if (r->outcome == BL_REQ_CANCELLED) {
        atomic_fetch_add(&s->cancelled, 1);
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, BL_FAIL_SHUTDOWN,
                          "the server stopped before computing this request");
    }
    if (r->outcome != BL_REQ_OK)
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, BL_FAIL_INTERNAL,
                          "the model failed on this batch");
    char *body = NULL;
    size_t len = 0, json_len = 0;
    bl_error err = {0};
    if (bl_kserve_format_infer(&s->km, &c->rq, c->out, &body, &len, &json_len, &err))
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, BL_FAIL_INTERNAL, "%s", err.msg);
    uint64_t now = bl_now_ns();
    bl_metrics_count_success(s->m, now - c->t0);
    const uint64_t t[BL_STAGES + 1] = {
        c->t0, c->t_body, r->t_enqueue_ns, r->t_start_ns, r->t_end_ns, c->t_resumed, now};
    pthread_mutex_lock(&s->stage_mu);
    for (int i = 0; i < BL_STAGES; i++)
        bl_latency_hist_record(&s->stages[i], t[i + 1] >= t[i] ? t[i + 1] - t[i] : 0);
    pthread_mutex_unlock(&s->stage_mu);
    if (c->rq.binary_output)
        return send_body(c, MHD_HTTP_OK, body, len, "application/octet-stream", json_len);
    return send_body(c, MHD_HTTP_OK, body, len, "application/json", 0);
}

static enum MHD_Result infer_submit(bl_server *s, conn_ctx *c) {
    struct MHD_Connection *conn = c->conn;
    if (c->too_large)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, BL_FAIL_TOO_LARGE,
                          "the request body (%zu bytes) exceeds the limit of %zu bytes "
                          "(--max-body-bytes)",
                          c->len + c->dropped, s->max_body);
    if (atomic_load(&s->draining))
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, BL_FAIL_SHUTDOWN,
                          "the server is shutting down");
    long hdr_len = -1;
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    if (h) {
        char *end;
        hdr_len = strtol(h, &end, 10);
        if (!*h || *end || hdr_len < 0)
            return send_error(c, MHD_HTTP_BAD_REQUEST, BL_FAIL_BAD_REQUEST,
                              "Inference-Header-Content-Length '%.40s' is not a byte count", h);
    }
    bl_error err = {0};
    if (bl_kserve_parse_infer(&c->rq, &s->km, c->body ? c->body : "", c->len, hdr_len, &err))
        return send_error(
            c, err.code == BL_ERR_NOMEM ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_BAD_REQUEST,
            err.code == BL_ERR_NOMEM ? BL_FAIL_INTERNAL : BL_FAIL_BAD_REQUEST, "%s", err.msg);
    bl_free(c->body); /* the floats are in rq.x now */
    c->body = NULL;
    c->out = bl_malloc((size_t)c->rq.n * (size_t)s->km.out_dim * sizeof(float));
    if (!c->out)
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, BL_FAIL_INTERNAL,
                          "out of memory for %d outputs", c->rq.n);
    c->ir = (bl_infer_req){.x = c->rq.x,
                           .out = c->out,
                           .n = c->rq.n,
                           .timeout_us = c->rq.timeout_ms * 1000,
                           .t_arrival_ns = c->t0,
                           .done = on_batch_done,
                           .user = c,
                           .alive = c->fd >= 0 ? client_alive : NULL};
    int claimed;
    pthread_mutex_lock(&s->conn_mu);
    bl_status st = bl_batcher_submit_claim(s->b, &c->ir, &claimed, &err);
    if (!st) {
        c->submitted = c->accepted = 1;
        atomic_fetch_add(&s->accepted, 1);
        atomic_fetch_add(&s->inflight, 1);
        if (!claimed) MHD_suspend_connection(conn);
    }
    pthread_mutex_unlock(&s->conn_mu);
    if (!st && claimed) { /* the model was idle: run the batch here and answer at once */
        bl_batcher_run_claimed(s->b, &c->ir);
        pthread_mutex_lock(&s->conn_mu);
        c->completed = 1;
        pthread_mutex_unlock(&s->conn_mu);
        c->t_resumed = bl_now_ns();
        return infer_respond(s, c);
    }
    if (!st) return MHD_YES;
    if (st == BL_ERR_NOMEM)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, BL_FAIL_QUEUE_FULL, "%s", err.msg);
    if (st == BL_ERR_INTERRUPTED)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, BL_FAIL_SHUTDOWN, "%s", err.msg);
    return send_error(c, MHD_HTTP_BAD_REQUEST, BL_FAIL_BAD_REQUEST, "%s", err.msg);
}

/* ---- the access handler ------------------------------------------------------------ */

static enum MHD_Result respond_get(bl_server *s, conn_ctx *c) {
    char buf[512];
    switch (c->route) {
    case R_LIVE:
        return send_json(c, MHD_HTTP_OK, "{\"live\":true}");
    case R_READY:
        return atomic_load(&s->draining)
                   ? send_json(c, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"ready\":false}")
                   : send_json(c, MHD_HTTP_OK, "{\"ready\":true}");
    case R_SERVER_META:
        return send_json(c, MHD_HTTP_OK,
                         "{\"name\":\"batchlab\",\"version\":\"" BL_VERSION
                         "\",\"extensions\":[\"binary_tensor_data\",\"metrics\"]}");
    case R_MODEL_META:
        return send_json(c, MHD_HTTP_OK, s->metadata);
    case R_MODEL_READY: {
        int ready = !atomic_load(&s->draining);
        snprintf(buf, sizeof buf, "{\"name\":\"%s\",\"ready\":%s}", s->name,
                 ready ? "true" : "false");
        return send_json(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, buf);
    }
    case R_METRICS: {
        char *text = NULL;
        size_t len = 0;
        if (bl_metrics_render(s->m, s->name, &text, &len, NULL))
            return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, BL_FAIL_INTERNAL,
                              "cannot render metrics");
        return send_body(c, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4", 0);
    }
    default:
        return MHD_NO;
    }
}

enum MHD_Result server_handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    bl_server *s = cls;
    conn_ctx *c = *con_cls;
    if (!c) {
        c = bl_calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->s = s;
        c->conn = conn;
        c->t0 = bl_now_ns();
        c->route = route(s, url, c->what, sizeof c->what);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) c->declared = strtoull(cl, NULL, 10);
        if (c->declared > s->max_body) c->too_large = 1;
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) { /* a chunk of the body */
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->route != R_INFER || c->too_large || c->len + n > s->max_body) {
            c->too_large = c->route == R_INFER;
            c->dropped += n;
            return MHD_YES;
        }
        if (c->len + n > c->cap) {
            size_t cap =
                c->cap ? c->cap : (c->declared && c->declared <= s->max_body ? c->declared : 4096);
            while (cap < c->len + n)
                cap *= 2;
            char *p = bl_realloc(c->body, cap);
            if (!p) return MHD_NO;
            c->body = p;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        return MHD_YES;
    }
    /* The whole request has arrived (or the batcher resumed us): its read clock stops. */
    read_deadlines_disarm(&s->deadlines, conn);
    int is_get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD),
        is_post = !strcmp(method, MHD_HTTP_METHOD_POST);
    switch (c->route) {
    case R_NOT_FOUND:
        return send_error(c, MHD_HTTP_NOT_FOUND, BL_FAIL_NOT_FOUND, "no endpoint %.200s", url);
    case R_UNKNOWN_MODEL:
        return send_error(c, MHD_HTTP_NOT_FOUND, BL_FAIL_NOT_FOUND,
                          "unknown model '%s': this server serves '%s'", c->what, s->name);
    case R_UNKNOWN_VERSION:
        return send_error(c, MHD_HTTP_NOT_FOUND, BL_FAIL_NOT_FOUND,
                          "model '%s' has no version '%s' (only 1)", s->name, c->what);
    case R_INFER:
        if (!is_post)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, BL_FAIL_METHOD,
                              "%s %s: infer takes POST", method, url);
        if (!c->submitted) {
            c->t_body = bl_now_ns();
            return infer_submit(s, c);
        }
        pthread_mutex_lock(&s->conn_mu); /* pairs with on_batch_done */
        int done = c->completed;
        pthread_mutex_unlock(&s->conn_mu);
        c->t_resumed = bl_now_ns();
        return done ? infer_respond(s, c) : MHD_YES;
    default:
        if (!is_get)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, BL_FAIL_METHOD,
                              "%s %s: this endpoint takes GET or HEAD", method, url);
        return respond_get(s, c);
    }
}

void server_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    bl_server *s = cls;
    read_deadlines_rearm(&s->deadlines, conn); /* a kept-alive connection's next request */
    conn_ctx *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    if (c->accepted) {
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            atomic_fetch_add(&s->answered, 1);
        else
            atomic_fetch_add(&s->unanswered, 1);
        atomic_fetch_sub(&s->inflight, 1);
    }
    /* Should MHD ever end a connection whose request the batcher still holds, the
     * batcher's callback frees it instead. */
    pthread_mutex_lock(&s->conn_mu);
    int held = c->submitted && !c->completed;
    if (held) c->orphaned = 1;
    pthread_mutex_unlock(&s->conn_mu);
    if (!held) free_ctx(c);
}
