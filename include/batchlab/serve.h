/* Serving: batched inference over HTTP, and a load generator to measure it.
 *
 *   bl_batcher   a bounded queue between request threads and ONE compute thread that
 *                owns the model: batches form when they reach the current max batch, a
 *                preferred size, or when the oldest request has waited max_delay_us.
 *                Requests may carry several samples; big ones span batches. When the
 *                model is idle, the submitting thread may run the batch itself.
 *   bl_delay_ctl the run-time controller that steps the batching delay to keep the
 *                observed p99 under an objective, the max batch held at its cap.
 *   bl_server    the KServe v2 / Open Inference Protocol over libmicrohttpd, with
 *                Prometheus text at /metrics and a graceful drain on stop.
 *   bl_load_run  an open-loop (constant or Poisson arrivals, latency measured from the
 *                intended send time) or closed-loop load generator over libcurl.
 *   bl_latency_hist  a log-bucketed latency histogram (HDR style, < 1% relative error).
 *
 * Typical use (what `batchlab serve` does):
 *
 *   bl_serve_config cfg;  bl_serve_config_default(&cfg);
 *   cfg.port = 0;  cfg.batch.max_batch = bl_model_max_batch(m);
 *   bl_server *s;  bl_server_start(&s, &cfg, m, &norm, &err);   // s now owns the batcher
 *   ... bl_server_port(s) ...  wait for SIGTERM ...
 *   bl_server_stop(s);   // queued requests are answered first
 *   bl_server_free(s);
 *
 * Thread safety: bl_batcher_submit, bl_server_* and the metrics are safe from any thread;
 * the model runs one batch at a time, on the batcher thread or, when the model is idle,
 * on the thread that submitted the request (bl_batcher_submit_claim). */
#ifndef BATCHLAB_SERVE_H
#define BATCHLAB_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/data.h"
#include "batchlab/error.h"
#include "batchlab/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== latency histogram */
#define BL_LATENCY_HIST_SUB_BITS                                                                   \
    7 /* 128 linear sub-buckets per power of two: <= 1/128 rel. error */
#define BL_LATENCY_HIST_MAX_LOG2                                                                   \
    44 /* values up to 2^44 (ns: 4.9 hours); larger ones are clamped                               \
        */
#define BL_LATENCY_HIST_BUCKETS                                                                    \
    ((BL_LATENCY_HIST_MAX_LOG2 - BL_LATENCY_HIST_SUB_BITS + 2) << BL_LATENCY_HIST_SUB_BITS)

typedef struct bl_latency_hist {
    uint64_t counts[BL_LATENCY_HIST_BUCKETS];
    uint64_t total, min, max;
    double sum;
} bl_latency_hist;

void bl_latency_hist_reset(bl_latency_hist *h);
void bl_latency_hist_record(bl_latency_hist *h, uint64_t value);
void bl_latency_hist_record_n(bl_latency_hist *h, uint64_t value, uint64_t n);
/* Add every count of src into dst. */
void bl_latency_hist_merge(bl_latency_hist *dst, const bl_latency_hist *src);
/* The value at percentile q in [0, 100]: the highest value that falls in the same bucket
 * as the ceil(q% * total)-th smallest recorded value (never above max). 0 if empty. */
uint64_t bl_latency_hist_percentile(const bl_latency_hist *h, double q);
double bl_latency_hist_mean(const bl_latency_hist *h);
/* Bucket index of a value and the bucket's [lo, hi] range (exposed for tests). */
int bl_latency_hist_index(uint64_t value);
void bl_latency_hist_bucket_range(int index, uint64_t *lo, uint64_t *hi);

/* ======================================================================== metrics */
typedef enum {
    BL_FAIL_BAD_REQUEST,  /* 400: malformed JSON, wrong shape/datatype/name */
    BL_FAIL_NOT_FOUND,    /* 404: unknown path or model */
    BL_FAIL_METHOD,       /* 405 */
    BL_FAIL_TOO_LARGE,    /* 413: body over max_body_bytes */
    BL_FAIL_QUEUE_FULL,   /* 503: max_queue requests already waiting */
    BL_FAIL_SHUTDOWN,     /* 503: the server is draining */
    BL_FAIL_TIMEOUT,      /* 504: waited in the queue past its timeout */
    BL_FAIL_INTERNAL,     /* 500 */
    BL_FAIL_READ_TIMEOUT, /* 408: the request did not arrive whole within read_timeout_s */
    BL_FAIL_KINDS
} bl_fail_kind;
const char *bl_fail_kind_name(bl_fail_kind k); /* "bad_request", ... */

