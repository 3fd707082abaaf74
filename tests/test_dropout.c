/* Counter-based dropout: the Philox4x32-10 block function against the published
 * known answers, and the model's masks as a pure function of (seed, step, layer,
 * sample position): the same for any thread count, and for a batch run whole or
 * as micro-batches in any order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/backend.h"
#include "batchlab/model.h"
#include "test_util.h"
#include "core/philox.h"

/* Salmon et al. (SC11) / Random123 kat_vectors, "philox4x32 10": counter, key, answer. */
static void philox_known_answers(void **state) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        bl_philox4x32_10(out, kat[i], kat[i] + 4);
        for (int w = 0; w < 4; w++)
            assert_int_equal(out[w], kat[i][6 + w]);
    }
}

/* Elementwise layers only, so that a batch cut in two computes bit for bit the
 * same values (a dense layer's GEMM may round differently at another B). Two
 * dropout layers: the layer index is part of the key. B x DIM is large enough
 * for the kernel to cut a whole batch into slices for 3 threads. */
enum { B = 12, HALF = 5, DIM = 1024 };
static const char *SPEC = "flatten,dropout:0.4,tanh,dropout:0.3";

static bl_model *make_model(bl_ctx *ctx) {
    bl_error err = {0};
    bl_model *m = NULL;
    bl_shape in = {DIM, 1, 1};
    assert_int_equal(bl_model_create(&m, SPEC, in, DIM, &err), BL_OK);
    assert_int_equal(bl_model_alloc(m, ctx, B, &err), BL_OK);
    tu_init(m, 9);
    return m;
}

/* Outputs (B, DIM) of a train-mode forward of x at update `step`, as one batch
 * (order 0), or as samples [HALF, B) then [0, HALF) (order 1). */
static void forward(bl_model *m, const float *x, long step, int order, float *out) {
    const int dim = DIM, K = DIM;
    if (order == 0) {
        bl_model_set_dropout_position(m, step, 0);
        tu_forward(m, x, B, 1, out);
        return;
    }
    bl_model_set_dropout_position(m, step, HALF);
    tu_forward(m, x + HALF * dim, B - HALF, 1, out + HALF * K);
    bl_model_set_dropout_position(m, step, 0);
    tu_forward(m, x, HALF, 1, out);
}

static void masks_ignore_threads_and_batch_order(void **state) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    bl_model *m = make_model(&ctx);
    static float x[B * DIM], ref[B * DIM], got[B * DIM], other[B * DIM];
    for (int i = 0; i < B * DIM; i++)
        x[i] = (float)((i * 37) % 11) * 0.25f - 1.0f;
    forward(m, x, 7, 0, ref);
    for (int threads = 1; threads <= 3; threads += 2) {
        ctx.be->ops->set_threads(ctx.be, threads);
        for (int order = 0; order < 2; order++) {
            forward(m, x, 7, order, got);
            assert_memory_equal(ref, got, sizeof ref);
        }
    }
    ctx.be->ops->set_threads(ctx.be, 1);
    /* the step is part of the key: the next update draws other masks */
    forward(m, x, 8, 0, other);
    assert_memory_not_equal(ref, other, sizeof ref);
    /* evaluation mode has no dropout at all, and does not depend on the step */
    bl_model_set_dropout_position(m, 3, 0);
    tu_forward(m, x, B, 0, got);
    bl_model_set_dropout_position(m, 4, 0);
    tu_forward(m, x, B, 0, other);
    assert_memory_equal(got, other, sizeof got);
    bl_model_free(m);
    bl_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(philox_known_answers),
        cmocka_unit_test(masks_ignore_threads_and_batch_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
