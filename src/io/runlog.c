/* JSON Lines run log. Records are built with cJSON so strings and non-finite
 * numbers are always valid JSON (NaN becomes null). */
#include "batchlab/runlog.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bl_status bl_runlog_open(bl_runlog *log, const char *path, int append, bl_error *err) {
    log->fp = fopen(path, append ? "a" : "w");
    if (!log->fp) return bl_fail(err, BL_ERR_IO, "%s: cannot open log: %s", path, strerror(errno));
    return BL_OK;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void emit(bl_runlog *log, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fputs(s, log->fp);
        fputc('\n', log->fp);
        fflush(log->fp);
        free(s);
    }
    cJSON_Delete(o);
}

void bl_runlog_step(bl_runlog *log, const bl_step_info *s) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "step");
    add_num(o, "step", (double)s->step);
    add_num(o, "epoch", (double)s->epoch);
    add_num(o, "samples_seen", (double)s->samples_seen);
    add_num(o, "batch", s->batch);
    add_num(o, "lr", s->lr);
    add_num(o, "loss", s->loss);
    add_num(o, "accuracy", s->acc);
    add_num(o, "grad_norm", s->grad_norm);
    add_num(o, "step_time_s", s->step_time_s);
    add_num(o, "samples_per_s", s->samples_per_s);
    if (s->comm_time_s > 0) add_num(o, "comm_time_s", s->comm_time_s);
    add_num(o, "peak_mem_bytes", (double)s->peak_mem_bytes);
    if (s->has_noise) {
        add_num(o, "noise_g2", s->noise_g2);
        add_num(o, "noise_trace", s->noise_trace);
        add_num(o, "noise_scale", s->noise_scale);
    }
    emit(log, o);
}

void bl_runlog_epoch(bl_runlog *log, const bl_epoch_info *e) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "epoch");
    add_num(o, "epoch", (double)e->epoch);
    add_num(o, "step", (double)e->step);
    add_num(o, "samples_seen", (double)e->samples_seen);
    add_num(o, "train_loss", e->train_loss);
    add_num(o, "train_accuracy", e->train_acc);
    add_num(o, "val_loss", e->val_loss);
    add_num(o, "val_accuracy", e->val_acc);
    add_num(o, "elapsed_s", e->elapsed_s);
    emit(log, o);
}

void bl_runlog_decision(bl_runlog *log, const bl_adapt_decision *d, int changed, float lr) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "decision");
    add_num(o, "step", (double)d->step);
    cJSON_AddBoolToObject(o, "changed", changed);
    add_num(o, "from_batch", d->from_batch);
    add_num(o, "to_batch", d->to_batch);
    add_num(o, "noise_scale", d->noise_scale);
    add_num(o, "goodput_from", d->goodput_from);
    add_num(o, "goodput_to", d->goodput_to);
    add_num(o, "lr", lr);
    cJSON_AddStringToObject(o, "reason", d->reason);
    emit(log, o);
}

void bl_runlog_eval(bl_runlog *log, long step, long samples_seen, double val_loss, double val_acc,
                    double elapsed_s) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "eval");
    add_num(o, "step", (double)step);
    add_num(o, "samples_seen", (double)samples_seen);
    add_num(o, "val_loss", val_loss);
    add_num(o, "val_accuracy", val_acc);
    add_num(o, "elapsed_s", elapsed_s);
    emit(log, o);
}

void bl_runlog_close(bl_runlog *log) {
    if (log && log->fp) fclose(log->fp);
    if (log) log->fp = NULL;
}
