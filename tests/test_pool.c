/* The CPU kernels' thread pool belongs to its context (par.c). Two contexts
 * in one process, e.g. a server next to a trainer, each have their own
 * workers and thread count: while context B is inside a long parallel loop,
 * a loop on context A still runs in parallel, on A's threads (with one pool
 * for the process, A found it busy and ran serially). A child forked while a
 * pool has workers, or while another thread is inside one of its loops,
 * starts its own workers and runs in parallel too. Results stay
 * bit-identical to a run on the calling thread alone.
 *
 * No timing is asserted: each slice of a loop under test waits (sleeping,
 * bounded) until every slice of that loop has started, so the loop passes
 * only if its parts ran at the same time, on distinct threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "backend/cpu/cpu.h"
#include "batchlab/backend.h"
#include "batchlab/core.h"
#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifdef TSAN
/* The fork tests start threads in a child of a threaded process, which
 * ThreadSanitizer refuses by default. */
const char *__tsan_default_options(void) {
    return "die_after_fork=0";
}
#endif

#define MAX_PARTS 8
#define WAIT_LIMIT_MS 30000 /* a bound against hanging, far above any real wait */

/* One loop's record: which thread ran each slice, and how many have started. */
typedef struct meet {
    atomic_int started, calls, timeouts;
    int parts;           /* the slices to wait for: every one of the loop */
    atomic_int *release; /* NULL: leave once all have met; else also wait for it */
    pthread_t tid[MAX_PARTS];
} meet;

static void sleep_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Waits until *v >= want, up to WAIT_LIMIT_MS; 0 on time-out. */
static int wait_for(atomic_int *v, int want) {
    for (int ms = 0; ms < WAIT_LIMIT_MS; ms++) {
        for (int i = 0; i < 10; i++) {
            if (atomic_load(v) >= want) return 1;
            sleep_us(100);
        }
    }
    return atomic_load(v) >= want;
}

/* A slice per item (grain 1, one item per part): records its thread, then
 * waits for the loop's other slices (and for release, when set). */
static void meet_slice(void *p, size_t lo, size_t hi) {
    meet *m = p;
    atomic_fetch_add(&m->calls, 1);
    for (size_t i = lo; i < hi && i < MAX_PARTS; i++)
        m->tid[i] = pthread_self();
    atomic_fetch_add(&m->started, (int)(hi - lo));
    if (!wait_for(&m->started, m->parts)) atomic_fetch_add(&m->timeouts, 1);
    if (m->release && !wait_for(m->release, 1)) atomic_fetch_add(&m->timeouts, 1);
}

/* The loop ran as parts slices at once, each on its own thread, part 0 on caller. */
static void assert_met(meet *m, pthread_t caller) {
    assert_int_equal(atomic_load(&m->timeouts), 0);
    assert_int_equal(atomic_load(&m->calls), m->parts);
    assert_true(pthread_equal(m->tid[0], caller));
    for (int i = 0; i < m->parts; i++)
        for (int j = i + 1; j < m->parts; j++)
            assert_false(pthread_equal(m->tid[i], m->tid[j]));
}

static void run_meet(bl_cpu_pool *pool, meet *m) {
    cpu_par_for(pool, (size_t)m->parts, 1, 1, meet_slice, m);
}

/* ---- a kernel whose bits must not depend on the pool ------------------------ */

enum { N_ACT = 1 << 18 };
static float *act_in, *act_ref;

static int check_act(bl_cpu_pool *pool) {
    float *out = malloc(N_ACT * sizeof *out);
    if (!out) return 0;
    memset(out, 0xff, N_ACT * sizeof *out);
    bl_cpu_kernels()->act_forward(pool, out, act_in, N_ACT, BL_ACT_GELU, 0.0f);
    int same = !memcmp(out, act_ref, N_ACT * sizeof *out);
    free(out);
    return same;
}

