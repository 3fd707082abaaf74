/* Train a small network on Fashion-MNIST with batchlab's C library, measure
 * its gradient noise scale (the batch size beyond which bigger batches stop
 * paying off), and save a checkpoint. Only the public headers are used:
 *
 *   cc train_noise.c $(pkg-config --cflags --libs batchlab) -o train_noise
 *   ./train_noise [DATA_DIR [OUT.safetensors]]
 *
 * DATA_DIR holds the four *-ubyte.gz files; it defaults to Debian's
 * dataset-fashion-mnist package. The checkpoint loads with
 * `batchlab eval --checkpoint OUT.safetensors`. */
#include <stdio.h>
#include <batchlab/noise_measure.h>
#include <batchlab/run.h>
#include <batchlab/train.h>

/* The loop reports each epoch through a callback (the run log and stop rules
 * are its own). */
static bl_status on_event(void *user, const bl_run_event *e, bl_error *err) {
    (void)user, (void)err;
    if (e->kind == BL_RUN_EPOCH)
        printf("epoch %ld: train loss %.3f, test accuracy %.1f%%\n", e->epoch->epoch + 1,
               e->epoch->train_loss, 100 * e->epoch->val_acc);
    return BL_OK;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : BL_FASHION_MNIST_DIR;
    const char *out = argc > 2 ? argv[2] : "train_noise.safetensors";
    bl_ctx ctx; /* threads (its own pool), kernels and memory accounting: no hidden globals */
    bl_ctx_init(&ctx, 0);
    bl_error err = {0}; /* every call that can fail returns a status and fills err.msg */
    bl_dataset train = {0}, test = {0};
    bl_norm norm = {0};
    bl_trainer *t = NULL;
    int rc = 1;

    /* 1. Data: both splits, scaled to [0, 1] by statistics of the training split. */
    if (bl_dataset_load_fashion_mnist(&train, &test, &ctx.mem, dir, &err) ||
        bl_norm_fit(&norm, &ctx.mem, &train, BL_NORM_UNIT, &err))
        goto done;
    bl_norm_apply(&norm, &train);
    bl_norm_apply(&norm, &test);

    /* 2. A trainer owns the model (a spec string), the optimizer and the data order. */
    bl_train_config cfg;
    bl_train_config_default(&cfg);
    cfg.spec = "flatten,dense:256,relu,dense:10";
    cfg.batch = 64;
    cfg.lr = 0.05f; /* SGD with momentum 0.9 by default */
    if (bl_trainer_create(&t, &ctx, &cfg, &train, &err)) goto done;

    /* 3. Train with the library's loop: 300 updates of 64 samples (or 2 epochs,
     * whichever comes first), the test split evaluated at each epoch's end. */
    bl_run_config loop;
    bl_run_config_default(&loop);
    loop.steps = 300;
    loop.epochs = 2;
    loop.val = &test;
    loop.on_event = on_event;
    bl_run_result run;
    if (bl_run(t, &loop, &run, &err)) goto done;
    double loss, acc;
    if (bl_trainer_evaluate(t, &test, &loss, &acc, &err)) goto done;
    printf("after %ld steps (%s): test loss %.3f, test accuracy %.1f%%\n", bl_trainer_steps_done(t),
           run.stop_reason, loss, 100 * acc);

    /* 4. The noise scale B_simple at these weights, from 50 random batches of 256 whose
     * first 32 samples are also the small batch, with a 95% bootstrap interval. */
    bl_noise_measure_config nc;
    bl_noise_measure_config_default(&nc);
    nc.b_small = 32;
    nc.b_big = 256;
    nc.draws = 50;
    bl_noise_measurement ns;
    if (bl_noise_measure(bl_trainer_model(t), &train, &nc, &ns, &err)) goto done;
    printf("gradient noise scale B_simple %.0f (95%% interval %.0f to %.0f)\n", ns.scale,
           ns.scale_lo, ns.scale_hi);

    /* 5. A safetensors checkpoint (weights, optimizer state, normalisation), written to a
     * temporary file and renamed, so a crash never leaves half a file at `out`. */
    if (bl_trainer_save(t, out, &norm, &err)) goto done;
    printf("checkpoint %s\n", out);
    rc = 0;
done:
    if (rc) fprintf(stderr, "train_noise: error: %s\n", err.msg);
    bl_trainer_free(t);
    bl_norm_free(&norm, &ctx.mem);
    bl_dataset_free(&test, &ctx.mem);
    bl_dataset_free(&train, &ctx.mem);
    bl_ctx_free(&ctx); /* stops the context's threads */
    return rc;
}
