/* ASHA search over batch size x learning rate (x momentum); see
 * include/batchlab/tune.h. One process runs the rungs one after another, so
 * "asynchronous" here means the promotion rule: a configuration moves up as
 * soon as it is in the top 1/eta of what has finished at its rung, without
 * waiting for the whole rung. */
#include "batchlab/tune.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "batchlab/io.h"
#include "batchlab/run.h"
#include "batchlab/plot.h"
#include "core/alloc.h"
#include "io/json.h"

typedef struct tune_state {
    bl_ctx *ctx;
    const bl_tune_config *c;
    const bl_dataset *train, *val;
    bl_tune_result *r;
    int order[BL_TUNE_MAX_CONFIGS];
} tune_state;

static char *path_in(char *buf, size_t n, const char *dir, const char *a, const char *b,
                     const char *ext) {
    snprintf(buf, n, "%s/%s%s%s%s", dir, a, b ? "/" : "", b ? b : "", ext ? ext : "");
    return buf;
}

static cJSON *settings_json(const bl_tune_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "spec", c->train.spec);
    cJSON_AddStringToObject(j, "optimizer", bl_optim_name(&c->train.opt));
    cJSON_AddNumberToObject(j, "seed", (double)c->train.seed);
    cJSON_AddNumberToObject(j, "base_batch", c->train.base_batch);
    cJSON_AddNumberToObject(j, "lr_scale", c->train.lr_scale);
    cJSON_AddNumberToObject(j, "min_examples", (double)c->min_examples);
    cJSON_AddNumberToObject(j, "max_examples", (double)c->max_examples);
    cJSON_AddNumberToObject(j, "eta", c->eta);
    cJSON *b = cJSON_AddArrayToObject(j, "batches");
    for (int i = 0; i < c->n_batches; i++)
        bl_json_append(b, cJSON_CreateNumber(c->batches[i]));
    cJSON *l = cJSON_AddArrayToObject(j, "lrs");
    for (int i = 0; i < c->n_lrs; i++)
        bl_json_append(l, cJSON_CreateNumber(c->lrs[i]));
    cJSON *m = cJSON_AddArrayToObject(j, "momenta");
    for (int i = 0; i < c->n_momenta; i++)
        bl_json_append(m, cJSON_CreateNumber(c->momenta[i]));
    return j;
}

/* tune.json: write it, or check that the folder holds this same search. */
static bl_status check_settings(const bl_tune_config *c, bl_error *err) {
    char path[4096];
    path_in(path, sizeof path, c->out_dir, "tune.json", NULL, NULL);
    unsigned mark = bl_alloc_failures();
    cJSON *mine = settings_json(c);
    char *text = NULL;
    bl_status st = BL_OK;
    struct stat sb;
    if (!mine || bl_alloc_failures() != mark) {
        st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory building the settings", path);
    } else if (stat(path, &sb) != 0) {
        st = bl_json_write_built(path, mine, mark, err);
    } else if (!(text = bl_read_text(path))) {
        int e = errno;
        st = bl_fail(err, e == ENOMEM ? BL_ERR_NOMEM : BL_ERR_IO, "%s: %s", path, strerror(e));
    } else {
        cJSON *theirs = cJSON_Parse(text);
        if (!theirs && bl_alloc_failures() != mark)
            st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading it", path);
        else if (!theirs)
            st = bl_fail(err, BL_ERR_FORMAT, "%s: not valid JSON", path);
        else {
            for (cJSON *it = mine->child; it && !st; it = it->next) {
                cJSON *o = cJSON_GetObjectItem(theirs, it->string);
                if (!o || !cJSON_Compare(it, o, 1))
                    st = bl_fail(err, BL_ERR_ARG,
                                 "%s holds another search (its '%s' differs); use another --out "
                                 "folder or the same settings",
                                 c->out_dir, it->string);
            }
            cJSON_Delete(theirs);
        }
        bl_free(text);
    }
    cJSON_Delete(mine);
    return st;
}

