/* The load generator: one thread, libcurl's multi interface driven through
 * curl_multi_socket_action and ppoll.
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
 * Why socket_action + ppoll instead of curl_multi_poll: curl_multi_poll waits in whole
 * milliseconds, which would quantise send times at rates above 1000/s and add up to a
 * millisecond to a 100-microsecond latency; ppoll takes nanoseconds. Request bodies are
 * built once (up to 64 distinct ones) so the loop only re-adds easy handles. With
 * get_path the requests are GETs of that path instead (the HTTP floor: /v2/health/live). */
#define _GNU_SOURCE /* ppoll */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "batchlab/serve.h"

#define MAX_BODIES 64
#define MAX_FDS 1024

typedef struct xfer {
    CURL *easy;
    uint64_t intended_ns, sent_ns;
    int body;
    char err[CURL_ERROR_SIZE];
    char resp_head[200]; /* the start of the body, kept for error messages */
    size_t resp_len;
    struct xfer *next_free;
} xfer;

typedef struct lg {
    const bl_load_config *c;
    bl_load_result *r;
    CURLM *multi;
    struct pollfd fds[MAX_FDS];
    int nfds;
    uint64_t timer_ns; /* 0: no curl timer pending */
    char url[1024];
    char *bodies[MAX_BODIES];
    size_t body_len[MAX_BODIES];
    int n_bodies, next_body;
    struct curl_slist *hdrs;
    xfer *pool, *free_list;
    int pool_n;
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

/* ---- curl plumbing --------------------------------------------------------------- */

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    lg *g = userp;
    int i = 0;
    while (i < g->nfds && g->fds[i].fd != s)
        i++;
    if (what == CURL_POLL_REMOVE) {
        if (i < g->nfds) g->fds[i] = g->fds[--g->nfds];
        return 0;
    }
    if (i == g->nfds) {
        if (g->nfds == MAX_FDS) return -1;
        g->fds[g->nfds++].fd = s;
    }
    g->fds[i].events =
        (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp) {
    lg *g = userp;
    g->timer_ns = timeout_ms < 0 ? 0 : bl_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userp) {
    xfer *x = userp;
    size_t bytes = size * n;
    if (x->resp_len < sizeof x->resp_head - 1) {
        size_t k = sizeof x->resp_head - 1 - x->resp_len;
        if (k > bytes) k = bytes;
        memcpy(x->resp_head + x->resp_len, p, k);
        x->resp_head[x->resp_len + k] = '\0';
    }
    x->resp_len += bytes;
    return bytes;
}

/* ---- request bodies ------------------------------------------------------------------ */

static int append(char **buf, size_t *len, size_t *cap, const void *src, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p) return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static bl_status build_bodies(lg *g, bl_error *err) {
    const bl_load_config *c = g->c;
    size_t dim = bl_shape_size(c->shape);
    int k = c->per_request;
    size_t distinct = c->n_samples < MAX_BODIES ? c->n_samples : MAX_BODIES;
    char shape[128];
    snprintf(shape, sizeof shape, "[%d,%d,%d,%d]", k, c->shape.c, c->shape.h, c->shape.w);
    for (size_t b = 0; b < distinct; b++) {
        char *buf = NULL;
        size_t len = 0, cap = 0;
        char head[512];
        int bad = 0;
        if (c->format == BL_LOAD_BINARY) {
            int hl = snprintf(head, sizeof head,
                              "{\"inputs\":[{\"name\":\"input\",\"shape\":%s,\"datatype\":\"FP32\","
                              "\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":[{\"name\":"
                              "\"logits\",\"parameters\":{\"binary_data\":true}}]}",
                              shape, (size_t)k * dim * sizeof(float));
            bad |= append(&buf, &len, &cap, head, (size_t)hl);
            for (int i = 0; i < k; i++) {
                const float *row = c->samples + ((b * (size_t)k + (size_t)i) % c->n_samples) * dim;
                bad |= append(&buf, &len, &cap, row, dim * sizeof(float));
            }
            if (b == 0) {
                char h[80];
                snprintf(h, sizeof h, "Inference-Header-Content-Length: %d", hl);
                g->hdrs = curl_slist_append(g->hdrs, h);
                g->hdrs = curl_slist_append(g->hdrs, "Content-Type: application/octet-stream");
            }
        } else {
            int hl = snprintf(head, sizeof head,
                              "{\"inputs\":[{\"name\":\"input\",\"shape\":%s,\"datatype\":\"FP32\","
                              "\"data\":[",
                              shape);
            bad |= append(&buf, &len, &cap, head, (size_t)hl);
            for (int i = 0; i < k; i++) {
                const float *row = c->samples + ((b * (size_t)k + (size_t)i) % c->n_samples) * dim;
                for (size_t j = 0; j < dim; j++) {
                    char num[32];
                    int nl = snprintf(num, sizeof num, (i || j) ? ",%.9g" : "%.9g", (double)row[j]);
                    bad |= append(&buf, &len, &cap, num, (size_t)nl);
                }
            }
            bad |= append(&buf, &len, &cap, "]}]}", 4);
            if (b == 0) g->hdrs = curl_slist_append(g->hdrs, "Content-Type: application/json");
        }
        if (bad) {
            free(buf);
            return bl_fail(err, BL_ERR_NOMEM, "load: out of memory building request bodies");
        }
        g->bodies[b] = buf;
        g->body_len[b] = len;
        g->n_bodies++;
    }
    g->hdrs = curl_slist_append(g->hdrs, "Expect:"); /* no 100-continue round trip */
    return BL_OK;
}

/* ---- the loop ----------------------------------------------------------------------- */

static xfer *get_xfer(lg *g) {
    xfer *x = g->free_list;
    if (!x) return NULL;
    g->free_list = x->next_free;
    return x;
}

static void start(lg *g, uint64_t intended) {
    xfer *x = get_xfer(g);
    if (!x) return;
    x->intended_ns = intended;
    x->sent_ns = bl_now_ns();
    x->resp_len = 0;
    x->resp_head[0] = x->err[0] = '\0';
    if (g->n_bodies) {
        x->body = g->next_body;
        g->next_body = (g->next_body + 1) % g->n_bodies;
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, g->bodies[x->body]);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)g->body_len[x->body]);
    }
    curl_multi_add_handle(g->multi, x->easy);
    g->outstanding++;
    g->issued++;
    if (g->c->max_requests && g->issued >= g->c->max_requests) g->sending = 0;
}

