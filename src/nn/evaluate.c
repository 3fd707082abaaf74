/* Whole-dataset passes in eval mode: evaluation (loss, accuracy) and batched
 * prediction. They reuse the model's activation buffers, up to max_batch at a time. */
#include "nn/layer.h"

bl_status bl_model_check_input(const bl_model *m, size_t dim, const char *what, bl_error *err) {
    size_t want = bl_shape_size(m->input);
    if (dim != want)
        return bl_fail(err, BL_ERR_SHAPE,
                       "%s: each sample has %zu values but the model expects %zu (%dx%dx%d)", what,
                       dim, want, m->input.c, m->input.h, m->input.w);
    return BL_OK;
}

bl_status bl_model_evaluate(bl_model *m, const bl_dataset *ds, bl_loss_kind loss, int chunk,
                            double *mean_loss, double *acc, bl_error *err) {
    bl_status st = bl_model_check_input(m, ds->dim, ds->name, err);
    if (st) return st;
    st = bl_dataset_check_labels(ds, bl_model_output_dim(m), err);
    if (st) return st;
    double sum = 0;
    int correct = 0;
    if (chunk <= 0 || chunk > m->max_batch) chunk = m->max_batch;
    for (size_t i = 0; i < ds->n; i += (size_t)chunk) {
        int B = ds->n - i < (size_t)chunk ? (int)(ds->n - i) : chunk;
        double l = 0;
        st = bl_model_forward(m, ds->x + i * ds->dim, B, 0, err);
        if (!st) st = bl_model_loss(m, ds->y + i, loss, &l, &correct, err);
        if (st) return st;
        sum += l;
    }
    *mean_loss = ds->n ? sum / (double)ds->n : 0;
    *acc = ds->n ? (double)correct / (double)ds->n : 0;
    return BL_OK;
}

bl_status bl_model_predict(bl_model *m, const float *x, size_t n, int B, float *out,
                           bl_error *err) {
    if (B <= 0 || B > m->max_batch)
        return bl_fail(err, BL_ERR_ARG, "batch size %d is invalid: it must be between 1 and %d", B,
                       m->max_batch);
    size_t in = bl_shape_size(m->input);
    int od = bl_model_output_dim(m);
    for (size_t i = 0; i < n; i += (size_t)B) {
        int b = n - i < (size_t)B ? (int)(n - i) : B;
        bl_status st = bl_model_forward(m, x + i * in, b, 0, err);
        if (!st) st = bl_model_output(m, out + i * od, err);
        if (st) return st;
    }
    return BL_OK;
}
