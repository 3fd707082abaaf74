/* JSON Lines run log. Records are built with cJSON so strings and non-finite
 * numbers are always valid JSON (NaN becomes null), except the step record, which is
 * written once per optimizer step: it holds only numbers and booleans, and is
 * formatted into the log's own buffer, so that logging allocates nothing in the step
 * loop (a cJSON tree was 40 allocations a step, counted by test_fault_units).
 *
 * Each record is one write(2) of the whole line through bl_write_all, with the
 * file opened O_APPEND. A write that fails part-way (a full disk) is cut back
 * with ftruncate to the end of the last complete record, so a reader never
 * sees a torn line, and the error names the file: a log that silently stops
 * is worse than a run that stops. */
#include "batchlab/runlog.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "batchlab/adapt.h"
#include "batchlab/io.h"
#include "batchlab/train.h"
#include "core/alloc.h"
#include "io/fileio.h"

bl_status bl_runlog_open(bl_runlog *log, const char *path, int append, bl_error *err) {
    memset(log, 0, sizeof *log);
    /* Through a symbolic link to its target, as every output (a dangling link is refused). */
    bl_status st = bl_write_target(path, log->path, sizeof log->path, err);
    if (st) return st;
    int fd =
        open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (append ? 0 : O_TRUNC), 0644);
    if (fd < 0) return bl_fail(err, BL_ERR_IO, "%s: cannot open log: %s", path, strerror(errno));
    off_t end = lseek(fd, 0, SEEK_END);
    log->fd = fd;
    log->bytes = end > 0 ? (long long)end : 0;
    log->open = 1;
    return BL_OK;
}

/* Appends line[0..n) (ending in a newline) whole, or cuts the file back to where it was. */
static bl_status write_line(bl_runlog *log, const char *line, size_t n, bl_error *err) {
    bl_status st = BL_OK;
    if (bl_write_all(log->fd, line, n) != 0) {
        int e = errno;
        /* Best effort: a failed cut leaves the torn line, and the error says so anyway. */
        int cut = ftruncate(log->fd, (off_t)log->bytes) == 0;
        st = bl_fail(err, BL_ERR_IO, "%s: writing the log failed: %s%s", log->path, strerror(e),
                     cut ? "" : " (and the partial line could not be removed)");
    } else {
        log->bytes += (long long)n;
    }
    return st;
}

bl_status bl_runlog_record(bl_runlog *log, const cJSON *o, bl_error *err) {
    if (!log || !log->open) return BL_OK;
    char *s = cJSON_PrintUnformatted(o);
    size_t n = s ? strlen(s) : 0;
    char *line = s ? bl_realloc(s, n + 2) : NULL;
    if (!line) {
        bl_free(s);
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory formatting a log record", log->path);
    }
    line[n++] = '\n';
    line[n] = '\0';
    bl_status st = write_line(log, line, n, err);
    bl_free(line);
    return st;
}

/* Writes o (taking it) unless building it ran out of memory since mark. */
static bl_status emit(bl_runlog *log, cJSON *o, unsigned mark, bl_error *err) {
    bl_status st =
        !o || bl_alloc_failures() != mark
            ? bl_fail(err, BL_ERR_NOMEM, "%s: out of memory building a log record", log->path)
            : bl_runlog_record(log, o, err);
    cJSON_Delete(o);
    return st;
}

/* A line being formatted into a fixed buffer; len past cap means it did not fit. */
typedef struct {
    char *p;
    size_t cap, len;
} line_buf;

/* ,"key":text */
static void put(line_buf *b, const char *key, const char *text) {
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n = snprintf(b->p + (b->cap - room), room, ",\"%s\":%s", key, text);
    b->len += n > 0 ? (size_t)n : 0;
}

/* A number as JSON: null when not finite; else the shorter of %.15g and %.17g that
 * reads back as v (as cJSON prints it). */
static void put_number(line_buf *b, const char *key, double v) {
    char num[32] = "null";
    if (isfinite(v)) {
        snprintf(num, sizeof num, "%.15g", v);
        if (strtod(num, NULL) != v) snprintf(num, sizeof num, "%.17g", v);
    }
    put(b, key, num);
}

