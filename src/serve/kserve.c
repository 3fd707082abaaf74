/* The KServe v2 / Open Inference Protocol, as pure functions over bodies: parse an
 * infer request into floats, format the response, describe the model. No sockets here,
 * so every rule is unit-tested without a server.
 *
 * Request: {"id"?, "parameters"?: {"timeout_ms"?, "binary_data_output"?},
 *           "inputs": [{"name": "input", "shape": [N, ...], "datatype": "FP32",
 *                       "data": [...] | "parameters": {"binary_data_size": bytes}}],
 *           "outputs"?: [{"name": "logits", "parameters"?: {"binary_data": bool}}]}
 * N samples ride in the first dimension. "data" may be flat or nested (row-major); the
 * trailing dimensions must be the model's per-sample shape or its flattened size. With
 * the binary-data extension (header Inference-Header-Content-Length: L) the first L
 * bytes are the JSON and the tensor follows as raw little-endian float32; the response
 * then carries the logits the same way. This is the fast path: no number is printed or
 * parsed. (The host is little-endian: x86-64 and aarch64 Linux.)
 *
 * json_scan.c checks the whole text (grammar, UTF-8, nothing after the value) and reads
 * the "data" array (no node per number); cJSON parses the rest, which may hold at most
 * BL_KSERVE_MAX_JSON_REST bytes, so no path uses more than a small constant times the
 * body. Inputs must be finite. The response is printed by hand, since numbers are the
 * whole body and "%.9g" round-trips every float32 exactly; a non-finite logit is an
 * error (JSON has no NaN), not an invalid body. Every parse error is a client error whose
 * message names the field at fault. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "serve_internal.h"
#include "core/alloc.h"
#include "io/json.h"

#define INPUT_NAME "input"
#define OUTPUT_NAME "logits"

void bl_kserve_request_free(bl_kserve_request *rq) {
    if (!rq) return;
    bl_free(rq->x);
    rq->x = NULL;
}

static int dims_match(const int64_t *d, int nd, const bl_kserve_model *m) {
    if (nd == 1) return d[0] == m->in_dim;
    if (nd == 3) return d[0] == m->in.c && d[1] == m->in.h && d[2] == m->in.w;
    return 0;
}

static bl_status parse_shape(const cJSON *shape, const bl_kserve_model *m, int *n, bl_error *err) {
    if (!cJSON_IsArray(shape))
        return bl_fail(err, BL_ERR_SHAPE, "inputs[0].shape is missing or not an array");
    int64_t d[8];
    int nd = 0;
    for (const cJSON *e = shape->child; e; e = e->next) {
        if (nd == 8) return bl_fail(err, BL_ERR_SHAPE, "inputs[0].shape has more than 8 dims");
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v >= 0) || v != floor(v) || v > (double)INT_MAX)
            return bl_fail(err, BL_ERR_SHAPE, "inputs[0].shape[%d] must be a non-negative integer",
                           nd);
        d[nd++] = (int64_t)v;
    }
    char want[96];
    snprintf(want, sizeof want, "[N, %d, %d, %d] or [N, %d]", m->in.c, m->in.h, m->in.w, m->in_dim);
    if (nd < 2 || !dims_match(d + 1, nd - 1, m)) {
        char got[160] = "[";
        for (int i = 0; i < nd; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)d[i]);
        strncat(got, "]", sizeof got - strlen(got) - 1);
        return bl_fail(err, BL_ERR_SHAPE, "inputs[0].shape %s does not fit the model: want %s", got,
                       want);
    }
    if (d[0] < 1) return bl_fail(err, BL_ERR_SHAPE, "inputs[0].shape[0] (samples) must be >= 1");
    if (d[0] > INT_MAX / m->in_dim)
        return bl_fail(err, BL_ERR_SHAPE, "inputs[0].shape[0] = %lld samples is too many",
                       (long long)d[0]);
    *n = (int)d[0];
    return BL_OK;
}

static bl_status parse_params(bl_kserve_request *rq, const cJSON *root, bl_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (!p) return BL_OK;
    if (!cJSON_IsObject(p)) return bl_fail(err, BL_ERR_ARG, "parameters must be an object");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "timeout_ms");
    if (t) {
        if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || t->valuedouble > 1e9)
            return bl_fail(err, BL_ERR_ARG,
                           "parameters.timeout_ms must be a number of milliseconds >= 0");
        rq->timeout_ms = (long)ceil(t->valuedouble);
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(p, "binary_data_output");
    if (b) {
        if (!cJSON_IsBool(b))
            return bl_fail(err, BL_ERR_ARG, "parameters.binary_data_output must be true or false");
        rq->binary_output = cJSON_IsTrue(b);
    }
    return BL_OK;
}

static bl_status parse_outputs(bl_kserve_request *rq, const cJSON *root, bl_error *err) {
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (!outs) return BL_OK;
    if (!cJSON_IsArray(outs)) return bl_fail(err, BL_ERR_ARG, "outputs must be an array");
    int i = 0;
    for (const cJSON *o = outs->child; o; o = o->next, i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, OUTPUT_NAME))
            return bl_fail(err, BL_ERR_ARG,
                           "outputs[%d].name must be \"" OUTPUT_NAME "\" (the model's only output)",
                           i);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "parameters");
        const cJSON *b = p ? cJSON_GetObjectItemCaseSensitive(p, "binary_data") : NULL;
        if (b && !cJSON_IsBool(b))
            return bl_fail(err, BL_ERR_ARG, "outputs[%d].parameters.binary_data must be a bool", i);
        if (b) rq->binary_output = cJSON_IsTrue(b);
    }
    return BL_OK;
}

/* Every value must be finite: the model would answer NaN, and JSON has no NaN. */
static bl_status check_finite(const float *x, size_t n, int in_dim, const char *where,
                              bl_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return bl_fail(err, BL_ERR_NUMERIC,
                           "inputs[0] ('" INPUT_NAME "') %s value %zu (sample %zu) is %s: FP32 "
                           "inputs must be finite (a JSON number beyond 3.4e38 overflows)",
                           where, i, i / (size_t)in_dim, isnan(x[i]) ? "NaN" : "infinite");
    return BL_OK;
}