static int setup(void **state) {
    (void)state;
    act_in = malloc(N_ACT * sizeof *act_in), act_ref = malloc(N_ACT * sizeof *act_ref);
    if (!act_in || !act_ref) return -1;
    tu_fill_normal(act_in, N_ACT, 7, 2.0f);
    bl_cpu_kernels()->act_forward(NULL, act_ref, act_in, N_ACT, BL_ACT_GELU, 0.0f); /* serial */
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(act_in), free(act_ref);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------- */

static void pool_object_basics(void **state) {
    (void)state;
    bl_cpu_pool *pool = NULL;
    assert_int_equal(bl_cpu_pool_create(&pool, 0, NULL), BL_OK);
    assert_int_equal(bl_cpu_pool_threads(pool), 1); /* clamped */
    bl_cpu_pool_set_threads(pool, 1000);
    assert_int_equal(bl_cpu_pool_threads(pool), 64);
    bl_cpu_pool_set_threads(pool, 2);
    meet m = {.parts = 2};
    run_meet(pool, &m);
    assert_met(&m, pthread_self());
    assert_true(check_act(pool));
    bl_cpu_pool_free(pool); /* joins the worker */
    /* no pool: the calling thread, one call */
    assert_int_equal(bl_cpu_pool_threads(NULL), 1);
    meet serial = {.parts = 1};
    cpu_par_for(NULL, 4, 1, 1, meet_slice, &serial);
    assert_int_equal(atomic_load(&serial.calls), 1);
    assert_true(check_act(NULL));
    bl_cpu_pool_set_threads(NULL, 2); /* ignored */
    bl_cpu_pool_free(NULL);
}

typedef struct {
    bl_cpu_pool *pool;
    meet *m;
} region_arg;

static void *region_thread(void *p) {
    region_arg *r = p;
    run_meet(r->pool, r->m);
    return NULL;
}

/* B (2 threads) sits inside a loop; meanwhile A (3 threads) keeps its own
 * count and runs its loops in parallel on threads that are not B's. */
static void contexts_do_not_share_a_pool(void **state) {
    (void)state;
    bl_ctx a, b;
    bl_ctx_init(&a, 3);
    bl_ctx_init(&b, 2);
    assert_non_null(a.be->pool);
    assert_non_null(b.be->pool);
    assert_ptr_not_equal(a.be->pool, b.be->pool);
    atomic_int release_b = 0;
    meet mb = {.parts = 2, .release = &release_b};
    region_arg rb = {b.be->pool, &mb};
    pthread_t tb;
    assert_int_equal(pthread_create(&tb, NULL, region_thread, &rb), 0);
    assert_true(wait_for(&mb.started, 2)); /* B is inside a parallel loop */

    /* each context reports its own count, and setting one leaves the other */
    assert_int_equal(bl_cpu_pool_threads(a.be->pool), 3);
    assert_int_equal(bl_cpu_pool_threads(b.be->pool), 2);
    a.be->ops->set_threads(a.be, 1);
    assert_int_equal(bl_cpu_pool_threads(a.be->pool), 1);
    assert_int_equal(bl_cpu_pool_threads(b.be->pool), 2);
    a.be->ops->set_threads(a.be, 3);

    /* A's loop runs as 3 parts at once, on A's caller and A's workers */
    meet ma = {.parts = 3};
    run_meet(a.be->pool, &ma);
    assert_met(&ma, pthread_self());
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            assert_false(pthread_equal(ma.tid[i], mb.tid[j]));
    /* and a kernel through A's backend gives the serial bits */
    assert_true(check_act(a.be->pool));
    assert_int_equal(atomic_load(&mb.calls), 2); /* B: both parts, still waiting */

    atomic_store(&release_b, 1);
    pthread_join(tb, NULL);
    assert_met(&mb, tb);
    bl_ctx_free(&a);
    bl_ctx_free(&b);
    bl_ctx_free(&b); /* idempotent */
}

/* Runs in a forked child: a loop of `parts` parts at once on pool, and the
 * kernel's bits; the exit status says which check failed (0: none). */
static int child_checks(bl_cpu_pool *pool, int parts) {
    alarm(120); /* a deadlock shows as a signal, not a hung test */
    meet m = {.parts = parts};
    run_meet(pool, &m);
    if (atomic_load(&m.timeouts) || atomic_load(&m.calls) != parts) return 10;
    if (!pthread_equal(m.tid[0], pthread_self())) return 11;
    for (int i = 0; i < parts; i++)
        for (int j = i + 1; j < parts; j++)
            if (pthread_equal(m.tid[i], m.tid[j])) return 12;
    if (!check_act(pool)) return 13;
    return 0;
}

static void assert_child_ok(pid_t pid) {
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) fail_msg("child killed by signal %d", WTERMSIG(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Forked after the pool's workers started: the child has none of them and
 * starts its own. */
static void forked_child_starts_its_own_workers(void **state) {
    (void)state;
    bl_ctx ctx;
    bl_ctx_init(&ctx, 2);
    meet m = {.parts = 2};
    run_meet(ctx.be->pool, &m); /* the worker now exists */
    assert_met(&m, pthread_self());
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = child_checks(ctx.be->pool, 2);
        if (!rc) rc = child_checks(ctx.be->pool, 2); /* and again, on the child's worker */
        bl_ctx_free(&ctx);                           /* joins the child's worker */
        _exit(rc);
    }
    assert_child_ok(pid);
    /* the parent's pool is untouched */
    meet again = {.parts = 2};
    run_meet(ctx.be->pool, &again);
    assert_met(&again, pthread_self());
    assert_true(pthread_equal(again.tid[1], m.tid[1])); /* the same worker */
    bl_ctx_free(&ctx);
}

/* Forked while another thread is inside a loop of the pool: in the child that
 * thread does not exist, and the pool must not stay busy for good. */
static void forked_child_takes_over_a_busy_pool(void **state) {
    (void)state;
    bl_ctx ctx;
    bl_ctx_init(&ctx, 2);
    atomic_int release = 0;
    meet busy = {.parts = 2, .release = &release};
    region_arg r = {ctx.be->pool, &busy};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, region_thread, &r), 0);
    assert_true(wait_for(&busy.started, 2));
    /* in this process the pool is busy: a loop here runs serially */
    meet serial = {.parts = 1};
    cpu_par_for(ctx.be->pool, 2, 1, 1, meet_slice, &serial);
    assert_int_equal(atomic_load(&serial.calls), 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = child_checks(ctx.be->pool, 2);
        bl_ctx_free(&ctx);
        _exit(rc);
    }
    assert_child_ok(pid);
    atomic_store(&release, 1);
    pthread_join(t, NULL);
    assert_met(&busy, t);
    bl_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_object_basics),
        cmocka_unit_test(contexts_do_not_share_a_pool),
        cmocka_unit_test(forked_child_starts_its_own_workers),
        cmocka_unit_test(forked_child_takes_over_a_busy_pool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
