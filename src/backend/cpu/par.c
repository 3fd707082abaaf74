/* Fork-join pools for the CPU kernels that are not BLAS calls (elementwise
 * passes, the optimizer updates, column sums, im2col, pooling).
 *
 * A pool is an object: each context owns one (bl_ctx_init creates it with the
 * context's thread count, bl_ctx_free frees it) and every kernel is handed
 * its pool as its first argument. Two contexts in one process, e.g. a server
 * next to a trainer, each have their own workers and thread count, and
 * neither waits for nor falls back because of the other. A NULL pool runs
 * every loop on the calling thread. Nothing here is process-wide except the
 * fork epoch below, which is a fact about the process, not configuration.
 *
 * Why not OpenMP: OpenBLAS (pthread build) keeps its own worker threads, and
 * libgomp's workers spin for a while (GOMP_SPINCOUNT, milliseconds on this
 * hardware) after each parallel region. The next sgemm then shares both cores
 * with spinning OpenMP threads: measured on the 2-core machine, a loop of
 * sgemm + one OpenMP elementwise pass ran the sgemm at a third of its speed
 * and the pass 60x slower unless OMP_WAIT_POLICY=passive was set before the
 * process started, which a library cannot do. A pool instead spins only
 * briefly (CPU_PAR_SPIN_NS) and then sleeps on a condition variable, and
 * parallel regions only ever run between BLAS calls, so BLAS's threads and
 * ours take turns on the same cores instead of competing.
 *
 * Work is split into contiguous slices in index order; callers make every
 * output element the work of exactly one slice with a fixed order of
 * operations, so results are bit-identical for any thread count.
 *
 * One region at a time per pool: a caller that finds its pool busy (another
 * thread sharing the context is in a region) runs its loop serially instead
 * of waiting. Workers are started on a pool's first region, with every
 * signal blocked, and live until bl_cpu_pool_free stops and joins them.
 *
 * fork(): a child has none of its parent's threads. One atfork handler
 * (registered once per process) counts forks in the child; a pool remembers
 * the count its workers and locks belong to, and a pool used in a later
 * process (a child) starts over with fresh locks and no workers. Ownership
 * of a region is an atomic word tagged with that count rather than a mutex,
 * so a region that was running in another thread when the parent forked
 * cannot leave the child's copy of the pool locked for good. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include "backend/cpu/cpu.h"
#include "core/alloc.h"

#define CPU_PAR_MAX_THREADS 64
#define CPU_PAR_SPIN_NS 20000 /* spin this long for the next region before sleeping */

typedef struct par_worker {
    bl_cpu_pool *pool;
    int id;                  /* 1 .. threads-1; the caller is part 0 */
    unsigned long start_gen; /* gen when the worker was created */
    pthread_t thread;
} par_worker;

struct bl_cpu_pool {
    /* 0 while free, else 1 + the fork epoch of the process whose thread runs a
     * region: a word left set by a thread that no longer exists (it was in a
     * region when its process forked) carries an older epoch. */
    atomic_ulong owner;
    pthread_mutex_t lock; /* guards the condition variables */
    pthread_cond_t wake, done;
    atomic_int threads;  /* wanted, the caller included; read without owning (relaxed) */
    unsigned long epoch; /* the fork epoch that lock, wake, done and workers belong to */
    int started;         /* workers running (of this epoch) */
    int stop;            /* set by free before the last generation: workers exit */
    atomic_ulong gen;    /* region number; workers wait for it to change */
    atomic_int pending;  /* workers that have not finished the current region */
    cpu_par_fn fn;
    void *arg;
    size_t n, grain;
    int parts;
    par_worker workers[CPU_PAR_MAX_THREADS];
};

/* Forks this process descends through; changed only in a child, by the one
 * atfork handler, while the child has a single thread. */
static atomic_ulong fork_epoch;
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

static void after_fork_child(void) {
    atomic_fetch_add_explicit(&fork_epoch, 1, memory_order_relaxed);
}
static void hook_fork(void) {
    pthread_atfork(NULL, NULL, after_fork_child);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int clamp_threads(int threads) {
    return threads < 1 ? 1 : threads > CPU_PAR_MAX_THREADS ? CPU_PAR_MAX_THREADS : threads;
}

/* Locks and counters as new, for this process (called while owning the pool,
 * or before anyone else can see it). */
static void reset_sync(bl_cpu_pool *pool, unsigned long epoch) {
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->epoch = epoch;
    pool->started = 0;
    atomic_store(&pool->pending, 0);
}

bl_status bl_cpu_pool_create(bl_cpu_pool **out, int threads, bl_error *err) {
    pthread_once(&fork_hook_once, hook_fork);
    bl_cpu_pool *pool = bl_calloc(1, sizeof *pool);
    *out = pool;
    if (!pool) return bl_fail(err, BL_ERR_NOMEM, "out of memory for a thread pool");
    reset_sync(pool, atomic_load_explicit(&fork_epoch, memory_order_relaxed));
    atomic_init(&pool->owner, 0);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->threads, clamp_threads(threads));
    return BL_OK;
}

void bl_cpu_pool_free(bl_cpu_pool *pool) {
    if (!pool) return;
    if (pool->epoch == atomic_load_explicit(&fork_epoch, memory_order_relaxed)) {
        /* Workers of this process: wake them for a last generation and join. */
        pool->stop = 1;
        pthread_mutex_lock(&pool->lock);
        atomic_fetch_add_explicit(&pool->gen, 1, memory_order_release);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        for (int i = 1; i <= pool->started; i++)
            pthread_join(pool->workers[i].thread, NULL);
        pthread_cond_destroy(&pool->wake);
        pthread_cond_destroy(&pool->done);
        pthread_mutex_destroy(&pool->lock);
    } /* else a parent's pool copied into a forked child: no workers, locks in any state */
    bl_free(pool);
}

