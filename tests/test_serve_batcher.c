/* The dynamic batcher driven directly, without HTTP, through a fake model whose output
 * identifies its input and which can be held closed (a "gate") while requests queue.
 * Holding the compute thread makes batch formation deterministic: the tests never
 * depend on how fast anything runs, only on the order of events, and every wait is
 * bounded so a broken batcher fails instead of hanging. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "batchlab/model.h"
#include "batchlab/serve.h"
#include "test_util.h"

#define IN 3
#define OUT 2
#define WAIT_LIMIT_S 30.0 /* every wait gives up (and fails) after this */

typedef struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gate_closed, entered, fail;
    int sizes[4096];
    int n_batches;
    pthread_t last_thread; /* the thread that ran the last batch */
} fake;

/* out[i] = (sum of x[i], B): the first identifies the sample, the second the batch. */
static int fake_fn(void *user, float *x, int B, float *out) {
    fake *f = user;
    pthread_mutex_lock(&f->mu);
    if (f->n_batches < 4096) f->sizes[f->n_batches] = B;
    f->n_batches++;
    f->entered++;
    f->last_thread = pthread_self();
    pthread_cond_broadcast(&f->cv);
    while (f->gate_closed)
        pthread_cond_wait(&f->cv, &f->mu);
    int fail = f->fail;
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < B; i++) {
        float s = 0;
        for (int j = 0; j < IN; j++)
            s += x[i * IN + j];
        out[i * OUT] = s;
        out[i * OUT + 1] = (float)B;
    }
    return fail;
}