static bl_status save_trial(const tune_state *s, const bl_tune_trial *t, bl_error *err) {
    unsigned mark = bl_alloc_failures();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", t->id);
    cJSON_AddNumberToObject(j, "batch", t->batch);
    cJSON_AddNumberToObject(j, "lr", t->lr);
    cJSON_AddNumberToObject(j, "momentum", t->momentum);
    cJSON_AddNumberToObject(j, "rungs_done", t->rungs_done);
    cJSON_AddNumberToObject(j, "examples", (double)t->examples);
    cJSON_AddNumberToObject(j, "train_s", t->train_s);
    cJSON_AddBoolToObject(j, "diverged", t->diverged);
    cJSON *a = cJSON_AddArrayToObject(j, "val_accuracy"),
          *l = cJSON_AddArrayToObject(j, "val_loss");
    for (int k = 0; k < t->rungs_done; k++) {
        bl_json_append(a, cJSON_CreateNumber(t->acc[k]));
        bl_json_append(l, cJSON_CreateNumber(isfinite(t->loss[k]) ? t->loss[k] : -1));
    }
    char path[4096], name[96];
    snprintf(name, sizeof name, "%s.json", t->id);
    path_in(path, sizeof path, s->c->out_dir, "trials", name, NULL);
    bl_status st = bl_json_write_built(path, j, mark, err);
    cJSON_Delete(j);
    return st;
}

static void load_trial(const tune_state *s, bl_tune_trial *t) {
    char path[4096], name[96], *text = NULL;
    snprintf(name, sizeof name, "%s.json", t->id);
    path_in(path, sizeof path, s->c->out_dir, "trials", name, NULL);
    if (!(text = bl_read_text(path))) return;
    cJSON *j = cJSON_Parse(text);
    bl_free(text);
    if (!j) return; /* unreadable: the rung is simply run again */
    cJSON *a = cJSON_GetObjectItem(j, "val_accuracy"), *l = cJSON_GetObjectItem(j, "val_loss");
    int n = cJSON_GetArraySize(a);
    if (cJSON_GetArraySize(l) < n) n = cJSON_GetArraySize(l); /* damaged: keep what pairs */
    for (int k = 0; k < n && k < BL_TUNE_MAX_RUNGS; k++) {
        t->acc[k] = cJSON_GetNumberValue(cJSON_GetArrayItem(a, k));
        t->loss[k] = cJSON_GetNumberValue(cJSON_GetArrayItem(l, k));
    }
    t->rungs_done = n < BL_TUNE_MAX_RUNGS ? n : BL_TUNE_MAX_RUNGS;
    cJSON *e = cJSON_GetObjectItem(j, "examples"), *ts = cJSON_GetObjectItem(j, "train_s");
    t->examples = e ? (long)e->valuedouble : 0;
    t->train_s = ts ? ts->valuedouble : 0;
    t->diverged = cJSON_IsTrue(cJSON_GetObjectItem(j, "diverged"));
    cJSON_Delete(j);
}

/* Train trial t up to rung k's examples (continuing from its checkpoint), then
 * evaluate on validation and persist. */
