/* OpenBLAS under memory pressure: an out-of-memory error must end the process,
 * never hang it.
 *
 * OpenBLAS (0.3.x, pthread build) gives each of its worker threads a work buffer
 * of 128 MiB of address space (BUFFER_SIZE, 32 << 22 on x86-64) when the thread
 * starts, and lends one from a process-wide pool to each thread inside a BLAS
 * call. When mmap and then malloc both fail, blas_memory_alloc tries again,
 * forever (driver/others/memory.c). Under an address-space limit (ulimit -v)
 * that turned a clean "out of memory" into a process spinning at 100% CPU:
 * inside the first sgemm when our own buffers had left less than 128 MiB, or at
 * exit, where OpenBLAS's destructor joins a worker that never got its buffer.
 * Hence two guards:
 *
 *  - cli_blas_guard, first thing in main: with a finite RLIMIT_AS, check that
 *    there is room for every buffer OpenBLAS may still want (one per worker, and
 *    one per thread that may be in a BLAS call at once: our pool's threads all
 *    call sgemm in the Winograd convolution), and fill OpenBLAS's pool with that
 *    many now, so that no later call, and no worker that has not taken its buffer
 *    yet, ever maps one. The workers start with the library, before main, and
 *    take theirs whenever they are first scheduled, which cannot be observed; so
 *    they are counted whether or not they have theirs already. That makes the
 *    limit at which batchlab refuses vary by up to 128 MB per worker from run to
 *    run, and may leave that much address space unused; it never leaves a worker
 *    spinning. Without room it says so and the process stops, before any data is
 *    read.
 *  - cli_exit_now on every failing exit: flush and _exit, so that a worker that
 *    could not get its buffer (strict overcommit, a limit lowered while running)
 *    cannot turn an error into a hang. The library never exits; only the CLI may.
 *
 * Not covered: `--threads N` above the CPU count raises OpenBLAS's thread count
 * later, and the new workers take their buffers then. */
#include "blas_guard.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include "backend/cpu/blas_model.h"
#include "batchlab/core.h"

#if defined(__SANITIZE_ADDRESS__)
#define BL_CLI_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BL_CLI_LSAN 1
#endif
#endif
#ifdef BL_CLI_LSAN
#include <sanitizer/lsan_interface.h>
#endif

extern int openblas_get_num_threads(void);
/* OpenBLAS's buffer pool (exported by libopenblas, used by every BLAS call). */
extern void *blas_memory_alloc(int procpos);
extern void blas_memory_free(void *buffer);

#define BLAS_BUFFER_SLACK ((size_t)4096) /* malloc'd buffers carry a page more */
#define GUARD_MAX_BUFFERS 64             /* OpenBLAS's pool has 2 x its build's thread count */
#define MALLOC_ARENA_BYTES ((size_t)64 << 20) /* glibc's HEAP_MAX_SIZE on 64-bit */

/* VmSize in kB: the address space this process holds now, or 0. */
static unsigned long long vm_size_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmSize:", 7)) kb = strtoull(line + 7, NULL, 10);
    fclose(f);
    return kb;
}

int cli_blas_guard(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY) return 0;
    int workers = openblas_get_num_threads() - 1;
    int callers = bl_cpu_count_usable();
    if (workers < 0) workers = 0;
    int buffers = workers + callers < GUARD_MAX_BUFFERS ? workers + callers : GUARD_MAX_BUFFERS;
    /* Room for one more buffer per worker than we take: a worker that starts while we
     * hold every pool buffer maps its own (seen: a guard that probed only for the
     * buffers it takes hung in blas_memory_alloc about once in 100 runs at the edge),
     * and for the arena malloc may reserve when OpenBLAS falls back to it. */
    int room = buffers + workers < GUARD_MAX_BUFFERS ? buffers + workers : GUARD_MAX_BUFFERS;
    size_t need = (size_t)room * (CPU_BLAS_BUFFER_BYTES + BLAS_BUFFER_SLACK) + MALLOC_ARENA_BYTES;
    /* A PROT_NONE reservation counts against RLIMIT_AS like the real buffers. */
    void *probe = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe == MAP_FAILED) {
        unsigned long long limit_kb = (unsigned long long)rl.rlim_cur / 1024;
        unsigned long long used_kb = vm_size_kb();
        unsigned long long free_kb = limit_kb > used_kb ? limit_kb - used_kb : 0;
        fprintf(stderr,
                "batchlab: out of memory: OpenBLAS needs %zu MB of address space for its work "
                "buffers (128 MB each, up to %d of them at once), and waits forever when it cannot have "
                "them, but the address-space limit (ulimit -v %llu) leaves %llu MB; raise it to "
                "at least %llu (kB), plus what the data and the model need\n",
                need >> 20, room, limit_kb, free_kb >> 10,
                used_kb + (unsigned long long)(need >> 10));
        return 1;
    }
    munmap(probe, need);
    /* Held all at once, so that each is a buffer of its own; freed, they stay mapped
     * in the pool for whoever asks next. */
    void *held[GUARD_MAX_BUFFERS];
    int n = 0;
    while (n < buffers && (held[n] = blas_memory_alloc(0)) != NULL)
        n++;
    while (n > 0)
        blas_memory_free(held[--n]);
    return 0;
}

void cli_exit_now(int rc) {
    fflush(NULL);
#ifdef BL_CLI_LSAN
    __lsan_do_leak_check(); /* what exit() would have run: error paths are checked for leaks too */
#endif
    _exit(rc);
}
