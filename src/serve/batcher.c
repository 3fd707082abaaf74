/* The dynamic batcher: a bounded FIFO of requests and ONE compute thread.
 *
 * The model is not thread-safe and its activations are sized for one max batch, so
 * exactly one thread (this one) ever runs it; request threads only queue and wait.
 * Batches are counted in samples, not requests: a request of n samples contributes rows
 * from its current offset (`taken`), and one bigger than the max batch simply spans
 * several batches, staying at the head of the queue until its last row is taken. It is
 * completed when the batch holding its last row has run.
 *
 * When to dispatch is one pure function (bl_batch_policy): the current max batch as soon
 * as that many samples wait; all of them once the oldest has waited max_delay_us (or
 * when draining); otherwise the largest preferred size that can be formed. While
 * waiting, the thread sleeps until the delay of the oldest request or the earliest
 * per-request deadline, whichever comes first. Requests past their deadline that have
 * not started are completed as TIMEOUT.
 *
 * The lock is held only to link and unlink requests: the gather copy, the forward pass,
 * the scatter and the completion callbacks all run unlocked, so submitters never wait
 * for a forward pass, and a callback may take its own locks (the server's does) without
 * any lock-order cycle. With --slo-p99-ms the delay controller (adaptive.c) runs after
 * every batch and sets the max batch and delay the next batch uses.
 *
 * The caller path. At low load a request would be taken by the batcher thread the moment
 * it is queued and handed back as soon as it is computed: two thread wake-ups (about
 * 20 us each on a shared 2-core machine) that buy nothing. So bl_batcher_submit_claim lets
 * the submitting thread CLAIM the batch itself when (1) no batch is running, (2) the
 * policy would dispatch every queued sample now (r's included) and (3) the model has been
 * idle for at least as long as the last batch took. (3) is the load test: a request that
 * comes sooner means arrivals outpace batches of one, and the queue, where batches form
 * while the model is busy, serves it better; without it a single HTTP thread computing
 * inline would never let a second request reach the queue. The claimed batch is formed
 * under the lock exactly as the thread would form it (other queued requests included)
 * and run by the same run_batch; `busy` makes one batch at a time, whichever thread runs
 * it, so everything below "batch runner only" is owned by the holder of `busy`. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "serve_internal.h"
#include "core/alloc.h"

typedef struct seg {
    bl_infer_req *r;
    int off, rows, last;
} seg;

struct bl_batcher {
    bl_batcher_config cfg;
    int in_dim, out_dim;
    bl_batch_fn fn;
    void *user;
    pthread_t thread;
    int started, joined;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bl_infer_req *head, *tail;               /* guarded by mu */
    long n_requests, n_samples;              /* guarded by mu: waiting requests, untaken samples */
    int draining, cancelling;                /* guarded by mu */
    long abandoned;                          /* guarded by mu */
    int busy;                                /* guarded by mu: a batch is formed and running */
    uint64_t idle_since_ns, last_compute_ns; /* guarded by mu */
    long queued_at_drain;
    /* batch runner only (the thread that set busy) */
    float *xbuf, *obuf;
    seg *segs;
    int n_seg, batch_size, max_at_formation; /* the formed batch */
    uint64_t batch_start_ns, batch_end_ns;
    int cur_max;
    long cur_delay_us;
    int adaptive;
    bl_delay_ctl ctl;
    bl_serve_metrics metrics;
};

void bl_batcher_config_default(bl_batcher_config *c) {
    memset(c, 0, sizeof *c);
    c->max_batch = 64;
    c->max_delay_us = 0;
    c->max_queue = 1024;
    c->timeout_ms = 0;
    c->slo_p99_ms = 0;
}

bl_status bl_batcher_config_check(const bl_batcher_config *c, bl_error *err) {
    if (c->max_batch < 1)
        return bl_fail(err, BL_ERR_ARG, "--max-batch %d is invalid: it must be at least 1",
                       c->max_batch);
    if (c->max_delay_us < 0)
        return bl_fail(err, BL_ERR_ARG, "--max-delay-us %ld is invalid: it must not be negative",
                       c->max_delay_us);
    if (c->max_queue < 1)
        return bl_fail(err, BL_ERR_ARG, "--max-queue %d is invalid: it must be at least 1",
                       c->max_queue);
    if (c->timeout_ms < 0)
        return bl_fail(err, BL_ERR_ARG, "--timeout-ms %ld is invalid: it must not be negative",
                       c->timeout_ms);
    if (c->slo_p99_ms < 0 || c->slo_p99_ms != c->slo_p99_ms)
        return bl_fail(err, BL_ERR_ARG, "--slo-p99-ms %g is invalid: it must be positive",
                       c->slo_p99_ms);
    if (c->n_preferred < 0 || c->n_preferred > BL_MAX_PREFERRED)
        return bl_fail(err, BL_ERR_ARG, "--preferred-batch: at most %d sizes", BL_MAX_PREFERRED);
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred[i] < 1 || c->preferred[i] > c->max_batch)
            return bl_fail(err, BL_ERR_ARG,
                           "--preferred-batch %d is invalid: it must be in [1, --max-batch %d]",
                           c->preferred[i], c->max_batch);
    return BL_OK;
}