static void finish(lg *g, xfer *x, CURLcode res) {
    uint64_t now = bl_now_ns();
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(g->multi, x->easy);
    g->outstanding--;
    int counted = x->intended_ns >= g->t_measure;
    int ok = res == CURLE_OK && code == 200;
    bl_load_result *r = g->r;
    if (!ok) {
        g->errors++;
        if (res != CURLE_OK)
            snprintf(r->last_error, sizeof r->last_error, "%s",
                     x->err[0] ? x->err : curl_easy_strerror(res));
        else
            snprintf(r->last_error, sizeof r->last_error, "HTTP %ld: %s", code, x->resp_head);
        if (g->c->max_errors && g->errors >= g->c->max_errors) g->sending = 0;
    }
    if (counted) {
        r->sent++;
        bl_hdr_record(&r->send_lag, x->sent_ns - x->intended_ns);
        if (ok) {
            r->ok++;
            bl_hdr_record(&r->latency, now - x->intended_ns);
            g->last_done = now;
        } else {
            r->failed++;
            if (res != CURLE_OK)
                r->transport++;
            else if (code == 503)
                r->http_503++;
            else if (code >= 500)
                r->http_5xx++;
            else
                r->http_4xx++;
        }
    }
    x->next_free = g->free_list;
    g->free_list = x;
}

static void drain_messages(lg *g) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(g->multi, &left)))
        if (msg->msg == CURLMSG_DONE) {
            xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            finish(g, x, msg->data.result);
        }
}

static double next_gap_ns(lg *g) {
    double mean = 1e9 / g->c->rate;
    if (!g->c->poisson) return mean;
    double u = bl_rng_uniform_double(&g->rng);
    return -log(1.0 - u) * mean;
}

