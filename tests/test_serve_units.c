/* Serving building blocks without threads or sockets: the latency histogram, the batch
 * dispatch rule, the delay controller, the KServe v2 parser/formatter and the Prometheus
 * text. Each is a pure function of its inputs, so these tests are exact. */
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
#include "serve/serve_internal.h"
#include "test_util.h"

/* ---- latency histogram ------------------------------------------------------------- */

static void latency_hist_buckets_cover_values(void **state) {
    (void)state;
    int prev = -1;
    for (uint64_t v = 0; v < 5000; v++) { /* contiguous, monotonic, exact below 128 */
        int i = bl_latency_hist_index(v);
        assert_true(i >= prev && i <= prev + 1);
        prev = i;
        uint64_t lo, hi;
        bl_latency_hist_bucket_range(i, &lo, &hi);
        assert_true(lo <= v && v <= hi);
        if (v < 128) assert_true(lo == v && hi == v);
    }
    bl_rng r;
    bl_rng_seed(&r, 3);
    for (int k = 0; k < 100000; k++) { /* relative width <= 1/128 at every scale */
        uint64_t v = bl_rng_next(&r) >> (bl_rng_next(&r) % 60 + 4);
        if (v >= (1ULL << BL_LATENCY_HIST_MAX_LOG2)) continue;
        uint64_t lo, hi;
        int i = bl_latency_hist_index(v);
        assert_true(i >= 0 && i < BL_LATENCY_HIST_BUCKETS);
        bl_latency_hist_bucket_range(i, &lo, &hi);
        assert_true(lo <= v && v <= hi);
        assert_true((double)(hi - lo) <= (double)lo / 128.0 + 1e-9);
    }
    /* values beyond the range clamp into the last bucket */
    assert_int_equal(bl_latency_hist_index(UINT64_MAX), BL_LATENCY_HIST_BUCKETS - 1);
}

static void latency_hist_percentiles(void **state) {
    (void)state;
    bl_latency_hist *h = malloc(sizeof *h), *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    bl_latency_hist_reset(h);
    assert_int_equal(bl_latency_hist_percentile(h, 50), 0);
    for (uint64_t v = 1; v <= 100000; v++) /* 1 us .. 100 ms in ns */
        bl_latency_hist_record(h, v * 1000);
    assert_int_equal(h->total, 100000);
    assert_int_equal(h->min, 1000);
    assert_int_equal(h->max, 100000000);
    const double qs[] = {50, 90, 99, 99.9};
    for (int i = 0; i < 4; i++) {
        double want = qs[i] / 100.0 * 100000 * 1000;
        double got = (double)bl_latency_hist_percentile(h, qs[i]);
        assert_true(got >= want && got <= want * (1 + 1.0 / 128));
    }
    assert_int_equal(bl_latency_hist_percentile(h, 100), 100000000);
    assert_int_equal(bl_latency_hist_percentile(h, 0), bl_latency_hist_percentile(h, 0.0001));
    assert_true(fabs(bl_latency_hist_mean(h) - 50000.5 * 1000) < 1e-3);
    /* merge = recording into one */
    bl_latency_hist_reset(a);
    bl_latency_hist_reset(b);
    for (uint64_t v = 1; v <= 100000; v++)
        bl_latency_hist_record(v % 2 ? a : b, v * 1000);
    bl_latency_hist_merge(a, b);
    assert_memory_equal(a->counts, h->counts, sizeof h->counts);
    assert_int_equal(a->total, h->total);
    assert_int_equal(a->min, h->min);
    assert_int_equal(a->max, h->max);
    /* a single value is reported as itself */
    bl_latency_hist_reset(a);
    bl_latency_hist_record_n(a, 123456, 7);
    assert_int_equal(bl_latency_hist_percentile(a, 50), 123456);
    free(h);
    free(a);
    free(b);
}

/* ---- dispatch rule ------------------------------------------------------------------- */

