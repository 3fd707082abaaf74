/* Files that must never be left half-written: an atomic writer (temp file in
 * the same directory, fsync, rename, fsync of the directory), and safetensors
 * checkpoints built on it. */
#ifndef BATCHLAB_IO_H
#define BATCHLAB_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- atomic file ---------------------------------------------------------- */
struct bl_sink;
typedef struct bl_atomic_file {
    FILE *fp;             /* write through this */
    char path[4096];      /* final path (the target, when path was a symbolic link) */
    char tmp[4096];       /* temporary path in the same directory */
    struct bl_sink *sink; /* internal: the descriptor under fp and its first write error */
} bl_atomic_file;

/* Start writing path through "<path>.tmp.<pid>.XXXXXX" beside it, first removing the
 * orphans of earlier writes of path (same pattern, writer pid gone; the pid-less names of
 * older versions once untouched for 10 minutes). A symbolic link at path is written
 * through: its target is replaced, atomically, in the target's folder, and the link stays;
 * a dangling link or a loop is refused (BL_ERR_IO naming path). BL_ERR_ARG (path),
 * BL_ERR_IO, BL_ERR_NOMEM. */
bl_status bl_atomic_open(bl_atomic_file *af, const char *path, bl_error *err);
/* fflush + fsync + rename + fsync(dir). On any failure the temp file is removed and the
 * previous file at path, if any, is untouched. */
bl_status bl_atomic_commit(bl_atomic_file *af, bl_error *err);
/* Drop the temp file (after an error). Safe to call twice. */
void bl_atomic_abort(bl_atomic_file *af);
/* Whole-buffer convenience. */
bl_status bl_atomic_write(const char *path, const void *data, size_t n, bl_error *err);

/* ---- safetensors ------------------------------------------------------------
 * Layout: u64 LE header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value", ...}}, then the raw LE tensor bytes. */
typedef enum { BL_DT_F32, BL_DT_F64, BL_DT_I32, BL_DT_I64, BL_DT_U8 } bl_dtype;
size_t bl_dtype_size(bl_dtype dt);
const char *bl_dtype_name(bl_dtype dt); /* "F32", ... */

typedef struct bl_tensor {
    char name[128];
    bl_dtype dtype;
    int ndim;
    int64_t shape[4];
    const void *data; /* reading: points into the file buffer (owned by bl_safetensors) */
    size_t nbytes;
} bl_tensor;

typedef struct bl_meta_kv {
    const char *key;
    const char *value;
} bl_meta_kv;

/* Writes tensors (in the given order) and string metadata atomically. */
bl_status bl_safetensors_write(const char *path, const bl_tensor *tensors, int n,
                               const bl_meta_kv *meta, int n_meta, bl_error *err);

typedef struct bl_safetensors {
    uint8_t *buf; /* whole file */
    size_t size;
    bl_tensor *tensors;
    int n;
    bl_meta_kv *meta; /* strings point into an owned copy */
    int n_meta;
    void *json; /* cJSON root, owned */
} bl_safetensors;

/* Reads and validates a file: header length within the file, JSON well formed, dtypes
 * known, offsets in bounds, contiguous and matching shape*dtype. Errors name the path
 * and the offending tensor or field. */
bl_status bl_safetensors_read(bl_safetensors *st, const char *path, bl_error *err);
/* NULL if absent. */
const bl_tensor *bl_safetensors_find(const bl_safetensors *st, const char *name);
const char *bl_safetensors_meta(const bl_safetensors *st, const char *key);
void bl_safetensors_free(bl_safetensors *st);

/* ---- small helpers for run folders ------------------------------------------ */
struct cJSON;
/* Whole file into a NUL-terminated buffer the caller frees; NULL with errno set. */
char *bl_read_text(const char *path);
/* mkdir that accepts an existing folder (BL_ERR_IO if the path is something else). */
bl_status bl_make_dir(const char *path, bl_error *err);
/* root printed as JSON with a final newline, written atomically. */
bl_status bl_json_write(const char *path, const struct cJSON *root, bl_error *err);
/* o[key] = v, or null when v is NaN or infinite (JSON has no such numbers). */
void bl_json_add_number(struct cJSON *o, const char *key, double v);
/* A duration for people into buf: "850 us", "12 ms", "3.4 s", "250 s"; "–" when not finite
 * or negative. Returns buf. */
const char *bl_format_seconds(char *buf, size_t cap, double s);

#ifdef __cplusplus
}
#endif

#endif