int bl_batch_policy(long queued, long waited_us, int max_batch, long delay_us, const int *preferred,
                    int n_preferred, int draining) {
    if (queued <= 0 || max_batch < 1) return 0;
    if (queued >= max_batch) return max_batch;
    if (draining || waited_us >= delay_us) return (int)queued;
    int best = 0;
    for (int i = 0; i < n_preferred; i++)
        if (preferred[i] <= queued && preferred[i] <= max_batch && preferred[i] > best)
            best = preferred[i];
    return best;
}

static void publish_queue(bl_batcher *b) {
    atomic_store(&b->metrics.queue_requests, b->n_requests);
    atomic_store(&b->metrics.queue_samples, b->n_samples);
}

/* Unlink requests past their deadline that have not started; returns them as a list. */
static bl_infer_req *expire_locked(bl_batcher *b, uint64_t now) {
    bl_infer_req *expired = NULL, **link = &b->head, *prev = NULL;
    while (*link) {
        bl_infer_req *r = *link;
        if (r->taken == 0 && r->deadline_ns && now >= r->deadline_ns) {
            *link = r->next;
            if (b->tail == r) b->tail = prev;
            b->n_requests--;
            b->n_samples -= r->n;
            r->outcome = BL_REQ_TIMEOUT;
            r->t_end_ns = now;
            r->next = expired;
            expired = r;
        } else {
            prev = r;
            link = &r->next;
        }
    }
    if (expired) publish_queue(b);
    return expired;
}

/* Unlink what must not be computed: every request once cancelling, and those whose
 * client has gone among the ones the next batch would take (asking all of a long queue
 * every batch would cost a system call each). Called with no batch running, so no batch
 * holds rows of them, partly taken or not. */
static bl_infer_req *sweep_locked(bl_batcher *b, uint64_t now) {
    bl_infer_req *out = NULL, **link = &b->head, *prev = NULL;
    long ahead = 0;
    while (*link && (b->cancelling || ahead < b->cur_max)) {
        bl_infer_req *r = *link;
        int cancel = b->cancelling, gone = !cancel && r->alive && !r->alive(r);
        if (!cancel && !gone) {
            ahead += r->n - r->taken;
            prev = r;
            link = &r->next;
            continue;
        }
        *link = r->next;
        if (b->tail == r) b->tail = prev;
        b->n_requests--;
        b->n_samples -= r->n - r->taken;
        b->abandoned += gone;
        r->outcome = cancel ? BL_REQ_CANCELLED : BL_REQ_ABANDONED;
        r->t_end_ns = now;
        r->next = out;
        out = r;
    }
    if (out) publish_queue(b);
    return out;
}

static void complete_list(bl_infer_req *list) {
    while (list) {
        bl_infer_req *next = list->next;
        list->done(list);
        list = next;
    }
}

/* Earliest time something can change without a new submit: the oldest request's delay
 * running out, or a deadline passing. */
static uint64_t next_wake_locked(const bl_batcher *b) {
    uint64_t wake = b->head->t_enqueue_ns + (uint64_t)b->cur_delay_us * 1000ULL;
    for (const bl_infer_req *r = b->head; r; r = r->next)
        if (r->taken == 0 && r->deadline_ns && r->deadline_ns < wake) wake = r->deadline_ns;
    return wake;
}

static void wait_until(bl_batcher *b, uint64_t wake_ns) {
    struct timespec ts = {(time_t)(wake_ns / 1000000000ULL), (long)(wake_ns % 1000000000ULL)};
    pthread_cond_timedwait(&b->cv, &b->mu, &ts);
}

/* Take up to `take` samples off the head of the queue into b->segs and mark the batcher
 * busy: the caller now owns the batch runner's state until release_locked. */