static bl_status run_rung(tune_state *s, bl_tune_trial *t, int k, bl_error *err) {
    const bl_tune_config *c = s->c;
    bl_train_config tc = c->train;
    tc.batch = t->batch;
    tc.micro_batch = 0;
    tc.lr = t->lr;
    tc.lr_scale = BL_LR_SCALE_NONE; /* t->lr is already scaled to the batch */
    tc.noise = 0;
    if (tc.opt.kind == BL_OPT_SGD && c->n_momenta) tc.opt.momentum = t->momentum;
    char ckpt[4096], name[96];
    snprintf(name, sizeof name, "%s.safetensors", t->id);
    path_in(ckpt, sizeof ckpt, c->out_dir, "ckpt", name, NULL);
    bl_trainer *tr;
    bl_status st = bl_trainer_create(&tr, s->ctx, &tc, s->train, err);
    if (st) return st;
    if (k > 0 && (st = bl_trainer_resume(tr, ckpt, err))) {
        bl_trainer_free(tr);
        return st;
    }
    double t0 = bl_now_sec();
    bl_run_config rc;
    bl_run_config_default(&rc);
    rc.samples = s->r->rung_examples[k];
    rc.diverged_stops = 1;
    rc.should_stop = c->should_stop, rc.user = c->stop_arg;
    bl_run_result r;
    st = bl_run(tr, &rc, &r, err);
    if (!st && r.stop == BL_RUN_STOP_FLAG) st = bl_fail(err, BL_ERR_INTERRUPTED, "interrupted");
    if (st) {
        bl_trainer_free(tr);
        return st;
    }
    /* a diverged update did not count: the samples before it did */
    long seen = bl_trainer_samples_seen(tr);
    t->train_s += bl_now_sec() - t0;
    s->r->total_examples += seen - (k > 0 ? t->examples : 0);
    t->examples = seen;
    t->rungs_done = k + 1;
    if (r.stop == BL_RUN_STOP_DIVERGED) {
        t->diverged = 1;
        t->acc[k] = 0;
        t->loss[k] = NAN;
        st = BL_OK;
    } else {
        st = bl_trainer_evaluate(tr, s->val, &t->loss[k], &t->acc[k], err);
        if (!st) st = bl_trainer_save(tr, ckpt, NULL, err);
    }
    bl_trainer_free(tr);
    if (!st) st = save_trial(s, t, err);
    if (!st && c->on_rung) c->on_rung(c->rung_arg, t, k, s->r->total_examples);
    return st;
}

/* Sort idx[0..n) by accuracy at rung k, best first (n is small: insertion sort). */
static void sort_by_acc(int *idx, int n, const bl_tune_trial *t, int k) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        for (; j > 0 && t[idx[j - 1]].acc[k] < t[v].acc[k]; j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

/* ASHA: the highest-rung promotion available, else a new configuration at rung 0. */
static int next_job(tune_state *s, int *rung) {
    bl_tune_result *r = s->r;
    int idx[BL_TUNE_MAX_CONFIGS];
    for (int k = r->n_rungs - 2; k >= 0; k--) {
        int n = 0;
        for (int i = 0; i < r->n_trials; i++)
            if (r->trials[i].rungs_done > k) idx[n++] = i;
        sort_by_acc(idx, n, r->trials, k);
        for (int i = 0; i < n / s->c->eta; i++) {
            const bl_tune_trial *t = &r->trials[idx[i]];
            if (t->rungs_done == k + 1 && !t->diverged) {
                *rung = k + 1;
                return idx[i];
            }
        }
    }
    for (int i = 0; i < r->n_trials; i++)
        if (r->trials[s->order[i]].rungs_done == 0) {
            *rung = 0;
            return s->order[i];
        }
    return -1;
}

static void pick_best(bl_tune_result *r) {
    r->best = -1;
    for (int i = 0; i < r->n_trials; i++) {
        const bl_tune_trial *t = &r->trials[i];
        if (t->diverged || !t->rungs_done) continue;
        const bl_tune_trial *b = r->best >= 0 ? &r->trials[r->best] : NULL;
        if (!b || t->rungs_done > b->rungs_done ||
            (t->rungs_done == b->rungs_done &&
             t->acc[t->rungs_done - 1] > b->acc[b->rungs_done - 1]))
            r->best = i;
    }
}

static bl_status write_results(const tune_state *s, bl_error *err) {
    const bl_tune_result *r = s->r;
    char path[4096];
    bl_atomic_file af;
    path_in(path, sizeof path, s->c->out_dir, "results.csv", NULL, NULL);
    bl_status st = bl_atomic_open(&af, path, err);
    if (st) return st;
    fprintf(af.fp, "id,batch,lr,momentum,rungs_done,examples,train_s,diverged");
    for (int k = 0; k < r->n_rungs; k++)
        fprintf(af.fp, ",val_acc_r%d", k);
    fputc('\n', af.fp);
    for (int i = 0; i < r->n_trials; i++) {
        const bl_tune_trial *t = &r->trials[i];
        fprintf(af.fp, "%s,%d,%.6g,%.3g,%d,%ld,%.2f,%d", t->id, t->batch, (double)t->lr,
                (double)t->momentum, t->rungs_done, t->examples, t->train_s, t->diverged);
        for (int k = 0; k < r->n_rungs; k++)
            if (k < t->rungs_done)
                fprintf(af.fp, ",%.5f", t->acc[k]);
            else
                fprintf(af.fp, ",");
        fputc('\n', af.fp);
    }
    if ((st = bl_atomic_commit(&af, err))) return st;
    unsigned mark = bl_alloc_failures();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "total_examples", (double)r->total_examples);
    cJSON *re = cJSON_AddArrayToObject(j, "rung_examples");
    for (int k = 0; k < r->n_rungs; k++)
        bl_json_append(re, cJSON_CreateNumber((double)r->rung_examples[k]));
    if (r->best >= 0) {
        const bl_tune_trial *b = &r->trials[r->best];
        cJSON *bj = cJSON_AddObjectToObject(j, "best");
        cJSON_AddStringToObject(bj, "id", b->id);
        cJSON_AddNumberToObject(bj, "batch", b->batch);
        cJSON_AddNumberToObject(bj, "lr", b->lr);
        cJSON_AddNumberToObject(bj, "momentum", b->momentum);
        cJSON_AddNumberToObject(bj, "val_accuracy", b->acc[b->rungs_done - 1]);
        cJSON_AddNumberToObject(bj, "examples", (double)b->examples);
        if (isfinite(r->best_test_acc))
            cJSON_AddNumberToObject(bj, "test_accuracy", r->best_test_acc);
    }
    path_in(path, sizeof path, s->c->out_dir, "results.json", NULL, NULL);
    st = bl_json_write_built(path, j, mark, err);
    cJSON_Delete(j);
    return st;
}