static void batch_policy_rules(void **state) {
    (void)state;
    const int pref[] = {4, 16};
    /* queued, waited_us, max, delay, npref, draining -> take */
    assert_int_equal(bl_batch_policy(0, 99999, 8, 0, NULL, 0, 1), 0);  /* nothing queued */
    assert_int_equal(bl_batch_policy(3, 0, 8, 0, NULL, 0, 0), 3);      /* no delay: greedy */
    assert_int_equal(bl_batch_policy(20, 0, 8, 1000, NULL, 0, 0), 8);  /* full batch at once */
    assert_int_equal(bl_batch_policy(5, 999, 8, 1000, NULL, 0, 0), 0); /* wait for the delay */
    assert_int_equal(bl_batch_policy(5, 1000, 8, 1000, NULL, 0, 0), 5);
    assert_int_equal(bl_batch_policy(5, 0, 8, 1000, NULL, 0, 1), 5);  /* draining: no wait */
    assert_int_equal(bl_batch_policy(3, 0, 32, 1000, pref, 2, 0), 0); /* below every preferred */
    assert_int_equal(bl_batch_policy(5, 0, 32, 1000, pref, 2, 0), 4); /* largest preferred <= 5 */
    assert_int_equal(bl_batch_policy(17, 0, 32, 1000, pref, 2, 0), 16);
    assert_int_equal(bl_batch_policy(17, 1000, 32, 1000, pref, 2, 0), 17); /* delay over: all */
    assert_int_equal(bl_batch_policy(17, 0, 12, 1000, pref, 2, 0), 12);    /* max wins */
    assert_int_equal(bl_batch_policy(10, 0, 8, 1000, pref, 2, 0), 8); /* preferred > max ignored */
}

/* ---- the delay controller -------------------------------------------------------------- */

/* Feed one closed window: `batches` batches of size `bsize` (max batch as now) taking
 * compute_ns, and BL_DELAY_CTL_WINDOW_MAX requests of latency lat_ns. */
static uint64_t clock_ns = 1000; /* a fake clock: 1 us per request, so windows close by count */

static int window(bl_delay_ctl *a, int bsize, uint64_t compute_ns, uint64_t lat_ns) {
    for (int i = 0; i < 8; i++)
        bl_delay_ctl_batch(a, bsize, a->max_batch, compute_ns);
    int decided = 0;
    for (int i = 0; i < BL_DELAY_CTL_WINDOW_MAX; i++)
        decided += bl_delay_ctl_observe(a, lat_ns, clock_ns += 1000);
    return decided;
}

static void delay_ctl_moves_within_bounds(void **state) {
    (void)state;
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 64, 1000000);
    assert_int_equal(a->max_batch, 64); /* the cap, and it stays there */
    assert_int_equal(a->delay_us, 0);
    assert_int_equal(a->cap_delay_us, 1000); /* a tenth of the objective */
    /* light load (batches not full, the model mostly idle), latency far under the
     * objective: the delay grows by steps, capped */
    for (int w = 0; w < 40; w++)
        assert_int_equal(window(a, 2, 10000, 1000000), 1);
    assert_int_equal(a->delay_us, a->cap_delay_us);
    assert_true(a->decisions[BL_DELAY_CTL_INCREASE] >= 10);
    /* the same with the model busy most of the window: no more delay */
    long d = a->delay_us;
    window(a, 2, 10000, 1000000);
    a->delay_us = d / 2;
    window(a, 2, 60000, 1000000); /* 8 x 60 us of a 512 us window */
    assert_int_equal(a->delay_us, d / 2);
    a->delay_us = d;
    /* over the objective: the delay steps down while that lowers p99 ... */
    window(a, 2, 10000, 20000000);
    assert_int_equal(a->last_action, BL_DELAY_CTL_DECREASE);
    assert_int_equal(a->delay_us, d - a->delay_step_us);
    window(a, 2, 10000, 15000000);
    assert_int_equal(a->delay_us, d - 2 * a->delay_step_us);
    /* ... and turns back when a step made it worse */
    window(a, 2, 10000, 18000000);
    assert_int_equal(a->last_action, BL_DELAY_CTL_INCREASE);
    assert_int_equal(a->delay_us, d - a->delay_step_us);
    /* in the band between half the objective and headroom: hold */
    long held = a->delay_us;
    window(a, 2, 10000, 6000000);
    assert_int_equal(a->last_action, BL_DELAY_CTL_HOLD);
    assert_int_equal(a->delay_us, held);
    /* full batches over the objective with no delay left: saturated, max batch kept */
    a->delay_us = 0;
    window(a, 64, 10000, 20000000);
    assert_int_equal(a->last_action, BL_DELAY_CTL_SATURATED);
    assert_int_equal(a->max_batch, 64);
    /* p99 is the 99th percentile: 1% slow requests (5 of 512) do not count */
    for (int i = 0; i < 8; i++)
        bl_delay_ctl_batch(a, 1, a->max_batch, 10000);
    for (int i = 0; i < BL_DELAY_CTL_WINDOW_MAX; i++)
        bl_delay_ctl_observe(a, i < 5 ? 50000000 : 1000000, clock_ns += 1000);
    assert_int_equal(a->last_action, BL_DELAY_CTL_INCREASE);
    free(a);
}

