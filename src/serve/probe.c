/* One-off HTTP GETs for `batchlab load` through libcurl's easy interface: the served
 * model's input shape from its metadata, and a few values of /metrics (the batch counters
 * that give the average batch of a run). Nothing here is timed, so curl's convenience
 * (redirects, errors as text) costs nothing; the timed requests use loadgen.c's client. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/serve.h"
#include "core/alloc.h"

typedef struct membuf {
    char *p;
    size_t n, cap;
} membuf;

static size_t mem_cb(char *p, size_t size, size_t n, void *userp) {
    membuf *m = userp;
    size_t bytes = size * n;
    if (m->n + bytes + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 1024;
        while (cap < m->n + bytes + 1)
            cap *= 2;
        char *q = bl_realloc(m->p, cap);
        if (!q) return 0;
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->n, p, bytes);
    m->n += bytes;
    m->p[m->n] = '\0';
    return bytes;
}

static bl_status http_get(const char *url, membuf *out, bl_error *err) {
    memset(out, 0, sizeof *out);
    CURL *e = curl_easy_init();
    if (!e) return bl_fail(err, BL_ERR_NOMEM, "curl_easy_init failed (out of memory?)");
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
        bl_free(out->p);
        return bl_fail(err, BL_ERR_IO, "GET %s: %s", url, eb[0] ? eb : curl_easy_strerror(rc));
    }
    if (code != 200) {
        bl_fail(err, BL_ERR_IO, "GET %s: HTTP %ld: %.200s", url, code, out->p ? out->p : "");
        bl_free(out->p);
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
    bl_free(b.p);
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
    bl_free(b.p);
    return BL_OK;
}
