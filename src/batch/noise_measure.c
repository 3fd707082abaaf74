/* Noise scale of a fixed model over many random batches (see
 * include/batchlab/noise_measure.h).
 *
 * Sampling: a persistent index permutation is partially reshuffled for each
 * draw (Fisher-Yates over its first b_big slots), which gives b_big distinct
 * uniform samples per draw in O(b_big) with no per-draw allocation. Draws are
 * independent of each other.
 *
 * Why the model state is snapshotted: a train-mode forward is required (batch
 * norm's backward uses the statistics that forward saves), but it also moves
 * the running statistics. Measuring must not change the model, or a sweep that
 * measures mid-training would train differently from one that does not. Dropout
 * has no state to restore: draw d uses the masks of "step" d, which a training
 * run sets again before its own forward passes. */
#include "batchlab/noise_measure.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/alloc.h"
#include "core/sort.h"

void bl_noise_measure_config_default(bl_noise_measure_config *c) {
    memset(c, 0, sizeof *c);
    c->b_small = 32;
    c->b_big = 512;
    c->draws = 100;
    c->seed = 1;
    c->loss = BL_LOSS_XENT;
    c->confidence = 0.95;
    c->n_boot = 2000;
}

/* Ratio of means for one bootstrap resample; +inf when |G|^2 is not positive. */
static double resample_ratio(const double *g2, const double *tr, int n, bl_rng *r) {
    double sg = 0, st = 0;
    for (int i = 0; i < n; i++) {
        uint32_t k = bl_rng_below(r, (uint32_t)n);
        sg += g2[k], st += tr[k];
    }
    return sg > 0 ? st / sg : INFINITY;
}

/* The interval; BL_ERR_NOMEM rather than NaN bounds, which would read as "unbounded". */
static bl_status bootstrap(bl_noise_measurement *out, const double *g2, const double *tr, int n,
                           const bl_noise_measure_config *c, bl_error *err) {
    int nb = c->n_boot > 0 ? c->n_boot : 2000;
    double *v = bl_malloc((size_t)nb * sizeof *v);
    out->scale_lo = out->scale_hi = NAN;
    if (!v)
        return bl_fail(err, BL_ERR_NOMEM, "noise scale: out of memory for %d bootstrap resamples",
                       nb);
    bl_rng r;
    bl_rng_derive(&r, c->seed, 0x6e6f697365ULL /* "noise" */);
    for (int b = 0; b < nb; b++)
        v[b] = resample_ratio(g2, tr, n, &r);
    qsort(v, (size_t)nb, sizeof *v, bl_cmp_double);
    double a = (1 - c->confidence) / 2;
    int lo = (int)floor(a * (nb - 1)), hi = (int)ceil((1 - a) * (nb - 1));
    out->scale_lo = v[lo];
    out->scale_hi = v[hi];
    bl_free(v);
    return BL_OK;
}

static double std_error(const double *v, int n, double mean) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (v[i] - mean) * (v[i] - mean);
    return n > 1 ? sqrt(s / (n - 1) / n) : NAN;
}

static bl_status check_config(const bl_model *m, const bl_dataset *ds,
                              const bl_noise_measure_config *c, bl_error *err) {
    if (c->b_small < 1 || c->b_big <= c->b_small)
        return bl_fail(err, BL_ERR_ARG,
                       "noise scale: the small batch (%d) must be at least 1 and smaller than "
                       "the big batch (%d)",
                       c->b_small, c->b_big);
    if ((size_t)c->b_big > ds->n)
        return bl_fail(err, BL_ERR_ARG,
                       "noise scale: the big batch %d exceeds the %zu samples of %s", c->b_big,
                       ds->n, ds->name);
    if (c->b_small > bl_model_max_batch(m))
        return bl_fail(err, BL_ERR_ARG,
                       "noise scale: the small batch %d exceeds the model's allocated batch %d",
                       c->b_small, bl_model_max_batch(m));
    if (c->draws < 2)
        return bl_fail(err, BL_ERR_ARG,
                       "noise scale: %d draws given; at least 2 are needed for "
                       "an interval",
                       c->draws);
    if (!(c->confidence > 0 && c->confidence < 1))
        return bl_fail(err, BL_ERR_ARG, "noise scale: confidence %g must be in (0, 1)",
                       c->confidence);
    bl_status st = bl_model_check_input(m, ds->dim, ds->name, err);
    if (!st) st = bl_dataset_check_labels(ds, bl_model_output_dim(m), err);
    return st;
}

typedef struct scratch {
    uint32_t *perm;
    float *x;
    int32_t *y;
    double *g2, *tr;
    float *buffers;
    size_t n_buffers;
} scratch;

static void scratch_free(scratch *s) {
    bl_free(s->perm), bl_free(s->x), bl_free(s->y);
    bl_free(s->g2), bl_free(s->tr), bl_free(s->buffers);
}

/* One draw: forward/backward the big batch in chunks, the first chunk being the
 * small batch. Fills |G_s|^2, |G_b|^2 and adds the loss sum. */