static void wait_events(lg *g, uint64_t until) {
    uint64_t now = bl_now_ns();
    uint64_t wait = until > now ? until - now : 0;
    struct timespec ts = {(time_t)(wait / 1000000000ULL), (long)(wait % 1000000000ULL)};
    int n = ppoll(g->fds, (nfds_t)g->nfds, &ts, NULL);
    if (n > 0) {
        /* socket_action may add or remove fds, so act on a copy */
        struct pollfd ready[MAX_FDS];
        int k = 0;
        for (int i = 0; i < g->nfds; i++)
            if (g->fds[i].revents) ready[k++] = g->fds[i];
        for (int i = 0; i < k; i++) {
            int ev = (ready[i].revents & POLLIN ? CURL_CSELECT_IN : 0) |
                     (ready[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
                     (ready[i].revents & (POLLERR | POLLHUP) ? CURL_CSELECT_ERR : 0);
            int running;
            curl_multi_socket_action(g->multi, ready[i].fd, ev, &running);
        }
    }
    if (g->timer_ns && bl_now_ns() >= g->timer_ns) {
        int running;
        g->timer_ns = 0;
        curl_multi_socket_action(g->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    drain_messages(g);
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
        if (g->timer_ns && g->timer_ns < until) until = g->timer_ns;
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
        int busy = 1;
        for (xfer *f = g->free_list; f; f = f->next_free)
            if (f == x) busy = 0;
        if (!busy) continue;
        curl_multi_remove_handle(g->multi, x->easy);
        if (x->intended_ns >= g->t_measure) {
            g->r->sent++;
            g->r->failed++;
            g->r->transport++;
        }
        snprintf(g->r->last_error, sizeof g->r->last_error,
                 "no answer within the run's time limit");
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
    if (c->concurrency < 1 || c->concurrency > MAX_FDS - 24)
        return bl_fail(err, BL_ERR_ARG, "--concurrency %d is invalid: it must be in [1, %d]",
                       c->concurrency, MAX_FDS - 24);
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
    bl_hdr_reset(&r->latency);
    bl_hdr_reset(&r->send_lag);
    bl_status st = check_config(c, err);
    if (st) return st;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return bl_fail(err, BL_ERR_IO, "load: curl_global_init failed");
    lg *g = calloc(1, sizeof *g);
    if (!g) return bl_fail(err, BL_ERR_NOMEM, "load: out of memory");
    g->c = c;
    g->r = r;
    bl_rng_seed(&g->rng, c->seed);
    if (c->get_path) {
        snprintf(g->url, sizeof g->url, "%s%s", c->url, c->get_path);
    } else {
        snprintf(g->url, sizeof g->url, "%s/v2/models/%s/infer", c->url, c->model);
        st = build_bodies(g, err);
    }
    g->multi = curl_multi_init();
    g->pool_n = c->concurrency;
    g->pool = calloc((size_t)g->pool_n, sizeof *g->pool);
    if (!st && (!g->multi || !g->pool)) st = bl_fail(err, BL_ERR_NOMEM, "load: cannot set up curl");
    for (int i = 0; !st && i < g->pool_n; i++) {
        xfer *x = &g->pool[i];
        x->easy = curl_easy_init();
        if (!x->easy) {
            st = bl_fail(err, BL_ERR_NOMEM, "load: curl_easy_init failed");
            break;
        }
        curl_easy_setopt(x->easy, CURLOPT_URL, g->url);
        curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, g->hdrs);
        curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->err);
        curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(c->timeout_s * 1000));
        x->next_free = g->free_list;
        g->free_list = x;
    }
    if (!st) {
        curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g);
        curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g);
        curl_multi_setopt(g->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->concurrency);
        curl_multi_setopt(g->multi, CURLMOPT_MAXCONNECTS, (long)c->concurrency);
        run_loop(g);
    }
    for (int i = 0; g->pool && i < g->pool_n; i++)
        if (g->pool[i].easy) curl_easy_cleanup(g->pool[i].easy);
    if (g->multi) curl_multi_cleanup(g->multi);
    free(g->pool);
    for (int b = 0; b < g->n_bodies; b++)
        free(g->bodies[b]);
    curl_slist_free_all(g->hdrs);
    free(g);
    return st;
}