typedef struct bl_serve_metrics bl_serve_metrics; /* atomics; opaque */

/* Prometheus text exposition format 0.0.4 of every metric (names start with batchlab_).
 * *out is malloc'ed (caller frees). */
bl_status bl_metrics_render(const bl_serve_metrics *m, const char *model, char **out, size_t *len,
                            bl_error *err);
/* Read single values (for tests and the CLI's exit summary). */
uint64_t bl_metrics_inferences(const bl_serve_metrics *m); /* samples computed */
uint64_t bl_metrics_executions(const bl_serve_metrics *m); /* batches run */
/* Of those, batches run on the submitting thread (bl_batcher_submit_claim). */
uint64_t bl_metrics_caller_executions(const bl_serve_metrics *m);
uint64_t bl_metrics_successes(const bl_serve_metrics *m);
uint64_t bl_metrics_failures(const bl_serve_metrics *m, bl_fail_kind k);
void bl_metrics_count_success(bl_serve_metrics *m, uint64_t latency_ns);
void bl_metrics_count_failure(bl_serve_metrics *m, bl_fail_kind k);

/* ======================================================================== adaptive */
typedef enum {
    BL_DELAY_CTL_HOLD,
    BL_DELAY_CTL_INCREASE,
    BL_DELAY_CTL_DECREASE,
    BL_DELAY_CTL_SATURATED
} bl_delay_ctl_action;
const char *bl_delay_ctl_action_name(bl_delay_ctl_action a);

#define BL_DELAY_CTL_WINDOW_MAX 512
/* The max batch stays at the cap (with first-in first-out batches whose cost per sample
 * does not rise with size, a larger max never makes a request wait longer; see
 * adaptive.c). Every window (>= min_samples completed requests and >= window_ns, or
 * BL_DELAY_CTL_WINDOW_MAX requests) the delay moves on the p99 of request latency (arrival
 * to batch end) and how often batches were full:
 *  - p99 over the objective with batches mostly full: SATURATED (past capacity: shed load
 *    with --max-queue);
 *  - p99 over headroom x the objective: step the delay by delay_step_us the way that last
 *    lowered p99, turning back when a step made it worse (INCREASE / DECREASE);
 *  - p99 under half the objective, batches not full and the model computing under half
 *    the window: add delay_step_us (INCREASE), up to cap_delay_us;
 *  - else hold.
 * Waiting is for batches that save compute: once batches of 2 or more are seen to cost
 * more than 0.9x a batch of 1 per sample (a model whose cost per sample is flat in B),
 * the delay only steps down, to 0, then the max batch drops to 1; past capacity (p99
 * over the objective, batches full) it returns to the cap. */
typedef struct bl_delay_ctl {
    double slo_ns;
    int cap_batch, max_batch;
    long cap_delay_us, delay_us, delay_step_us;
    int probe;               /* +1 / -1: the direction the delay last moved under pressure */
    uint64_t pressed_p99_ns; /* p99 of the last window over headroom (0: none) */
    double headroom;
    long min_samples;
    uint64_t window_ns, window_start_ns;
    /* current window */
    uint64_t lat[BL_DELAY_CTL_WINDOW_MAX];
    int n_lat;
    long batches, full_batches;
    uint64_t busy_ns; /* compute time of the window's batches */
    /* Does batching save compute on this model? Moving averages of compute per sample
     * of batches of 1 and of 2 or more, over the whole run. */
    double one_ns, many_ns;
    long one_n, many_n;
    /* last decision, for metrics */
    uint64_t last_p99_ns;
    bl_delay_ctl_action last_action;
    long decisions[4];
} bl_delay_ctl;

/* slo_p99_ms > 0; cap_batch >= 1. The max batch is cap_batch; the delay starts at 0 and
 * never exceeds min(cap_delay_us, slo/10). */
void bl_delay_ctl_init(bl_delay_ctl *a, double slo_p99_ms, int cap_batch, long cap_delay_us);
/* Record one batch of `size` samples (max batch was `max_batch` when it formed) that took
 * compute_ns. */
void bl_delay_ctl_batch(bl_delay_ctl *a, int size, int max_batch, uint64_t compute_ns);
/* Record one completed request's latency. Returns 1 when this closed a window and a
 * decision was made (then a->max_batch / a->delay_us / a->last_action are the new ones). */
