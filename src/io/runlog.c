/* JSON Lines run log. Records are built with cJSON so strings and non-finite
 * numbers are always valid JSON (NaN becomes null). */
#include "batchlab/runlog.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/io.h"

bl_status bl_runlog_open(bl_runlog *log, const char *path, int append, bl_error *err) {
    log->fp = fopen(path, append ? "a" : "w");
    if (!log->fp) return bl_fail(err, BL_ERR_IO, "%s: cannot open log: %s", path, strerror(errno));
    return BL_OK;
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
    bl_json_add_number(o, "step", (double)s->step);
    bl_json_add_number(o, "epoch", (double)s->epoch);
    bl_json_add_number(o, "samples_seen", (double)s->samples_seen);
    bl_json_add_number(o, "batch", s->batch);
    bl_json_add_number(o, "lr", s->lr);
    bl_json_add_number(o, "loss", s->loss);
    bl_json_add_number(o, "accuracy", s->acc);
    bl_json_add_number(o, "grad_norm", s->grad_norm);
    bl_json_add_number(o, "step_time_s", s->step_time_s);
    bl_json_add_number(o, "samples_per_s", s->samples_per_s);
    if (s->comm_time_s > 0) bl_json_add_number(o, "comm_time_s", s->comm_time_s);
    bl_json_add_number(o, "peak_mem_bytes", (double)s->peak_mem_bytes);
    if (s->has_noise) {
        bl_json_add_number(o, "noise_g2", s->noise_g2);
        bl_json_add_number(o, "noise_trace", s->noise_trace);
        bl_json_add_number(o, "noise_scale", s->noise_scale);
    }
    if (s->noise_time_s > 0) bl_json_add_number(o, "noise_time_s", s->noise_time_s);
    emit(log, o);
}

void bl_runlog_epoch(bl_runlog *log, const bl_epoch_info *e) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "epoch");
    bl_json_add_number(o, "epoch", (double)e->epoch);
    bl_json_add_number(o, "step", (double)e->step);
    bl_json_add_number(o, "samples_seen", (double)e->samples_seen);
    bl_json_add_number(o, "train_loss", e->train_loss);
    bl_json_add_number(o, "train_accuracy", e->train_acc);
    bl_json_add_number(o, "val_loss", e->val_loss);
    bl_json_add_number(o, "val_accuracy", e->val_acc);
    bl_json_add_number(o, "elapsed_s", e->elapsed_s);
    emit(log, o);
}

void bl_runlog_decision(bl_runlog *log, const bl_adapt_decision *d, int changed, float lr) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "decision");
    bl_json_add_number(o, "step", (double)d->step);
    cJSON_AddBoolToObject(o, "changed", changed);
    bl_json_add_number(o, "from_batch", d->from_batch);
    bl_json_add_number(o, "to_batch", d->to_batch);
    bl_json_add_number(o, "noise_scale", d->noise_scale);
    bl_json_add_number(o, "goodput_from", d->goodput_from);
    bl_json_add_number(o, "goodput_to", d->goodput_to);
    bl_json_add_number(o, "lr", lr);
    bl_json_add_number(o, "lr_factor", d->lr_factor);
    cJSON_AddStringToObject(o, "reason", d->reason);
    emit(log, o);
}

void bl_runlog_eval(bl_runlog *log, long step, long samples_seen, double val_loss, double val_acc,
                    double elapsed_s) {
    if (!log || !log->fp) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "eval");
    bl_json_add_number(o, "step", (double)step);
    bl_json_add_number(o, "samples_seen", (double)samples_seen);
    bl_json_add_number(o, "val_loss", val_loss);
    bl_json_add_number(o, "val_accuracy", val_acc);
    bl_json_add_number(o, "elapsed_s", elapsed_s);
    emit(log, o);
}

void bl_runlog_close(bl_runlog *log) {
    if (log && log->fp) fclose(log->fp);
    if (log) log->fp = NULL;
}
