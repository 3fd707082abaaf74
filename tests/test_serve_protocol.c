/* The KServe v2 request parser on the inputs an attacker or a careless client sends
 * (issue 14): non-finite numbers (D3), an escaped key beside a decoy "data" (D5), long
 * or non-UTF-8 ids and bytes after the JSON (D10), and a big body with an extra key,
 * which must not cost a heap node per number (D4). Pure functions: exact tests. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/serve.h"
#include "core/fault.h"
#include "serve/serve_internal.h"
#include "test_util.h"

static const bl_kserve_model MODEL = {"mlp", "flatten,dense:10", {1, 2, 3}, 6, 4, 8};

static bl_status parse(const char *body, bl_kserve_request *rq, bl_error *err) {
    return bl_kserve_parse_infer(rq, &MODEL, body, strlen(body), -1, err);
}

/* Refused with a message holding `want`, and no samples left behind. */
static void expect_refused(const char *body, size_t len, const char *want) {
    bl_kserve_request rq;
    bl_error err = {0};
    bl_status st = bl_kserve_parse_infer(&rq, &MODEL, body, len, -1, &err);
    if (st == BL_OK) fail_msg("accepted: %.200s", body);
    if (st == BL_ERR_NOMEM) fail_msg("NOMEM (a 500, not a 400): %s", err.msg);
    if (!strstr(err.msg, want)) fail_msg("message '%s' lacks '%s'", err.msg, want);
    assert_null(rq.x);
}

/* A request without its opening brace, for bodies that put keys before it. */
#define REQ_TAIL(data)                                                                             \
    "\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\",\"data\":" data "}]}"
#define REQ(data) "{" REQ_TAIL(data)

/* D3: 1e39 overflows FP32; NaN arrives through the binary extension. Both are named. */
static void non_finite_inputs_are_refused(void **state) {
    (void)state;
    const char *big = REQ("[0,1,2,1e39,4,5]");
    expect_refused(big, strlen(big), "value 3 (sample 0) is infinite");
    const char *neg = REQ("[[0,1,2],[3,4,-1e400]]");
    expect_refused(neg, strlen(neg), "value 5 (sample 0) is infinite");
    const char *head = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,6],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":48}}]}";
    size_t hl = strlen(head);
    char body[512];
    float x[12] = {0};
    x[8] = NAN;
    memcpy(body, head, hl);
    memcpy(body + hl, x, sizeof x);
    bl_kserve_request rq;
    bl_error err = {0};
    assert_int_not_equal(bl_kserve_parse_infer(&rq, &MODEL, body, hl + sizeof x, (long)hl, &err),
                         BL_OK);
    assert_non_null(strstr(err.msg, "inputs[0] ('input') binary data value 8 (sample 1) is NaN"));
    /* the largest finite float is fine */
    assert_int_equal(parse(REQ("[3.4028234e38,0,0,0,0,0]"), &rq, &err), BL_OK);
    bl_kserve_request_free(&rq);
}

/* A NaN or infinite logit is an error, never "-nan" in a JSON body. */
static void non_finite_outputs_are_an_error(void **state) {
    (void)state;
    bl_kserve_request rq;
    bl_error err = {0};
    assert_int_equal(parse(REQ("[0,1,2,3,4,5]"), &rq, &err), BL_OK);
    float out[4] = {1, 2, NAN, 4};
    char *body = NULL;
    size_t len = 0, jl = 0;
    assert_int_equal(bl_kserve_format_infer(&MODEL, &rq, out, &body, &len, &jl, &err),
                     BL_ERR_NUMERIC);
    assert_null(body);
    assert_non_null(strstr(err.msg, "output 2"));
    out[2] = 3; /* finite: a body that parses */
    assert_int_equal(bl_kserve_format_infer(&MODEL, &rq, out, &body, &len, &jl, &err), BL_OK);
    cJSON *j = cJSON_ParseWithLength(body, len);
    assert_non_null(j);
    cJSON_Delete(j);
    free(body);
    bl_kserve_request_free(&rq);
}