/* ---- small GETs ----------------------------------------------------------------------- */

typedef struct membuf {
    char *p;
    size_t n, cap;
} membuf;

static size_t mem_cb(char *p, size_t size, size_t n, void *userp) {
    membuf *m = userp;
    size_t bytes = size * n;
    if (append(&m->p, &m->n, &m->cap, p, bytes)) return 0;
    return bytes;
}

static bl_status http_get(const char *url, membuf *out, bl_error *err) {
    memset(out, 0, sizeof *out);
    CURL *e = curl_easy_init();
    if (!e) return bl_fail(err, BL_ERR_NOMEM, "curl_easy_init failed");
    char eb[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mem_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, eb);
    CURLcode rc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        free(out->p);
        return bl_fail(err, BL_ERR_IO, "GET %s: %s", url, eb[0] ? eb : curl_easy_strerror(rc));
    }
    if (code != 200) {
        bl_fail(err, BL_ERR_IO, "GET %s: HTTP %ld: %.200s", url, code, out->p ? out->p : "");
        free(out->p);
        return BL_ERR_IO;
    }
    if (!out->p) return bl_fail(err, BL_ERR_IO, "GET %s: empty body", url);
    return BL_OK;
}

bl_status bl_load_fetch_shape(const char *url, const char *model, bl_shape *shape, bl_error *err) {
    char full[1200];
    snprintf(full, sizeof full, "%s/v2/models/%s", url, model);
    membuf b;
    bl_status st = http_get(full, &b, err);
    if (st) return st;
    cJSON *j = cJSON_Parse(b.p);
    free(b.p);
    const cJSON *ins = j ? cJSON_GetObjectItemCaseSensitive(j, "inputs") : NULL;
    const cJSON *sh = cJSON_IsArray(ins) && ins->child
                          ? cJSON_GetObjectItemCaseSensitive(ins->child, "shape")
                          : NULL;
    int d[4] = {0, 1, 1, 1}, nd = 0;
    for (const cJSON *e = cJSON_IsArray(sh) ? sh->child : NULL; e && nd < 4; e = e->next)
        d[nd++] = cJSON_IsNumber(e) ? (int)e->valuedouble : 0;
    cJSON_Delete(j);
    if (nd != 2 && nd != 4)
        return bl_fail(err, BL_ERR_FORMAT, "GET %s: no usable inputs[0].shape in the metadata",
                       full);
    *shape = nd == 4 ? (bl_shape){d[1], d[2], d[3]} : (bl_shape){d[1], 1, 1};
    if (bl_shape_size(*shape) == 0 || shape->c < 1 || shape->h < 1 || shape->w < 1)
        return bl_fail(err, BL_ERR_FORMAT, "GET %s: bad input shape in the metadata", full);
    return BL_OK;
}

static double metric_value(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) || (p[n] != '{' && p[n] != ' ')) continue;
        const char *v = strchr(p, ' ');
        const char *close = strchr(p, '}');
        const char *eol = strchr(p, '\n');
        if (close && (!eol || close < eol)) v = strchr(close, ' ');
        if (v) return strtod(v, NULL);
    }
    return NAN;
}

bl_status bl_load_scrape(const char *url, double *inferences, double *executions, double *max_batch,
                         bl_error *err) {
    char full[1200];
    snprintf(full, sizeof full, "%s/metrics", url);
    membuf b;
    bl_status st = http_get(full, &b, err);
    if (st) return st;
    if (inferences) *inferences = metric_value(b.p, "batchlab_inference_count_total");
    if (executions) *executions = metric_value(b.p, "batchlab_execution_count_total");
    if (max_batch) *max_batch = metric_value(b.p, "batchlab_max_batch");
    free(b.p);
    return BL_OK;
}