/* Batches of 1 and of 4 in one window, the 4s costing per_sample4_ns a sample. */
static int mixed_window(bl_delay_ctl *a, uint64_t per_sample4_ns, uint64_t lat_ns) {
    for (int i = 0; i < 4; i++) {
        bl_delay_ctl_batch(a, 1, a->max_batch, 800000);
        if (a->max_batch >= 4) bl_delay_ctl_batch(a, 4, a->max_batch, 4 * per_sample4_ns);
    }
    int decided = 0;
    for (int i = 0; i < BL_DELAY_CTL_WINDOW_MAX; i++)
        decided += bl_delay_ctl_observe(a, lat_ns, clock_ns += 1000);
    return decided;
}

/* A model whose batches cost as much per sample as batches of one (the cnn on a 2-core
 * AVX2 CPU): waiting and grouping buy nothing, so the delay goes to 0 and then the max
 * batch to 1; past capacity the cap comes back. Where batches of 4 cost 0.5x per sample,
 * the cap stays. */
static void delay_ctl_stops_batching_that_does_not_pay(void **state) {
    (void)state;
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 64, 1000000);
    a->delay_us = 500;          /* as the light-load rule would have grown it */
    for (int w = 0; w < 8; w++) /* flat: 790 us a sample at 4 against 800 at 1 */
        mixed_window(a, 790000, 2000000);
    assert_true(a->one_n >= 16 && a->many_n >= 16);
    for (int w = 0; w < 60 && (a->delay_us || a->max_batch != 1); w++)
        mixed_window(a, 790000, 2000000);
    assert_int_equal(a->delay_us, 0);
    assert_int_equal(a->max_batch, 1);
    assert_int_equal(a->last_action, BL_DELAY_CTL_DECREASE);
    /* past capacity: every batch full (at max 1) and p99 over the objective */
    window(a, 1, 800000, 20000000);
    assert_int_equal(a->last_action, BL_DELAY_CTL_SATURATED);
    assert_int_equal(a->max_batch, 64);
    free(a);

    a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 64, 1000000);
    for (int w = 0; w < 40; w++) { /* batches of 4 at half the cost a sample: batching pays */
        mixed_window(a, 400000, 2000000);
        assert_int_equal(a->max_batch, 64);
    }
    assert_int_equal(a->decisions[BL_DELAY_CTL_DECREASE], 0);
    free(a);
}

/* A verdict of "batching does not pay" that was wrong, or is no longer right, must not
 * hold the max batch at 1: past capacity the cap comes back, and batches that pay keep
 * it there. (Before the fix, the next window cut it to 1 again on the average from
 * before the cut, and a server on AVX-512 sat at max batch 1 with p99 0.5-1 s.) */
static void delay_ctl_forgets_a_stale_cost_verdict(void **state) {
    (void)state;
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 64, 1000000);
    /* batches of 4 measured at 1.5x the cost a sample of batches of 1 (as on a CPU busy
     * with other work whenever requests queue up): cut to 1 */
    for (int w = 0; w < 80 && a->max_batch != 1; w++)
        mixed_window(a, 1200000, 2000000);
    assert_int_equal(a->max_batch, 1);
    window(a, 1, 800000, 20000000); /* past capacity */
    assert_int_equal(a->last_action, BL_DELAY_CTL_SATURATED);
    assert_int_equal(a->max_batch, 64);
    for (int w = 0; w < 40; w++) { /* now batches of 4 cost half a sample of 1 */
        mixed_window(a, 400000, 2000000);
        assert_int_equal(a->max_batch, 64);
    }
    /* and a model that is flat again is cut again, on fresh batches */
    for (int w = 0; w < 200 && a->max_batch != 1; w++)
        mixed_window(a, 790000, 2000000);
    assert_int_equal(a->max_batch, 1);
    free(a);
}