int bl_delay_ctl_observe(bl_delay_ctl *a, uint64_t latency_ns, uint64_t now_ns);

/* ======================================================================== batcher */
typedef enum {
    BL_REQ_PENDING,
    BL_REQ_OK,
    BL_REQ_TIMEOUT,
    BL_REQ_FAILED,
    BL_REQ_CANCELLED, /* bl_batcher_cancel_waiting: the server stops without computing it */
    BL_REQ_ABANDONED  /* its alive() said the client has gone: dropped, rows not computed */
} bl_req_outcome;

typedef struct bl_infer_req bl_infer_req;
/* Called exactly once per accepted request, on the thread that runs its last batch (the
 * batcher thread, or a caller running a claimed batch), with no batcher lock held; never
 * for the request a caller claimed the batch with. After it returns the batcher never
 * touches the request again. */
typedef void (*bl_req_done_fn)(bl_infer_req *r);

struct bl_infer_req {
    /* --- set by the caller before bl_batcher_submit; owned by the caller --- */
    const float *x;        /* (n, in_dim) raw inputs */
    float *out;            /* (n, out_dim) results */
    int n;                 /* samples, >= 1; may exceed the max batch (spans batches) */
    long timeout_us;       /* 0: the batcher's default; a value above the default is capped */
    uint64_t t_arrival_ns; /* when it reached the server (0: at submit); the adaptive
                            * controller measures latency from here, parsing included */
    bl_req_done_fn done;
    void *user;
    /* Optional: 0 once the client has gone. Asked, under the batcher's lock, before the
     * request's rows go into a batch, so a client that left costs no compute. */
    int (*alive)(const bl_infer_req *r);
    /* --- filled by the batcher --- */
    bl_req_outcome outcome;
    uint64_t t_enqueue_ns, t_start_ns, t_end_ns; /* t_start: its first batch began */
    int batch_size;                              /* samples in its last batch */
    /* --- private --- */
    bl_infer_req *next;
    uint64_t deadline_ns;
    int taken;
};

/* Compute out(B, out_dim) from x(B, in_dim); x is the batcher's buffer and may be
 * modified. Returns nonzero on failure (every request of the batch then FAILS). */
typedef int (*bl_batch_fn)(void *user, float *x, int B, float *out);

#define BL_MAX_PREFERRED 8
typedef struct bl_batcher_config {
    int max_batch;     /* hard cap (the model's max_batch), >= 1 */
    long max_delay_us; /* wait at most this long for a batch to fill; 0 = dispatch at once */
    int preferred[BL_MAX_PREFERRED]; /* sizes dispatched as soon as they can be formed */
    int n_preferred;
    int max_queue;     /* requests waiting; a submit beyond it is refused; >= 1 */
    long timeout_ms;   /* default per-request queue timeout; 0 = none */
    double slo_p99_ms; /* > 0: adaptive delay (bl_delay_ctl), max batch at its cap; 0 = fixed */
} bl_batcher_config;

void bl_batcher_config_default(bl_batcher_config *c);
/* Check ranges; errors name the field (as the CLI flag) and the value. */
bl_status bl_batcher_config_check(const bl_batcher_config *c, bl_error *err);

/* How many samples to dispatch now (0: keep waiting), given `queued` samples whose oldest
 * request has waited waited_us. The rule: the current max batch when that many are
 * queued; else the largest preferred size that can be formed; else everything (up to the
 * max) once the delay has passed or when draining. Pure; exposed for tests. */
int bl_batch_policy(long queued, long waited_us, int max_batch, long delay_us, const int *preferred,
                    int n_preferred, int draining);

typedef struct bl_batcher bl_batcher;

/* Start the compute thread. fn/user compute a batch; in_dim/out_dim size the buffers.
 * The batcher owns its metrics (bl_batcher_metrics). */
bl_status bl_batcher_create(bl_batcher **out, const bl_batcher_config *cfg, int in_dim, int out_dim,
                            bl_batch_fn fn, void *user, bl_error *err);
/* Queue r. BL_OK: r->done will be called once. Refusals (r->done is NOT called):
 * BL_ERR_NOMEM when max_queue requests are already waiting, BL_ERR_INTERRUPTED after
 * bl_batcher_drain began, BL_ERR_ARG for n < 1 or missing buffers. */
