/* Error values: a status code plus a human message that names the culprit. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "batchlab/error.h"

bl_status bl_fail(bl_error *err, bl_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

bl_status bl_error_prefix(bl_error *err, const char *fmt, ...) {
    if (!err) return BL_OK;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation of an over-long message is acceptable; keep the start. */
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, "%.*s",
                 (int)(sizeof err->msg - (size_t)n - 1), old);
    return err->code;
}

void bl_error_clear(bl_error *err) {
    if (!err) return;
    err->code = BL_OK;
    err->msg[0] = '\0';
}

const char *bl_status_name(bl_status s) {
    switch (s) {
    case BL_OK:
        return "ok";
    case BL_ERR_IO:
        return "io";
    case BL_ERR_FORMAT:
        return "format";
    case BL_ERR_ARG:
        return "argument";
    case BL_ERR_SHAPE:
        return "shape";
    case BL_ERR_NOMEM:
        return "memory";
    case BL_ERR_NUMERIC:
        return "numeric";
    case BL_ERR_UNSUPPORTED:
        return "unsupported";
    case BL_ERR_INTERRUPTED:
        return "interrupted";
    case BL_ERR_DEVICE:
        return "device";
    }
    return "unknown";
}