/* The issue-14 collapse: under load on a busy machine, slow-looking batches and a p99
 * over the objective must never shrink the max batch. */
static void delay_ctl_does_not_collapse(void **state) {
    (void)state;
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 32, 0);
    for (int w = 0; w < 100; w++) {
        window(a, w % 3 ? 32 : 7, 8000000, 2000000000ULL); /* 8 ms batches, p99 2 s */
        assert_int_equal(a->max_batch, 32);
        assert_int_equal(a->delay_us, 0);
    }
    assert_int_equal(a->decisions[BL_DELAY_CTL_DECREASE], 0);
    free(a);
}

static void delay_ctl_window_needs_time_or_count(void **state) {
    (void)state;
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 32, 0);
    assert_int_equal(a->cap_delay_us, 0);
    uint64_t t = 1000000000ULL;
    /* 100 samples within 1 ms: not a window yet (needs 100 ms or 512 samples) */
    for (int i = 0; i < 100; i++)
        assert_int_equal(bl_delay_ctl_observe(a, 1000, t + (uint64_t)i * 10000), 0);
    /* the first sample after 100 ms closes it */
    assert_int_equal(bl_delay_ctl_observe(a, 1000, t + 200000000ULL), 1);
    /* fewer than min_samples never decide, however long */
    for (int i = 0; i < 10; i++)
        assert_int_equal(
            bl_delay_ctl_observe(a, 1000, t + 200000000ULL + (uint64_t)i * 1000000000ULL), 0);
    free(a);
}

/* ---- KServe v2 --------------------------------------------------------------------------- */

static const bl_kserve_model MODEL = {"mlp", "flatten,dense:10", {1, 2, 3}, 6, 4, 8};

static bl_status parse(const char *body, bl_kserve_request *rq, bl_error *err) {
    return bl_kserve_parse_infer(rq, &MODEL, body, strlen(body), -1, err);
}

static void kserve_parses_valid_requests(void **state) {
    (void)state;
    bl_kserve_request rq;
    bl_error err = {0};
    /* flat data, shape [N, c, h, w], id and parameters */
    assert_int_equal(
        parse("{\"id\":\"r-1\",\"parameters\":{\"timeout_ms\":12.5},\"inputs\":[{\"name\":"
              "\"input\",\"shape\":[2,1,2,3],\"datatype\":\"FP32\",\"data\":"
              "[0,1,2,3,4,5,6,7,8,9,10,11.5]}]}",
              &rq, &err),
        BL_OK);
    assert_int_equal(rq.n, 2);
    assert_string_equal(rq.id, "r-1");
    assert_int_equal(rq.timeout_ms, 13);
    assert_int_equal(rq.binary_output, 0);
    for (int i = 0; i < 11; i++)
        assert_true(rq.x[i] == (float)i);
    assert_true(rq.x[11] == 11.5f);
    bl_kserve_request_free(&rq);
    /* nested data, flattened shape [N, dim], binary output requested per output */
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\","
                           "\"data\":[[[1,2,3],[4,5,6]]]}],\"outputs\":[{\"name\":\"logits\","
                           "\"parameters\":{\"binary_data\":true}}]}",
                           &rq, &err),
                     BL_OK);
    assert_int_equal(rq.n, 1);
    assert_int_equal(rq.binary_output, 1);
    assert_true(rq.x[5] == 6.0f);
    bl_kserve_request_free(&rq);
}