bl_status bl_batcher_submit(bl_batcher *b, bl_infer_req *r, bl_error *err);
/* Queue r as bl_batcher_submit does, but when the model is idle (no batch running, and
 * idle for at least as long as the last batch took) and the policy would dispatch every
 * queued sample now, r's included, claim that batch for the caller: *claimed = 1, and the
 * caller must call bl_batcher_run_claimed(b, r) next, on the same thread and holding no
 * lock that a done callback takes. *claimed = 0: queued, r->done will be called. Refusals
 * as bl_batcher_submit (*claimed = 0). */
bl_status bl_batcher_submit_claim(bl_batcher *b, bl_infer_req *r, int *claimed, bl_error *err);
/* Run the claimed batch on this thread. When it returns r is finished (r->outcome,
 * r->out, timings) and r->done is not called; any other request that was gathered into
 * the batch gets its done callback here. */
void bl_batcher_run_claimed(bl_batcher *b, bl_infer_req *r);
/* Submit and wait for the outcome (for tests and simple callers; r->done/user must be
 * unset; they are used internally). */
bl_status bl_batcher_infer(bl_batcher *b, bl_infer_req *r, bl_error *err);
/* Refuse new requests and run everything queued at once (no delay); returns at once
 * with the number of requests that were waiting. Idempotent. */
long bl_batcher_begin_drain(bl_batcher *b);
/* Complete every waiting request as BL_REQ_CANCELLED instead of computing it (a batch
 * running now finishes). Requests submitted later are refused. */
void bl_batcher_cancel_waiting(bl_batcher *b);
/* bl_batcher_begin_drain, then wait for the queue to empty and stop the thread. Returns
 * the number of requests that were waiting when the drain began. Idempotent. */
long bl_batcher_drain(bl_batcher *b);
/* Drain (if not yet) and free. */
void bl_batcher_free(bl_batcher *b);

bl_serve_metrics *bl_batcher_metrics(bl_batcher *b);
long bl_batcher_queue_requests(bl_batcher *b); /* waiting now (not yet fully dispatched) */
long bl_batcher_abandoned(bl_batcher *b);      /* requests dropped because alive() said so */
int bl_batcher_current_max_batch(bl_batcher *b);
long bl_batcher_current_delay_us(bl_batcher *b);

/* A bl_batch_fn that applies the checkpoint normalisation x' = (x - mean) * scale in place
 * and runs the model's eval forward pass. Fill a bl_model_runner and pass it as user. */
typedef struct bl_model_runner {
    bl_model *model;
    const bl_norm *norm; /* may be NULL or kind NONE */
} bl_model_runner;
int bl_model_runner_fn(void *user, float *x, int B, float *out);

/* ======================================================================== protocol */
/* What the protocol layer needs to know about the served model. */
typedef struct bl_kserve_model {
    const char *name;
    const char *spec;
    bl_shape in; /* per-sample input shape; flat models are (d, 1, 1) */
    int in_dim, out_dim, max_batch;
} bl_kserve_model;

#define BL_KSERVE_MAX_ID 255 /* bytes of "id"; a longer one is refused (400), never cut */
/* Bytes of request JSON besides inputs[0].data (which is read without a node per number);
 * a request with more is refused, so parsing memory stays bounded by the body. */
#define BL_KSERVE_MAX_JSON_REST (1 << 20)

typedef struct bl_kserve_request {
    char id[BL_KSERVE_MAX_ID + 1]; /* "" when absent */
    float *x;                      /* (n, in_dim), malloc'ed: bl_kserve_request_free */
    int n;
    long timeout_ms;   /* parameters.timeout_ms; 0 = none */
    int binary_output; /* answer with the binary-data extension */
} bl_kserve_request;

/* Parse an infer request body. header_len: the Inference-Header-Content-Length value, or
 * -1 when the header is absent (then the whole body is JSON). The JSON must be one valid
 * value (UTF-8 strings, nothing after it) and every input finite. Every failure but
 * BL_ERR_NOMEM is a client error (HTTP 400) with a message naming the field. */
bl_status bl_kserve_parse_infer(bl_kserve_request *rq, const bl_kserve_model *mdl, const char *body,
                                size_t len, long header_len, bl_error *err);
void bl_kserve_request_free(bl_kserve_request *rq);
/* The response body for out(n, out_dim). With rq->binary_output the JSON header is
 * followed by the raw little-endian float32 logits and *json_len is its length (for the
 * Inference-Header-Content-Length header); otherwise *json_len = *len. *body is malloc'ed. */