/* Landscape: validation accuracy at rung 0 (every configuration has it) against the
 * learning rate, one line per batch size. */
static bl_status plot_landscape(const tune_state *s, bl_error *err) {
    const bl_tune_result *r = s->r;
    const bl_tune_config *c = s->c;
    double x[32][64], y[32][64];
    char titles[32][32];
    bl_plot_series ser[32];
    int ns = 0;
    for (int bi = 0; bi < c->n_batches && ns < 32; bi++) {
        int n = 0;
        for (int i = 0; i < r->n_trials && n < 64; i++) {
            const bl_tune_trial *t = &r->trials[i];
            if (t->batch != c->batches[bi] || !t->rungs_done) continue;
            if (c->n_momenta > 1 && t->momentum != c->momenta[0]) continue;
            x[ns][n] = t->lr, y[ns][n++] = t->diverged ? NAN : t->acc[0];
        }
        if (!n) continue;
        snprintf(titles[ns], sizeof titles[ns], "batch %d", c->batches[bi]);
        ser[ns] = (bl_plot_series){.title = titles[ns],
                                   .x = x[ns],
                                   .y = y[ns],
                                   .n = (size_t)n,
                                   .style = BL_PLOT_LINESPOINTS};
        ns++;
    }
    char title[160], base[4096];
    snprintf(title, sizeof title, "Validation accuracy after %ld examples (rung 0)",
             r->rung_examples[0]);
    bl_plot p = {.title = title,
                 .xlabel = "learning rate (at this batch size)",
                 .ylabel = "validation accuracy",
                 .logx = 1,
                 .series = ser,
                 .n_series = ns};
    path_in(base, sizeof base, c->out_dir, "plots", "landscape", NULL);
    /* A missing gnuplot (or nothing to draw) costs the picture, not the search; a plot
     * that could not be written is an error like any other file. */
    bl_error e = {0};
    bl_status st = bl_plot_write(&p, base, &e);
    if (st == BL_ERR_UNSUPPORTED || st == BL_ERR_ARG) return BL_OK;
    if (st && err) *err = e;
    return st;
}