static void kserve_rejects_bad_requests(void **state) {
    (void)state;
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"{\"inputs\":[", "malformed JSON"},
        {"[1,2]", "JSON object"},
        {"{}", "inputs is missing"},
        {"{\"inputs\":[]}", "exactly one"},
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1,6],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6]"
         "}]}",
         "'x'"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"INT64\",\"data\":[1,2,3,"
         "4,5,6]}]}",
         "INT64"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"data\":[1,2,3,4,5,6]}]}", "datatype"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,5],\"datatype\":\"FP32\",\"data\":[1,2,3,4,"
         "5]}]}",
         "[1, 5]"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[6],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,"
         "6]}]}",
         "[6]"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[0,6],\"datatype\":\"FP32\",\"data\":[]}]}",
         ">= 1"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[-1,6],\"datatype\":\"FP32\",\"data\":[]}]}",
         "non-negative"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1.5,6],\"datatype\":\"FP32\",\"data\":[]}]}",
         "integer"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\",\"data\":[1,2,3]}]"
         "}",
         "3 values"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\",\"data\":[1,2,3,4,"
         "5,6,7]}]}",
         "more than"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\",\"data\":[1,2,"
         "\"3\",4,5,6]}]}",
         "not a number"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\"}]}",
         "data is missing"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\",\"parameters\":{"
         "\"binary_data_size\":24}}]}",
         "Inference-Header-Content-Length"},
        {"{\"parameters\":{\"timeout_ms\":-3},\"inputs\":[]}", "timeout_ms"},
        {"{\"outputs\":[{\"name\":\"probs\"}],\"inputs\":[]}", "outputs[0].name"},
        {"{\"id\":7,\"inputs\":[]}", "id must be a string"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bl_kserve_request rq;
        bl_error err = {0};
        bl_status st = parse(cases[i].body, &rq, &err);
        if (st == BL_OK) fail_msg("case %zu accepted: %s", i, cases[i].body);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].msg);
        assert_null(rq.x);
    }
}

static void kserve_binary_extension(void **state) {
    (void)state;
    const char *head = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,6],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":48}}]}";
    size_t hl = strlen(head);
    char body[512];
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = 0.25f * (float)i - 1.0f;
    memcpy(body, head, hl);
    memcpy(body + hl, x, sizeof x);
    bl_kserve_request rq;
    bl_error err = {0};
    assert_int_equal(bl_kserve_parse_infer(&rq, &MODEL, body, hl + sizeof x, (long)hl, &err),
                     BL_OK);
    assert_int_equal(rq.n, 2);
    assert_memory_equal(rq.x, x, sizeof x);
    bl_kserve_request_free(&rq);
    /* one byte short, header length past the end, binary bytes nobody declared */
    assert_int_not_equal(
        bl_kserve_parse_infer(&rq, &MODEL, body, hl + sizeof x - 1, (long)hl, &err), BL_OK);
    assert_non_null(strstr(err.msg, "binary part"));
    assert_int_not_equal(bl_kserve_parse_infer(&rq, &MODEL, body, hl, (long)hl + 100, &err), BL_OK);
    assert_non_null(strstr(err.msg, "exceeds the body"));
    const char *jhead = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\","
                        "\"data\":[1,2,3,4,5,6]}]}";
    size_t jl = strlen(jhead);
    memcpy(body, jhead, jl);
    memcpy(body + jl, x, 8);
    assert_int_not_equal(bl_kserve_parse_infer(&rq, &MODEL, body, jl + 8, (long)jl, &err), BL_OK);
    assert_non_null(strstr(err.msg, "binary data follow"));
}

/* The "data" reader gives the floats cJSON's strtod would, bit for bit, for every way a
 * number can be written, with or without another key named "data" elsewhere. */