static void fake_init(fake *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static void gate(fake *f, int closed) {
    pthread_mutex_lock(&f->mu);
    f->gate_closed = closed;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until the fake model has been entered `n` times. */
static void wait_entered(fake *f, int n) {
    double t0 = bl_now_sec();
    pthread_mutex_lock(&f->mu);
    while (f->entered < n) {
        pthread_mutex_unlock(&f->mu);
        if (bl_now_sec() - t0 > WAIT_LIMIT_S) fail_msg("the model was not entered %d times", n);
        sleep_ms(1);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
}

static void wait_queue(bl_batcher *b, long n) {
    double t0 = bl_now_sec();
    while (bl_batcher_queue_requests(b) != n) {
        if (bl_now_sec() - t0 > WAIT_LIMIT_S) fail_msg("the queue never held %ld requests", n);
        sleep_ms(1);
    }
}

/* An asynchronous request with its own buffers and a completion flag. */
typedef struct areq {
    bl_infer_req r;
    float x[64 * IN], out[64 * OUT];
    volatile int done;
} areq;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;

static void areq_done(bl_infer_req *r) {
    areq *a = r->user;
    pthread_mutex_lock(&done_mu);
    a->done = 1;
    pthread_mutex_unlock(&done_mu);
}

static void fill(areq *a, int n, float base, long timeout_us) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < IN; j++)
            a->x[i * IN + j] = base + (float)i + (j == 0 ? 0.0f : 0.5f * (float)j);
    a->r = (bl_infer_req){
        .x = a->x, .out = a->out, .n = n, .timeout_us = timeout_us, .done = areq_done, .user = a};
}

static bl_status submit(bl_batcher *b, areq *a, int n, float base, long timeout_us) {
    fill(a, n, base, timeout_us);
    bl_error err = {0};
    return bl_batcher_submit(b, &a->r, &err);
}

/* Submit through the caller path; returns whether the batch was claimed. */
static int submit_claim(bl_batcher *b, areq *a, int n, float base) {
    fill(a, n, base, 0);
    bl_error err = {0};
    int claimed = -1;
    assert_int_equal(bl_batcher_submit_claim(b, &a->r, &claimed, &err), BL_OK);
    assert_true(claimed == 0 || claimed == 1);
    return claimed;
}

static int is_done(areq *a) {
    pthread_mutex_lock(&done_mu);
    int d = a->done;
    pthread_mutex_unlock(&done_mu);
    return d;
}

static void wait_done(areq *a) {
    double t0 = bl_now_sec();
    while (!is_done(a)) {
        if (bl_now_sec() - t0 > WAIT_LIMIT_S) fail_msg("a request was never completed");
        sleep_ms(1);
    }
}

static void check_outputs(const areq *a, int n, float base) {
    for (int i = 0; i < n; i++) {
        float want = (base + (float)i) * 3.0f + 1.5f; /* x0 + (x0+0.5) + (x0+1) */
        if (a->out[i * OUT] != want)
            fail_msg("sample %d: got %g want %g", i, a->out[i * OUT], want);
    }
}

static bl_batcher *make(fake *f, int max_batch, long delay_us, int max_queue, long timeout_ms) {
    bl_batcher_config c;
    bl_batcher_config_default(&c);
    c.max_batch = max_batch;
    c.max_delay_us = delay_us;
    c.max_queue = max_queue;
    c.timeout_ms = timeout_ms;
    bl_batcher *b = NULL;
    bl_error err = {0};
    assert_int_equal(bl_batcher_create(&b, &c, IN, OUT, fake_fn, f, &err), BL_OK);
    return b;
}

/* ---- tests ------------------------------------------------------------------------ */

/* While one batch computes, requests queue; the next batch takes them all (up to max). */
static void batches_form_while_busy(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    gate(&f, 1);
    bl_batcher *b = make(&f, 8, 0, 100, 0);
    areq *a = calloc(11, sizeof *a);
    assert_int_equal(submit(b, &a[0], 1, 0, 0), BL_OK);
    wait_entered(&f, 1); /* batch 1 = a[0], held */
    for (int i = 1; i < 11; i++)
        assert_int_equal(submit(b, &a[i], 1, (float)(10 * i), 0), BL_OK);
    wait_queue(b, 10);
    gate(&f, 0);
    for (int i = 0; i < 11; i++) {
        wait_done(&a[i]);
        assert_int_equal(a[i].r.outcome, BL_REQ_OK);
        check_outputs(&a[i], 1, (float)(10 * i));
    }
    assert_int_equal(f.n_batches, 3);
    assert_int_equal(f.sizes[0], 1);
    assert_int_equal(f.sizes[1], 8);
    assert_int_equal(f.sizes[2], 2);
    assert_int_equal(a[5].r.batch_size, 8);
    bl_serve_metrics *m = bl_batcher_metrics(b);
    assert_int_equal(bl_metrics_executions(m), 3);
    assert_int_equal(bl_metrics_inferences(m), 11);
    bl_batcher_free(b);
    free(a);
}

/* A batch is held for the delay unless it fills; reaching max dispatches at once. */
static void delay_holds_until_full(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    bl_batcher *b = make(&f, 4, 60 * 1000000L, 100, 0);
    areq *a = calloc(4, sizeof *a);
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(b, &a[i], 1, (float)i, 0), BL_OK);
    sleep_ms(50); /* far less than the 60 s delay: nothing may have run */
    assert_int_equal(f.n_batches, 0);
    assert_false(is_done(&a[0]));
    assert_int_equal(submit(b, &a[3], 1, 3, 0), BL_OK);
    for (int i = 0; i < 4; i++)
        wait_done(&a[i]);
    assert_int_equal(f.n_batches, 1);
    assert_int_equal(f.sizes[0], 4);
    bl_batcher_free(b);
    free(a);
}