bl_status bl_kserve_format_infer(const bl_kserve_model *mdl, const bl_kserve_request *rq,
                                 const float *out, char **body, size_t *len, size_t *json_len,
                                 bl_error *err);
/* GET /v2/models/{name} body (malloc'ed; NULL only when out of memory). */
char *bl_kserve_metadata_json(const bl_kserve_model *mdl);
/* {"error": msg} (malloc'ed; NULL only when out of memory). */
char *bl_kserve_error_json(const char *msg);

/* ======================================================================== server */
typedef struct bl_serve_config {
    const char *host;       /* address to bind, default "127.0.0.1" */
    int port;               /* 0 = any free port (see bl_server_port) */
    const char *model_name; /* the {name} in /v2/models/{name}; default "model" */
    int http_threads;       /* libmicrohttpd polling threads, default 1 */
    size_t max_body_bytes;  /* larger request bodies get 413; default 64 MiB */
    /* Connection hygiene: a client must not be able to hold the server's sockets. */
    unsigned conn_timeout_s;  /* close a connection silent this long: headers or body
                               * stalled, or idle keep-alive (not one waiting for its
                               * batch); default 10 */
    unsigned read_timeout_s;  /* a whole request (headers and body) must arrive within
                               * this, from the connection's start or the end of the
                               * previous response; else 408 and close; default 30 */
    unsigned max_connections; /* open connections, all clients together; default 1000 */
    unsigned max_conn_per_ip; /* open connections from one address; default 256, 0 = none */
    bl_batcher_config batch;
} bl_serve_config;

void bl_serve_config_default(bl_serve_config *c);

typedef struct bl_server bl_server;

/* Bind, start the batcher (which owns m from now on: do not run it elsewhere until
 * bl_server_free) and the HTTP threads. cfg->batch.max_batch must not exceed the model's
 * max batch. Errors: BL_ERR_ARG (config), BL_ERR_IO (cannot bind: names host:port). */
/* BL_ERR_ARG with a message naming the option when a field of cfg (batch included) is out
 * of range; what bl_server_start checks before it binds, short of the model's max batch. */
bl_status bl_serve_config_check(const bl_serve_config *cfg, bl_error *err);
bl_status bl_server_start(bl_server **out, const bl_serve_config *cfg, bl_model *m,
                          const bl_norm *norm, bl_error *err);
int bl_server_port(const bl_server *s);
bl_serve_metrics *bl_server_metrics(bl_server *s);
bl_batcher *bl_server_batcher(bl_server *s);

typedef struct bl_server_stats {
    uint64_t accepted;      /* infer requests queued to the batcher */
    uint64_t answered;      /* of those, responses fully sent */
    uint64_t unanswered;    /* of those, connections lost before the response was sent */
    uint64_t abandoned;     /* of those, dropped uncomputed: the client had gone */
    uint64_t cancelled;     /* of those, answered 503 uncomputed: the stop ran out of time */
    long queued_at_stop;    /* waiting in the queue when the drain began */
    uint64_t read_timeouts; /* connections closed with a 408: no whole request in time */
} bl_server_stats;
/* Readiness turns false and new infer requests get 503; every response from now on
 * carries Connection: close. Nothing stops yet (bl_server_stop does this first). */
void bl_server_begin_drain(bl_server *s);
/* Graceful stop: bl_server_begin_drain, then queued requests are computed and answered
 * for up to grace_ms; what is still queued then gets 503, and after at most 200 ms more
 * for those last responses to be written the HTTP threads stop. Idempotent. */
void bl_server_stop(bl_server *s, long grace_ms);
/* From another thread while bl_server_stop runs (a second signal): every request not
 * yet computed gets 503 now, and the stop ends as soon as those answers are written
 * (at most 200 ms). */
void bl_server_stop_now(bl_server *s);
void bl_server_get_stats(bl_server *s, bl_server_stats *st);

