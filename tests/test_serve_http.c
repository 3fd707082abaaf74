/* The server end to end on loopback: a checkpoint trained by the CLI, served in this
 * process on a port the kernel picks (port 0, so parallel ctest runs never collide),
 * and exercised with libcurl from several threads.
 *
 *  - responses equal `batchlab predict --output-kind logits` for the same images,
 *    under concurrent clients, JSON and binary, one or several samples per request;
 *  - batches really form (average batch > 1 in /metrics), with and without a delay;
 *  - an idle server computes on the HTTP thread, bit-equal to a direct forward pass;
 *  - every bad request gets a 4xx JSON error and the server keeps serving;
 *  - a full queue gets 503, a queue timeout 504;
 *  - stopping in the middle of load answers every accepted request.
 * Waits are bounded; nothing asserts how long anything took. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <cmocka.h>
#include "batchlab/serve.h"
#include "batchlab/train.h"
#include "test_util.h"

#define WAIT_LIMIT_S 30.0
#define N_IMAGES 200

static struct {
    char dir[256], ckpt[512];
    bl_ctx ctx;
    bl_model *m;
    bl_norm norm;
    bl_dataset images; /* raw pixels, (200, 784) */
    bl_dataset pred;   /* logits from batchlab predict, (200, 10) */
} g;

/* ---- HTTP helpers ------------------------------------------------------------------ */

typedef struct resp {
    long code;
    char *body;
    size_t len;
    long hdr_len; /* Inference-Header-Content-Length, -1 if absent */
} resp;

static size_t body_cb(char *p, size_t size, size_t n, void *userp) {
    resp *r = userp;
    size_t k = size * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, k);
    r->body = b;
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t header_cb(char *p, size_t size, size_t n, void *userp) {
    resp *r = userp;
    static const char h[] = "Inference-Header-Content-Length:";
    if (size * n > sizeof h && !strncasecmp(p, h, sizeof h - 1))
        r->hdr_len = atol(p + sizeof h - 1);
    return size * n;
}

/* One request on handle e (NULL: a fresh one). Returns the HTTP code (0 on transport
 * failure); the caller frees r->body. */
static long http(CURL *e, const char *method, const char *url, const void *body, size_t len,
                 const char *header, resp *r) {
    memset(r, 0, sizeof *r);
    r->hdr_len = -1;
    CURL *own = e ? NULL : curl_easy_init();
    if (!e) e = own;
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    if (header) hl = curl_slist_append(hl, header);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->code);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    if (own) curl_easy_cleanup(own);
    return r->code;
}

/* {"inputs":[{"name":"input","shape":[n,1,28,28],"datatype":"FP32","data":[...]}]} */
static char *json_request(const float *x, int n, const char *extra) {
    size_t cap = (size_t)n * 784 * 12 + 512, k = 0;
    char *b = malloc(cap);
    k += (size_t)snprintf(b + k, cap - k,
                          "{%s\"inputs\":[{\"name\":\"input\",\"shape\":[%d,1,28,28],"
                          "\"datatype\":\"FP32\",\"data\":[",
                          extra ? extra : "", n);
    for (int i = 0; i < n * 784; i++)
        k += (size_t)snprintf(b + k, cap - k, i ? ",%.9g" : "%.9g", (double)x[i]);
    snprintf(b + k, cap - k, "]}]}");
    return b;
}

/* The binary-data extension: JSON header then raw float32. */
static char *binary_request(const float *x, int n, size_t *len, char *header, size_t hcap) {
    char head[512];
    int hl =
        snprintf(head, sizeof head,
                 "{\"inputs\":[{\"name\":\"input\",\"shape\":[%d,784],\"datatype\":\"FP32\","
                 "\"parameters\":{\"binary_data_size\":%d}}],\"outputs\":[{\"name\":\"logits\","
                 "\"parameters\":{\"binary_data\":true}}]}",
                 n, n * 784 * 4);
    *len = (size_t)hl + (size_t)n * 784 * 4;
    char *b = malloc(*len);
    memcpy(b, head, (size_t)hl);
    memcpy(b + hl, x, (size_t)n * 784 * 4);
    snprintf(header, hcap, "Inference-Header-Content-Length: %d", hl);
    return b;
}