/* A preferred size dispatches at once; the rest waits, and a drain flushes it. */
static void preferred_sizes_and_drain(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    bl_batcher_config c;
    bl_batcher_config_default(&c);
    c.max_batch = 16;
    c.max_delay_us = 60 * 1000000L;
    c.preferred[0] = 4;
    c.n_preferred = 1;
    bl_batcher *b = NULL;
    bl_error err = {0};
    assert_int_equal(bl_batcher_create(&b, &c, IN, OUT, fake_fn, &f, &err), BL_OK);
    areq *a = calloc(6, sizeof *a);
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(b, &a[i], 1, (float)i, 0), BL_OK);
    sleep_ms(30);
    assert_int_equal(f.n_batches, 0);
    assert_int_equal(submit(b, &a[3], 1, 3, 0), BL_OK); /* 4 = preferred */
    for (int i = 0; i < 4; i++)
        wait_done(&a[i]);
    assert_int_equal(submit(b, &a[4], 1, 4, 0), BL_OK);
    assert_int_equal(submit(b, &a[5], 1, 5, 0), BL_OK);
    wait_queue(b, 2);
    assert_int_equal(bl_batcher_drain(b), 2); /* waiting when the drain began */
    assert_true(is_done(&a[4]) && is_done(&a[5]));
    assert_int_equal(a[5].r.outcome, BL_REQ_OK);
    check_outputs(&a[5], 1, 5);
    assert_int_equal(f.n_batches, 2);
    assert_int_equal(f.sizes[0], 4);
    assert_int_equal(f.sizes[1], 2);
    areq late;
    assert_int_equal(submit(b, &late, 1, 0, 0), BL_ERR_INTERRUPTED); /* refused after drain */
    bl_batcher_free(b);
    free(a);
}

/* max_queue requests wait; one more is refused (and its callback never runs). */
static void queue_is_bounded(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    gate(&f, 1);
    bl_batcher *b = make(&f, 8, 0, 3, 0);
    areq *a = calloc(5, sizeof *a);
    assert_int_equal(submit(b, &a[0], 1, 0, 0), BL_OK);
    wait_entered(&f, 1);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(submit(b, &a[i], 1, (float)i, 0), BL_OK);
    bl_error err = {0};
    memset(&a[4], 0, sizeof a[4]);
    a[4].r = (bl_infer_req){.x = a[4].x, .out = a[4].out, .n = 1, .done = areq_done, .user = &a[4]};
    assert_int_equal(bl_batcher_submit(b, &a[4].r, &err), BL_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "queue is full"));
    gate(&f, 0);
    for (int i = 0; i < 4; i++)
        wait_done(&a[i]);
    bl_batcher_free(b);
    assert_false(is_done(&a[4]));
    free(a);
}

/* Queued requests past their deadline are answered TIMEOUT, and only those. */
static void timeouts(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    gate(&f, 1);
    bl_batcher *b = make(&f, 8, 0, 100, 0);
    areq *a = calloc(3, sizeof *a);
    assert_int_equal(submit(b, &a[0], 1, 0, 0), BL_OK);
    wait_entered(&f, 1);
    assert_int_equal(submit(b, &a[1], 1, 1, 1000), BL_OK); /* 1 ms */
    assert_int_equal(submit(b, &a[2], 1, 2, 0), BL_OK);    /* none */
    sleep_ms(20);                                          /* > 1 ms, by the clock */
    gate(&f, 0);
    for (int i = 0; i < 3; i++)
        wait_done(&a[i]);
    assert_int_equal(a[0].r.outcome, BL_REQ_OK);
    assert_int_equal(a[1].r.outcome, BL_REQ_TIMEOUT);
    assert_int_equal(a[2].r.outcome, BL_REQ_OK);
    check_outputs(&a[2], 1, 2);
    bl_batcher_free(b);
    /* The deadline wakes the batcher by itself, while it waits for a long delay; the
     * server default caps a longer request timeout. */
    fake_init(&f);
    b = make(&f, 8, 60 * 1000000L, 100, 5);
    assert_int_equal(submit(b, &a[0], 1, 0, 10 * 1000000L), BL_OK);
    wait_done(&a[0]);
    assert_int_equal(a[0].r.outcome, BL_REQ_TIMEOUT);
    assert_true(a[0].r.t_end_ns - a[0].r.t_enqueue_ns >= 5000000ULL);
    assert_int_equal(f.n_batches, 0);
    bl_batcher_free(b);
    free(a);
}

