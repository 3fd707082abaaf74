/* The sweep's files: the settings record that makes a folder resumable, one
 * JSON record per finished trial, and the results table (CSV and JSON).
 *
 * Every file is written with bl_atomic_write (temp file, fsync, rename), so a
 * folder interrupted at any moment holds the previous version or the new one,
 * never a torn file. The settings record lists everything that changes a
 * trial's outcome; the batch sizes and the grid are kept beside it but not
 * compared, so a sweep can be extended with more batch sizes or multipliers
 * while its finished trials stay valid. NaN is stored as null, as in the run
 * logs, and read back as NaN. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "batch/sweep_store.h"
#include "batchlab/io.h"
#include "core/alloc.h"
#include "io/json.h"

void sweep_path(char *out, size_t cap, const char *dir, const char *rel) {
    snprintf(out, cap, "%s/%s", dir, rel);
}

void sweep_trial_id(char *out, size_t cap, int batch, double lr) {
    snprintf(out, cap, "B%d_lr%.6g", batch, lr);
}

static double get_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *sched_name(bl_sched_kind k) {
    return k == BL_SCHED_STEP ? "step" : k == BL_SCHED_COSINE ? "cosine" : "constant";
}

static const char *scale_name(bl_lr_scale_rule r) {
    return r == BL_LR_SCALE_LINEAR ? "linear" : r == BL_LR_SCALE_SQRT ? "sqrt" : "none";
}

/* A float setting as the decimal it was given as (0.05, not 0.0500000007). */
static double f32(float x) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)x);
    return strtod(b, NULL);
}

/* Everything that changes a trial's outcome. */
static cJSON *settings_json(const bl_sweep_config *c, const sweep_data_info *di) {
    const bl_train_config *t = &c->train;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "model", t->spec);
    cJSON_AddStringToObject(o, "data", c->data_name ? c->data_name : "");
    cJSON_AddNumberToObject(o, "n_train", (double)di->n_train);
    cJSON_AddNumberToObject(o, "n_val", (double)di->n_val);
    cJSON_AddNumberToObject(o, "n_test", (double)di->n_test);
    cJSON_AddStringToObject(o, "loss", bl_loss_name(t->loss));
    cJSON_AddStringToObject(o, "optimizer", bl_optim_name(&t->opt));
    cJSON_AddNumberToObject(o, "momentum", f32(t->opt.momentum));
    cJSON_AddNumberToObject(o, "nesterov", t->opt.nesterov);
    cJSON_AddNumberToObject(o, "weight_decay", f32(t->opt.weight_decay));
    cJSON_AddNumberToObject(o, "beta1", f32(t->opt.beta1));
    cJSON_AddNumberToObject(o, "beta2", f32(t->opt.beta2));
    cJSON_AddNumberToObject(o, "eps", f32(t->opt.eps));
    cJSON_AddNumberToObject(o, "lr", f32(t->lr));
    cJSON_AddStringToObject(o, "lr_scale", scale_name(t->lr_scale));
    cJSON_AddNumberToObject(o, "base_batch", t->base_batch);
    cJSON_AddStringToObject(o, "schedule", sched_name(t->sched));
    cJSON_AddNumberToObject(o, "warmup_steps", (double)t->warmup_steps);
    cJSON_AddNumberToObject(o, "step_size", (double)t->step_size);
    cJSON_AddNumberToObject(o, "gamma", f32(t->gamma));
    cJSON_AddNumberToObject(o, "min_lr", f32(t->min_lr));
    cJSON_AddNumberToObject(o, "seed", (double)t->seed);
    bl_json_add_number(o, "target_acc", c->target_acc > 0 ? c->target_acc : NAN);
    bl_json_add_number(o, "target_loss", c->target_loss > 0 ? c->target_loss : NAN);
    cJSON_AddNumberToObject(o, "eval_every_samples", (double)c->eval_every_samples);
    cJSON_AddNumberToObject(o, "max_epochs", c->max_epochs);
    cJSON_AddNumberToObject(o, "prune", c->prune);
    cJSON_AddNumberToObject(o, "noise_every", c->noise_every);
    cJSON_AddNumberToObject(o, "noise_decay", t->noise_decay);
    cJSON_AddNumberToObject(o, "noise_draws", c->noise_draws);
    cJSON_AddNumberToObject(o, "noise_small", c->noise_small);
    cJSON_AddNumberToObject(o, "noise_big", c->noise_big);
    return o;
}