static bl_status parse_input(bl_kserve_request *rq, const bl_kserve_model *m, const cJSON *in,
                             size_t json_len, const char *bin, size_t bin_len, int have_bin,
                             json_request_scan *sc, bl_error *err) {
    if (!cJSON_IsObject(in)) return bl_fail(err, BL_ERR_ARG, "inputs[0] must be an object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (!cJSON_IsString(name))
        return bl_fail(err, BL_ERR_ARG, "inputs[0].name is missing or not a string");
    if (strcmp(name->valuestring, INPUT_NAME))
        return bl_fail(err, BL_ERR_ARG,
                       "inputs[0].name '%.100s' is not the model's input '" INPUT_NAME "'",
                       name->valuestring);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    if (!cJSON_IsString(dt))
        return bl_fail(err, BL_ERR_ARG, "inputs[0].datatype is missing or not a string");
    if (strcmp(dt->valuestring, "FP32"))
        return bl_fail(err, BL_ERR_ARG,
                       "inputs[0].datatype '%.40s' is not supported: the model "
                       "takes FP32",
                       dt->valuestring);
    bl_status st = parse_shape(cJSON_GetObjectItemCaseSensitive(in, "shape"), m, &rq->n, err);
    if (st) return st;
    size_t want = (size_t)rq->n * (size_t)m->in_dim;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "parameters");
    const cJSON *bsz = p ? cJSON_GetObjectItemCaseSensitive(p, "binary_data_size") : NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (bsz) {
        if (!have_bin)
            return bl_fail(err, BL_ERR_ARG,
                           "inputs[0].parameters.binary_data_size needs the "
                           "Inference-Header-Content-Length header");
        if (!cJSON_IsNumber(bsz) || bsz->valuedouble != (double)(want * sizeof(float)))
            return bl_fail(err, BL_ERR_SHAPE,
                           "inputs[0].parameters.binary_data_size must be "
                           "%zu (shape x 4 bytes)",
                           want * sizeof(float));
        if (bin_len != want * sizeof(float))
            return bl_fail(err, BL_ERR_SHAPE,
                           "the binary part of the body has %zu bytes, "
                           "binary_data_size says %zu",
                           bin_len, want * sizeof(float));
    } else if (want > json_len / 2 + 1) {
        /* Each value takes 2 bytes of JSON at least ("0,"). Refused before it sizes an
         * allocation: shape [2000000000, 1] in an 80-byte request used to get 8 GB. */
        return bl_fail(err, BL_ERR_SHAPE,
                       "inputs[0].shape implies %zu values, more than %zu bytes of JSON hold", want,
                       json_len);
    }
    if (bsz) {
        rq->x = bl_malloc(want * sizeof(float));
        if (!rq->x) return bl_fail(err, BL_ERR_NOMEM, "out of memory for %zu input values", want);
        memcpy(rq->x, bin, bin_len);
        return check_finite(rq->x, want, m->in_dim, "binary data", err);
    }
    /* json_scan.c took the first inputs[0].data array out and left [] in its place. */
    if (!cJSON_IsArray(data) || sc->n < 0)
        return bl_fail(err, BL_ERR_ARG, "inputs[0].data is missing or not an array");
    if (sc->bad_index >= 0)
        return bl_fail(err, BL_ERR_ARG,
                       "inputs[0].data element %ld is not a number (datatype FP32)", sc->bad_index);
    if ((size_t)sc->n > want)
        return bl_fail(err, BL_ERR_SHAPE,
                       "inputs[0].data has more than the %zu values its shape implies", want);
    if ((size_t)sc->n != want)
        return bl_fail(err, BL_ERR_SHAPE, "inputs[0].data has %ld values, its shape implies %zu",
                       sc->n, want);
    rq->x = sc->x; /* exactly want floats: handed over, not copied */
    sc->x = NULL;
    st = check_finite(rq->x, want, m->in_dim, "data", err);
    if (st) return st;
    if (have_bin && bin_len)
        return bl_fail(err, BL_ERR_ARG,
                       "%zu bytes of binary data follow the JSON header but no "
                       "input declares binary_data_size",
                       bin_len);
    return BL_OK;
}