/* A request larger than the max batch spans batches and is completed once. */
static void big_requests_span_batches(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    gate(&f, 1);
    bl_batcher *b = make(&f, 4, 0, 100, 0);
    areq *a = calloc(3, sizeof *a);
    assert_int_equal(submit(b, &a[0], 1, 0, 0), BL_OK);
    wait_entered(&f, 1);
    assert_int_equal(submit(b, &a[1], 10, 100, 0), BL_OK);
    assert_int_equal(submit(b, &a[2], 3, 200, 0), BL_OK);
    wait_queue(b, 2);
    gate(&f, 0);
    for (int i = 0; i < 3; i++)
        wait_done(&a[i]);
    check_outputs(&a[1], 10, 100);
    check_outputs(&a[2], 3, 200);
    /* 1 | 4 4 | 2 of a[1] + 2 of a[2] | 1 of a[2] */
    int want[] = {1, 4, 4, 4, 1};
    assert_int_equal(f.n_batches, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f.sizes[i], want[i]);
    assert_int_equal(a[1].r.outcome, BL_REQ_OK);
    assert_int_equal(a[2].r.batch_size, 1);
    bl_batcher_free(b);
    free(a);
}

/* Many threads, mixed request sizes: every sample gets its own result back. */
typedef struct worker {
    bl_batcher *b;
    int id, bad;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    areq *a = malloc(sizeof *a);
    for (int k = 0; k < 60; k++) {
        int n = 1 + (k * 7 + w->id) % 12; /* 1..12, some above the max batch of 8 */
        float base = (float)(w->id * 100000 + k * 100);
        memset(a, 0, sizeof *a);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < IN; j++)
                a->x[i * IN + j] = base + (float)i + (j == 0 ? 0.0f : 0.5f * (float)j);
        a->r = (bl_infer_req){.x = a->x, .out = a->out, .n = n};
        bl_error err = {0};
        if (bl_batcher_infer(w->b, &a->r, &err) || a->r.outcome != BL_REQ_OK) {
            w->bad++;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (a->out[i * OUT] != (base + (float)i) * 3.0f + 1.5f) w->bad++;
    }
    free(a);
    return NULL;
}

static void concurrent_scatter_is_exact(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    bl_batcher *b = make(&f, 8, 200, 1000, 0);
    pthread_t th[6];
    worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker){b, i, 0};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    long total = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
        for (int k = 0; k < 60; k++)
            total += 1 + (k * 7 + i) % 12;
    }
    bl_batcher_free(b);
    long sum = 0;
    for (int i = 0; i < f.n_batches; i++) {
        assert_true(f.sizes[i] >= 1 && f.sizes[i] <= 8);
        sum += f.sizes[i];
    }
    assert_int_equal(sum, total);
}

static void failing_model_fails_requests(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    f.fail = 1;
    bl_batcher *b = make(&f, 4, 0, 10, 0);
    areq *a = calloc(1, sizeof *a);
    a->r = (bl_infer_req){.x = a->x, .out = a->out, .n = 6};
    bl_error err = {0};
    assert_int_equal(bl_batcher_infer(b, &a->r, &err), BL_OK);
    assert_int_equal(a->r.outcome, BL_REQ_FAILED);
    a->r = (bl_infer_req){.x = a->x, .out = a->out, .n = 0};
    assert_int_equal(bl_batcher_infer(b, &a->r, &err), BL_ERR_ARG);
    bl_batcher_free(b);
    free(a);
}

/* With an objective, the controller runs and its decisions show in the metrics. */
static void adaptive_controller_runs(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    bl_batcher_config c;
    bl_batcher_config_default(&c);
    c.max_batch = 32;
    c.slo_p99_ms = 1000.0; /* generous: the fake model is fast */
    c.max_delay_us = 0;
    bl_batcher *b = NULL;
    bl_error err = {0};
    assert_int_equal(bl_batcher_create(&b, &c, IN, OUT, fake_fn, &f, &err), BL_OK);
    assert_int_equal(bl_batcher_current_max_batch(b), 32); /* the cap, held */
    areq *a = calloc(1, sizeof *a);
    for (int k = 0; k < BL_DELAY_CTL_WINDOW_MAX + 10; k++) {
        a->r = (bl_infer_req){.x = a->x, .out = a->out, .n = 1};
        assert_int_equal(bl_batcher_infer(b, &a->r, &err), BL_OK);
    }
    char *t;
    size_t len;
    assert_int_equal(bl_metrics_render(bl_batcher_metrics(b), "m", &t, &len, NULL), BL_OK);
    assert_non_null(strstr(t, "batchlab_adaptive_enabled{model=\"m\"} 1"));
    long decisions = 0;
    for (const char *p = t; (p = strstr(p, "batchlab_adaptive_decisions_total{")); p++)
        decisions += strtol(strchr(p, '}') + 2, NULL, 10);
    assert_true(decisions >= 1);
    int mb = bl_batcher_current_max_batch(b);
    assert_int_equal(mb, 32);
    assert_true(bl_batcher_current_delay_us(b) <= 250000);
    free(t);
    bl_batcher_free(b);
    free(a);
}