bl_status bl_runlog_step(bl_runlog *log, const struct bl_step_info *s, bl_error *err) {
    if (!log || !log->open) return BL_OK;
    line_buf b = {log->line, sizeof log->line - 2, 0}; /* room for "}\n" */
    b.len = (size_t)snprintf(b.p, b.cap, "{\"type\":\"step\"");
    put_number(&b, "step", (double)s->step);
    put_number(&b, "epoch", (double)s->epoch);
    put_number(&b, "samples_seen", (double)s->samples_seen);
    put_number(&b, "batch", s->batch);
    put_number(&b, "lr", s->lr);
    put_number(&b, "loss", s->loss);
    put_number(&b, "accuracy", s->acc);
    put_number(&b, "grad_norm", s->grad_norm);
    put_number(&b, "step_time_s", s->step_time_s);
    put_number(&b, "samples_per_s", s->samples_per_s);
    if (s->comm_time_s > 0) put_number(&b, "comm_time_s", s->comm_time_s);
    if (s->overlap >= 0) put(&b, "overlap", s->overlap ? "true" : "false");
    if (s->overlap_decided) {
        put_number(&b, "overlap_on_s", s->overlap_on_s);
        put_number(&b, "overlap_off_s", s->overlap_off_s);
        put_number(&b, "overlap_ratio", s->overlap_ratio);
    }
    put_number(&b, "peak_mem_bytes", (double)s->peak_mem_bytes);
    if (s->has_noise) {
        put_number(&b, "noise_g2", s->noise_g2);
        put_number(&b, "noise_trace", s->noise_trace);
        put_number(&b, "noise_scale", s->noise_scale);
    }
    if (s->noise_time_s > 0) put_number(&b, "noise_time_s", s->noise_time_s);
    if (b.len >= b.cap) /* cannot happen with these fields; never write a cut line */
        return bl_fail(err, BL_ERR_ARG, "%s: a step record is longer than %zu bytes", log->path,
                       b.cap);
    log->line[b.len++] = '}';
    log->line[b.len++] = '\n';
    return write_line(log, log->line, b.len, err);
}

bl_status bl_runlog_epoch(bl_runlog *log, const bl_epoch_info *e, bl_error *err) {
    if (!log || !log->open) return BL_OK;
    unsigned mark = bl_alloc_failures();
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
    return emit(log, o, mark, err);
}

bl_status bl_runlog_decision(bl_runlog *log, const bl_adapt_decision *d, int changed, float lr,
                             bl_error *err) {
    if (!log || !log->open) return BL_OK;
    unsigned mark = bl_alloc_failures();
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
    return emit(log, o, mark, err);
}

bl_status bl_runlog_eval(bl_runlog *log, long step, long samples_seen, double val_loss,
                         double val_acc, double elapsed_s, bl_error *err) {
    if (!log || !log->open) return BL_OK;
    unsigned mark = bl_alloc_failures();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "eval");
    bl_json_add_number(o, "step", (double)step);
    bl_json_add_number(o, "samples_seen", (double)samples_seen);
    bl_json_add_number(o, "val_loss", val_loss);
    bl_json_add_number(o, "val_accuracy", val_acc);
    bl_json_add_number(o, "elapsed_s", elapsed_s);
    return emit(log, o, mark, err);
}

bl_status bl_runlog_end(bl_runlog *log, const char *stop_reason, const char *error, long step,
                        long samples_seen, double elapsed_s, bl_error *err) {
    if (!log || !log->open) return BL_OK;
    unsigned mark = bl_alloc_failures();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "end");
    cJSON_AddStringToObject(o, "stop", stop_reason ? stop_reason : "?");
    cJSON_AddBoolToObject(o, "ok", !error);
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    else
        cJSON_AddNullToObject(o, "error");
    bl_json_add_number(o, "step", (double)step);
    bl_json_add_number(o, "samples_seen", (double)samples_seen);
    bl_json_add_number(o, "elapsed_s", elapsed_s);
    return emit(log, o, mark, err);
}

bl_status bl_runlog_close(bl_runlog *log, bl_error *err) {
    if (!log || !log->open) return BL_OK;
    bl_status st = BL_OK;
    /* A log on a pipe or a terminal cannot be synced, and need not be. */
    if (bl_fsync(log->fd) != 0 && errno != EINVAL && errno != ENOTSUP)
        st = bl_fail(err, BL_ERR_IO, "%s: syncing the log failed: %s", log->path, strerror(errno));
    if (close(log->fd) != 0 && !st)
        st = bl_fail(err, BL_ERR_IO, "%s: closing the log failed: %s", log->path, strerror(errno));
    log->open = 0;
    return st;
}