static void kserve_fast_data_path_is_exact(void **state) {
    (void)state;
    static const bl_kserve_model wide = {"m", "", {64, 1, 1}, 64, 1, 1};
    const char *fixed[] = {"0",
                           "-0",
                           "255",
                           "1e5",
                           "1E-5",
                           "-2.5e+3",
                           "0.1",
                           "3.4028235e38",
                           "1.17549435e-38",
                           "1e-45",
                           "123456789012345678901234",
                           "0.30000000000000004",
                           "1.00000005960464477539062500000001",
                           "9007199254740993",
                           "5e-324",
                           "7"};
    bl_rng r;
    bl_rng_seed(&r, 11);
    for (int round = 0; round < 200; round++) {
        char data[64][48];
        for (int i = 0; i < 64; i++) {
            double v =
                (bl_rng_uniform_double(&r) - 0.5) * pow(10.0, (double)(bl_rng_below(&r, 40)) - 20);
            switch (bl_rng_below(&r, 5)) {
            case 0:
                snprintf(data[i], sizeof data[i], "%.9g", (double)(float)v);
                break;
            case 1:
                snprintf(data[i], sizeof data[i], "%.17g", v);
                break;
            case 2:
                snprintf(data[i], sizeof data[i], "%d", (int)bl_rng_below(&r, 256));
                break;
            case 3:
                snprintf(data[i], sizeof data[i], "%.3e", v);
                break;
            default:
                snprintf(data[i], sizeof data[i], "%s", fixed[bl_rng_below(&r, 16)]);
            }
        }
        char body[2][8192];
        for (int b = 0; b < 2; b++) {
            size_t k = (size_t)snprintf(body[b], sizeof body[b],
                                        "{%s\"inputs\":[{\"name\":\"input\","
                                        "\"shape\":[1,64],\"datatype\":\"FP32\",\"data\": [[",
                                        b ? "\"parameters\":{\"data\":0}," : "");
            for (int i = 0; i < 64; i++) /* nested as 8 rows of 8, with stray spaces */
                k += (size_t)snprintf(body[b] + k, sizeof body[b] - k, "%s%s", data[i],
                                      i == 63      ? "]"
                                      : i % 8 == 7 ? "],\n ["
                                                   : " , ");
            snprintf(body[b] + k, sizeof body[b] - k, " ] }]}");
        }
        for (int b = 0; b < 2; b++) {
            json_request_scan sc;
            assert_int_equal(json_scan_request(body[b], strlen(body[b]), &sc), JSON_SCAN_OK);
            assert_int_equal(sc.n, 64);
            free(sc.x);
        }
        bl_kserve_request fast, other;
        bl_error err = {0};
        if (bl_kserve_parse_infer(&fast, &wide, body[0], strlen(body[0]), -1, &err))
            fail_msg("fast: %s\n%s", err.msg, body[0]);
        if (bl_kserve_parse_infer(&other, &wide, body[1], strlen(body[1]), -1, &err))
            fail_msg("with parameters.data: %s", err.msg);
        for (int i = 0; i < 64; i++) {
            float want = (float)strtod(data[i], NULL);
            if (memcmp(&fast.x[i], &want, 4) || memcmp(&other.x[i], &want, 4))
                fail_msg("'%s': fast %.9g other %.9g strtod %.9g", data[i], fast.x[i], other.x[i],
                         want);
        }
        bl_kserve_request_free(&fast);
        bl_kserve_request_free(&other);
    }
    /* "data" inside a string is not a key; data in the wrong place is still an error */
    bl_kserve_request rq;
    bl_error err = {0};
    assert_int_equal(
        parse("{\"id\":\"\\\"data\\\": [1]\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],"
              "\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6]}]}",
              &rq, &err),
        BL_OK);
    assert_true(rq.x[5] == 6.0f);
    bl_kserve_request_free(&rq);
    assert_int_not_equal(
        parse("{\"parameters\":{\"data\":[1,2,3,4,5,6]},\"inputs\":[{\"name\":\"input\","
              "\"shape\":[1,6],\"datatype\":\"FP32\"}]}",
              &rq, &err),
        BL_OK);
    assert_non_null(strstr(err.msg, "data is missing"));
    assert_int_not_equal(
        parse("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,6],\"datatype\":\"FP32\","
              "\"data\":[1,2,3,4,5,6,]}]}",
              &rq, &err),
        BL_OK);
    assert_non_null(strstr(err.msg, "malformed JSON"));
}