/* A model whose batches of 1 use 300 us of CPU and whose larger batches cost no CPU
 * but take 2 ms of wall time a sample: what a batch looks like when the CPU is busy with
 * something else while it runs (batches of several form exactly then). */
static int descheduled_fn(void *user, float *x, int B, float *out) {
    (void)user, (void)x;
    if (B == 1) {
        uint64_t t0 = bl_thread_cpu_ns();
        while (bl_thread_cpu_ns() - t0 < 300000)
            ;
    } else {
        sleep_ms(2L * B);
    }
    memset(out, 0, (size_t)B * OUT * sizeof *out);
    return 0;
}

static void *infer_loop(void *arg) {
    bl_batcher *b = arg;
    areq *a = calloc(1, sizeof *a);
    bl_error err = {0};
    for (int k = 0; k < 40; k++) {
        a->r = (bl_infer_req){.x = a->x, .out = a->out, .n = 1};
        if (bl_batcher_infer(b, &a->r, &err) != BL_OK) break;
    }
    free(a);
    return NULL;
}

/* The controller judges a batch's cost by the CPU it used, not by its wall time: fed
 * wall times, the batches above (2 ms a sample against 0.3 ms at B = 1) "do not pay" and
 * the max batch is cut to 1; by CPU they cost nothing, so the cap stays. */
static void adaptive_cost_is_cpu_time(void **state) {
    (void)state;
    bl_batcher_config c;
    bl_batcher_config_default(&c);
    c.max_batch = 8;
    c.slo_p99_ms = 1000.0; /* never past it: the cut to 1 would be free to happen */
    c.max_delay_us = 0;
    bl_batcher *b = NULL;
    bl_error err = {0};
    assert_int_equal(bl_batcher_create(&b, &c, IN, OUT, descheduled_fn, NULL, &err), BL_OK);
    for (int round = 0; round < 3; round++) {
        pthread_t th[4];
        for (int i = 0; i < 4; i++) /* batches of several */
            assert_int_equal(pthread_create(&th[i], NULL, infer_loop, b), 0);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < 10; i++) /* batches of 1, one at a time, closing windows */
            infer_loop(b);
    }
    assert_int_equal(bl_batcher_current_max_batch(b), 8);
    bl_batcher_free(b);
}

/* An idle batcher lets the submitting thread run the batch: same outputs, its own done
 * callback is not called, the metrics count the batch (and that the caller ran it). */
static void idle_request_runs_on_caller(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    bl_batcher *b = make(&f, 8, 0, 100, 0);
    areq *a = calloc(1, sizeof *a);
    assert_int_equal(submit_claim(b, a, 3, 7), 1);
    assert_int_equal(f.n_batches, 0); /* claimed, not yet run */
    bl_batcher_run_claimed(b, &a->r);
    assert_int_equal(f.n_batches, 1);
    assert_true(pthread_equal(f.last_thread, pthread_self()));
    assert_int_equal(a->r.outcome, BL_REQ_OK);
    assert_int_equal(a->r.batch_size, 3);
    check_outputs(a, 3, 7);
    assert_false(is_done(a));
    assert_true(a->r.t_enqueue_ns <= a->r.t_start_ns && a->r.t_start_ns <= a->r.t_end_ns);
    bl_serve_metrics *m = bl_batcher_metrics(b);
    assert_int_equal(bl_metrics_executions(m), 1);
    assert_int_equal(bl_metrics_inferences(m), 3);
    assert_int_equal(bl_metrics_caller_executions(m), 1);
    assert_int_equal(bl_batcher_queue_requests(b), 0);
    /* A failing model fails the claimed request the same way. */
    pthread_mutex_lock(&f.mu);
    f.fail = 1;
    pthread_mutex_unlock(&f.mu);
    a->r = (bl_infer_req){.x = a->x, .out = a->out, .n = 1};
    bl_error err = {0};
    assert_int_equal(bl_batcher_infer(b, &a->r, &err), BL_OK);
    assert_int_equal(a->r.outcome, BL_REQ_FAILED);
    bl_batcher_free(b);
    free(a);
}

