/* The parts of a checkpoint that define where training goes next, beyond the
 * weights and the data position: the learning-rate schedule, the batch size
 * and learning-rate factor with the history of their changes, and the noise-
 * scale estimator. Without the schedule a resumed run used whatever schedule
 * its own command line implied, so a cosine resumed with another --steps took
 * another learning-rate path (41% apart) without a word; now the checkpoint's
 * schedule is the one continued, and a command line that explicitly asks for a
 * different one is refused (bl_trainer_check_schedule).
 *
 * Old checkpoints (without these keys) resume as before: the trainer keeps the
 * schedule it was created with. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/dist.h"
#include "train/checkpoint_state.h"
#include "core/alloc.h"

static const char *sched_name(bl_sched_kind k) {
    return k == BL_SCHED_STEP ? "step" : k == BL_SCHED_COSINE ? "cosine" : "constant";
}

static const char *scale_name(bl_lr_scale_rule r) {
    return r == BL_LR_SCALE_LINEAR ? "linear" : r == BL_LR_SCALE_SQRT ? "sqrt" : "none";
}

int ckpt_state_meta(const bl_trainer *t, ckpt_state_text *b, bl_meta_kv *kv) {
    const bl_train_config *c = &t->cfg;
    snprintf(b->base_batch, sizeof b->base_batch, "%d", c->base_batch);
    snprintf(b->warmup, sizeof b->warmup, "%ld", c->warmup_steps);
    snprintf(b->total, sizeof b->total, "%ld", c->total_steps);
    snprintf(b->step_size, sizeof b->step_size, "%ld", c->step_size);
    snprintf(b->gamma, sizeof b->gamma, "%.9g", (double)c->gamma);
    snprintf(b->min_lr, sizeof b->min_lr, "%.9g", (double)c->min_lr);
    snprintf(b->lr_factor, sizeof b->lr_factor, "%.9g", (double)t->lr_factor);
    snprintf(b->noise_g2, sizeof b->noise_g2, "%.17g", t->noise.g2_ema);
    snprintf(b->noise_tr, sizeof b->noise_tr, "%.17g", t->noise.tr_ema);
    snprintf(b->noise_n, sizeof b->noise_n, "%ld", t->noise.n);
    b->history = bl_batch_schedule_format(&t->history);
    int n = 0;
    kv[n++] = (bl_meta_kv){"schedule", sched_name(c->sched)};
    kv[n++] = (bl_meta_kv){"lr_scale", scale_name(c->lr_scale)};
    kv[n++] = (bl_meta_kv){"base_batch", b->base_batch};
    kv[n++] = (bl_meta_kv){"warmup_steps", b->warmup};
    kv[n++] = (bl_meta_kv){"total_steps", b->total};
    kv[n++] = (bl_meta_kv){"step_size", b->step_size};
    kv[n++] = (bl_meta_kv){"gamma", b->gamma};
    kv[n++] = (bl_meta_kv){"min_lr", b->min_lr};
    kv[n++] = (bl_meta_kv){"lr_factor", b->lr_factor};
    kv[n++] = (bl_meta_kv){"batch_history", b->history ? b->history : ""};
    kv[n++] = (bl_meta_kv){"noise_g2_ema", b->noise_g2};
    kv[n++] = (bl_meta_kv){"noise_trace_ema", b->noise_tr};
    kv[n++] = (bl_meta_kv){"noise_updates", b->noise_n};
    return n;
}

void ckpt_state_text_free(ckpt_state_text *b) {
    bl_free(b->history);
    b->history = NULL;
}

static bl_status meta_num(const bl_safetensors *st, const char *path, const char *key, double *out,
                          bl_error *err) {
    const char *v = bl_safetensors_meta(st, key);
    char *end;
    if (!v || !*v)
        return bl_fail(err, BL_ERR_FORMAT, "%s: checkpoint metadata has no '%s'", path, key);
    double x = strtod(v, &end);
    if (*end)
        return bl_fail(err, BL_ERR_FORMAT, "%s: checkpoint metadata '%s' = '%s' is not a number",
                       path, key, v);
    *out = x;
    return BL_OK;
}

/* The schedule and batch settings a checkpoint holds, read in full before any is used. */
typedef struct stored {
    bl_train_config cfg; /* the schedule fields, batch and micro_batch */
    float lr_factor;
    bl_batch_schedule history;
    double noise[3];
    int has_noise;
} stored;