void bl_cpu_pool_set_threads(bl_cpu_pool *pool, int threads) {
    if (pool) atomic_store_explicit(&pool->threads, clamp_threads(threads), memory_order_relaxed);
}

int bl_cpu_pool_threads(const bl_cpu_pool *pool) {
    return pool ? atomic_load_explicit(&((bl_cpu_pool *)pool)->threads, memory_order_relaxed) : 1;
}

/* Slice p of parts over [0, n), boundaries on multiples of grain. */
static void slice(size_t n, size_t grain, int parts, int p, size_t *lo, size_t *hi) {
    size_t blocks = (n + grain - 1) / grain;
    size_t b0 = blocks * (size_t)p / (size_t)parts, b1 = blocks * (size_t)(p + 1) / (size_t)parts;
    *lo = b0 * grain;
    *hi = b1 * grain < n ? b1 * grain : n;
}

static void run_part(bl_cpu_pool *pool, int p) {
    size_t lo, hi;
    slice(pool->n, pool->grain, pool->parts, p, &lo, &hi);
    if (lo < hi) pool->fn(pool->arg, lo, hi);
}

static void *worker(void *arg) {
    par_worker *w = arg;
    bl_cpu_pool *pool = w->pool;
    unsigned long seen = w->start_gen; /* not gen now: it may have moved on already */
    for (;;) {
        uint64_t t0 = mono_ns();
        int spins = 0;
        while (atomic_load_explicit(&pool->gen, memory_order_acquire) == seen) {
            cpu_relax();
            if (++spins % 64 == 0 && mono_ns() - t0 > CPU_PAR_SPIN_NS) {
                pthread_mutex_lock(&pool->lock);
                while (atomic_load(&pool->gen) == seen)
                    pthread_cond_wait(&pool->wake, &pool->lock);
                pthread_mutex_unlock(&pool->lock);
            }
        }
        seen = atomic_load(&pool->gen);
        if (pool->stop) return NULL;
        if (w->id < pool->parts) run_part(pool, w->id);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}

/* Start workers up to threads-1 (called while owning the pool). Returns how many run. */
static int start_workers(bl_cpu_pool *pool) {
    int want = atomic_load_explicit(&pool->threads, memory_order_relaxed) - 1;
    if (pool->started >= want) return pool->started;
    /* Workers block every signal: a process-directed signal (SIGINT, SIGPIPE,
     * a timer) belongs to the application's threads, which may be waiting for
     * it; delivered to a worker it would be lost to them (the server's tests
     * caught exactly that). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool->started < want) {
        par_worker *w = &pool->workers[pool->started + 1];
        w->pool = pool, w->id = pool->started + 1;
        w->start_gen = atomic_load(&pool->gen);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        /* 2 MiB of address space (touched only as deep as it is used): the
         * Winograd passes keep 74 KiB frames, and glibc carves the static TLS of
         * every loaded library (cuBLAS and cuDNN hold a lot) out of this size. */
        pthread_attr_setstacksize(&attr, 2 << 20);
        int rc = pthread_create(&w->thread, &attr, worker, w);
        pthread_attr_destroy(&attr);
        if (rc) break; /* run with the workers we have */
        pool->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool->started;
}

/* Takes the pool for one region; 0 when another thread of this process has it. */
static int acquire(bl_cpu_pool *pool) {
    const unsigned long epoch = atomic_load_explicit(&fork_epoch, memory_order_relaxed);
    unsigned long free_ = 0, mine = epoch + 1;
    if (!atomic_compare_exchange_strong_explicit(&pool->owner, &free_, mine, memory_order_acquire,
                                                 memory_order_relaxed)) {
        /* free_ now holds the owner: one of this process runs a region, or the
         * owner was a thread of an ancestor, gone in this (forked) process */
        if (free_ == mine ||
            !atomic_compare_exchange_strong_explicit(&pool->owner, &free_, mine,
                                                     memory_order_acquire, memory_order_relaxed))
            return 0;
    }
    if (pool->epoch != epoch) reset_sync(pool, epoch); /* first region in a forked child */
    return 1;
}

static void release(bl_cpu_pool *pool) {
    atomic_store_explicit(&pool->owner, 0, memory_order_release);
}

void cpu_par_for(bl_cpu_pool *pool, size_t n, size_t grain, size_t min_per_part, cpu_par_fn fn,
                 void *arg) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    int parts = bl_cpu_pool_threads(pool);
    if (min_per_part > 0 && n / min_per_part < (size_t)parts) parts = (int)(n / min_per_part);
    if (parts <= 1 || !acquire(pool)) {
        fn(arg, 0, n);
        return;
    }
    int workers = start_workers(pool);
    if (parts > workers + 1) parts = workers + 1;
    if (parts <= 1) {
        release(pool);
        fn(arg, 0, n);
        return;
    }
    pool->fn = fn, pool->arg = arg, pool->n = n, pool->grain = grain, pool->parts = parts;
    atomic_store(&pool->pending, workers);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    run_part(pool, 0);
    uint64_t t0 = mono_ns();
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        cpu_relax();
        if (++spins % 64 == 0 && mono_ns() - t0 > CPU_PAR_SPIN_NS) {
            pthread_mutex_lock(&pool->lock);
            while (atomic_load(&pool->pending) > 0)
                pthread_cond_wait(&pool->done, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    release(pool);
}

/* skinny.c reports each product's shape here. Empty unless a program
 * (bench_step) defines its own to record the shapes; it lives in this file,
 * which is built once, because the kernel files are built once per ISA. */
__attribute__((weak)) void cpu_gemm_note(int trans_a, int trans_b, int M, int N, int K) {
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K;
}