bl_status bl_kserve_parse_infer(bl_kserve_request *rq, const bl_kserve_model *m, const char *body,
                                size_t len, long header_len, bl_error *err) {
    memset(rq, 0, sizeof *rq);
    int have_bin = header_len >= 0;
    if (have_bin && (size_t)header_len > len)
        return bl_fail(err, BL_ERR_FORMAT,
                       "Inference-Header-Content-Length %ld exceeds the "
                       "body (%zu bytes)",
                       header_len, len);
    size_t json_len = have_bin ? (size_t)header_len : len;
    if (json_len == 0) return bl_fail(err, BL_ERR_FORMAT, "the request body is empty");
    json_request_scan sc;
    switch (json_scan_request(body, json_len, &sc)) {
    case JSON_SCAN_OK:
        break;
    case JSON_SCAN_MALFORMED:
        return bl_fail(err, BL_ERR_FORMAT, "malformed JSON near byte %zu of the request: %s", sc.at,
                       sc.what);
    case JSON_SCAN_BAD_UTF8:
        return bl_fail(err, BL_ERR_FORMAT, "invalid UTF-8 in a string at byte %zu of the request",
                       sc.at);
    case JSON_SCAN_TRAILING:
        return bl_fail(err, BL_ERR_FORMAT,
                       "%zu bytes follow the JSON object at byte %zu: the request must be one "
                       "JSON value",
                       json_len - sc.at, sc.at);
    case JSON_SCAN_DATA:
        return bl_fail(err, BL_ERR_SHAPE, "%s", sc.what);
    case JSON_SCAN_NOMEM:
        return bl_fail(err, BL_ERR_NOMEM, "out of memory reading %zu bytes of JSON", json_len);
    }
    /* cJSON gets the rest: a node per value, so it is bounded, not the body. */
    size_t rest_len = sc.n >= 0 ? json_len - (sc.end - sc.begin) + 2 : json_len;
    if (rest_len > BL_KSERVE_MAX_JSON_REST) {
        bl_free(sc.x);
        return bl_fail(err, BL_ERR_ARG,
                       "the request has %zu bytes of JSON besides inputs[0].data; at most %d "
                       "are read",
                       rest_len, BL_KSERVE_MAX_JSON_REST);
    }
    char *rest = sc.n >= 0 ? bl_malloc(rest_len) : NULL;
    cJSON *root = NULL;
    if (rest) {
        memcpy(rest, body, sc.begin);
        memcpy(rest + sc.begin, "[]", 2);
        memcpy(rest + sc.begin + 2, body + sc.end, json_len - sc.end);
        root = cJSON_ParseWithLength(rest, rest_len);
        bl_free(rest);
    } else if (sc.n < 0) {
        root = cJSON_ParseWithLength(body, json_len);
    }
    if (!root) { /* the scan accepted the text, so only memory can be short */
        bl_free(sc.x);
        return bl_fail(err, BL_ERR_NOMEM, "out of memory parsing %zu bytes of JSON", rest_len);
    }
    bl_status st = BL_OK;
    if (!cJSON_IsObject(root))
        st = bl_fail(err, BL_ERR_FORMAT, "the request must be a JSON object");
    const cJSON *id = st ? NULL : cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id) {
        if (!cJSON_IsString(id))
            st = bl_fail(err, BL_ERR_ARG, "id must be a string");
        else if (strlen(id->valuestring) > BL_KSERVE_MAX_ID)
            st = bl_fail(err, BL_ERR_ARG, "id is %zu bytes long; at most %d are accepted",
                         strlen(id->valuestring), BL_KSERVE_MAX_ID);
        else
            memcpy(rq->id, id->valuestring, strlen(id->valuestring) + 1);
    }
    if (!st) st = parse_params(rq, root, err);
    if (!st) st = parse_outputs(rq, root, err);
    const cJSON *inputs = st ? NULL : cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!st && !cJSON_IsArray(inputs))
        st = bl_fail(err, BL_ERR_ARG, "inputs is missing or not an array");
    if (!st && cJSON_GetArraySize(inputs) != 1)
        st = bl_fail(err, BL_ERR_ARG,
                     "inputs must hold exactly one tensor ('" INPUT_NAME "'), got %d",
                     cJSON_GetArraySize(inputs));
    if (!st)
        st = parse_input(rq, m, inputs->child, json_len, body + json_len, len - json_len, have_bin,
                         &sc, err);
    cJSON_Delete(root);
    bl_free(sc.x);
    if (st) bl_kserve_request_free(rq);
    return st;
}