static void kserve_formats_responses(void **state) {
    (void)state;
    bl_kserve_request rq = {.n = 2};
    snprintf(rq.id, sizeof rq.id, "q\"1");
    float out[8];
    for (int i = 0; i < 8; i++)
        out[i] = 1.0f / 3.0f * (float)(i - 4) + 1e-7f * (float)i;
    char *body;
    size_t len, jl;
    bl_error err = {0};
    assert_int_equal(bl_kserve_format_infer(&MODEL, &rq, out, &body, &len, &jl, &err), BL_OK);
    assert_int_equal(jl, len);
    cJSON *j = cJSON_ParseWithLength(body, len);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "q\"1");
    assert_string_equal(cJSON_GetObjectItem(j, "model_name")->valuestring, "mlp");
    cJSON *o = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "logits");
    assert_string_equal(cJSON_GetObjectItem(o, "datatype")->valuestring, "FP32");
    cJSON *shape = cJSON_GetObjectItem(o, "shape");
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, 2);
    assert_int_equal(cJSON_GetArrayItem(shape, 1)->valueint, 4);
    cJSON *data = cJSON_GetObjectItem(o, "data");
    assert_int_equal(cJSON_GetArraySize(data), 8);
    for (int i = 0; i < 8; i++) /* %.9g round-trips float32 exactly */
        assert_true((float)cJSON_GetArrayItem(data, i)->valuedouble == out[i]);
    cJSON_Delete(j);
    free(body);
    rq.binary_output = 1;
    assert_int_equal(bl_kserve_format_infer(&MODEL, &rq, out, &body, &len, &jl, &err), BL_OK);
    assert_int_equal(len, jl + sizeof out);
    assert_memory_equal(body + jl, out, sizeof out);
    j = cJSON_ParseWithLength(body, jl);
    assert_non_null(j);
    o = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "parameters"), "binary_data_size")->valueint,
        32);
    assert_null(cJSON_GetObjectItem(o, "data"));
    cJSON_Delete(j);
    free(body);
}

static void kserve_metadata_and_errors(void **state) {
    (void)state;
    char *s = bl_kserve_metadata_json(&MODEL);
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "mlp");
    cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "inputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(in, "name")->valuestring, "input");
    assert_string_equal(cJSON_GetObjectItem(in, "datatype")->valuestring, "FP32");
    cJSON *sh = cJSON_GetObjectItem(in, "shape");
    assert_int_equal(cJSON_GetArraySize(sh), 4);
    assert_int_equal(cJSON_GetArrayItem(sh, 0)->valueint, -1);
    assert_int_equal(cJSON_GetArrayItem(sh, 3)->valueint, 3);
    cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(out, "shape"), 1)->valueint, 4);
    cJSON_Delete(j);
    free(s);
    s = bl_kserve_error_json("bad \"thing\"\n");
    j = cJSON_Parse(s);
    assert_string_equal(cJSON_GetObjectItem(j, "error")->valuestring, "bad \"thing\"\n");
    cJSON_Delete(j);
    free(s);
}

/* ---- Prometheus text ----------------------------------------------------------------------- */

