/* Fuzz target: the model-spec parser and the shape inference behind
 * bl_model_create. Bytes 0-3 choose the input shape (c 1..4, h and w 1..16),
 * the number of classes (0, any output width, or 1..8) and the batch (1..4); the rest,
 * up to its first NUL, is the spec.
 *
 * A spec that builds is checked against what the library promises: its
 * canonical form (bl_model_spec) builds the same model again, and the memory
 * model is exact (bl_model_memory_bytes equals what bl_model_alloc charges).
 * A model whose predicted memory is within the budget is then allocated under
 * that budget and run one training step (forward, loss, backward) and one eval
 * forward, whose outputs must be finite for inputs in [-2, 2) (unless a leaky
 * ReLU slope above 1 amplifies them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/model.h"
#include "fuzz.h"
#include "fuzz_model.h"
#include "nn/layer.h"

#define SPEC_BUDGET_BYTES (16u << 20)
#define SPEC_MAX_CHARS 512

static void check_round_trip(const bl_model *m, bl_shape in, int n_classes) {
    bl_model *again = NULL;
    bl_error err = {0};
    if (bl_model_create(&again, bl_model_spec(m), in, n_classes, &err) != BL_OK)
        fuzz_fail("the canonical spec of a model does not build");
    if (strcmp(bl_model_spec(again), bl_model_spec(m)) ||
        bl_model_num_params(again) != bl_model_num_params(m) ||
        bl_model_num_buffers(again) != bl_model_num_buffers(m) ||
        bl_model_output_dim(again) != bl_model_output_dim(m))
        fuzz_fail("the canonical spec builds a different model");
    bl_model_free(again);
}

/* Leaky ReLU slopes above 1 grow activations layer by layer: 1e30 twice is infinite,
 * legitimately. Below that, initial weights keep outputs of inputs in [-2, 2) finite. */
static int outputs_bounded(const bl_model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == BL_LAYER_ACT && m->layers[i].act == BL_ACT_LEAKY_RELU &&
            m->layers[i].alpha > 1)
            return 0;
    return 1;
}

static void train_and_eval(bl_model *m, int B, const uint8_t *seed, size_t seed_size) {
    float *x = fuzz_model_inputs(m, B, seed, seed_size);
    int32_t labels[4];
    int K = bl_model_output_dim(m);
    for (int b = 0; b < B; b++)
        labels[b] = seed_size ? seed[b % seed_size] % K : 0;
    if (!x) return;
    bl_loss_kind loss = (seed_size && seed[0] & 1) ? BL_LOSS_MSE : BL_LOSS_XENT;
    bl_error err = {0};
    double sum;
    int correct = 0;
    if (bl_model_init(m, 1, &err) || bl_model_zero_grad(m, &err) ||
        bl_model_forward(m, x, B, 1, &err) ||
        bl_model_loss(m, labels, loss, &sum, &correct, &err) ||
        bl_model_backward(m, 1.0f / (float)B, &err))
        fuzz_fail("a training step of a valid model failed");
    /* fresh weights: the step above may have driven them anywhere */
    float *y = malloc((size_t)B * (size_t)K * sizeof *y);
    if (!y || bl_model_init(m, 2, &err) || bl_model_forward(m, x, B, 0, &err) ||
        bl_model_output(m, y, &err))
        fuzz_fail("an eval forward pass of a valid model failed");
    for (size_t i = 0; outputs_bounded(m) && i < (size_t)B * (size_t)K; i++)
        if (!isfinite(y[i])) fuzz_fail("an eval forward pass gave a non-finite output");
    free(y);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    bl_shape in = {1 + data[0] % 4, 1 + data[1] % 16, 1 + data[2] % 16};
    int n_classes = data[3] & 0x08 ? 1 + (data[3] & 7) : 0; /* 0: any output width */
    int B = 1 + (data[3] >> 4) % 4;
    char spec[SPEC_MAX_CHARS + 1];
    size_t len = size - 4 < SPEC_MAX_CHARS ? size - 4 : SPEC_MAX_CHARS;
    memcpy(spec, data + 4, len);
    spec[len] = '\0';

    bl_model *m = NULL;
    bl_error err = {0};
    if (bl_model_create(&m, spec, in, n_classes, &err) != BL_OK) {
        if (!err.msg[0]) fuzz_fail("bl_model_create failed without a message");
        fuzz_note("spec", err.msg);
        return 0;
    }
    check_round_trip(m, in, n_classes);
    size_t predicted = bl_model_memory_bytes(m, B);
    bl_ctx *ctx = fuzz_ctx(SPEC_BUDGET_BYTES);
    if (predicted <= SPEC_BUDGET_BYTES && fuzz_model_flops(m, B) <= FUZZ_MAX_FLOPS) {
        if (bl_model_alloc(m, ctx, B, &err) != BL_OK) fuzz_fail("a model within budget failed");
        if (ctx->mem.cur_bytes != predicted)
            fuzz_fail("bl_model_memory_bytes differs from what bl_model_alloc charged");
        train_and_eval(m, B, data + 4, size - 4);
        fuzz_note("spec", "ok, trained and evaluated");
    } else {
        fuzz_note("spec", "built; too big to run");
    }
    bl_model_free(m);
    if (ctx->mem.cur_bytes != 0) fuzz_fail("the model's memory accounting does not return to 0");
    return 0;
}