static bl_status read_schedule(const bl_safetensors *st, const char *path, stored *s,
                               bl_error *err) {
    bl_error e = {0};
    const char *kind = bl_safetensors_meta(st, "schedule");
    const char *scale = bl_safetensors_meta(st, "lr_scale");
    if (bl_schedule_parse(&s->cfg.sched, kind, &e) ||
        bl_lr_scale_parse(&s->cfg.lr_scale, scale, &e))
        return bl_fail(err, BL_ERR_FORMAT, "%s: checkpoint metadata: %s", path, e.msg);
    const char *keys[] = {"lr",    "base_batch", "warmup_steps", "total_steps", "step_size",
                          "gamma", "min_lr",     "lr_factor",    "batch",       "micro_batch"};
    double v[10];
    for (int i = 0; i < 10; i++) {
        bl_status r = meta_num(st, path, keys[i], &v[i], err);
        if (r) return r;
    }
    s->cfg.lr = (float)v[0];
    s->cfg.base_batch = (int)v[1];
    s->cfg.warmup_steps = (long)v[2];
    s->cfg.total_steps = (long)v[3];
    s->cfg.step_size = (long)v[4];
    s->cfg.gamma = (float)v[5];
    s->cfg.min_lr = (float)v[6];
    s->lr_factor = (float)v[7];
    s->cfg.batch = (int)v[8];
    s->cfg.micro_batch = (int)v[9];
    const char *h = bl_safetensors_meta(st, "batch_history");
    if (h && *h) {
        char what[4200];
        snprintf(what, sizeof what, "%s: metadata 'batch_history'", path);
        bl_status r = bl_batch_schedule_parse(&s->history, h, what, err);
        if (r) return r;
    }
    const char *nk[] = {"noise_g2_ema", "noise_trace_ema", "noise_updates"};
    s->has_noise = bl_safetensors_meta(st, nk[0]) != NULL;
    for (int i = 0; i < 3 && s->has_noise; i++) {
        bl_status r = meta_num(st, path, nk[i], &s->noise[i], err);
        if (r) return r;
    }
    return BL_OK;
}

bl_status ckpt_state_restore(bl_trainer *t, const bl_safetensors *st, const char *path,
                             bl_error *err) {
    if (!bl_safetensors_meta(st, "schedule")) return BL_OK; /* an older checkpoint */
    stored s;
    memset(&s, 0, sizeof s);
    bl_status r = read_schedule(st, path, &s, err);
    int world = bl_dist_size(t->ctx->dist), reserve = bl_model_max_batch(t->model);
    /* A run that changed its batch continues at the batch it had reached. */
    int batch = t->cfg.batch, micro = t->cfg.micro_batch;
    if (!r && s.history.n) {
        batch = s.cfg.batch, micro = s.cfg.micro_batch;
        if (batch < 1 || (size_t)batch > t->train->n || batch % world || micro < 1 ||
            micro > reserve || (batch / world) % micro)
            r = bl_fail(err, BL_ERR_ARG,
                        "%s: the checkpoint's run had changed its batch to %d (micro-batch %d); "
                        "this trainer reserves %d samples per micro-batch across %d rank(s), "
                        "which does not fit: resume with --batch auto or --batch-schedule",
                        path, batch, micro, reserve, world);
    }
    const bl_tensor *nr = bl_safetensors_find(st, "rng.noise");
    if (!r && nr && nr->nbytes != sizeof t->noise_rng.s)
        r = bl_fail(err, BL_ERR_FORMAT, "%s: checkpoint tensor 'rng.noise' is not 32 bytes", path);
    if (r) {
        bl_batch_schedule_free(&s.history);
        return r;
    }
    bl_train_config *c = &t->cfg;
    c->sched = s.cfg.sched, c->lr_scale = s.cfg.lr_scale, c->lr = s.cfg.lr;
    c->base_batch = s.cfg.base_batch, c->warmup_steps = s.cfg.warmup_steps;
    c->total_steps = s.cfg.total_steps, c->step_size = s.cfg.step_size;
    c->gamma = s.cfg.gamma, c->min_lr = s.cfg.min_lr;
    c->batch = batch, c->micro_batch = micro;
    t->lr_factor = s.lr_factor;
    bl_batch_schedule_free(&t->history);
    t->history = s.history;
    if (nr) memcpy(t->noise_rng.s, nr->data, sizeof t->noise_rng.s);
    if (s.has_noise) {
        t->noise.g2_ema = s.noise[0], t->noise.tr_ema = s.noise[1];
        t->noise.n = (long)s.noise[2];
    }
    return BL_OK;
}

