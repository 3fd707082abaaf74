/* A small fork-join pool for the CPU kernels that are not BLAS calls
 * (elementwise passes, the optimizer updates, column sums, im2col, pooling).
 *
 * Why not OpenMP: OpenBLAS (pthread build) keeps its own worker threads, and
 * libgomp's workers spin for a while (GOMP_SPINCOUNT, milliseconds on this
 * hardware) after each parallel region. The next sgemm then shares both cores
 * with spinning OpenMP threads: measured on the 2-core machine, a loop of
 * sgemm + one OpenMP elementwise pass ran the sgemm at a third of its speed
 * and the pass 60x slower unless OMP_WAIT_POLICY=passive was set before the
 * process started, which a library cannot do. This pool instead spins only
 * briefly (CPU_PAR_SPIN_NS) and then sleeps on a condition variable, and
 * parallel regions only ever run between BLAS calls, so BLAS's threads and
 * ours take turns on the same cores instead of competing.
 *
 * Work is split into contiguous slices in index order; callers make every
 * output element the work of exactly one slice with a fixed order of
 * operations, so results are bit-identical for any thread count.
 *
 * One region at a time: a caller that finds the pool busy (another thread of
 * the process is in a region, e.g. a server next to a trainer) runs its loop
 * serially instead of waiting. Workers are started on first use and live
 * until the process ends, with every signal blocked; after fork() the child
 * starts its own. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include "backend/cpu/cpu.h"

#define CPU_PAR_MAX_THREADS 64
#define CPU_PAR_SPIN_NS 20000 /* spin this long for the next region before sleeping */

static struct {
    pthread_mutex_t busy; /* held for the duration of a region */
    pthread_mutex_t lock; /* guards the condition variables */
    pthread_cond_t wake, done;
    atomic_int threads; /* wanted, the caller included; read without busy (relaxed) */
    int started; /* workers running */
    int fork_hooked;
    atomic_ulong gen;   /* region number; workers wait for it to change */
    atomic_int pending; /* workers that have not finished the current region */
    cpu_par_fn fn;
    void *arg;
    size_t n, grain;
    int parts;
    unsigned long start_gen[CPU_PAR_MAX_THREADS]; /* gen when worker i was created */
} pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .threads = 1,
};

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

/* Slice p of parts over [0, n), boundaries on multiples of grain. */
static void slice(size_t n, size_t grain, int parts, int p, size_t *lo, size_t *hi) {
    size_t blocks = (n + grain - 1) / grain;
    size_t b0 = blocks * (size_t)p / (size_t)parts, b1 = blocks * (size_t)(p + 1) / (size_t)parts;
    *lo = b0 * grain;
    *hi = b1 * grain < n ? b1 * grain : n;
}

static void run_part(int p) {
    size_t lo, hi;
    slice(pool.n, pool.grain, pool.parts, p, &lo, &hi);
    if (lo < hi) pool.fn(pool.arg, lo, hi);
}

static void *worker(void *arg) {
    const int id = (int)(intptr_t)arg;       /* 1 .. threads-1; the caller is part 0 */
    unsigned long seen = pool.start_gen[id]; /* not gen now: it may have moved on already */
    for (;;) {
        uint64_t t0 = mono_ns();
        int spins = 0;
        while (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen) {
            cpu_relax();
            if (++spins % 64 == 0 && mono_ns() - t0 > CPU_PAR_SPIN_NS) {
                pthread_mutex_lock(&pool.lock);
                while (atomic_load(&pool.gen) == seen)
                    pthread_cond_wait(&pool.wake, &pool.lock);
                pthread_mutex_unlock(&pool.lock);
            }
        }
        seen = atomic_load(&pool.gen);
        if (id < pool.parts) run_part(id);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* In a forked child the workers do not exist: start again from none. */
static void after_fork_child(void) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pool.busy = m, pool.lock = m, pool.wake = c, pool.done = c;
    pool.started = 0;
    atomic_store(&pool.pending, 0);
}

/* Start workers up to threads-1 (called with busy held). Returns how many run. */
static int start_workers(void) {
    if (!pool.fork_hooked) {
        pthread_atfork(NULL, NULL, after_fork_child);
        pool.fork_hooked = 1;
    }
    /* Workers block every signal: a process-directed signal (SIGINT, SIGPIPE,
     * a timer) belongs to the application's threads, which may be waiting for
     * it; delivered to a worker it would be lost to them (the server's tests
     * caught exactly that). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.started < atomic_load_explicit(&pool.threads, memory_order_relaxed) - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 << 10);
        pool.start_gen[pool.started + 1] = atomic_load(&pool.gen);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)(pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc) break; /* run with the workers we have */
        pool.started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.started;
}

void cpu_par_set_threads(int threads) {
    if (threads < 1) threads = 1;
    if (threads > CPU_PAR_MAX_THREADS) threads = CPU_PAR_MAX_THREADS;
    pthread_mutex_lock(&pool.busy);
    atomic_store_explicit(&pool.threads, threads, memory_order_relaxed);
    pthread_mutex_unlock(&pool.busy);
}

int cpu_par_threads(void) {
    return atomic_load_explicit(&pool.threads, memory_order_relaxed);
}

void cpu_par_for(size_t n, size_t grain, size_t min_per_part, cpu_par_fn fn, void *arg) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    int parts = atomic_load_explicit(&pool.threads, memory_order_relaxed);
    if (min_per_part > 0 && n / min_per_part < (size_t)parts) parts = (int)(n / min_per_part);
    if (parts <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        fn(arg, 0, n);
        return;
    }
    int workers = start_workers();
    if (parts > workers + 1) parts = workers + 1;
    if (parts <= 1) {
        pthread_mutex_unlock(&pool.busy);
        fn(arg, 0, n);
        return;
    }
    pool.fn = fn, pool.arg = arg, pool.n = n, pool.grain = grain, pool.parts = parts;
    atomic_store(&pool.pending, workers);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_part(0);
    uint64_t t0 = mono_ns();
    int spins = 0;
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
        cpu_relax();
        if (++spins % 64 == 0 && mono_ns() - t0 > CPU_PAR_SPIN_NS) {
            pthread_mutex_lock(&pool.lock);
            while (atomic_load(&pool.pending) > 0)
                pthread_cond_wait(&pool.done, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    pthread_mutex_unlock(&pool.busy);
}

/* skinny.c reports each product's shape here. Empty unless a program
 * (bench_step) defines its own to record the shapes; it lives in this file,
 * which is built once, because the kernel files are built once per ISA. */
__attribute__((weak)) void cpu_gemm_note(int trans_a, int trans_b, int M, int N, int K) {
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K;
}
