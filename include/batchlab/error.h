/* Errors are values. Every library call that can fail returns a bl_status and,
 * when given a bl_error, fills a message that names the file, line, field or
 * token at fault. Only cli/ prints messages and exits. */
#ifndef BATCHLAB_ERROR_H
#define BATCHLAB_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bl_status {
    BL_OK = 0,
    BL_ERR_IO,          /* file missing, unreadable, or a write/rename failed */
    BL_ERR_FORMAT,      /* malformed file contents (bad magic, truncated, non-numeric cell) */
    BL_ERR_ARG,         /* invalid argument, option value or model spec token */
    BL_ERR_SHAPE,       /* dimensions that do not match */
    BL_ERR_NOMEM,       /* allocation failed, or the memory budget would be exceeded */
    BL_ERR_NUMERIC,     /* NaN or Inf where a finite number was required */
    BL_ERR_UNSUPPORTED, /* feature not built in (e.g. CUDA, MPI) */
    BL_ERR_INTERRUPTED, /* stopped by a signal; state on disk is consistent */
    BL_ERR_DEVICE,      /* the device (GPU, its driver or library) reported a failure */
} bl_status;

typedef struct bl_error {
    bl_status code;
    char msg[1024];
} bl_error;

/* Record an error (err may be NULL) and return code, so callers can write
 * `return bl_fail(err, BL_ERR_IO, "%s: %s", path, strerror(errno));` */
bl_status bl_fail(bl_error *err, bl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message with more context ("while loading X: ..."). */
bl_status bl_error_prefix(bl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bl_error_clear(bl_error *err);
/* Short stable name of a status ("io", "format", ...). */
const char *bl_status_name(bl_status s);

#ifdef __cplusplus
}
#endif

#endif