/* D5: "d\u0061ta" is the key "data"; parameters.data is not inputs[0].data. */
static void escaped_key_is_the_data(void **state) {
    (void)state;
    bl_kserve_request rq;
    bl_error err = {0};
    assert_int_equal(
        parse("{\"parameters\":{\"data\":[9,9,9,9,9,9]},\"inputs\":[{\"name\":\"input\",\"shape\":"
              "[1,6],\"datatype\":\"FP32\",\"d\\u0061ta\":[1,2,3,4,5,6]}]}",
              &rq, &err),
        BL_OK);
    for (int i = 0; i < 6; i++)
        assert_true(rq.x[i] == (float)(i + 1));
    bl_kserve_request_free(&rq);
    /* the first of two "data" keys counts, as in cJSON; \u0000 cannot hide a key */
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\","
                           "\"data\":[1,2,3,4,5,6],\"data\":[7,7,7,7,7,7]}]}",
                           &rq, &err),
                     BL_OK);
    assert_true(rq.x[0] == 1.0f);
    bl_kserve_request_free(&rq);
    const char *nul = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\","
                      "\"data\\u0000x\":[1,2,3,4,5,6]}]}";
    expect_refused(nul, strlen(nul), "\\u0000");
    /* an escaped "inputs" is found too */
    assert_int_equal(parse("{\"\\u0069nputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":"
                           "\"FP32\",\"data\":[6,5,4,3,2,1]}]}",
                           &rq, &err),
                     BL_OK);
    assert_true(rq.x[0] == 6.0f);
    bl_kserve_request_free(&rq);
}

/* D10: the id is echoed whole up to BL_KSERVE_MAX_ID bytes and refused beyond; strings
 * must be UTF-8; nothing may follow the JSON. */