bl_status bl_trainer_check_schedule(const bl_trainer *t, const bl_train_config *asked,
                                    unsigned explicit_set, char *note, size_t note_cap,
                                    bl_error *err) {
    const bl_train_config *c = &t->cfg;
    if (note && note_cap) note[0] = '\0';
    int asked_base = asked->base_batch > 0 ? asked->base_batch : asked->batch;
    char was[64] = "", now[64] = "";
    const char *what = NULL;
#define DIFF(bit, name, cond, fmt, a, b)                                                           \
    if (!what && (explicit_set & (bit)) && (cond)) {                                               \
        what = name;                                                                               \
        snprintf(was, sizeof was, fmt, a);                                                         \
        snprintf(now, sizeof now, fmt, b);                                                         \
    }
    DIFF(BL_SCHED_SET_KIND, "--schedule", c->sched != asked->sched, "%s", sched_name(c->sched),
         sched_name(asked->sched))
    DIFF(BL_SCHED_SET_LR, "--lr", c->lr != asked->lr, "%.7g", (double)c->lr, (double)asked->lr)
    DIFF(BL_SCHED_SET_LR_SCALE, "--lr-scale", c->lr_scale != asked->lr_scale, "%s",
         scale_name(c->lr_scale), scale_name(asked->lr_scale))
    DIFF(BL_SCHED_SET_BASE_BATCH, "--base-batch", c->base_batch != asked_base, "%d", c->base_batch,
         asked_base)
    DIFF(BL_SCHED_SET_WARMUP, "--warmup", c->warmup_steps != asked->warmup_steps, "%ld",
         c->warmup_steps, asked->warmup_steps)
    DIFF(BL_SCHED_SET_STEP_SIZE, "--step-size",
         c->sched == BL_SCHED_STEP && c->step_size != asked->step_size, "%ld", c->step_size,
         asked->step_size)
    DIFF(BL_SCHED_SET_GAMMA, "--gamma", c->sched == BL_SCHED_STEP && c->gamma != asked->gamma,
         "%.7g", (double)c->gamma, (double)asked->gamma)
    DIFF(BL_SCHED_SET_MIN_LR, "--min-lr", c->sched == BL_SCHED_COSINE && c->min_lr != asked->min_lr,
         "%.7g", (double)c->min_lr, (double)asked->min_lr)
#undef DIFF
    if (what)
        return bl_fail(err, BL_ERR_ARG,
                       "the checkpoint continues a learning-rate schedule with %s %s, but this run "
                       "asks for %s: resuming keeps the checkpoint's schedule, so that the "
                       "learning-rate path does not change; leave %s out (or start a new run)",
                       what, was, now, what);
    if (note && c->sched == BL_SCHED_COSINE && c->total_steps != asked->total_steps)
        snprintf(note, note_cap,
                 "the checkpoint's cosine schedule runs over %ld updates; it continues unchanged "
                 "(this run's --steps/--epochs would give %ld, and only decide when to stop)",
                 c->total_steps, asked->total_steps);
    return BL_OK;
}