static bl_status one_draw(bl_model *m, const bl_dataset *ds, const bl_noise_measure_config *c,
                          scratch *s, bl_rng *r, long draw, double *g2s, double *g2b,
                          double *loss_sum, bl_error *err) {
    int mb = bl_model_max_batch(m);
    for (int i = 0; i < c->b_big; i++) { /* partial Fisher-Yates */
        uint32_t j = (uint32_t)i + bl_rng_below(r, (uint32_t)(ds->n - (size_t)i));
        uint32_t t = s->perm[i];
        s->perm[i] = s->perm[j], s->perm[j] = t;
    }
    bl_status st = bl_model_zero_grad(m, err);
    if (st) return st;
    float scale = 1.0f / (float)c->b_big;
    int correct = 0;
    for (int done = 0; done < c->b_big;) {
        int b = done == 0 ? c->b_small : (c->b_big - done < mb ? c->b_big - done : mb);
        for (int k = 0; k < b; k++) {
            uint32_t idx = s->perm[done + k];
            memcpy(s->x + (size_t)k * ds->dim, ds->x + (size_t)idx * ds->dim,
                   ds->dim * sizeof(float));
            s->y[k] = ds->y[idx];
        }
        bl_model_set_dropout_position(m, draw, (size_t)done);
        double l = 0;
        st = bl_model_forward(m, s->x, b, 1, err);
        if (!st) st = bl_model_loss(m, s->y, c->loss, &l, &correct, err);
        if (st) return st;
        if (!isfinite(l))
            return bl_fail(err, BL_ERR_NUMERIC,
                           "noise scale: the loss is not finite on %s; the "
                           "checkpoint's weights may be diverged",
                           ds->name);
        *loss_sum += l;
        if ((st = bl_model_backward(m, scale, err))) return st;
        if (done == 0) { /* the arena holds (b_small/b_big) x the small batch's mean gradient */
            double k = (double)c->b_big / c->b_small;
            if ((st = bl_model_grad_sumsq(m, g2s, err))) return st;
            *g2s *= k * k;
        }
        done += b;
    }
    if ((st = bl_model_grad_sumsq(m, g2b, err))) return st;
    if (!isfinite(*g2s) || !isfinite(*g2b))
        return bl_fail(err, BL_ERR_NUMERIC, "noise scale: the gradient is not finite on %s",
                       ds->name);
    return BL_OK;
}

bl_status bl_noise_measure(bl_model *m, const bl_dataset *ds, const bl_noise_measure_config *c,
                           bl_noise_measurement *out, bl_error *err) {
    memset(out, 0, sizeof *out);
    out->scale = out->scale_lo = out->scale_hi = NAN;
    bl_status st = check_config(m, ds, c, err);
    if (st) return st;
    double t0 = bl_now_sec();
    int mb = bl_model_max_batch(m);
    scratch s = {0};
    s.n_buffers = bl_model_num_buffers(m);
    s.perm = bl_malloc(ds->n * sizeof *s.perm);
    s.x = bl_malloc((size_t)mb * ds->dim * sizeof *s.x);
    s.y = bl_malloc((size_t)mb * sizeof *s.y);
    s.g2 = bl_malloc((size_t)c->draws * sizeof *s.g2);
    s.tr = bl_malloc((size_t)c->draws * sizeof *s.tr);
    s.buffers = bl_malloc((s.n_buffers ? s.n_buffers : 1) * sizeof *s.buffers);
    if (!s.perm || !s.x || !s.y || !s.g2 || !s.tr || !s.buffers) {
        scratch_free(&s);
        return bl_fail(err, BL_ERR_NOMEM, "noise scale: out of memory for %d draws of %d samples",
                       c->draws, c->b_big);
    }
    for (size_t i = 0; i < ds->n; i++)
        s.perm[i] = (uint32_t)i;
    /* Transfer point: batch-norm statistics kept on the host while the draws move them. */
    st = bl_model_read(m, BL_ARENA_BUFFERS, 0, s.n_buffers, s.buffers, err);
    if (st) {
        scratch_free(&s);
        return st;
    }
    bl_model_set_grad_hook(m, NULL, NULL);

    bl_rng r;
    bl_rng_derive(&r, c->seed, 0x647261777300ULL /* "draws" */);
    /* Finite-population factors: E|G_b|^2 = |G|^2 + c(b) tr(Sigma) for b samples drawn
     * without replacement from n, with c(b) = (n - b) / (b (n - 1)) (1/b as n grows). */
    double n_all = (double)ds->n;
    double cs = (n_all - c->b_small) / (c->b_small * (n_all - 1));
    double cb = (n_all - c->b_big) / (c->b_big * (n_all - 1));
    double loss_sum = 0, sg = 0, stsum = 0;
    for (int d = 0; d < c->draws && !st; d++) {
        if (c->should_stop && c->should_stop(c->stop_arg)) {
            st = bl_fail(err, BL_ERR_INTERRUPTED, "noise scale: interrupted after %d of %d draws",
                         d, c->draws);
            break;
        }
        double g2s = 0, g2b = 0;
        st = one_draw(m, ds, c, &s, &r, d, &g2s, &g2b, &loss_sum, err);
        if (st) break;
        s.tr[d] = (g2s - g2b) / (cs - cb);
        s.g2[d] = g2b - cb * s.tr[d];
        sg += s.g2[d], stsum += s.tr[d];
    }
    bl_status rs = bl_model_write(m, BL_ARENA_BUFFERS, 0, s.n_buffers, s.buffers, err);
    if (!st) st = rs;
    if (!st) {
        int n = c->draws;
        out->b_small = c->b_small, out->b_big = c->b_big, out->draws = n;
        out->confidence = c->confidence;
        out->g2 = sg / n, out->trace = stsum / n;
        out->g2_se = std_error(s.g2, n, out->g2);
        out->trace_se = std_error(s.tr, n, out->trace);
        out->scale = out->g2 > 0 ? out->trace / out->g2 : NAN;
        out->mean_loss = loss_sum / ((double)n * c->b_big);
        st = bootstrap(out, s.g2, s.tr, n, c, err);
        out->seconds = bl_now_sec() - t0;
    }
    scratch_free(&s);
    return st;
}
