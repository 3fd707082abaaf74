/* Fuzz target: safetensors files and the checkpoints built on them. The input
 * is the file. It is read with bl_safetensors_read, every tensor it hands out
 * is read to its last byte (ASan checks that the pointers stay inside the
 * file), and then loaded as eval/predict/serve load it: bl_checkpoint_load_model
 * and, when that succeeds, the normalisation and a forward pass as the server
 * runs them (bl_model_runner_fn). */
#include <stdlib.h>
#include <string.h>
#include "batchlab/io.h"
#include "batchlab/serve.h"
#include "batchlab/train.h"
#include "fuzz.h"
#include "fuzz_model.h"

/* Checkpoints that fit in a few kilobytes describe small models; a spec in the
 * metadata that asks for more must fail on the budget, not allocate it. */
#define CKPT_BUDGET_BYTES (32u << 20)
#define CKPT_BATCH 2

static volatile unsigned fuzz_sink;

static void read_safetensors(const char *path) {
    bl_safetensors st;
    bl_error err = {0};
    if (bl_safetensors_read(&st, path, &err) != BL_OK) {
        if (!err.msg[0]) fuzz_fail("bl_safetensors_read failed without a message");
        fuzz_note("safetensors", err.msg);
        return;
    }
    unsigned sum = 0;
    for (int i = 0; i < st.n; i++) {
        const bl_tensor *t = &st.tensors[i];
        const uint8_t *p = t->data;
        for (size_t k = 0; k < t->nbytes; k++)
            sum += p[k];
        if (bl_safetensors_find(&st, t->name) == NULL) fuzz_fail("a tensor cannot be found");
    }
    for (int i = 0; i < st.n_meta; i++)
        if (!bl_safetensors_meta(&st, st.meta[i].key)) fuzz_fail("a metadata key cannot be found");
    fuzz_sink = sum; /* keeps the reads: the compiler may not drop them */
    fuzz_note("safetensors", "ok");
    bl_safetensors_free(&st);
}

static void run_model(bl_model *m, const bl_norm *norm, const uint8_t *data, size_t size) {
    if (fuzz_model_flops(m, CKPT_BATCH) > FUZZ_MAX_FLOPS) {
        fuzz_note("checkpoint", "loaded; forward pass skipped (too many operations)");
        return;
    }
    float *x = fuzz_model_inputs(m, CKPT_BATCH, data, size);
    float *out = malloc((size_t)CKPT_BATCH * (size_t)bl_model_output_dim(m) * sizeof *out + 1);
    if (x && out) {
        bl_model_runner runner = {m, norm};
        if (bl_model_runner_fn(&runner, x, CKPT_BATCH, out)) fuzz_fail("the forward pass failed");
        fuzz_note("checkpoint", "ok, forward pass run");
    }
    free(x);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, data, size);
    read_safetensors(path);

    bl_ctx *ctx = fuzz_ctx(CKPT_BUDGET_BYTES);
    bl_model *m = NULL;
    bl_norm norm;
    bl_error err = {0};
    if (bl_checkpoint_load_model(&m, &norm, ctx, path, CKPT_BATCH, &err) == BL_OK) {
        if (norm.kind != BL_NORM_NONE && norm.dim != bl_shape_size(bl_model_input_shape(m)))
            fuzz_fail("the normalisation does not fit the model's input");
        run_model(m, &norm, data, size);
        bl_norm_free(&norm, &ctx->mem);
        bl_model_free(m);
    } else if (!err.msg[0]) {
        fuzz_fail("bl_checkpoint_load_model failed without a message");
    } else {
        fuzz_note("checkpoint", err.msg);
    }
    if (ctx->mem.cur_bytes != 0) fuzz_fail("the model's memory accounting does not return to 0");
    return 0;
}
