/* Batch-size schedules (see include/batchlab/batch_schedule.h): a growing
 * array, its text form for checkpoint metadata, and the two file formats a
 * run can be replayed from.
 *
 * Exactness: a replay must give the same float learning-rate factors as the
 * run it repeats. The text form prints them with %.9g, which round-trips a
 * float; a JSON log holds the factor as the double that cJSON printed with up
 * to 17 digits, which reads back to the same double and so to the same float. */
#include "batchlab/batch_schedule.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/alloc.h"

bl_status bl_batch_schedule_add(bl_batch_schedule *s, long step, int batch, float lr_factor,
                                bl_error *err) {
    if (s->n && step < s->v[s->n - 1].step)
        return bl_fail(err, BL_ERR_ARG, "batch schedule: step %ld comes after step %ld", step,
                       s->v[s->n - 1].step);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        bl_batch_change *v = bl_realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return bl_fail(err, BL_ERR_NOMEM, "batch schedule: out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (bl_batch_change){step, batch, lr_factor};
    return BL_OK;
}

const bl_batch_change *bl_batch_schedule_at(const bl_batch_schedule *s, long step) {
    const bl_batch_change *hit = NULL;
    for (int i = 0; i < s->n && s->v[i].step <= step; i++)
        hit = &s->v[i];
    return hit;
}

int bl_batch_schedule_max_batch(const bl_batch_schedule *s) {
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (s->v[i].batch > m) m = s->v[i].batch;
    return m;
}

void bl_batch_schedule_free(bl_batch_schedule *s) {
    if (!s) return;
    bl_free(s->v);
    memset(s, 0, sizeof *s);
}

char *bl_batch_schedule_format(const bl_batch_schedule *s) {
    size_t cap = 64 + (size_t)s->n * 48, len = 0;
    char *out = bl_malloc(cap);
    if (!out) return NULL;
    out[0] = '\0';
    for (int i = 0; i < s->n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%ld:%d:%.9g", i ? ";" : "", s->v[i].step,
                                s->v[i].batch, (double)s->v[i].lr_factor);
    return out;
}

static bl_status check_entry(long step, long batch, double f, const char *what, int line,
                             bl_error *err) {
    if (step < 0 || batch < 1 || batch > 1L << 30 || !(f >= 0) || f > 1e30)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s:%d: step %ld, batch %ld, lr factor %g: need step >= 0, batch >= 1 and "
                       "a factor >= 0",
                       what, line, step, batch, f);
    return BL_OK;
}

bl_status bl_batch_schedule_parse(bl_batch_schedule *s, const char *text, const char *what,
                                  bl_error *err) {
    const char *p = text;
    for (int k = 1; *p; k++) {
        char *end;
        errno = 0;
        long step = strtol(p, &end, 10);
        long batch = *end == ':' ? strtol(end + 1, &end, 10) : -1;
        double f = *end == ':' ? strtod(end + 1, &end) : -1;
        if (errno || (*end && *end != ';'))
            return bl_fail(err, BL_ERR_FORMAT, "%s: entry %d of the batch schedule is malformed",
                           what, k);
        bl_status st = check_entry(step, batch, f, what, k, err);
        if (!st) st = bl_batch_schedule_add(s, step, (int)batch, (float)f, err);
        if (st) return st;
        p = *end ? end + 1 : end;
    }
    return BL_OK;
}

static double num_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* One line of a JSON Lines run log: the first step record gives the first batch, each
 * decision record a change. Other records are skipped unparsed. */
static bl_status log_line(bl_batch_schedule *s, const char *line, const char *path, int lineno,
                          int *have_first, bl_error *err) {
    int is_step = !*have_first && strstr(line, "\"type\":\"step\"");
    if (!is_step && !strstr(line, "\"type\":\"decision\"")) return BL_OK;
    cJSON *o = cJSON_Parse(line);
    if (!o) return bl_fail(err, BL_ERR_FORMAT, "%s:%d: not a JSON object", path, lineno);
    bl_status st;
    if (is_step) {
        double b = num_field(o, "batch");
        st = check_entry(0, (long)b, 0, path, lineno, err);
        if (!st) st = bl_batch_schedule_add(s, 0, (int)b, 0, err);
        *have_first = 1;
    } else {
        double step = num_field(o, "step"), b = num_field(o, "to_batch"),
               f = num_field(o, "lr_factor");
        if (f < 0)
            st = bl_fail(err, BL_ERR_FORMAT,
                         "%s:%d: the decision record has no lr_factor (a log from an older "
                         "batchlab cannot be replayed exactly)",
                         path, lineno);
        else
            st = check_entry((long)step, (long)b, f, path, lineno, err);
        if (!st) st = bl_batch_schedule_add(s, (long)step, (int)b, (float)f, err);
    }
    cJSON_Delete(o);
    if (st && st != BL_ERR_FORMAT) bl_error_prefix(err, "%s:%d", path, lineno);
    return st;
}

/* One CSV row "step,batch[,lr_factor]"; a header (first line, not numeric) is skipped. */
static bl_status csv_line(bl_batch_schedule *s, const char *line, const char *path, int lineno,
                          bl_error *err) {
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '\n' || *p == '\r') return BL_OK;
    if (lineno == 1 && (*p < '0' || *p > '9')) return BL_OK;
    char *end;
    errno = 0;
    long step = strtol(p, &end, 10), batch = -1;
    double f = 0;
    if (*end == ',') batch = strtol(end + 1, &end, 10);
    if (*end == ',') f = strtod(end + 1, &end);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    if (errno || *end || batch < 0)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s:%d: expected step,batch[,lr_factor] (integers, then a number)", path,
                       lineno);
    bl_status st = check_entry(step, batch, f, path, lineno, err);
    if (!st) st = bl_batch_schedule_add(s, step, (int)batch, (float)f, err);
    if (st == BL_ERR_ARG) bl_error_prefix(err, "%s:%d", path, lineno);
    return st;
}

bl_status bl_batch_schedule_load(bl_batch_schedule *s, const char *path, bl_error *err) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, is_log = -1, have_first = 0;
    bl_status st = BL_OK;
    while (!st && getline(&line, &cap, f) > 0) {
        lineno++;
        if (is_log < 0) {
            const char *p = line + strspn(line, " \t\r\n");
            if (!*p) continue;
            is_log = *p == '{';
        }
        st = is_log ? log_line(s, line, path, lineno, &have_first, err)
                    : csv_line(s, line, path, lineno, err);
    }
    bl_free(line);
    fclose(f);
    if (!st && s->n == 0)
        st = bl_fail(err, BL_ERR_FORMAT, "%s: no batch schedule in it (%s)", path,
                     is_log > 0 ? "a run log without step records"
                                : "expected a run log or CSV rows step,batch[,lr_factor]");
    if (!st && s->v[0].step != 0)
        st = bl_fail(err, BL_ERR_FORMAT, "%s: the schedule must start at step 0 (the first batch)",
                     path);
    if (st) bl_batch_schedule_free(s);
    return st;
}
