/* Threads of one process share OpenBLAS's thread count (serving and
 * evaluation run next to training). Two threads run the CNN preset's Winograd
 * layer (conv3x3 32->64 on 28x28, B = 8) over and over while a third runs
 * sgemm-based dense layers (big enough for OpenBLAS to thread them) and
 * creates contexts that set the BLAS thread count to 1 and back to 2. Every
 * result must equal, bit for bit, the same call made alone: OpenBLAS's
 * threaded sgemm gives other last bits than its serial one, so a kernel that
 * changed the count under another thread's call shows here.
 *
 * No kernel may set the count at all: this binary interposes
 * openblas_set_num_threads, counts the calls made from the convolution
 * threads (there must be none) and keeps the last count in a plain int, so
 * that ThreadSanitizer reports two threads setting it at once. */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/backend.h"
#include "batchlab/core.h"
#include "test_util.h"

#define ROUNDS 12

/* ---- the interposed setter ---------------------------------------------------- */

static void (*real_set_num_threads)(int);
static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static _Thread_local int in_conv_thread;
static atomic_int conv_thread_sets;
static int last_set_threads; /* unguarded on purpose: concurrent setters race here */

static void find_real(void) {
    real_set_num_threads = (void (*)(int))dlsym(RTLD_NEXT, "openblas_set_num_threads");
}

void openblas_set_num_threads(int n) {
    pthread_once(&real_once, find_real);
    if (in_conv_thread) atomic_fetch_add(&conv_thread_sets, 1);
    last_set_threads = n;
    if (real_set_num_threads) real_set_num_threads(n);
}

/* ---- the workloads --------------------------------------------------------------- */

enum { DENSE_B = 64, DENSE_I = 784, DENSE_O = 1024 };

static const bl_kernels *be;
static bl_conv_dims conv;
static float *conv_in, *conv_w, *conv_b, *conv_ref;
static float *dense_in, *dense_w, *dense_b, *dense_ref[2]; /* [t - 1]: with t BLAS threads */
static size_t conv_out_n, dense_out_n;
static atomic_int conv_running;
static bl_cpu_pool *conv_pool; /* the convolution threads' (one context's, shared) */

static float *filled(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof *x);
    if (x) tu_fill_normal(x, n, seed, 1.0f);
    return x;
}

/* out = the layer's forward on pool; returns 0 if it equals ref (NULL: no comparison). */
static int conv_forward(bl_cpu_pool *pool, float *out, const float *ref) {
    float *ws = malloc(be->conv2d_workspace_floats(&conv) * sizeof *ws);
    if (!ws) return -1;
    memset(out, 0xff, conv_out_n * sizeof *out);
    be->conv2d_relu_forward(pool, out, conv_in, conv_w, conv_b, ws, &conv);
    free(ws);
    return ref && memcmp(out, ref, conv_out_n * sizeof *out) ? 1 : 0;
}

static int dense_forward(bl_cpu_pool *pool, float *out, const float *ref) {
    memset(out, 0xff, dense_out_n * sizeof *out);
    be->dense_forward(pool, out, dense_in, dense_w, dense_b, DENSE_B, DENSE_I, DENSE_O);
    return ref && memcmp(out, ref, dense_out_n * sizeof *out) ? 1 : 0;
}

static void *conv_thread(void *arg) {
    int *mismatches = arg;
    in_conv_thread = 1;
    float *out = malloc(conv_out_n * sizeof *out);
    for (int r = 0; r < ROUNDS; r++)
        *mismatches += out ? conv_forward(conv_pool, out, conv_ref) != 0 : 1;
    free(out);
    atomic_fetch_sub(&conv_running, 1);
    return NULL;
}

/* Dense layers until both convolution threads are done, each after a new
 * context set the count it runs at (1 and 2 in turn). */