static void form_batch_locked(bl_batcher *b, int take) {
    int B = 0, ns = 0;
    while (B < take && b->head) {
        bl_infer_req *r = b->head;
        int rows = r->n - r->taken;
        if (rows > take - B) rows = take - B;
        b->segs[ns++] = (seg){r, r->taken, rows, r->taken + rows == r->n};
        r->taken += rows;
        B += rows;
        b->n_samples -= rows;
        if (r->taken == r->n) {
            b->head = r->next;
            if (!b->head) b->tail = NULL;
            b->n_requests--;
        }
    }
    publish_queue(b);
    b->n_seg = ns;
    b->batch_size = B;
    b->max_at_formation = b->cur_max;
    b->busy = 1;
}

/* Run the formed batch (unlocked) and complete its requests, except `self`: the caller
 * that claimed the batch reads its own outcome when this returns. Sets t_start/t_end. */
static void run_batch(bl_batcher *b, const bl_infer_req *self) {
    uint64_t t_start = bl_now_ns(), cpu_start = b->adaptive ? bl_thread_cpu_ns() : 0;
    size_t in_row = (size_t)b->in_dim, out_row = (size_t)b->out_dim;
    int B = b->batch_size, pos = 0;
    for (int i = 0; i < b->n_seg; i++) {
        seg *s = &b->segs[i];
        if (s->off == 0) {
            s->r->t_start_ns = t_start;
            metrics_observe_queue_time(&b->metrics, t_start - s->r->t_enqueue_ns);
        }
        memcpy(b->xbuf + (size_t)pos * in_row, s->r->x + (size_t)s->off * in_row,
               (size_t)s->rows * in_row * sizeof(float));
        pos += s->rows;
    }
    int rc = b->fn(b->user, b->xbuf, B, b->obuf);
    uint64_t t_end = bl_now_ns();
    b->batch_start_ns = t_start;
    b->batch_end_ns = t_end;
    metrics_observe_batch(&b->metrics, B, t_end - t_start);
    if (self) atomic_fetch_add_explicit(&b->metrics.caller_executions, 1, memory_order_relaxed);
    /* The controller's cost of a batch is this thread's CPU time, not the wall time: a
     * batch of several forms when requests queued up, i.e. when the CPU was busy with
     * something else, which also stretches that batch's wall time. Fed wall times, the
     * controller judged on a 2-core AVX-512 VM that the mlp's batches (0.3-0.5x the cost
     * a sample of batches of 1) did not pay, and cut the max batch to 1 under load.
     * With --threads > 1 BLAS's own threads are not counted, which can only make batches
     * look cheaper, i.e. keep batching. */
    if (b->adaptive) {
        uint64_t cpu = bl_thread_cpu_ns() - cpu_start;
        bl_delay_ctl_batch(&b->ctl, B, b->max_at_formation, cpu ? cpu : t_end - t_start);
    }
    pos = 0;
    for (int i = 0; i < b->n_seg; i++) {
        seg *s = &b->segs[i];
        bl_infer_req *r = s->r;
        if (rc)
            r->outcome = BL_REQ_FAILED;
        else
            memcpy(r->out + (size_t)s->off * out_row, b->obuf + (size_t)pos * out_row,
                   (size_t)s->rows * out_row * sizeof(float));
        pos += s->rows;
        if (!s->last) continue;
        if (r->outcome != BL_REQ_FAILED) r->outcome = BL_REQ_OK;
        r->t_end_ns = t_end;
        r->batch_size = B;
        uint64_t t_from = r->t_arrival_ns && r->t_arrival_ns <= r->t_enqueue_ns ? r->t_arrival_ns
                                                                                : r->t_enqueue_ns;
        if (b->adaptive && bl_delay_ctl_observe(&b->ctl, t_end - t_from, t_end)) {
            b->cur_max = b->ctl.max_batch;
            b->cur_delay_us = b->ctl.delay_us;
            metrics_publish_delay_ctl(&b->metrics, &b->ctl);
        }
        if (r != self) r->done(r);
    }
}

/* The batch has run: the model is free again, idle from the batch's end. */
static void release_locked(bl_batcher *b) {
    b->busy = 0;
    b->idle_since_ns = b->batch_end_ns;
    b->last_compute_ns = b->batch_end_ns - b->batch_start_ns;
}

