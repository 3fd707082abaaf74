/* Small file helpers shared by the commands that keep their state in a folder
 * (sweep, tune): whole-file reads, folder creation, and JSON written atomically
 * through bl_atomic_write. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "batchlab/io.h"
#include "core/alloc.h"
#include "io/json.h"

void bl_json_add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

bl_status bl_json_write(const char *path, const cJSON *root, bl_error *err) {
    char *txt = cJSON_Print(root);
    if (!txt) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory formatting JSON", path);
    size_t n = strlen(txt);
    txt[n] = '\n'; /* replace the terminator: the file ends with a newline */
    bl_status st = bl_atomic_write(path, txt, n + 1, err);
    bl_free(txt);
    return st;
}

void bl_json_append(cJSON *array, cJSON *item) {
    if (!array || !cJSON_AddItemToArray(array, item)) cJSON_Delete(item);
}

void bl_json_attach(cJSON *object, const char *key, cJSON *item) {
    if (!object || !cJSON_AddItemToObject(object, key, item)) cJSON_Delete(item);
}

bl_status bl_json_write_built(const char *path, const cJSON *root, unsigned mark, bl_error *err) {
    if (!root || bl_alloc_failures() != mark)
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory building its JSON", path);
    return bl_json_write(path, root, err);
}

char *bl_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = bl_malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            char *nb = bl_realloc(buf, cap * 2);
            if (!nb) bl_free(buf);
            buf = nb, cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad)
        bl_free(buf), buf = NULL, errno = EIO;
    else if (!buf)
        errno = ENOMEM;
    if (buf) buf[n] = '\0';
    return buf;
}

bl_status bl_make_dir(const char *path, bl_error *err) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return BL_OK;
        return bl_fail(err, BL_ERR_IO, "%s: exists and is not a folder", path);
    }
    return bl_fail(err, BL_ERR_IO, "%s: cannot create the folder: %s", path, strerror(errno));
}

/* Short times in milliseconds: a sweep on a small data set once printed every trial as
 * "~0.0 s". */
const char *bl_format_seconds(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0)
        snprintf(buf, cap, "–");
    else if (s < 0.0095)
        snprintf(buf, cap, s < 0.00095 ? "%.0f us" : "%.1f ms", s < 0.00095 ? s * 1e6 : s * 1e3);
    else if (s < 0.995)
        snprintf(buf, cap, "%.0f ms", s * 1e3);
    else if (s < 99.95)
        snprintf(buf, cap, "%.1f s", s);
    else
        snprintf(buf, cap, "%.0f s", s);
    return buf;
}