static void metrics_text(void **state) {
    (void)state;
    bl_serve_metrics *m = calloc(1, sizeof *m);
    metrics_init(m, 64, 0, 0);
    metrics_observe_batch(m, 5, 300000);   /* 0.3 ms */
    metrics_observe_batch(m, 64, 2000000); /* 2 ms */
    metrics_observe_queue_time(m, 40000);
    bl_metrics_count_success(m, 1500000);
    bl_metrics_count_failure(m, BL_FAIL_QUEUE_FULL);
    bl_metrics_count_failure(m, BL_FAIL_QUEUE_FULL);
    char *t;
    size_t len;
    assert_int_equal(bl_metrics_render(m, "mlp", &t, &len, NULL), BL_OK);
    assert_int_equal(strlen(t), len);
    static const char *want[] = {
        "# TYPE batchlab_request_success_total counter\n",
        "batchlab_request_success_total{model=\"mlp\"} 1\n",
        "batchlab_request_failure_total{model=\"mlp\",reason=\"queue_full\"} 2\n",
        "batchlab_request_failure_total{model=\"mlp\",reason=\"bad_request\"} 0\n",
        "batchlab_inference_count_total{model=\"mlp\"} 69\n",
        "batchlab_execution_count_total{model=\"mlp\"} 2\n",
        "# TYPE batchlab_batch_size histogram\n",
        "batchlab_batch_size_bucket{model=\"mlp\",le=\"4\"} 0\n",
        "batchlab_batch_size_bucket{model=\"mlp\",le=\"8\"} 1\n",
        "batchlab_batch_size_bucket{model=\"mlp\",le=\"64\"} 2\n",
        "batchlab_batch_size_bucket{model=\"mlp\",le=\"+Inf\"} 2\n",
        "batchlab_batch_size_sum{model=\"mlp\"} 69\n",
        "batchlab_compute_time_seconds_bucket{model=\"mlp\",le=\"0.0005\"} 1\n",
        "batchlab_compute_time_seconds_bucket{model=\"mlp\",le=\"0.0025\"} 2\n",
        "batchlab_compute_time_seconds_sum{model=\"mlp\"} 0.0023\n",
        "batchlab_queue_time_seconds_bucket{model=\"mlp\",le=\"5e-05\"} 1\n",
        "batchlab_request_latency_seconds_count{model=\"mlp\"} 1\n",
        "batchlab_queue_depth_requests{model=\"mlp\"} 0\n",
        "batchlab_adaptive_enabled{model=\"mlp\"} 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(t, want[i])) fail_msg("metrics lack: %s", want[i]);
    assert_null(strstr(t, "batchlab_adaptive_decisions_total")); /* only when adaptive */
    free(t);
    /* adaptive: the controller's state is exported */
    metrics_init(m, 64, 1, 10.0);
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, 10.0, 64, 1000);
    a->decisions[BL_DELAY_CTL_INCREASE] = 3;
    a->last_p99_ns = 4000000;
    metrics_publish_delay_ctl(m, a);
    assert_int_equal(bl_metrics_render(m, "mlp", &t, &len, NULL), BL_OK);
    assert_non_null(
        strstr(t, "batchlab_adaptive_decisions_total{model=\"mlp\",decision=\"increase\"} 3\n"));
    assert_non_null(strstr(t, "batchlab_max_batch{model=\"mlp\"} 64\n"));
    assert_non_null(strstr(t, "batchlab_slo_p99_seconds{model=\"mlp\"} 0.01\n"));
    assert_non_null(strstr(t, "batchlab_adaptive_window_p99_seconds{model=\"mlp\"} 0.004\n"));
    free(t);
    free(a);
    free(m);
}

static void batcher_config_checks(void **state) {
    (void)state;
    bl_batcher_config c;
    bl_error err = {0};
    bl_batcher_config_default(&c);
    assert_int_equal(bl_batcher_config_check(&c, &err), BL_OK);
    c.max_batch = 0;
    assert_int_equal(bl_batcher_config_check(&c, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--max-batch"));
    bl_batcher_config_default(&c);
    c.max_queue = 0;
    assert_int_equal(bl_batcher_config_check(&c, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--max-queue"));
    bl_batcher_config_default(&c);
    c.preferred[0] = 128;
    c.n_preferred = 1;
    assert_int_equal(bl_batcher_config_check(&c, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--preferred-batch 128"));
    bl_batcher_config_default(&c);
    c.max_delay_us = -1;
    assert_int_equal(bl_batcher_config_check(&c, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--max-delay-us"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(latency_hist_buckets_cover_values),
        cmocka_unit_test(latency_hist_percentiles),
        cmocka_unit_test(batch_policy_rules),
        cmocka_unit_test(delay_ctl_moves_within_bounds),
        cmocka_unit_test(delay_ctl_does_not_collapse),
        cmocka_unit_test(delay_ctl_stops_batching_that_does_not_pay),
        cmocka_unit_test(delay_ctl_forgets_a_stale_cost_verdict),
        cmocka_unit_test(delay_ctl_window_needs_time_or_count),
        cmocka_unit_test(kserve_parses_valid_requests),
        cmocka_unit_test(kserve_rejects_bad_requests),
        cmocka_unit_test(kserve_binary_extension),
        cmocka_unit_test(kserve_fast_data_path_is_exact),
        cmocka_unit_test(kserve_formats_responses),
        cmocka_unit_test(kserve_metadata_and_errors),
        cmocka_unit_test(metrics_text),
        cmocka_unit_test(batcher_config_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