/* Where a successful infer request's time goes inside the server, stage by stage. */
typedef enum {
    BL_STAGE_RECEIVE,  /* headers parsed -> whole body read */
    BL_STAGE_PARSE,    /* body -> queued to the batcher (KServe parsing) */
    BL_STAGE_QUEUE,    /* queued -> its first batch starts */
    BL_STAGE_COMPUTE,  /* batch start -> batch end (normalise + forward + scatter) */
    BL_STAGE_HANDBACK, /* batch end -> the HTTP thread has the result (resume) */
    BL_STAGE_RESPOND,  /* -> response formatted and queued */
    BL_STAGES
} bl_stage;
const char *bl_stage_name(bl_stage st); /* "receive", "parse", ... */
/* The q-th percentile (0..100) of a stage in ns over every successful request so far. */
uint64_t bl_server_stage_ns(bl_server *s, bl_stage st, double q);
/* Stops (if not yet) and frees; the model is the caller's again. */
void bl_server_free(bl_server *s);

/* ======================================================================== load generator */
typedef enum { BL_LOAD_OPEN, BL_LOAD_CLOSED } bl_load_mode;
typedef enum { BL_LOAD_JSON, BL_LOAD_BINARY } bl_load_format;

typedef struct bl_load_config {
    const char *url;   /* server base, e.g. "http://127.0.0.1:8000" */
    const char *model; /* model name */
    bl_load_mode mode;
    double rate;       /* open loop: intended requests per second */
    int poisson;       /* open loop: exponential gaps (1) or constant (0) */
    int concurrency;   /* closed loop: requests in flight; open loop: connections */
    double duration_s; /* send for this long (after warm-up) */
    double warmup_s;   /* sent but not counted */
    long max_requests; /* stop sending after this many (0: no limit) */
    long max_errors;   /* stop sending after this many failures (0: no limit) */
    double timeout_s;  /* client timeout per request */
    bl_load_format format;
    const float *samples; /* (n_samples, in_dim) inputs sent round-robin */
    size_t n_samples;
    bl_shape shape;       /* per-sample shape (sent as [k, c, h, w]) */
    int per_request;      /* samples per request, >= 1 */
    uint64_t seed;        /* Poisson gaps */
    const char *get_path; /* non-NULL: GET this path (e.g. /v2/health/live) instead of infer */
} bl_load_config;

void bl_load_config_default(bl_load_config *c);

typedef struct bl_load_result {
    double offered_rps;    /* the open-loop target (0 for closed loop) */
    double throughput_rps; /* successful counted requests / counted wall time */
    double elapsed_s;      /* counted wall time: first counted intended send to last answer */
    long sent, ok, failed; /* counted requests (after warm-up) */
    long http_4xx, http_503, http_5xx, transport; /* failure classes */
    long unsent;              /* open loop: still waiting for a connection when the run ended */
    bl_latency_hist latency;  /* ns, successful counted requests, from the INTENDED send time */
    bl_latency_hist send_lag; /* ns, actual minus intended send time (generator health) */
    char last_error[256];     /* the last failure: curl's message or the server's body */
} bl_load_result;

/* Run one load test. The result is heap-sized (two bl_latency_hist); allocate it with malloc.
 * Errors: BL_ERR_ARG for a bad config, BL_ERR_IO if curl cannot start. Request failures
 * are counted, not errors. */
bl_status bl_load_run(const bl_load_config *c, bl_load_result *r, bl_error *err);

/* GET {url}/v2/models/{model}: the per-sample input shape. */
bl_status bl_load_fetch_shape(const char *url, const char *model, bl_shape *shape, bl_error *err);
/* GET {url}/metrics and read batchlab_inference_count_total, batchlab_execution_count_total
 * and the current max batch (any pointer may be NULL). */
bl_status bl_load_scrape(const char *url, double *inferences, double *executions, double *max_batch,
                         bl_error *err);

/* One line per rate of a load sweep (`batchlab load --sweep`). */
typedef struct bl_load_sweep_point {
    double offered_rps, throughput_rps;
    double p50_ms, p90_ms, p99_ms, p999_ms, max_ms;
    long ok, failed;
    double avg_batch; /* from /metrics deltas; 0 if unknown */
    double max_batch; /* the server's current max batch at the end; 0 if unknown */
} bl_load_sweep_point;

/* Write the points as CSV, atomically. */
bl_status bl_load_sweep_write_csv(const char *path, const bl_load_sweep_point *p, int n,
                                  bl_error *err);
/* Plot p50, p99 and p99.9 latency against achieved throughput (with a dashed line at
 * slo_ms when > 0) into <base>.png and <base>.svg through bl_plot_write (its errors). */
bl_status bl_load_sweep_plot(const bl_load_sweep_point *p, int n, const char *base,
                             const char *title, double slo_ms, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