/* The logits of a 200 response, JSON or binary, into out (n x 10); 0 on success. */
static int response_logits(const resp *r, int n, float *out) {
    if (r->code != 200) return -1;
    size_t jl = r->hdr_len >= 0 ? (size_t)r->hdr_len : r->len;
    cJSON *j = cJSON_ParseWithLength(r->body, jl);
    if (!j) return -2;
    cJSON *o = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    cJSON *shape = cJSON_GetObjectItem(o, "shape");
    int rc =
        cJSON_GetArrayItem(shape, 0)->valueint == n && cJSON_GetArrayItem(shape, 1)->valueint == 10
            ? 0
            : -3;
    if (!rc && r->hdr_len >= 0) {
        if (r->len - jl != (size_t)n * 40)
            rc = -4;
        else
            memcpy(out, r->body + jl, (size_t)n * 40);
    } else if (!rc) {
        cJSON *d = cJSON_GetObjectItem(o, "data");
        if (cJSON_GetArraySize(d) != n * 10) rc = -5;
        for (int i = 0; !rc && i < n * 10; i++)
            out[i] = (float)cJSON_GetArrayItem(d, i)->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

/* The "error" string of a JSON error body, or NULL. Caller frees. */
static char *error_message(const resp *r) {
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    cJSON *e = j ? cJSON_GetObjectItem(j, "error") : NULL;
    char *s = cJSON_IsString(e) ? strdup(e->valuestring) : NULL;
    cJSON_Delete(j);
    return s;
}

static void expect_error(const char *what, long code, long want, const resp *r,
                         const char *needle) {
    char *msg = error_message(r);
    if (code != want)
        fail_msg("%s: HTTP %ld, want %ld (%s)", what, code, want, r->body ? r->body : "");
    if (!msg) fail_msg("%s: the body is not a JSON error: %s", what, r->body ? r->body : "");
    if (needle && !strstr(msg, needle)) fail_msg("%s: '%s' lacks '%s'", what, msg, needle);
    free(msg);
}

/* ---- server fixture ------------------------------------------------------------------- */

static bl_server *start(bl_serve_config *cfg, char *base, size_t cap) {
    cfg->port = 0;
    cfg->model_name = "mlp";
    if (cfg->batch.max_batch > bl_model_max_batch(g.m))
        cfg->batch.max_batch = bl_model_max_batch(g.m);
    bl_server *s = NULL;
    bl_error err = {0};
    if (bl_server_start(&s, cfg, g.m, &g.norm, &err)) fail_msg("server: %s", err.msg);
    assert_true(bl_server_port(s) > 0);
    snprintf(base, cap, "http://127.0.0.1:%d", bl_server_port(s));
    return s;
}

static int group_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(g.dir, sizeof g.dir, "%s", tu_tmpdir());
    snprintf(g.ckpt, sizeof g.ckpt, "%s/mlp.safetensors", g.dir);
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' train --quiet --data '%s/fmnist-sample' --model mlp --epochs 1 "
             "--save '%s'",
             BL_CLI_PATH, BL_TEST_DATA_DIR, g.ckpt);
    if (tu_run(cmd, out, sizeof out)) {
        fprintf(stderr, "train failed: %s\n", out);
        return -1;
    }
    snprintf(cmd, sizeof cmd,
             "'%s' predict --checkpoint '%s' --input '%s/fmnist-sample/"
             "t10k-images-idx3-ubyte.gz' --output-kind logits --output '%s/pred.npy'",
             BL_CLI_PATH, g.ckpt, BL_TEST_DATA_DIR, g.dir);
    if (tu_run(cmd, out, sizeof out)) {
        fprintf(stderr, "predict failed: %s\n", out);
        return -1;
    }
    bl_ctx_init(&g.ctx, 1);
    bl_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/fmnist-sample/t10k-images-idx3-ubyte.gz", BL_TEST_DATA_DIR);
    if (bl_dataset_load_idx(&g.images, &g.ctx.mem, path, NULL, &err)) return -1;
    snprintf(path, sizeof path, "%s/pred.npy", g.dir);
    if (bl_dataset_load_npy(&g.pred, &g.ctx.mem, path, NULL, &err)) return -1;
    if (g.images.n < N_IMAGES || g.pred.n != g.images.n || g.pred.dim != 10) return -1;
    if (bl_checkpoint_load_model(&g.m, &g.norm, &g.ctx, g.ckpt, 32, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    bl_model_free(g.m);
    bl_norm_free(&g.norm, &g.ctx.mem);
    bl_dataset_free(&g.images, &g.ctx.mem);
    bl_dataset_free(&g.pred, &g.ctx.mem);
    bl_ctx_free(&g.ctx);
    tu_rmtree(g.dir);
    curl_global_cleanup();
    return 0;
}

static const float *image(int i) {
    return g.images.x + (size_t)i * 784;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void health_and_metadata(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    char base[64], url[256];
    bl_server *s = start(&cfg, base, sizeof base);
    resp r;
    static const struct {
        const char *path, *needle;
        long code;
    } gets[] = {
        {"/v2/health/live", "\"live\":true", 200},
        {"/v2/health/ready", "\"ready\":true", 200},
        {"/v2", "binary_tensor_data", 200},
        {"/v2/models/mlp", "\"shape\":[-1,1,28,28]", 200},
        {"/v2/models/mlp/versions/1", "\"name\":\"logits\"", 200},
        {"/v2/models/mlp/ready", "\"ready\":true", 200},
        {"/v2/models/mlp/versions/1/ready", "\"ready\":true", 200},
        {"/metrics", "# TYPE batchlab_batch_size histogram", 200},
    };
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        snprintf(url, sizeof url, "%s%s", base, gets[i].path);
        long code = http(NULL, "GET", url, NULL, 0, NULL, &r);
        if (code != gets[i].code || !r.body || !strstr(r.body, gets[i].needle))
            fail_msg("GET %s: %ld %s", gets[i].path, code, r.body ? r.body : "");
        free(r.body);
    }
    snprintf(url, sizeof url, "%s/v2/models/other", base);
    expect_error("unknown model", http(NULL, "GET", url, NULL, 0, NULL, &r), 404, &r,
                 "unknown model 'other'");
    free(r.body);
    snprintf(url, sizeof url, "%s/v2/models/mlp/versions/7/ready", base);
    expect_error("unknown version", http(NULL, "GET", url, NULL, 0, NULL, &r), 404, &r,
                 "version '7'");
    free(r.body);
    snprintf(url, sizeof url, "%s/nothing/here", base);
    expect_error("unknown path", http(NULL, "GET", url, NULL, 0, NULL, &r), 404, &r, "no endpoint");
    free(r.body);
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", base);
    expect_error("GET infer", http(NULL, "GET", url, NULL, 0, NULL, &r), 405, &r, "POST");
    free(r.body);
    bl_server_free(s);
}

typedef struct client {
    const char *base;
    int id, n_threads, mismatches, failures;
    double worst;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    CURL *e = curl_easy_init();
    char url[256], header[96];
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", c->base);
    float out[3 * 10];
    int k = 0;
    for (int i = c->id * 3; i + 3 <= N_IMAGES; i += 3 * c->n_threads, k++) {
        int n = k % 3 == 1 ? 3 : k % 3 == 2 ? 2 : 1;
        resp r;
        char *body;
        size_t len;
        if (k % 3 == 2) {
            body = binary_request(image(i), n, &len, header, sizeof header);
            http(e, "POST", url, body, len, header, &r);
        } else {
            body = json_request(image(i), n, k % 2 ? "\"id\":\"x\"," : NULL);
            http(e, "POST", url, body, strlen(body), NULL, &r);
        }
        free(body);
        if (response_logits(&r, n, out)) {
            c->failures++;
        } else {
            double err = tu_max_rel_err(out, g.pred.x + (size_t)i * 10, (size_t)n * 10, 1e-5, 1e-5);
            if (err > c->worst) c->worst = err;
            if (!(err <= 1.0)) c->mismatches++;
        }
        free(r.body);
    }
    curl_easy_cleanup(e);
    return NULL;
}

static void concurrent_responses_match_predict(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 32;
    cfg.batch.max_delay_us = 2000;
    cfg.http_threads = 2;
    char base[64];
    bl_server *s = start(&cfg, base, sizeof base);
    enum { T = 6 };
    pthread_t th[T];
    client c[T];
    for (int i = 0; i < T; i++) {
        c[i] = (client){base, i, T, 0, 0, 0};
        pthread_create(&th[i], NULL, client_main, &c[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        if (c[i].failures || c[i].mismatches)
            fail_msg("client %d: %d failed, %d differ from predict (worst %.3g of tolerance)", i,
                     c[i].failures, c[i].mismatches, c[i].worst);
    }
    bl_server_stats st;
    bl_server_stop(s, 10000);
    bl_server_get_stats(s, &st);
    assert_true(st.accepted > 0);
    assert_int_equal(st.accepted, st.answered);
    assert_true(bl_server_stage_ns(s, BL_STAGE_COMPUTE, 50) > 0); /* the model ran */
    for (int i = 0; i < BL_STAGES; i++)
        assert_true(bl_server_stage_ns(s, (bl_stage)i, 99) >=
                    bl_server_stage_ns(s, (bl_stage)i, 50));
    assert_string_equal(bl_stage_name(BL_STAGE_HANDBACK), "handback");
    bl_server_free(s);
}

/* n requests of one sample from 16 clients at once (closed loop) against a server with
 * max batch 8: all answered, and batches of more than one sample formed. */
static void check_batches_form(bl_server *s, const char *base, long n, bl_load_format format) {
    bl_load_config lc;
    bl_load_config_default(&lc);
    lc.url = base;
    lc.model = "mlp";
    lc.mode = BL_LOAD_CLOSED;
    lc.concurrency = 16;
    lc.max_requests = n;
    lc.duration_s = 120;
    lc.warmup_s = 0;
    lc.format = format;
    lc.samples = g.images.x;
    lc.n_samples = N_IMAGES;
    lc.shape = g.images.shape;
    bl_load_result *r = malloc(sizeof *r);
    bl_error err = {0};
    assert_int_equal(bl_load_run(&lc, r, &err), BL_OK);
    if (r->ok != n) fail_msg("ok %ld of %ld: %s", r->ok, n, r->last_error);
    assert_int_equal(r->latency.total, n);
    free(r);
    double inf = 0, ex = 0, mb = 0;
    assert_int_equal(bl_load_scrape(base, &inf, &ex, &mb, &err), BL_OK);
    assert_true(inf == (double)n);
    assert_int_equal(bl_metrics_inferences(bl_server_metrics(s)), n);
    if (!(ex >= 1 && inf / ex > 1.0)) fail_msg("%.0f batches for %.0f samples", ex, inf);
    assert_true(mb == 8);
}

static void batches_form_under_load(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 8;
    cfg.batch.max_delay_us = 1000000; /* a batch goes when 8 are queued (or after 1 s) */
    char base[64];
    bl_server *s = start(&cfg, base, sizeof base);
    check_batches_form(s, base, 64, BL_LOAD_JSON);
    bl_server_free(s);
}

/* No batching delay and one HTTP thread: computing on the HTTP thread when the model is
 * idle must not starve the queue (every batch would then be one sample). */
static void batches_form_without_delay(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 8;
    cfg.batch.max_delay_us = 0;
    char base[64];
    bl_server *s = start(&cfg, base, sizeof base);
    check_batches_form(s, base, 400, BL_LOAD_BINARY);
    assert_true(bl_metrics_caller_executions(bl_server_metrics(s)) >= 1); /* the first one */
    bl_server_free(s);
}

/* An idle server answers on the HTTP thread that read the request (the caller path, no
 * hand-off to the batcher thread): the logits equal a direct forward pass bit for bit,
 * and the batch is counted, as run by the caller. */
static void idle_request_answered_on_http_thread(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 32;
    cfg.batch.max_delay_us = 0;
    char base[64], url[256], header[96];
    bl_server *s = start(&cfg, base, sizeof base);
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", base);
    size_t len;
    char *body = binary_request(image(11), 1, &len, header, sizeof header);
    resp r;
    http(NULL, "POST", url, body, len, header, &r);
    float out[10], ref[10], x[784];
    if (response_logits(&r, 1, out)) fail_msg("HTTP %ld: %.200s", r.code, r.body ? r.body : "");
    free(r.body);
    free(body);
    bl_serve_metrics *m = bl_server_metrics(s);
    assert_int_equal(bl_metrics_executions(m), 1);
    assert_int_equal(bl_metrics_caller_executions(m), 1);
    assert_int_equal(bl_metrics_successes(m), 1);
    bl_server_stop(s, 10000);
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.answered, 1);
    bl_server_free(s); /* the model is ours again */
    memcpy(x, image(11), sizeof x);
    bl_model_runner mr = {g.m, &g.norm};
    assert_int_equal(bl_model_runner_fn(&mr, x, 1, ref), 0);
    assert_memory_equal(out, ref, sizeof out);
}

/* The load generator's own HTTP client: GETs (the floor) over keep-alive, an error body
 * counted as 4xx with the server's message, and a closed port as transport failures. */
static void load_client_counts_outcomes(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    char base[64];
    bl_server *s = start(&cfg, base, sizeof base);
    bl_load_config lc;
    bl_load_config_default(&lc);
    lc.url = base;
    lc.model = "mlp";
    lc.rate = 2000;
    lc.duration_s = 0.1;
    lc.warmup_s = 0;
    lc.max_requests = 100;
    lc.get_path = "/v2/health/live";
    bl_load_result *r = malloc(sizeof *r);
    bl_error err = {0};
    assert_int_equal(bl_load_run(&lc, r, &err), BL_OK);
    if (r->ok != 100 || r->failed)
        fail_msg("GET: ok %ld failed %ld: %s", r->ok, r->failed, r->last_error);
    lc.get_path = NULL;
    lc.model = "nope";
    lc.samples = g.images.x;
    lc.n_samples = N_IMAGES;
    lc.shape = g.images.shape;
    lc.max_requests = 20;
    assert_int_equal(bl_load_run(&lc, r, &err), BL_OK);
    assert_int_equal(r->ok, 0);
    assert_int_equal(r->http_4xx, 20);
    assert_non_null(strstr(r->last_error, "HTTP 404"));
    assert_non_null(strstr(r->last_error, "unknown model 'nope'"));
    bl_server_free(s); /* the port is closed now */
    lc.max_requests = 5;
    assert_int_equal(bl_load_run(&lc, r, &err), BL_OK);
    assert_int_equal(r->ok, 0);
    assert_int_equal(r->transport, 5);
    assert_true(r->last_error[0] != '\0');
    free(r);
}

static void bad_requests_get_json_errors(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.max_body_bytes = 8192;
    char base[64], url[256], other[256];
    bl_server *s = start(&cfg, base, sizeof base);
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", base);
    snprintf(other, sizeof other, "%s/v2/models/nope/infer", base);
    float zeros[784] = {0}, out[10];
    char *good = json_request(zeros, 1, NULL);
    assert_true(strlen(good) < 8192);
    char *big = malloc(20001);
    memset(big, ' ', 20000); /* valid JSON padding, just too long */
    memcpy(big, good, strlen(good));
    big[20000] = '\0';
    char hdr[96];
    size_t blen;
    char *bin = binary_request(image(0), 1, &blen, hdr, sizeof hdr);
    static const char *shape =
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,28,27],\"datatype\":"
        "\"FP32\",\"data\":[1]}]}";
    static const char *dtype = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":"
                               "\"BYTES\",\"data\":[\"a\"]}]}";
    const struct {
        const char *what, *url, *body, *header, *needle;
        size_t len;
        long code;
    } cases[] = {
        {"malformed JSON", url, "{\"inputs\": [", NULL, "malformed JSON", 12, 400},
        {"wrong shape", url, shape, NULL, "does not fit the model", strlen(shape), 400},
        {"wrong datatype", url, dtype, NULL, "BYTES", strlen(dtype), 400},
        {"unknown model", other, good, NULL, "unknown model 'nope'", strlen(good), 404},
        {"oversized body", url, big, NULL, "--max-body-bytes", 20000, 413},
        {"binary size mismatch", url, bin, hdr, "binary part", blen - 4, 400},
        {"bad header length", url, good, "Inference-Header-Content-Length: x", "byte count",
         strlen(good), 400},
    };
    CURL *e = curl_easy_init(); /* one keep-alive connection: errors must not break it */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp r;
        long code = http(e, "POST", cases[i].url, cases[i].body, cases[i].len, cases[i].header, &r);
        expect_error(cases[i].what, code, cases[i].code, &r, cases[i].needle);
        free(r.body);
        code = http(e, "POST", url, good, strlen(good), NULL, &r); /* still serving */
        if (code != 200 || response_logits(&r, 1, out))
            fail_msg("after %s: HTTP %ld %s", cases[i].what, code, r.body ? r.body : "");
        free(r.body);
    }
    curl_easy_cleanup(e);
    bl_serve_metrics *m = bl_server_metrics(s);
    assert_int_equal(bl_metrics_failures(m, BL_FAIL_BAD_REQUEST), 5);
    assert_int_equal(bl_metrics_failures(m, BL_FAIL_NOT_FOUND), 1);
    assert_int_equal(bl_metrics_failures(m, BL_FAIL_TOO_LARGE), 1);
    assert_int_equal(bl_metrics_successes(m), 7);
    free(good);
    free(big);
    free(bin);
    bl_server_free(s);
}

typedef struct one_req {
    const char *base;
    int idx;
    long code;
    int logits_ok;
} one_req;

static void *one_request(void *arg) {
    one_req *o = arg;
    char url[256];
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", o->base);
    char *body = json_request(image(o->idx), 1, NULL);
    resp r;
    float out[10];
    o->code = http(NULL, "POST", url, body, strlen(body), NULL, &r);
    o->logits_ok = !response_logits(&r, 1, out) &&
                   tu_max_rel_err(out, g.pred.x + (size_t)o->idx * 10, 10, 1e-5, 1e-5) <= 1.0;
    free(r.body);
    free(body);
    return NULL;
}

static void wait_queue(bl_server *s, long n) {
    double t0 = bl_now_sec();
    while (bl_batcher_queue_requests(bl_server_batcher(s)) < n) {
        if (bl_now_sec() - t0 > WAIT_LIMIT_S) fail_msg("the queue never held %ld requests", n);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/* Two requests wait for a 60 s batching delay and fill the queue; a third gets 503; the
 * stop drains the two, which get their answers. */
static void full_queue_503_then_drain_answers(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 32;
    cfg.batch.max_delay_us = 60 * 1000000L;
    cfg.batch.max_queue = 2;
    char base[64], url[256];
    bl_server *s = start(&cfg, base, sizeof base);
    pthread_t th[2];
    one_req o[2] = {{base, 5, 0, 0}, {base, 6, 0, 0}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, one_request, &o[i]);
    wait_queue(s, 2);
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", base);
    char *body = json_request(image(7), 1, NULL);
    resp r;
    expect_error("full queue", http(NULL, "POST", url, body, strlen(body), NULL, &r), 503, &r,
                 "queue is full");
    free(r.body);
    free(body);
    bl_server_stop(s, 10000);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(o[i].code, 200);
        assert_true(o[i].logits_ok);
    }
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.answered, 2);
    assert_int_equal(st.queued_at_stop, 2);
    assert_int_equal(bl_metrics_failures(bl_server_metrics(s), BL_FAIL_QUEUE_FULL), 1);
    bl_server_free(s);
}

static void queue_timeout_504(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 32;
    cfg.batch.max_delay_us = 60 * 1000000L; /* only the timeout can end the wait */
    char base[64], url[256];
    bl_server *s = start(&cfg, base, sizeof base);
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", base);
    char *body = json_request(image(0), 1, "\"parameters\":{\"timeout_ms\":20},");
    resp r;
    expect_error("timeout", http(NULL, "POST", url, body, strlen(body), NULL, &r), 504, &r,
                 "past its timeout");
    free(r.body);
    free(body);
    assert_int_equal(bl_metrics_failures(bl_server_metrics(s), BL_FAIL_TIMEOUT), 1);
    bl_server_free(s);
}

typedef struct loader {
    bl_load_config c;
    bl_load_result *r;
    bl_status st;
} loader;

static void *loader_main(void *arg) {
    loader *l = arg;
    bl_error err = {0};
    l->st = bl_load_run(&l->c, l->r, &err);
    return NULL;
}

/* Stop in the middle of load: every accepted request is answered, and the client saw
 * exactly that many 200s. */
static void stop_under_load_answers_every_accepted_request(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 16;
    cfg.batch.max_delay_us = 3000;
    char base[64];
    bl_server *s = start(&cfg, base, sizeof base);
    loader l;
    bl_load_config_default(&l.c);
    l.c.url = base;
    l.c.model = "mlp";
    l.c.mode = BL_LOAD_CLOSED;
    l.c.concurrency = 12;
    l.c.duration_s = 60;
    l.c.warmup_s = 0;
    l.c.max_errors = 1; /* stop sending at the first refusal */
    l.c.samples = g.images.x;
    l.c.n_samples = N_IMAGES;
    l.c.shape = g.images.shape;
    l.c.format = BL_LOAD_BINARY;
    l.r = malloc(sizeof *l.r);
    pthread_t th;
    pthread_create(&th, NULL, loader_main, &l);
    double t0 = bl_now_sec();
    while (bl_metrics_successes(bl_server_metrics(s)) < 50) {
        if (bl_now_sec() - t0 > WAIT_LIMIT_S) fail_msg("the load never got going");
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    bl_server_stop(s, 10000);
    pthread_join(th, NULL);
    assert_int_equal(l.st, BL_OK);
    bl_server_stats st;
    bl_server_get_stats(s, &st);
    fprintf(stderr, "accepted %llu answered %llu (queued at stop %ld); client ok %ld failed %ld\n",
            (unsigned long long)st.accepted, (unsigned long long)st.answered, st.queued_at_stop,
            l.r->ok, l.r->failed);
    assert_true(st.accepted >= 50);
    assert_int_equal(st.answered, st.accepted);
    assert_int_equal(st.unanswered, 0);
    assert_int_equal((uint64_t)l.r->ok, st.accepted);
    free(l.r);
    bl_server_free(s);
}

/* A client that gives up while its request waits: the late answer goes nowhere and the
 * server keeps serving. (The batcher's callback once read the connection after resuming
 * it, when MHD may already have freed it; under overload that deadlocked the server.) */
static void client_gives_up_while_queued(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 32;
    cfg.batch.max_delay_us = 300000;
    char base[64], url[256];
    bl_server *s = start(&cfg, base, sizeof base);
    snprintf(url, sizeof url, "%s/v2/models/mlp/infer", base);
    char *body = json_request(image(1), 1, NULL);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 50L); /* gives up long before the 300 ms delay */
    assert_int_equal(curl_easy_perform(e), CURLE_OPERATION_TIMEDOUT);
    curl_easy_cleanup(e);
    double t0 = bl_now_sec();
    bl_server_stats st;
    do { /* the batch runs when the delay is over; the answer goes to a closed socket
          * (written to the kernel: "answered", or refused: "unanswered") */
        if (bl_now_sec() - t0 > WAIT_LIMIT_S) fail_msg("the abandoned request was never finished");
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        bl_server_get_stats(s, &st);
    } while (st.answered + st.unanswered < 1);
    assert_int_equal(st.accepted, 1);
    resp r;
    float out[10];
    assert_int_equal(http(NULL, "POST", url, body, strlen(body), NULL, &r), 200);
    assert_int_equal(response_logits(&r, 1, out), 0);
    free(r.body);
    free(body);
    bl_server_stop(s, 10000);
    bl_server_get_stats(s, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.answered + st.unanswered, 2);
    bl_server_free(s);
}

static void start_errors(void **state) {
    (void)state;
    bl_serve_config cfg;
    bl_serve_config_default(&cfg);
    char base[64];
    bl_server *s = start(&cfg, base, sizeof base), *s2 = NULL;
    bl_error err = {0};
    cfg.port = bl_server_port(s); /* taken */
    assert_int_equal(bl_server_start(&s2, &cfg, g.m, &g.norm, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot listen"));
    bl_server_free(s);
    bl_serve_config_default(&cfg);
    cfg.batch.max_batch = 33; /* the model was allocated for 32 */
    assert_int_equal(bl_server_start(&s2, &cfg, g.m, &g.norm, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--max-batch 33"));
    bl_serve_config_default(&cfg);
    cfg.model_name = "a/b";
    assert_int_equal(bl_server_start(&s2, &cfg, g.m, &g.norm, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--name"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_and_metadata),
        cmocka_unit_test(concurrent_responses_match_predict),
        cmocka_unit_test(batches_form_under_load),
        cmocka_unit_test(idle_request_answered_on_http_thread),
        cmocka_unit_test(batches_form_without_delay),
        cmocka_unit_test(load_client_counts_outcomes),
        cmocka_unit_test(bad_requests_get_json_errors),
        cmocka_unit_test(full_queue_503_then_drain_answers),
        cmocka_unit_test(queue_timeout_504),
        cmocka_unit_test(stop_under_load_answers_every_accepted_request),
        cmocka_unit_test(client_gives_up_while_queued),
        cmocka_unit_test(start_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