static void ids_utf8_and_trailing_bytes(void **state) {
    (void)state;
    char id[BL_KSERVE_MAX_ID + 2];
    char body[1024];
    for (int len = BL_KSERVE_MAX_ID; len <= BL_KSERVE_MAX_ID + 1; len++) {
        memset(id, 'a', (size_t)len);
        id[len - 1] = 'z';
        id[len] = '\0';
        snprintf(body, sizeof body, "{\"id\":\"%s\",%s", id, REQ_TAIL("[0,1,2,3,4,5]"));
        bl_kserve_request rq;
        bl_error err = {0};
        bl_status st = parse(body, &rq, &err);
        if (len > BL_KSERVE_MAX_ID) {
            assert_int_not_equal(st, BL_OK);
            assert_non_null(strstr(err.msg, "at most 255"));
            continue;
        }
        assert_int_equal(st, BL_OK);
        float out[4] = {0};
        char *resp = NULL;
        size_t rl = 0, jl = 0;
        assert_int_equal(bl_kserve_format_infer(&MODEL, &rq, out, &resp, &rl, &jl, &err), BL_OK);
        cJSON *j = cJSON_ParseWithLength(resp, rl);
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(j, "id");
        assert_true(cJSON_IsString(rid));
        assert_string_equal(rid->valuestring, id);
        cJSON_Delete(j);
        free(resp);
        bl_kserve_request_free(&rq);
    }
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"{\"id\":\"a\xff\",\"inputs\":[]}", "invalid UTF-8"},
        {"{\"id\":\"\xc0\xaf\",\"inputs\":[]}", "invalid UTF-8"},         /* overlong '/' */
        {"{\"id\":\"\xed\xa0\x80\",\"inputs\":[]}", "invalid UTF-8"},     /* surrogate */
        {"{\"id\":\"\xf4\x90\x80\x80\",\"inputs\":[]}", "invalid UTF-8"}, /* > U+10FFFF */
        {"{\"id\":\"\xe2\x82\",\"inputs\":[]}", "invalid UTF-8"},         /* cut short */
        {"{\"id\":\"\\ud800\",\"inputs\":[]}", "surrogate"},
        {"{\"id\":\"\\udc00x\",\"inputs\":[]}", "surrogate"},
        {"{\"id\":\"a\tb\",\"inputs\":[]}", "control character"},
        {REQ("[0,1,2,3,4,5]") "xyz", "3 bytes follow the JSON object"},
        {REQ("[0,1,2,3,4,5]") " {}", "follow the JSON object"},
        {"{\"inputs\":[]}}", "follow the JSON object"},
        {REQ("[0,1,2,3,4,5,]"), "malformed JSON"},
        {REQ("[0,1,2,3,4,05]"), "malformed JSON"},
        {REQ("[0,1,2,3,4,5"), "malformed JSON"},
        {REQ("[0,1,2,3,4,nul]"), "malformed JSON"},
        {REQ("[0,1,2,3,true,5]"), "element 4 is not a number"},
        {REQ("[0,\"1,2]\",2,3,4,5,6,7,8]"), "element 1 is not a number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(cases[i].body, strlen(cases[i].body), cases[i].msg);
    /* valid multi-byte UTF-8 and escapes pass, and come back as sent */
    bl_kserve_request rq;
    bl_error err = {0};
    snprintf(body, sizeof body,
             "{\"id\":\"\xc3\xa9t\xc3\xa9 \\u00e9 \\ud83d\\ude00 \xf0\x9f\x98\x80\",%s",
             REQ_TAIL("[0,1,2,3,4,5]"));
    assert_int_equal(parse(body, &rq, &err), BL_OK);
    assert_string_equal(rq.id, "\xc3\xa9t\xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    bl_kserve_request_free(&rq);
}

/* D4: a big body with an extra key costs a few allocations, not one per number (cJSON's
 * fallback made a node per number: 2.5 GB for 60 MB), and JSON besides the data is
 * bounded. */
static void big_body_with_extra_keys_is_bounded(void **state) {
    (void)state;
    static const bl_kserve_model wide = {"m", "", {1000, 1, 1}, 1000, 1, 1};
    int n = 100; /* 100,000 numbers */
    size_t cap = (size_t)n * 1000 * 4 + (2u << 20), k = 0;
    char *body = malloc(cap);
    k += (size_t)snprintf(body + k, cap - k,
                          "{\"parameters\":{\"data\":0},\"inputs\":[{\"name\":\"input\",\"shape\":"
                          "[%d,1000],\"datatype\":\"FP32\",\"extra\":{\"data\":[1]},\"data\":[",
                          n);
    for (int i = 0; i < n * 1000; i++)
        k += (size_t)snprintf(body + k, cap - k, i ? ",%d" : "%d", i % 97);
    k += (size_t)snprintf(body + k, cap - k, "]}]}");
    bl_kserve_request rq;
    bl_error err = {0};
    bl_fault_alloc_arm(~0UL); /* count, never fail */
    bl_status st = bl_kserve_parse_infer(&rq, &wide, body, k, -1, &err);
    unsigned long allocs = bl_fault_alloc_count();
    bl_fault_alloc_arm(0);
    if (st) fail_msg("%s", err.msg);
    if (allocs > 200) fail_msg("%lu allocations for one request", allocs);
    assert_int_equal(rq.n, n);
    assert_true(rq.x[999] == (float)(999 % 97));
    bl_kserve_request_free(&rq);
    /* a big array that is not inputs[0].data is refused, not built */
    k = (size_t)snprintf(body, cap, "{\"parameters\":{\"junk\":[");
    for (int i = 0; i < 600000; i++)
        k += (size_t)snprintf(body + k, cap - k, i ? ",1" : "1");
    k += (size_t)snprintf(body + k, cap - k, "]},%s", REQ_TAIL("[0,1,2,3,4,5]"));
    bl_fault_alloc_arm(~0UL);
    expect_refused(body, k, "besides inputs[0].data");
    allocs = bl_fault_alloc_count();
    bl_fault_alloc_arm(0);
    if (allocs > 200) fail_msg("%lu allocations to refuse a request", allocs);
    free(body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(non_finite_inputs_are_refused),
        cmocka_unit_test(non_finite_outputs_are_an_error),
        cmocka_unit_test(escaped_key_is_the_data),
        cmocka_unit_test(ids_utf8_and_trailing_bytes),
        cmocka_unit_test(big_body_with_extra_keys_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
