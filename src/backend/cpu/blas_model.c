/* The BLAS library's own memory, per core type.
 *
 * OpenBLAS packs GEMM operands into buffers it keeps for the life of the
 * process (128 MB of address space each in Debian's build: one per calling
 * thread and one per worker), touched only as far as the blocking needs.
 * Row-major C(M,N) = A(M,K) B(K,N) is the column-major product C^T = B^T A^T,
 * so OpenBLAS's m is our N and its n is our M. It packs q x (rows of A) and
 * q x (columns of B), with q = K up to Q, half of K (rounded up to unroll_m)
 * below 2Q, else Q, and A's rows m up to P, half of m below 2P, else P. On one
 * thread (level3.c) B takes min(n, R) columns, or only 3 unroll_n when all of
 * m fits one panel (it then packs B a few micro-tiles at a time into the same
 * place). Threaded (level3_thread.c), the threads split m (and n when m is
 * short), and each packs its own rows of A and its share of B into a buffer of
 * its own. Against the growth of the anonymous resident set of a process
 * running one sgemm, over 27 shapes (the presets' dense and convolution
 * products and others) on all ten core types this x86-64 machine can run, at
 * 1 and 2 threads, the estimate was 65 to 139 kB above the measurement: the
 * bookkeeping slack, and nothing else.
 *
 * P, Q and R differ by core (Sandybridge packs 768 x 384 where Haswell packs
 * 320 x 320), and DYNAMIC_ARCH builds choose the core at load time, from the
 * CPU or from OPENBLAS_CORETYPE, so the blocking is looked up from
 * openblas_get_corename(), once. The table is OpenBLAS 0.3.21's, read from
 * the library's own parameter tables (the gotoblas_<CORE> structures after
 * their init) for every core this machine can run, and from the AVX-512
 * cores' init code; R follows from P and Q as OpenBLAS derives it (to within
 * its alignment, which only matters past 60000 columns). A core not in the
 * table (another architecture, a newer name) gets Haswell's blocking: the
 * estimate is then off by up to a megabyte or two.
 *
 * The estimate is a pure function of the shapes, the thread count and the
 * core, which is what lets the memory finder binary-search it. */
#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "backend/cpu/blas_model.h"
#include "batchlab/core.h"

extern char *openblas_get_corename(void);

#define BLAS_ALIGN_BYTES ((size_t)16 << 10)
#define BLAS_SLACK_BYTES ((size_t)128 << 10) /* bookkeeping around the buffers */
#define BLAS_SWITCH_RATIO 2 /* param.h's default; the generic threaded driver uses it */

typedef enum { P_FIXED, P_L2_CORE2, P_L2_PENRYN, P_L2_PRESCOTT } p_rule;

static const struct core_row {
    const char *name;
    p_rule rule;
    int p, q, unroll_m, unroll_n;
} cores[] = {
    {"Haswell", P_FIXED, 320, 320, 8, 4},
    {"Zen", P_FIXED, 320, 320, 8, 4},
    {"SkylakeX", P_FIXED, 448, 448, 16, 4},
    {"Cooperlake", P_FIXED, 640, 320, 16, 4},
    {"SapphireRapids", P_FIXED, 640, 320, 16, 4}, /* after 0.3.21; Cooperlake's block */
    {"Sandybridge", P_FIXED, 768, 384, 16, 4},
    {"Nehalem", P_FIXED, 504, 512, 4, 8},
    {"Core2", P_L2_CORE2, 0, 256, 8, 4},
    {"Penryn", P_L2_PENRYN, 0, 512, 8, 4},
    {"Dunnington", P_L2_PENRYN, 0, 768, 8, 4},
    {"Prescott", P_L2_PRESCOTT, 0, 128, 8, 4},
    {"Atom", P_FIXED, 256, 256, 8, 4},
    {"Nano", P_FIXED, 288, 256, 4, 8},
    {"Opteron", P_FIXED, 448, 240, 8, 4},
    {"Opteron_SSE3", P_FIXED, 448, 240, 8, 4},
    {"Barcelona", P_FIXED, 448, 224, 8, 4},
    {"Bobcat", P_FIXED, 448, 224, 8, 4},
    {"Bulldozer", P_FIXED, 768, 168, 16, 2},
    {"Piledriver", P_FIXED, 768, 192, 16, 2},
    {"Steamroller", P_FIXED, 768, 192, 16, 2},
    {"Excavator", P_FIXED, 768, 192, 16, 2},
};