static bl_status compare_settings(const char *path, const cJSON *old, const cJSON *now,
                                  bl_error *err) {
    const cJSON *item;
    cJSON_ArrayForEach(item, now) {
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(old, item->string);
        if (was && cJSON_Compare(was, item, 1)) continue;
        char *a = was ? cJSON_PrintUnformatted(was) : NULL, *b = cJSON_PrintUnformatted(item);
        bl_status st = bl_fail(err, BL_ERR_ARG,
                               "%s holds a sweep with different settings: %s is %s there but %s "
                               "now. Use another --out folder, or run with the same settings to "
                               "resume it",
                               path, item->string, a ? a : "absent", b ? b : "?");
        bl_free(a), bl_free(b);
        return st;
    }
    return BL_OK;
}

bl_status sweep_prepare_dir(const bl_sweep_config *c, const sweep_data_info *di, bl_error *err) {
    char path[4096];
    bl_status st = bl_make_dir(c->out_dir, err);
    const char *subs[] = {"trials", "logs", "plots"};
    for (int i = 0; i < 3 && !st; i++) {
        sweep_path(path, sizeof path, c->out_dir, subs[i]);
        st = bl_make_dir(path, err);
    }
    if (st) return st;
    sweep_path(path, sizeof path, c->out_dir, "sweep.json");
    unsigned mark = bl_alloc_failures();
    cJSON *now = settings_json(c, di);
    char *old_txt = bl_read_text(path);
    if (!now || bl_alloc_failures() != mark) {
        st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory building the settings", path);
    } else if (old_txt) {
        cJSON *old = cJSON_Parse(old_txt);
        const cJSON *os = old ? cJSON_GetObjectItemCaseSensitive(old, "settings") : NULL;
        if (!old && bl_alloc_failures() != mark)
            st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading it", path);
        else if (!cJSON_IsObject(os))
            st = bl_fail(err, BL_ERR_FORMAT,
                         "%s is damaged (not a sweep settings record); "
                         "delete the folder or use another --out",
                         path);
        else
            st = compare_settings(c->out_dir, os, now, err);
        cJSON_Delete(old);
    } else if (errno != ENOENT) {
        st = bl_fail(err, BL_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    bl_free(old_txt);
    if (st) {
        cJSON_Delete(now);
        return st;
    }
    cJSON *root = cJSON_CreateObject();
    bl_json_attach(root, "settings", now);
    cJSON *b = cJSON_AddArrayToObject(root, "batches");
    for (int i = 0; i < c->n_batches; i++)
        bl_json_append(b, cJSON_CreateNumber(c->batches[i]));
    cJSON *g = cJSON_AddArrayToObject(root, "lr_mults");
    for (int i = 0; i < c->n_lr_mults; i++)
        bl_json_append(g, cJSON_CreateNumber(c->lr_mults[i]));
    st = bl_json_write_built(path, root, mark, err);
    cJSON_Delete(root);
    return st;
}

/* The fields of a trial shared by its own record and the results. */
static cJSON *trial_json(const bl_trial *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddNumberToObject(o, "batch", t->batch);
    cJSON_AddNumberToObject(o, "lr_mult", t->lr_mult);
    cJSON_AddNumberToObject(o, "lr", f32(t->lr));
    cJSON_AddStringToObject(o, "status", bl_trial_status_name(t->status));
    cJSON_AddNumberToObject(o, "steps", (double)t->steps);
    cJSON_AddNumberToObject(o, "examples", (double)t->examples);
    cJSON_AddNumberToObject(o, "steps_resolution", (double)t->steps_res);
    bl_json_add_number(o, "train_s", t->train_s);
    bl_json_add_number(o, "wall_s", t->wall_s);
    bl_json_add_number(o, "val_acc", t->val_acc);
    bl_json_add_number(o, "val_loss", t->val_loss);
    bl_json_add_number(o, "train_acc", t->train_acc);
    bl_json_add_number(o, "train_loss", t->train_loss);
    bl_json_add_number(o, "test_acc", t->test_acc);
    bl_json_add_number(o, "test_loss", t->test_loss);
    bl_json_add_number(o, "gen_gap", t->gen_gap);
    cJSON_AddNumberToObject(o, "peak_mem_bytes", (double)t->peak_mem_bytes);
    bl_json_add_number(o, "noise_ema", t->noise_ema);
    bl_json_add_number(o, "noise_scale", t->noise_scale);
    bl_json_add_number(o, "noise_lo", t->noise_lo);
    bl_json_add_number(o, "noise_hi", t->noise_hi);
    return o;
}

bl_status sweep_trial_save(const char *dir, const bl_trial *t, bl_error *err) {
    char rel[128], path[4096];
    snprintf(rel, sizeof rel, "trials/%s.json", t->id);
    sweep_path(path, sizeof path, dir, rel);
    unsigned mark = bl_alloc_failures();
    cJSON *o = trial_json(t);
    cJSON *h = cJSON_AddObjectToObject(o, "history");
    const char *keys[] = {"step", "samples", "val_acc", "val_loss", "noise_scale"};
    for (int k = 0; k < 5; k++) {
        cJSON *a = cJSON_AddArrayToObject(h, keys[k]);
        for (int i = 0; i < t->n_hist; i++) {
            const bl_trial_point *p = &t->hist[i];
            double v = k == 0   ? (double)p->step
                       : k == 1 ? (double)p->samples
                       : k == 2 ? p->val_acc
                       : k == 3 ? p->val_loss
                                : p->noise_scale;
            bl_json_append(a, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
        }
    }
    bl_status st = bl_json_write_built(path, o, mark, err);
    cJSON_Delete(o);
    return st;
}

static int parse_status(const char *s, bl_trial_status *out) {
    for (int i = BL_TRIAL_REACHED; i <= BL_TRIAL_PRUNED; i++)
        if (s && !strcmp(s, bl_trial_status_name((bl_trial_status)i)))
            return *out = (bl_trial_status)i, 1;
    return 0;
}

static int read_history(bl_trial *t, const cJSON *h) {
    const cJSON *a[5];
    const char *keys[] = {"step", "samples", "val_acc", "val_loss", "noise_scale"};
    int n = -1;
    for (int k = 0; k < 5; k++) {
        a[k] = cJSON_GetObjectItemCaseSensitive(h, keys[k]);
        if (!cJSON_IsArray(a[k])) return 0;
        int len = cJSON_GetArraySize(a[k]);
        if (n >= 0 && len != n) return 0;
        n = len;
    }
    t->hist = n > 0 ? bl_calloc((size_t)n, sizeof *t->hist) : NULL;
    if (n > 0 && !t->hist) return 0;
    for (int i = 0; i < n; i++) {
        double v[5];
        for (int k = 0; k < 5; k++) {
            const cJSON *x = cJSON_GetArrayItem(a[k], i);
            v[k] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        }
        if (!(v[4] > 0)) v[4] = NAN;
        t->hist[i] = (bl_trial_point){.step = (long)v[0],
                                      .samples = (long)v[1],
                                      .val_acc = v[2],
                                      .val_loss = v[3],
                                      .noise_scale = v[4]};
    }
    t->n_hist = n;
    return 1;
}

int sweep_trial_load(const char *dir, bl_trial *t, bl_error *err) {
    char rel[128], path[4096];
    snprintf(rel, sizeof rel, "trials/%s.json", t->id);
    sweep_path(path, sizeof path, dir, rel);
    char *txt = bl_read_text(path);
    if (!txt) {
        if (errno == ENOENT) return 0;
        bl_fail(err, BL_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    unsigned mark = bl_alloc_failures();
    cJSON *o = cJSON_Parse(txt);
    bl_free(txt);
    if (!o && bl_alloc_failures() != mark) {
        bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading it", path);
        return -1;
    }
    const cJSON *st = o ? cJSON_GetObjectItemCaseSensitive(o, "status") : NULL;
    int ok = o && cJSON_IsString(st) && parse_status(st->valuestring, &t->status) &&
             get_num(o, "batch") == t->batch && isfinite(get_num(o, "steps"));
    if (ok) {
        t->steps = (long)get_num(o, "steps");
        t->examples = (long)get_num(o, "examples");
        t->train_s = get_num(o, "train_s"), t->wall_s = get_num(o, "wall_s");
        t->val_acc = get_num(o, "val_acc"), t->val_loss = get_num(o, "val_loss");
        t->train_acc = get_num(o, "train_acc"), t->train_loss = get_num(o, "train_loss");
        t->test_acc = get_num(o, "test_acc"), t->test_loss = get_num(o, "test_loss");
        t->gen_gap = get_num(o, "gen_gap");
        double pm = get_num(o, "peak_mem_bytes");
        t->peak_mem_bytes = isfinite(pm) && pm > 0 ? (size_t)pm : 0;
        t->noise_ema = get_num(o, "noise_ema");
        if (!(t->noise_ema > 0)) t->noise_ema = NAN; /* not resolved (older records kept it) */
        t->noise_scale = get_num(o, "noise_scale");
        t->noise_lo = get_num(o, "noise_lo");
        t->noise_hi = get_num(o, "noise_hi");
        if (isfinite(t->noise_scale) && !isfinite(t->noise_hi)) t->noise_hi = INFINITY;
        ok = read_history(t, cJSON_GetObjectItemCaseSensitive(o, "history"));
        if (!ok && bl_alloc_failures() != mark) {
            cJSON_Delete(o);
            bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading its history", path);
            return -1;
        }
        /* Older records: the gap between the last two evaluations of the history. */
        double res = get_num(o, "steps_resolution");
        int h = t->n_hist;
        t->steps_res = isfinite(res) ? (long)res
                       : h > 1       ? t->hist[h - 1].step - t->hist[h - 2].step
                       : h == 1      ? t->hist[0].step
                                     : 0;
    }
    cJSON_Delete(o);
    if (!ok) {
        bl_fail(err, BL_ERR_FORMAT,
                "%s is damaged or is not this trial's record; delete it to "
                "run the trial again",
                path);
        return -1;
    }
    return 1;
}

/* ---- results ---------------------------------------------------------------- */

static int is_best(const bl_sweep_config *c, const bl_sweep_result *r, int k) {
    for (int i = 0; i < c->n_batches; i++)
        if (r->best[i] == k) return 1;
    return 0;
}

static const char *regime_of(const bl_sweep_result *r, int batch) {
    return r->fit_ok ? bl_regime_name(bl_bcrit_regime(batch, r->fit.b_crit)) : "";
}

static void csv_num(FILE *f, double v, const char *fmt) {
    fputc(',', f);
    if (isfinite(v)) fprintf(f, fmt, v);
}

static bl_status write_csv(const bl_sweep_config *c, const bl_sweep_result *r, bl_error *err) {
    char path[4096];
    sweep_path(path, sizeof path, c->out_dir, "results.csv");
    bl_atomic_file af;
    bl_status st = bl_atomic_open(&af, path, err);
    if (st) return st;
    FILE *f = af.fp;
    fprintf(f, "batch,lr_mult,lr,status,best,recommended,steps,examples,train_s,wall_s,val_acc,"
               "val_loss,train_acc,test_acc,gen_gap,peak_mem_bytes,noise_ema,noise_scale,noise_lo,"
               "noise_hi,regime\n");
    for (int k = 0; k < r->n_trials; k++) {
        const bl_trial *t = &r->trials[k];
        fprintf(f, "%d,%g,%.6g,%s,%d,%d,%ld,%ld", t->batch, t->lr_mult, (double)t->lr,
                bl_trial_status_name(t->status), is_best(c, r, k), k == r->recommended, t->steps,
                t->examples);
        csv_num(f, t->train_s, "%.3f");
        csv_num(f, t->wall_s, "%.3f");
        csv_num(f, t->val_acc, "%.4f");
        csv_num(f, t->val_loss, "%.4f");
        csv_num(f, t->train_acc, "%.4f");
        csv_num(f, t->test_acc, "%.4f");
        csv_num(f, t->gen_gap, "%.4f");
        fprintf(f, ",%zu", t->peak_mem_bytes);
        csv_num(f, t->noise_ema, "%.4g");
        csv_num(f, t->noise_scale, "%.4g");
        csv_num(f, t->noise_lo, "%.4g");
        csv_num(f, t->noise_hi, "%.4g");
        fprintf(f, ",%s\n", t->status == BL_TRIAL_REACHED ? regime_of(r, t->batch) : "");
    }
    return bl_atomic_commit(&af, err);
}

bl_status sweep_write_results(const bl_sweep_config *c, const sweep_data_info *di,
                              const bl_sweep_result *r, bl_error *err) {
    bl_status st = write_csv(c, r, err);
    if (st) return st;
    unsigned mark = bl_alloc_failures();
    cJSON *root = cJSON_CreateObject();
    bl_json_attach(root, "settings", settings_json(c, di));
    cJSON_AddStringToObject(root, "gap_split", di->test_is_val ? "validation" : "test");
    cJSON *fit = cJSON_AddObjectToObject(root, "fit");
    cJSON_AddBoolToObject(fit, "ok", r->fit_ok);
    cJSON_AddNumberToObject(fit, "points", r->fit.n);
    bl_json_add_number(fit, "b_crit", r->fit.b_crit);
    bl_json_add_number(fit, "s_min", r->fit.s_min);
    bl_json_add_number(fit, "e_min", r->fit.e_min);
    bl_json_add_number(fit, "b_crit_lo", r->b_crit_lo);
    bl_json_add_number(fit, "b_crit_hi", r->b_crit_hi);
    bl_json_add_number(fit, "r2", r->fit.r2);
    bl_json_add_number(fit, "r2_log_steps", r->fit.r2_log_steps);
    cJSON_AddNumberToObject(fit, "regime_factor", BL_REGIME_FACTOR);
    if (!r->fit_ok) cJSON_AddStringToObject(fit, "message", r->fit_msg);
    if (r->recommended >= 0) {
        cJSON *rec = trial_json(&r->trials[r->recommended]);
        cJSON_AddStringToObject(rec, "regime", regime_of(r, r->trials[r->recommended].batch));
        bl_json_attach(root, "recommendation", rec);
    } else {
        cJSON_AddNullToObject(root, "recommendation");
    }
    cJSON *best = cJSON_AddArrayToObject(root, "best");
    for (int i = 0; i < c->n_batches; i++) {
        if (r->best[i] < 0) continue;
        cJSON *o = trial_json(&r->trials[r->best[i]]);
        bl_json_add_number(o, "est_train_s", r->est_train_s[i]);
        cJSON_AddStringToObject(o, "regime", regime_of(r, c->batches[i]));
        bl_json_append(best, o);
    }
    cJSON *all = cJSON_AddArrayToObject(root, "trials");
    for (int k = 0; k < r->n_trials; k++)
        bl_json_append(all, trial_json(&r->trials[k]));
    char path[4096];
    sweep_path(path, sizeof path, c->out_dir, "results.json");
    st = bl_json_write_built(path, root, mark, err);
    cJSON_Delete(root);
    return st;
}