static void *batcher_main(void *arg) {
    bl_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->busy) { /* a caller runs a batch; it signals when the model is free */
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        uint64_t now = bl_now_ns();
        bl_infer_req *expired = expire_locked(b, now);
        if (!expired) expired = sweep_locked(b, now);
        if (expired) {
            pthread_mutex_unlock(&b->mu);
            complete_list(expired);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (!b->head) {
            if (b->draining) break;
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        long waited_us = (long)((now - b->head->t_enqueue_ns) / 1000ULL);
        int take = bl_batch_policy(b->n_samples, waited_us, b->cur_max, b->cur_delay_us,
                                   b->cfg.preferred, b->cfg.n_preferred, b->draining);
        if (!take) {
            wait_until(b, next_wake_locked(b));
            continue;
        }
        form_batch_locked(b, take);
        pthread_mutex_unlock(&b->mu);
        run_batch(b, NULL);
        pthread_mutex_lock(&b->mu);
        release_locked(b);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

bl_status bl_batcher_create(bl_batcher **out, const bl_batcher_config *cfg, int in_dim, int out_dim,
                            bl_batch_fn fn, void *user, bl_error *err) {
    *out = NULL;
    bl_status st = bl_batcher_config_check(cfg, err);
    if (st) return st;
    if (in_dim < 1 || out_dim < 1 || !fn)
        return bl_fail(err, BL_ERR_ARG, "batcher: needs in_dim, out_dim >= 1 and a batch function");
    bl_batcher *b = bl_calloc(1, sizeof *b);
    if (!b) return bl_fail(err, BL_ERR_NOMEM, "batcher: out of memory");
    b->cfg = *cfg;
    b->in_dim = in_dim;
    b->out_dim = out_dim;
    b->fn = fn;
    b->user = user;
    size_t cap = (size_t)cfg->max_batch;
    b->xbuf = bl_malloc(cap * (size_t)in_dim * sizeof(float));
    b->obuf = bl_malloc(cap * (size_t)out_dim * sizeof(float));
    b->segs = bl_malloc(cap * sizeof(seg));
    if (!b->xbuf || !b->obuf || !b->segs) {
        bl_free(b->xbuf);
        bl_free(b->obuf);
        bl_free(b->segs);
        bl_free(b);
        return bl_fail(err, BL_ERR_NOMEM, "batcher: out of memory for the buffers of batch %d",
                       cfg->max_batch);
    }
    b->adaptive = cfg->slo_p99_ms > 0;
    metrics_init(&b->metrics, cfg->max_batch, b->adaptive, cfg->slo_p99_ms);
    if (b->adaptive) {
        bl_delay_ctl_init(&b->ctl, cfg->slo_p99_ms, cfg->max_batch, cfg->max_delay_us);
        b->cur_max = b->ctl.max_batch;
        b->cur_delay_us = b->ctl.delay_us;
        metrics_publish_delay_ctl(&b->metrics, &b->ctl);
    } else {
        b->cur_max = cfg->max_batch;
        b->cur_delay_us = cfg->max_delay_us;
        atomic_store(&b->metrics.max_batch, b->cur_max);
        atomic_store(&b->metrics.delay_us, b->cur_delay_us);
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&b->mu, NULL);
    if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        bl_free(b->xbuf);
        bl_free(b->obuf);
        bl_free(b->segs);
        bl_free(b);
        return bl_fail(err, BL_ERR_NOMEM, "batcher: cannot start its thread");
    }
    b->started = 1;
    *out = b;
    return BL_OK;
}

/* Queue r; with claim != NULL, claim the batch for the caller when the caller path
 * applies (see the top of this file). */
static bl_status enqueue(bl_batcher *b, bl_infer_req *r, int *claim, bl_error *err) {
    if (claim) *claim = 0;
    if (!r || r->n < 1 || !r->x || !r->out || !r->done)
        return bl_fail(err, BL_ERR_ARG, "batcher: a request needs n >= 1, x, out and done");
    uint64_t now = bl_now_ns();
    long dflt_us = b->cfg.timeout_ms * 1000;
    long t_us =
        r->timeout_us > 0 && (dflt_us == 0 || r->timeout_us < dflt_us) ? r->timeout_us : dflt_us;
    pthread_mutex_lock(&b->mu);
    if (b->draining) {
        pthread_mutex_unlock(&b->mu);
        return bl_fail(err, BL_ERR_INTERRUPTED, "the server is shutting down");
    }
    if (b->n_requests >= b->cfg.max_queue) {
        long q = b->n_requests;
        pthread_mutex_unlock(&b->mu);
        return bl_fail(err, BL_ERR_NOMEM,
                       "the queue is full (%ld requests waiting, --max-queue %d)", q,
                       b->cfg.max_queue);
    }
    r->outcome = BL_REQ_PENDING;
    r->taken = 0;
    r->next = NULL;
    r->t_enqueue_ns = now;
    r->t_start_ns = r->t_end_ns = 0;
    r->deadline_ns = t_us > 0 ? now + (uint64_t)t_us * 1000ULL : 0;
    if (b->tail)
        b->tail->next = r;
    else
        b->head = r;
    b->tail = r;
    b->n_requests++;
    b->n_samples += r->n;
    if (claim && !b->busy && now - b->idle_since_ns >= b->last_compute_ns) {
        long waited_us = (long)((now - b->head->t_enqueue_ns) / 1000ULL);
        int take = bl_batch_policy(b->n_samples, waited_us, b->cur_max, b->cur_delay_us,
                                   b->cfg.preferred, b->cfg.n_preferred, 0);
        *claim = take >= b->n_samples;
    }
    if (claim && *claim)
        form_batch_locked(b, (int)b->n_samples);
    else {
        publish_queue(b);
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return BL_OK;
}

bl_status bl_batcher_submit(bl_batcher *b, bl_infer_req *r, bl_error *err) {
    return enqueue(b, r, NULL, err);
}

bl_status bl_batcher_submit_claim(bl_batcher *b, bl_infer_req *r, int *claimed, bl_error *err) {
    return enqueue(b, r, claimed, err);
}

void bl_batcher_run_claimed(bl_batcher *b, bl_infer_req *r) {
    run_batch(b, r);
    pthread_mutex_lock(&b->mu);
    release_locked(b);
    /* Wake the thread only for what queued meanwhile or a drain: a needless wake-up costs
     * the caller about 10 us of its answer. */
    if (b->head || b->draining) pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} sync_wait;

static void sync_done(bl_infer_req *r) {
    sync_wait *w = r->user;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

bl_status bl_batcher_infer(bl_batcher *b, bl_infer_req *r, bl_error *err) {
    sync_wait w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    r->done = sync_done;
    r->user = &w;
    int claimed;
    bl_status st = bl_batcher_submit_claim(b, r, &claimed, err);
    if (!st && claimed) bl_batcher_run_claimed(b, r);
    if (!st && !claimed) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    r->done = NULL;
    r->user = NULL;
    return st;
}

long bl_batcher_begin_drain(bl_batcher *b) {
    pthread_mutex_lock(&b->mu);
    if (!b->draining) {
        b->draining = 1;
        b->queued_at_drain = b->n_requests;
        pthread_cond_broadcast(&b->cv);
    }
    long q = b->queued_at_drain;
    pthread_mutex_unlock(&b->mu);
    return q;
}

void bl_batcher_cancel_waiting(bl_batcher *b) {
    bl_batcher_begin_drain(b);
    pthread_mutex_lock(&b->mu);
    b->cancelling = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

long bl_batcher_drain(bl_batcher *b) {
    bl_batcher_begin_drain(b);
    pthread_mutex_lock(&b->mu);
    int join = b->started && !b->joined;
    b->joined = 1;
    long q = b->queued_at_drain;
    pthread_mutex_unlock(&b->mu);
    if (join) pthread_join(b->thread, NULL);
    return q;
}

void bl_batcher_free(bl_batcher *b) {
    if (!b) return;
    bl_batcher_drain(b);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    bl_free(b->xbuf);
    bl_free(b->obuf);
    bl_free(b->segs);
    bl_free(b);
}

bl_serve_metrics *bl_batcher_metrics(bl_batcher *b) {
    return &b->metrics;
}
long bl_batcher_abandoned(bl_batcher *b) {
    pthread_mutex_lock(&b->mu);
    long n = b->abandoned;
    pthread_mutex_unlock(&b->mu);
    return n;
}
long bl_batcher_queue_requests(bl_batcher *b) {
    return atomic_load(&b->metrics.queue_requests);
}
int bl_batcher_current_max_batch(bl_batcher *b) {
    return atomic_load(&b->metrics.max_batch);
}
long bl_batcher_current_delay_us(bl_batcher *b) {
    return atomic_load(&b->metrics.delay_us);
}

int bl_model_runner_fn(void *user, float *x, int B, float *out) {
    bl_model_runner *mr = user;
    bl_shape s = bl_model_input_shape(mr->model);
    if (mr->norm) { /* the training normalisation, by the code training used */
        bl_dataset rows = {.n = (size_t)B, .shape = s, .dim = bl_shape_size(s), .x = x};
        bl_norm_apply(mr->norm, &rows);
    }
    /* Transfer points: the batch's inputs up, its outputs down. */
    bl_error err = {0};
    bl_status st = bl_model_forward(mr->model, x, B, 0, &err);
    if (!st) st = bl_model_output(mr->model, out, &err);
    return st != BL_OK;
}