/* The caller path only takes a batch the policy would dispatch now, gathers whatever is
 * queued into it (their callbacks run on the caller's thread), and never while a batch
 * runs: then the request queues and batches form behind the running one. */
static void caller_path_keeps_batching(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    bl_batcher *b = make(&f, 4, 60 * 1000000L, 100, 0); /* a 60 s delay: only full batches go */
    areq *a = calloc(8, sizeof *a);
    assert_int_equal(submit_claim(b, &a[0], 1, 0), 0); /* 1 of 4: it must wait */
    assert_int_equal(submit(b, &a[1], 1, 10, 0), BL_OK);
    wait_queue(b, 2);
    assert_int_equal(submit_claim(b, &a[2], 2, 20), 1); /* 4 of 4: dispatch now, here */
    bl_batcher_run_claimed(b, &a[2].r);
    assert_int_equal(f.n_batches, 1);
    assert_int_equal(f.sizes[0], 4);
    assert_true(is_done(&a[0]) && is_done(&a[1]));
    assert_false(is_done(&a[2]));
    check_outputs(&a[0], 1, 0);
    check_outputs(&a[1], 1, 10);
    check_outputs(&a[2], 2, 20);
    assert_int_equal(a[1].r.batch_size, 4);
    bl_batcher_free(b);

    /* Busy: the batcher thread holds a batch in the model, a claim is refused, and what
     * queues meanwhile forms the next batch. */
    fake_init(&f);
    gate(&f, 1);
    b = make(&f, 8, 0, 100, 0);
    assert_int_equal(submit(b, &a[0], 1, 0, 0), BL_OK);
    wait_entered(&f, 1);
    for (int i = 1; i < 5; i++)
        assert_int_equal(submit_claim(b, &a[i], 1, (float)(10 * i)), 0);
    wait_queue(b, 4);
    gate(&f, 0);
    for (int i = 0; i < 5; i++) {
        wait_done(&a[i]);
        check_outputs(&a[i], 1, (float)(10 * i));
    }
    assert_int_equal(f.n_batches, 2);
    assert_int_equal(f.sizes[1], 4);
    assert_int_equal(bl_metrics_caller_executions(bl_batcher_metrics(b)), 0);
    bl_batcher_free(b);
    free(a);
}

/* A caller holds a batch in the model while others queue: they wait for it (the batcher
 * thread does not run the model concurrently), then form one batch; a drain that begins
 * meanwhile waits for the caller's batch and answers every queued request. */
typedef struct caller {
    bl_batcher *b;
    areq *a;
    bl_status st;
    long queued_at_drain;
} caller;

static void *caller_main(void *arg) {
    caller *c = arg;
    bl_error err = {0};
    c->a->r = (bl_infer_req){.x = c->a->x, .out = c->a->out, .n = 1};
    c->st = bl_batcher_infer(c->b, &c->a->r, &err);
    return NULL;
}

static void *drain_main(void *arg) {
    caller *c = arg;
    c->queued_at_drain = bl_batcher_drain(c->b);
    return NULL;
}