/* A growable byte buffer for the response. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t more) {
    if (b->oom || b->n + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more)
        cap *= 2;
    char *p = bl_realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n + 1);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_str(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_fmt_num(sbuf *b, const char *fmt, double v) {
    char tmp[40];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string literal, escaped. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_put(b, e, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

bl_status bl_kserve_format_infer(const bl_kserve_model *m, const bl_kserve_request *rq,
                                 const float *out, char **body, size_t *len, size_t *json_len,
                                 bl_error *err) {
    size_t count = (size_t)rq->n * (size_t)m->out_dim;
    sbuf b = {0};
    sb_reserve(&b, 256 + (rq->binary_output ? count * 4 : count * 16));
    sb_str(&b, "{\"model_name\":");
    sb_json_str(&b, m->name);
    sb_str(&b, ",\"model_version\":\"1\"");
    if (rq->id[0]) {
        sb_str(&b, ",\"id\":");
        sb_json_str(&b, rq->id);
    }
    sb_str(&b, ",\"outputs\":[{\"name\":\"" OUTPUT_NAME "\",\"datatype\":\"FP32\",\"shape\":[");
    sb_fmt_num(&b, "%.0f", (double)rq->n);
    sb_fmt_num(&b, ",%.0f]", (double)m->out_dim);
    if (rq->binary_output) {
        sb_str(&b, ",\"parameters\":{\"binary_data_size\":");
        sb_fmt_num(&b, "%.0f}}]}", (double)(count * 4));
        *json_len = b.n;
        sb_put(&b, (const char *)out, count * sizeof(float));
    } else {
        sb_str(&b, ",\"data\":[");
        for (size_t i = 0; i < count; i++) {
            if (!isfinite(out[i])) {
                bl_free(b.p);
                return bl_fail(err, BL_ERR_NUMERIC,
                               "the model's output %zu (sample %zu) is not finite, which JSON "
                               "cannot carry",
                               i, i / (size_t)m->out_dim);
            }
            char tmp[32];
            int k = snprintf(tmp, sizeof tmp, i ? ",%.9g" : "%.9g", (double)out[i]);
            sb_put(&b, tmp, (size_t)k);
        }
        sb_str(&b, "]}]}");
        *json_len = b.n;
    }
    if (b.oom) {
        bl_free(b.p);
        return bl_fail(err, BL_ERR_NOMEM, "out of memory formatting %zu outputs", count);
    }
    *body = b.p;
    *len = b.n;
    return BL_OK;
}

static cJSON *tensor_meta(const char *name, const int64_t *dims, int nd) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "datatype", "FP32");
    cJSON *s = cJSON_AddArrayToObject(t, "shape");
    for (int i = 0; i < nd; i++)
        bl_json_append(s, cJSON_CreateNumber((double)dims[i]));
    return t;
}

char *bl_kserve_metadata_json(const bl_kserve_model *m) {
    unsigned mark = bl_alloc_failures();
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "name", m->name);
    cJSON *v = cJSON_AddArrayToObject(j, "versions");
    bl_json_append(v, cJSON_CreateString("1"));
    cJSON_AddStringToObject(j, "platform", "batchlab");
    int flat = m->in.h == 1 && m->in.w == 1;
    int64_t in_dims[4] = {-1, flat ? m->in_dim : m->in.c, m->in.h, m->in.w};
    int64_t out_dims[2] = {-1, m->out_dim};
    cJSON *ins = cJSON_AddArrayToObject(j, "inputs");
    bl_json_append(ins, tensor_meta(INPUT_NAME, in_dims, flat ? 2 : 4));
    cJSON *outs = cJSON_AddArrayToObject(j, "outputs");
    bl_json_append(outs, tensor_meta(OUTPUT_NAME, out_dims, 2));
    cJSON *p = cJSON_AddObjectToObject(j, "parameters");
    cJSON_AddStringToObject(p, "spec", m->spec ? m->spec : "");
    cJSON_AddNumberToObject(p, "max_batch", m->max_batch);
    /* A document missing a field it could not allocate must not be served. */
    char *s = bl_alloc_failures() == mark ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

char *bl_kserve_error_json(const char *msg) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    char *s = cJSON_AddStringToObject(j, "error", msg) ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}