bl_status bl_tune_run(bl_ctx *ctx, const bl_tune_config *c, const bl_dataset *train,
                      const bl_dataset *val, const bl_dataset *test, bl_tune_result *r,
                      bl_error *err) {
    memset(r, 0, sizeof *r);
    r->best_test_acc = NAN;
    if (c->eta < 2) return bl_fail(err, BL_ERR_ARG, "eta %d must be at least 2", c->eta);
    if (c->min_examples <= 0 || c->max_examples < c->min_examples)
        return bl_fail(err, BL_ERR_ARG, "examples per rung: need 0 < min (%ld) <= max (%ld)",
                       c->min_examples, c->max_examples);
    int nm = c->n_momenta ? c->n_momenta : 1;
    if ((long)c->n_batches * c->n_lrs * nm > BL_TUNE_MAX_CONFIGS || !c->n_batches || !c->n_lrs)
        return bl_fail(err, BL_ERR_ARG, "between 1 and %d configurations (batches x lrs x momenta)",
                       BL_TUNE_MAX_CONFIGS);
    for (long e = c->min_examples; r->n_rungs < BL_TUNE_MAX_RUNGS; e *= c->eta) {
        r->rung_examples[r->n_rungs++] = e < c->max_examples ? e : c->max_examples;
        if (e >= c->max_examples) break;
    }
    tune_state s = {.ctx = ctx, .c = c, .train = train, .val = val, .r = r};
    char dir[4096];
    bl_status st = bl_make_dir(c->out_dir, err);
    if (!st) st = bl_make_dir(path_in(dir, sizeof dir, c->out_dir, "trials", NULL, NULL), err);
    if (!st) st = bl_make_dir(path_in(dir, sizeof dir, c->out_dir, "ckpt", NULL, NULL), err);
    if (!st) st = bl_make_dir(path_in(dir, sizeof dir, c->out_dir, "plots", NULL, NULL), err);
    if (!st) st = check_settings(c, err);
    if (st) return st;
    for (int bi = 0; bi < c->n_batches; bi++)
        for (int li = 0; li < c->n_lrs; li++)
            for (int mi = 0; mi < nm; mi++) {
                bl_tune_trial *t = &r->trials[r->n_trials++];
                t->batch = c->batches[bi];
                t->lr = bl_lr_scale(c->train.lr_scale, c->lrs[li], t->batch, c->train.base_batch);
                t->momentum = c->n_momenta ? c->momenta[mi] : c->train.opt.momentum;
                snprintf(t->id, sizeof t->id, "B%d_lr%.4g_m%.3g", t->batch, (double)t->lr,
                         (double)t->momentum);
                load_trial(&s, t);
                r->total_examples += t->examples;
            }
    bl_rng rng;
    bl_rng_derive(&rng, c->train.seed, 0x74756e65); /* "tune" */
    for (int i = 0; i < r->n_trials; i++)
        s.order[i] = i;
    bl_rng_shuffle(&rng, (uint32_t *)s.order, (size_t)r->n_trials);
    int rung;
    for (int i; (i = next_job(&s, &rung)) >= 0;)
        if ((st = run_rung(&s, &r->trials[i], rung, err))) return st;
    pick_best(r);
    if (r->best >= 0 && test && test->n) {
        bl_model *m;
        bl_norm nm_ = {0};
        char ckpt[4096], name[96];
        snprintf(name, sizeof name, "%s.safetensors", r->trials[r->best].id);
        path_in(ckpt, sizeof ckpt, c->out_dir, "ckpt", name, NULL);
        double loss;
        st = bl_checkpoint_load_model(&m, &nm_, ctx, ckpt, 256, err);
        if (!st) {
            st = bl_model_evaluate(m, test, c->train.loss, 0, &loss, &r->best_test_acc, err);
            bl_model_free(m);
            bl_norm_free(&nm_, &ctx->mem);
        }
        if (st) return st;
    }
    if ((st = plot_landscape(&s, err))) return st;
    return write_results(&s, err);
}