static size_t round_up(size_t x, size_t to) {
    return to ? (x + to - 1) / to * to : x;
}

static int same_name(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

int cpu_blas_params_for(const char *corename, int l2_kb, cpu_blas_params *out) {
    const struct core_row *row = &cores[0];
    int known = 0;
    for (size_t i = 0; corename && i < sizeof cores / sizeof *cores; i++)
        if (same_name(corename, cores[i].name)) {
            row = &cores[i], known = 1;
            break;
        }
    if (l2_kb <= 0) l2_kb = 256; /* OpenBLAS's own assumption when cpuid is silent */
    int p = row->p;
    if (row->rule == P_L2_CORE2) p = 92 * (l2_kb >> 9) + 8;
    if (row->rule == P_L2_PENRYN) p = 42 * (l2_kb >> 9) + 8;
    if (row->rule == P_L2_PRESCOTT) p = 56 * (l2_kb >> 7);
    if (p <= 0) p = 64; /* as OpenBLAS replaces a zero P */
    p = (int)round_up((size_t)p, (size_t)row->unroll_m);
    size_t a_bytes = round_up((size_t)p * (size_t)row->q * 4, BLAS_ALIGN_BYTES);
    size_t r = ((CPU_BLAS_BUFFER_BYTES - a_bytes) / ((size_t)row->q * 4) - 15) & ~(size_t)15;
    *out = (cpu_blas_params){.core = known ? row->name : "default",
                             .p = p,
                             .q = row->q,
                             .r = (int)r,
                             .unroll_m = row->unroll_m,
                             .unroll_n = row->unroll_n};
    return known;
}

/* L2 in KiB as OpenBLAS reads it (cpuid 0x80000006), else as the C library does. */
static int l2_cache_kb(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000006, &a, &b, &c, &d) && (c >> 16) > 0) return (int)(c >> 16);
#endif
    long bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return bytes > 0 ? (int)(bytes >> 10) : 0;
}

static pthread_once_t current_once = PTHREAD_ONCE_INIT;
static cpu_blas_params current; /* written once, under current_once */

static void current_init(void) {
    cpu_blas_params_for(openblas_get_corename(), l2_cache_kb(), &current);
}

const cpu_blas_params *cpu_blas_params_current(void) {
    pthread_once(&current_once, current_init);
    return &current;
}

/* Rows of A packed at once out of m: all up to P, half of them below 2P, else P. */
static size_t a_rows(size_t m, size_t P, size_t um) {
    return m <= P ? m : m < 2 * P ? round_up((m + 1) / 2, um) : P;
}

size_t cpu_blas_gemm_bytes(const cpu_blas_params *bp, size_t M, size_t N, size_t K, int threads) {
    if (!M || !N || !K) return 0;
    const size_t m = N, n = M, P = (size_t)bp->p, Q = (size_t)bp->q, R = (size_t)bp->r;
    const size_t um = (size_t)bp->unroll_m, un = (size_t)bp->unroll_n;
    const size_t q = K <= Q ? K : K < 2 * Q ? round_up((K + 1) / 2, um) : Q;
    const size_t nb = round_up(n < R ? n : R, un);
    /* threaded (level3_thread.c): tm threads split m (while each keeps
     * SWITCH_RATIO rows), tn split n; each packs its rows of A and its share
     * of B into a buffer of its own */
    size_t T = threads < 1 ? 1 : (size_t)threads, tm = T, tn = 1;
    if ((double)M * (double)N * (double)K <= CPU_BLAS_SERIAL_MNK) T = tm = 1;
    while (tm > 1 && m < tm * BLAS_SWITCH_RATIO)
        tm /= 2;
    if (T > 1) {
        tn = (n + BLAS_SWITCH_RATIO * tm - 1) / (BLAS_SWITCH_RATIO * tm);
        if (tm * tn > T) tn = T / tm;
    }
    if (tm * tn > 1)
        return 4 * q * (tm * tn * a_rows((m + tm - 1) / tm, P, um) + nb) + BLAS_SLACK_BYTES;
    /* one thread (level3.c): with all of m in one panel, B is packed a few
     * micro-tiles (3 unroll_n) at a time into the same place */
    size_t b = m <= P && nb > 3 * un ? 3 * un : nb;
    return 4 * q * (a_rows(m, P, um) + b) + BLAS_SLACK_BYTES;
}

int cpu_blas_model_threads(void) {
    int n = bl_cpu_count_usable();
    return n > 64 ? 64 : n;
}
