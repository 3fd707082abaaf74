/* Fuzz target: KServe v2 infer requests, JSON and binary (the body parser the
 * server runs on every request, with json_scan.c reading "data").
 * Byte 0 picks the served model's input shape and whether the request has an
 * Inference-Header-Content-Length header; if it has, bytes 1-2 are its value
 * (little-endian) and the body follows, else the body starts at byte 1.
 *
 * A parsed request is answered as the server answers it (bl_kserve_format_infer,
 * JSON or binary) and the answer's JSON part must parse; a refused one gets the
 * server's error body, which must parse too. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/serve.h"
#include "fuzz.h"

static const bl_kserve_model models[4] = {
    {"mlp", "flatten,dense:3", {4, 1, 1}, 4, 3, 8},
    {"cnn", "conv3x3:2,flatten,dense:2", {1, 2, 3}, 6, 2, 8},
    {"wide", "dense:1", {1, 1, 1}, 1, 1, 8},
    {"m\"q\\\n", "dense:2", {2, 2, 1}, 4, 2, 8}, /* a name that needs escaping */
};

static void check_json(const char *text, size_t len, const char *what) {
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) fuzz_fail(what);
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const bl_kserve_model *m = &models[data[0] & 3];
    long header_len = -1;
    size_t skip = 1;
    if (data[0] & 4) {
        if (size < 3) return 0;
        header_len = data[1] | (long)data[2] << 8;
        skip = 3;
    }
    /* The server hands over its body buffer as is: an exact-size copy lets ASan
     * see any read past its end. */
    size_t len = size - skip;
    char *body = malloc(len ? len : 1);
    if (!body) return 0;
    memcpy(body, data + skip, len);

    bl_kserve_request rq;
    bl_error err = {0};
    if (bl_kserve_parse_infer(&rq, m, body, len, header_len, &err) == BL_OK) {
        if (rq.n < 1 || !rq.x) fuzz_fail("a parsed request has no samples");
        fuzz_note("kserve", "ok");
        size_t count = (size_t)rq.n * (size_t)m->out_dim;
        float *out = calloc(count, sizeof *out);
        char *resp = NULL;
        size_t resp_len = 0, json_len = 0;
        if (out &&
            bl_kserve_format_infer(m, &rq, out, &resp, &resp_len, &json_len, &err) == BL_OK) {
            if (json_len > resp_len) fuzz_fail("the response's JSON part is longer than it");
            check_json(resp, json_len, "the infer response is not valid JSON");
            free(resp);
        }
        free(out);
        bl_kserve_request_free(&rq);
    } else {
        if (!err.msg[0]) fuzz_fail("a refused request has no message");
        fuzz_note("kserve", err.msg);
        char *e = bl_kserve_error_json(err.msg);
        if (e) check_json(e, strlen(e), "the error body is not valid JSON");
        free(e);
    }
    free(body);
    return 0;
}