static void drain_waits_for_caller_batch(void **state) {
    (void)state;
    fake f;
    fake_init(&f);
    gate(&f, 1);
    bl_batcher *b = make(&f, 8, 0, 100, 0);
    areq *a = calloc(4, sizeof *a);
    fill(&a[0], 1, 5, 0);
    caller c = {b, &a[0], BL_ERR_ARG, 0}, d = {b, NULL, BL_ERR_ARG, 0};
    pthread_t tc, td;
    pthread_create(&tc, NULL, caller_main, &c);
    wait_entered(&f, 1); /* the caller's own thread is in the model */
    for (int i = 1; i < 4; i++)
        assert_int_equal(submit(b, &a[i], 1, (float)(10 * i), 0), BL_OK);
    wait_queue(b, 3);
    pthread_create(&td, NULL, drain_main, &d);
    sleep_ms(30);
    assert_int_equal(f.n_batches, 1); /* nothing ran beside the caller's batch */
    for (int i = 1; i < 4; i++)
        assert_false(is_done(&a[i]));
    gate(&f, 0);
    pthread_join(tc, NULL);
    pthread_join(td, NULL);
    assert_int_equal(c.st, BL_OK);
    assert_int_equal(a[0].r.outcome, BL_REQ_OK);
    assert_false(pthread_equal(f.last_thread, tc)); /* the last batch: the batcher's */
    assert_int_equal(d.queued_at_drain, 3);         /* queued when the drain began */
    for (int i = 1; i < 4; i++) {
        assert_true(is_done(&a[i]));
        assert_int_equal(a[i].r.outcome, BL_REQ_OK);
        check_outputs(&a[i], 1, (float)(10 * i));
    }
    assert_int_equal(f.n_batches, 2);
    assert_int_equal(f.sizes[0], 1);
    assert_int_equal(f.sizes[1], 3);
    bl_serve_metrics *m = bl_batcher_metrics(b);
    assert_int_equal(bl_metrics_caller_executions(m), 1);
    assert_int_equal(bl_metrics_inferences(m), 4);
    bl_batcher_free(b);
    free(a);
}

/* The model runner normalises like bl_norm_apply and matches bl_model_predict. */
static void model_runner_matches_predict(void **state) {
    (void)state;
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    bl_model *m = NULL;
    bl_error err = {0};
    assert_int_equal(bl_model_create(&m, "dense:16,relu,dense:5", (bl_shape){7, 1, 1}, 5, &err),
                     BL_OK);
    assert_int_equal(bl_model_alloc(m, &ctx, 8, &err), BL_OK);
    tu_init(m, 42);
    float mean[7], scale[7], x[8 * 7], xn[8 * 7], out[8 * 5], ref[8 * 5];
    for (int j = 0; j < 7; j++) {
        mean[j] = 0.1f * (float)j;
        scale[j] = 1.0f + 0.2f * (float)j;
    }
    tu_fill_normal(x, 8 * 7, 9, 2.0f);
    bl_norm nm = {BL_NORM_STANDARD, 7, mean, scale};
    bl_dataset ds = {.n = 8, .shape = {7, 1, 1}, .dim = 7, .x = xn};
    memcpy(xn, x, sizeof x);
    bl_norm_apply(&nm, &ds);
    assert_int_equal(bl_model_predict(m, xn, 8, 8, ref, &err), BL_OK);
    bl_model_runner mr = {m, &nm};
    float xb[8 * 7];
    memcpy(xb, x, sizeof x);
    assert_int_equal(bl_model_runner_fn(&mr, xb, 8, out), 0);
    assert_memory_equal(out, ref, sizeof out); /* same arithmetic, same batch: bit-equal */
    bl_model_free(m);
    bl_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batches_form_while_busy),
        cmocka_unit_test(delay_holds_until_full),
        cmocka_unit_test(preferred_sizes_and_drain),
        cmocka_unit_test(queue_is_bounded),
        cmocka_unit_test(timeouts),
        cmocka_unit_test(big_requests_span_batches),
        cmocka_unit_test(concurrent_scatter_is_exact),
        cmocka_unit_test(failing_model_fails_requests),
        cmocka_unit_test(adaptive_controller_runs),
        cmocka_unit_test(adaptive_cost_is_cpu_time),
        cmocka_unit_test(model_runner_matches_predict),
        cmocka_unit_test(idle_request_runs_on_caller),
        cmocka_unit_test(caller_path_keeps_batching),
        cmocka_unit_test(drain_waits_for_caller_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