static void *dense_thread(void *arg) {
    int *mismatches = arg, *rounds = mismatches + 1;
    float *out = malloc(dense_out_n * sizeof *out);
    for (int r = 0; r < ROUNDS || atomic_load(&conv_running) > 0; r++, ++*rounds) {
        bl_ctx ctx;
        bl_ctx_init(&ctx, 1 + r % 2);
        *mismatches += out ? dense_forward(ctx.be->pool, out, dense_ref[r % 2]) != 0 : 1;
        bl_ctx_free(&ctx);
    }
    free(out);
    return NULL;
}

static int setup(void **state) {
    conv = (bl_conv_dims){8, 32, 28, 28, 64, 3, 3, 1, 1, 0, 0};
    conv.P = conv.Q = bl_conv_out_size(28, 3, 1, 1);
    conv_out_n = (size_t)8 * 64 * conv.P * conv.Q, dense_out_n = (size_t)DENSE_B * DENSE_O;
    conv_in = filled((size_t)8 * 32 * 28 * 28, 1), conv_w = filled((size_t)64 * 32 * 9, 2);
    conv_b = filled(64, 3);
    dense_in = filled((size_t)DENSE_B * DENSE_I, 4), dense_w = filled((size_t)DENSE_O * DENSE_I, 5);
    dense_b = filled(DENSE_O, 6);
    conv_ref = malloc(conv_out_n * sizeof *conv_ref);
    dense_ref[0] = malloc(dense_out_n * sizeof(float));
    dense_ref[1] = malloc(dense_out_n * sizeof(float));
    if (!conv_in || !conv_w || !conv_b || !dense_in || !dense_w || !dense_b || !conv_ref ||
        !dense_ref[0] || !dense_ref[1])
        return -1;
    /* the references: each call alone, the convolution single-threaded */
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    be = bl_cpu_kernels();
    int bad = conv_forward(ctx.be->pool, conv_ref, NULL) ||
              dense_forward(ctx.be->pool, dense_ref[0], NULL);
    bl_ctx_free(&ctx);
    if (bad) return -1;
    bl_ctx_init(&ctx, 2);
    bad = dense_forward(ctx.be->pool, dense_ref[1], NULL);
    bl_ctx_free(&ctx);
    return bad ? -1 : 0;
}

static int teardown(void **state) {
    free(conv_in), free(conv_w), free(conv_b), free(conv_ref);
    free(dense_in), free(dense_w), free(dense_b), free(dense_ref[0]), free(dense_ref[1]);
    return 0;
}

/* With two threads for the pool and for BLAS, alone: the same bits as on one. */
static void winograd_does_not_depend_on_thread_counts(void **state) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, 2);
    float *out = malloc(conv_out_n * sizeof *out);
    assert_non_null(out);
    assert_int_equal(conv_forward(ctx.be->pool, out, conv_ref), 0);
    free(out);
    bl_ctx_free(&ctx);
    /* and the dense layer's references differ, so the concurrent test can see a change */
    assert_true(memcmp(dense_ref[0], dense_ref[1], dense_out_n * sizeof(float)) != 0);
}

static void concurrent_kernels_keep_their_bits(void **state) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, 2);
    conv_pool = ctx.be->pool;
    atomic_store(&conv_thread_sets, 0);
    atomic_store(&conv_running, 2);
    int conv_bad[2] = {0, 0}, dense_bad[2] = {0, 0}; /* dense: mismatches, rounds */
    pthread_t t[3];
    assert_int_equal(pthread_create(&t[0], NULL, conv_thread, &conv_bad[0]), 0);
    assert_int_equal(pthread_create(&t[1], NULL, conv_thread, &conv_bad[1]), 0);
    assert_int_equal(pthread_create(&t[2], NULL, dense_thread, dense_bad), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&conv_thread_sets), 0); /* no kernel set the count */
    assert_int_equal(conv_bad[0], 0);
    assert_int_equal(conv_bad[1], 0);
    assert_int_equal(dense_bad[0], 0);
    assert_true(dense_bad[1] >= ROUNDS);
    assert_true(last_set_threads == 1 || last_set_threads == 2);
    bl_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(winograd_does_not_depend_on_thread_counts),
        cmocka_unit_test(concurrent_kernels_keep_their_bits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
