/* Internals shared by the files of src/serve/: the metrics struct (updated with atomics
 * from the HTTP threads and the batcher thread, read by /metrics without a lock). */
#ifndef BL_SERVE_INTERNAL_H
#define BL_SERVE_INTERNAL_H

#include <stdatomic.h>
#include "batchlab/serve.h"

#define PROM_MAX_BUCKETS 24

/* A Prometheus histogram over integer observations (ns or samples); bounds are the
 * inclusive upper edges in the same integer unit, and unit_scale converts to the
 * exposed unit (1e-9 for seconds). */
typedef struct prom_hist {
    int nb;
    uint64_t bounds[PROM_MAX_BUCKETS];
    double unit_scale;
    atomic_uint_fast64_t counts[PROM_MAX_BUCKETS + 1]; /* last: above every bound (+Inf) */
    atomic_uint_fast64_t sum;
} prom_hist;

struct bl_serve_metrics {
    atomic_uint_fast64_t success, failure[BL_FAIL_KINDS];
    atomic_uint_fast64_t inferences, executions;
    atomic_uint_fast64_t caller_executions; /* of executions, run by the submitting thread */
    prom_hist queue_time, compute_time, request_latency, batch_size;
    atomic_long queue_requests, queue_samples;
    atomic_int max_batch;
    atomic_long delay_us;
    /* adaptive */
    int adaptive;
    double slo_ms;
    atomic_uint_fast64_t window_p99_ns;
    atomic_long decisions[4];
};

void metrics_init(bl_serve_metrics *m, int max_batch_cap, int adaptive, double slo_ms);
void metrics_observe_batch(bl_serve_metrics *m, int size, uint64_t compute_ns);
void metrics_observe_queue_time(bl_serve_metrics *m, uint64_t queue_ns);
void metrics_publish_delay_ctl(bl_serve_metrics *m, const bl_delay_ctl *a);

/* json_scan.c: check that s[0..len) is one JSON value (valid UTF-8 strings and escapes,
 * nothing after it) and read root."inputs"[0]."data", when it is an array, into out->x
 * (bl_malloc'ed, out->n numbers, from byte out->begin to out->end; n = -1 when there is
 * no such array; bad_index >= 0: the first element that is not a number, the others
 * read). On failure out->x is NULL and out->at / out->what say where and what. */
typedef enum {
    JSON_SCAN_OK,
    JSON_SCAN_MALFORMED, /* not JSON */
    JSON_SCAN_BAD_UTF8,  /* a string is not UTF-8 */
    JSON_SCAN_TRAILING,  /* bytes after the value */
    JSON_SCAN_DATA,      /* inputs[0].data nests too deeply */
    JSON_SCAN_NOMEM
} json_scan_error;

typedef struct json_request_scan {
    float *x;
    long n;
    size_t begin, end;
    json_scan_error error;
    size_t at;
    const char *what;
    long bad_index;
} json_request_scan;

json_scan_error json_scan_request(const char *s, size_t len, json_request_scan *out);

#endif
