/* safetensors checkpoints: an 8-byte little-endian header length N, N bytes
 * of JSON describing each tensor (dtype, shape, [begin, end) byte offsets into
 * the data section) plus an optional "__metadata__" object of strings, then
 * the raw little-endian tensor bytes.
 *
 * Writing: the header is built with cJSON, integers are emitted as raw JSON
 * text (cJSON would print large doubles with an exponent), and it is padded
 * with spaces to a multiple of 8 bytes, as the format allows, so the data
 * section starts 8-byte aligned. The file goes through bl_atomic_*, so a
 * crash never leaves a torn checkpoint.
 *
 * Reading: the file is read whole and treated as hostile. Everything is
 * checked before any pointer into it is handed out: header length within the
 * file, JSON well formed with only whitespace padding, dtypes known, shapes of
 * at most 4 non-negative integers, offsets that match shape * dtype size, lie
 * in the data section, and tile it without overlaps, gaps or trailing bytes
 * (the rule of the reference implementation). Every message names the path
 * and the tensor or field at fault. Data pointers may be unaligned in files
 * written elsewhere, so consumers should memcpy rather than cast. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "batchlab/io.h"
#include "core/alloc.h"

#define HEADER_MAX_BYTES 100000000ULL   /* as the reference implementation */
#define JSON_INT_MAX 9007199254740992.0 /* 2^53: largest exactly representable */

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [BL_DT_F32] = {"F32", 4}, [BL_DT_F64] = {"F64", 8}, [BL_DT_I32] = {"I32", 4},
    [BL_DT_I64] = {"I64", 8}, [BL_DT_U8] = {"U8", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

static int dtype_valid(bl_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES;
}

size_t bl_dtype_size(bl_dtype dt) {
    return dtype_valid(dt) ? dtype_info[dt].size : 0;
}

const char *bl_dtype_name(bl_dtype dt) {
    return dtype_valid(dt) ? dtype_info[dt].name : "?";
}

static int dtype_parse(const char *s, bl_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (bl_dtype)i;
            return 1;
        }
    }
    return 0;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* "[4, 4]" into buf. */
static const char *shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

/* Product of dims times elem size; 0 on overflow (*ok = 0). */
static uint64_t shape_bytes(const int64_t *shape, int ndim, size_t elem, int *ok) {
    uint64_t bytes = elem;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (__builtin_mul_overflow(bytes, (uint64_t)shape[i], &bytes)) {
            *ok = 0;
            return 0;
        }
    }
    return bytes;
}

/* ---- writing ------------------------------------------------------------- */

static bl_status check_tensor_arg(const char *path, const bl_tensor *tensors, int i,
                                  bl_error *err) {
    const bl_tensor *t = &tensors[i];
    char sh[160];
    if (!t->name[0]) return bl_fail(err, BL_ERR_ARG, "%s: tensor #%d has an empty name", path, i);
    if (strnlen(t->name, sizeof t->name) == sizeof t->name)
        return bl_fail(err, BL_ERR_ARG, "%s: tensor #%d: name is not NUL-terminated", path, i);
    if (strcmp(t->name, "__metadata__") == 0)
        return bl_fail(err, BL_ERR_ARG, "%s: tensor #%d: the name '__metadata__' is reserved", path,
                       i);
    for (int j = 0; j < i; j++)
        if (strcmp(tensors[j].name, t->name) == 0)
            return bl_fail(err, BL_ERR_ARG, "%s: tensor '%s' appears twice", path, t->name);
    if (!dtype_valid(t->dtype))
        return bl_fail(err, BL_ERR_ARG, "%s: tensor '%s': dtype %d is not known", path, t->name,
                       (int)t->dtype);
    if (t->ndim < 0 || t->ndim > 4)
        return bl_fail(err, BL_ERR_ARG, "%s: tensor '%s': ndim %d is not in 0..4", path, t->name,
                       t->ndim);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0)
            return bl_fail(err, BL_ERR_ARG, "%s: tensor '%s': shape %s has a negative dimension",
                           path, t->name, shape_str(sh, sizeof sh, t->shape, t->ndim));
    int ok;
    uint64_t want = shape_bytes(t->shape, t->ndim, bl_dtype_size(t->dtype), &ok);
    if (!ok || want != (uint64_t)t->nbytes)
        return bl_fail(err, BL_ERR_ARG,
                       "%s: tensor '%s': nbytes %zu does not match shape %s of %s (%llu bytes)",
                       path, t->name, t->nbytes, shape_str(sh, sizeof sh, t->shape, t->ndim),
                       bl_dtype_name(t->dtype), (unsigned long long)want);
    if (t->nbytes && !t->data)
        return bl_fail(err, BL_ERR_ARG, "%s: tensor '%s': data is NULL", path, t->name);
    return BL_OK;
}

/* Adds key: [v0, v1, ...] with each integer printed exactly. */
static int add_int_array(cJSON *obj, const char *key, const uint64_t *v, int n) {
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    if (!arr) return 0;
    for (int i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%llu", (unsigned long long)v[i]);
        cJSON *item = cJSON_CreateRaw(num);
        if (!item) return 0;
        cJSON_AddItemToArray(arr, item);
    }
    return 1;
}

/* The JSON header text, unpadded; caller frees with cJSON_free. NULL on OOM. */
static char *build_header(const bl_tensor *tensors, int n, const bl_meta_kv *meta, int n_meta) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = 1;
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < n_meta; i++)
            ok = cJSON_AddStringToObject(m, meta[i].key, meta[i].value) != NULL;
    }
    uint64_t offset = 0;
    for (int i = 0; ok && i < n; i++) {
        const bl_tensor *t = &tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        uint64_t dims[4], span[2] = {offset, offset + t->nbytes};
        for (int d = 0; d < t->ndim; d++)
            dims[d] = (uint64_t)t->shape[d];
        ok = e && cJSON_AddStringToObject(e, "dtype", bl_dtype_name(t->dtype)) &&
             add_int_array(e, "shape", dims, t->ndim) && add_int_array(e, "data_offsets", span, 2);
        offset += t->nbytes;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

static bl_status check_meta_arg(const char *path, const bl_meta_kv *meta, int n_meta,
                                bl_error *err) {
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return bl_fail(err, BL_ERR_ARG, "%s: metadata entry #%d has a NULL key or value", path,
                           i);
        for (int j = 0; j < i; j++)
            if (strcmp(meta[j].key, meta[i].key) == 0)
                return bl_fail(err, BL_ERR_ARG, "%s: metadata key '%s' appears twice", path,
                               meta[i].key);
    }
    return BL_OK;
}

bl_status bl_safetensors_write(const char *path, const bl_tensor *tensors, int n,
                               const bl_meta_kv *meta, int n_meta, bl_error *err) {
    if (!path) return bl_fail(err, BL_ERR_ARG, "safetensors write: NULL path");
    if (!host_is_little_endian())
        return bl_fail(err, BL_ERR_UNSUPPORTED, "%s: safetensors needs a little-endian host", path);
    if (n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && !meta))
        return bl_fail(err, BL_ERR_ARG, "%s: invalid tensor or metadata list", path);
    bl_status st;
    for (int i = 0; i < n; i++)
        if ((st = check_tensor_arg(path, tensors, i, err)) != BL_OK) return st;
    if ((st = check_meta_arg(path, meta, n_meta, err)) != BL_OK) return st;

    char *json = build_header(tensors, n, meta, n_meta);
    if (!json) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory building the header", path);
    size_t json_len = strlen(json);
    size_t header_len = (json_len + 7) & ~(size_t)7;
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (uint8_t)((uint64_t)header_len >> (8 * i));

    bl_atomic_file af;
    st = bl_atomic_open(&af, path, err);
    if (st != BL_OK) {
        cJSON_free(json);
        return st;
    }
    int ok = fwrite(len_le, 1, 8, af.fp) == 8 && fwrite(json, 1, json_len, af.fp) == json_len;
    for (size_t i = json_len; ok && i < header_len; i++)
        ok = fputc(' ', af.fp) != EOF;
    for (int i = 0; ok && i < n; i++)
        if (tensors[i].nbytes)
            ok = fwrite(tensors[i].data, 1, tensors[i].nbytes, af.fp) == tensors[i].nbytes;
    cJSON_free(json);
    if (!ok) {
        int e = errno;
        bl_atomic_abort(&af);
        return bl_fail(err, BL_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return bl_atomic_commit(&af, err);
}

/* ---- reading ------------------------------------------------------------- */

static bl_status read_whole_file(const char *path, uint8_t **out, size_t *size, bl_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        fclose(fp);
        return bl_fail(err, BL_ERR_IO, "%s: not a readable regular file%s%s", path, e ? ": " : "",
                       e ? strerror(e) : "");
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = bl_malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    int e = ferror(fp) ? errno : 0;
    fclose(fp);
    if (got != n) {
        bl_free(buf);
        return bl_fail(err, BL_ERR_IO, "%s: read %zu of %zu bytes%s%s", path, got, n, e ? ": " : "",
                       e ? strerror(e) : " (file changed while reading?)");
    }
    *out = buf;
    *size = n;
    return BL_OK;
}

/* A JSON number that is a non-negative integer no larger than 2^53. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0 && d <= JSON_INT_MAX) || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Parses one tensor entry; data_size is the length of the data section. */
static bl_status parse_tensor(bl_tensor *t, uint64_t *begin, uint64_t *end, const cJSON *e,
                              const char *path, const uint8_t *data, uint64_t data_size,
                              bl_error *err) {
    const char *name = e->string;
    char sh[160];
    if (strlen(name) >= sizeof t->name)
        return bl_fail(err, BL_ERR_FORMAT, "%s: tensor '%.64s...': name longer than %zu bytes",
                       path, name, sizeof t->name - 1);
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, strlen(name) + 1);
    if (!cJSON_IsObject(e))
        return bl_fail(err, BL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path,
                       name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return bl_fail(err, BL_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path,
                       name);
    if (!dtype_parse(dt->valuestring, &t->dtype))
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: tensor '%s': dtype '%s' is not supported (F32, F64, I32, I64, U8)",
                       path, name, dt->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return bl_fail(err, BL_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path,
                       name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > 4)
        return bl_fail(err, BL_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions (max 4)", path,
                       name, ndim);
    t->ndim = ndim;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (!json_uint(dim, &v))
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: tensor '%s': shape dimension %d is not a non-negative integer",
                           path, name, d);
        t->shape[d++] = (int64_t)v;
    }

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), end))
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: tensor '%s': \"data_offsets\" must be [begin, end] of non-negative "
                       "integers",
                       path, name);
    unsigned long long b = *begin, en = *end;
    if (b > en)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] end "
                       "before they begin",
                       path, name, b, en);
    int ok;
    uint64_t want = shape_bytes(t->shape, t->ndim, bl_dtype_size(t->dtype), &ok);
    if (!ok || en - b != want)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] do not match shape %s of %s "
                       "(%s%llu bytes)",
                       path, name, b, en, shape_str(sh, sizeof sh, t->shape, t->ndim),
                       dt->valuestring, ok ? "" : "overflow, ", (unsigned long long)want);
    if (en > data_size)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the "
                       "data section (%llu bytes; is the file truncated?)",
                       path, name, b, en, (unsigned long long)data_size);
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    return BL_OK;
}

static bl_status parse_metadata(bl_safetensors *st, const cJSON *m, const char *path,
                                bl_error *err) {
    if (!cJSON_IsObject(m))
        return bl_fail(err, BL_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", path);
    int n = cJSON_GetArraySize(m);
    st->meta = bl_calloc(n ? (size_t)n : 1, sizeof *st->meta);
    if (!st->meta) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory for metadata", path);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, m) {
        if (!cJSON_IsString(kv))
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: \"__metadata__\": value of '%s' is not a string", path, kv->string);
        st->meta[st->n_meta].key = kv->string;
        st->meta[st->n_meta].value = kv->valuestring;
        st->n_meta++;
    }
    return BL_OK;
}

typedef struct span {
    uint64_t begin, end;
    int tensor;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const bl_tensor *const *)a)->name, (*(const bl_tensor *const *)b)->name);
}

/* Names must be unique; sorting keeps this O(n log n) for hostile headers. */
static bl_status check_unique(const bl_safetensors *st, const char *path, bl_error *err) {
    if (st->n < 2) return BL_OK;
    const bl_tensor **by_name = bl_malloc((size_t)st->n * sizeof *by_name);
    if (!by_name) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < st->n; i++)
        by_name[i] = &st->tensors[i];
    qsort(by_name, (size_t)st->n, sizeof *by_name, cmp_tensor_name);
    bl_status rc = BL_OK;
    for (int i = 1; i < st->n && rc == BL_OK; i++)
        if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0)
            rc = bl_fail(err, BL_ERR_FORMAT, "%s: tensor '%s' appears twice", path,
                         by_name[i]->name);
    bl_free(by_name);
    return rc;
}

/* The tensors must tile the data section exactly: no overlap, gap or tail.
 * spans is sorted in place. */
static bl_status check_tiling(const bl_safetensors *st, span *spans, const char *path,
                              uint64_t data_size, bl_error *err) {
    qsort(spans, (size_t)st->n, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (int r = 0; r < st->n; r++) {
        const span *s = &spans[r];
        const char *name = st->tensors[s->tensor].name;
        unsigned long long b = s->begin, e = s->end;
        if (b < pos)
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' "
                           "[%llu, %llu]",
                           path, name, b, e, st->tensors[spans[r - 1].tensor].name,
                           (unsigned long long)spans[r - 1].begin,
                           (unsigned long long)spans[r - 1].end);
        if (b > pos)
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] leave a gap of %llu "
                           "bytes before them",
                           path, name, b, e, b - (unsigned long long)pos);
        pos = e;
    }
    if (pos != data_size)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: data section has %llu bytes but the tensors cover only %llu", path,
                       (unsigned long long)data_size, (unsigned long long)pos);
    return BL_OK;
}

static bl_status parse_header(bl_safetensors *st, const char *path, bl_error *err) {
    if (st->size < 8)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header length", path,
                       st->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->buf[i];
    if (hlen > st->size - 8)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: header length %llu is larger than the %zu bytes after it "
                       "(not a safetensors file, or truncated)",
                       path, (unsigned long long)hlen, st->size - 8);
    if (hlen < 2 || hlen > HEADER_MAX_BYTES)
        return bl_fail(err, BL_ERR_FORMAT, "%s: header length %llu is not plausible", path,
                       (unsigned long long)hlen);
    const char *text = (const char *)st->buf + 8, *end = NULL;
    unsigned mark = bl_alloc_failures();
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (!root && bl_alloc_failures() != mark)
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading the header (%llu bytes)", path,
                       (unsigned long long)hlen);
    if (!root)
        return bl_fail(err, BL_ERR_FORMAT, "%s: header is not valid JSON (near byte %lld of %llu)",
                       path, end ? (long long)(end - text) : -1LL, (unsigned long long)hlen);
    st->json = root;
    for (const char *p = end; p < text + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: header has unexpected bytes after the JSON object (byte %lld)",
                           path, (long long)(p - text));
    if (!cJSON_IsObject(root))
        return bl_fail(err, BL_ERR_FORMAT, "%s: header is JSON but not an object", path);

    const uint8_t *data = st->buf + 8 + hlen;
    uint64_t data_size = st->size - 8 - hlen;
    int count = cJSON_GetArraySize(root);
    st->tensors = bl_calloc(count ? (size_t)count : 1, sizeof *st->tensors);
    span *spans = bl_malloc((size_t)(count ? count : 1) * sizeof *spans);
    if (!st->tensors || !spans) {
        bl_free(spans);
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory for %d header entries", path, count);
    }
    bl_status rc = BL_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            rc = st->meta ? bl_fail(err, BL_ERR_FORMAT, "%s: \"__metadata__\" appears twice", path)
                          : parse_metadata(st, e, path, err);
        } else {
            span *sp = &spans[st->n];
            rc = parse_tensor(&st->tensors[st->n], &sp->begin, &sp->end, e, path, data, data_size,
                              err);
            sp->tensor = st->n;
            if (rc == BL_OK) st->n++;
        }
        if (rc != BL_OK) break;
    }
    if (rc == BL_OK) rc = check_unique(st, path, err);
    if (rc == BL_OK) rc = check_tiling(st, spans, path, data_size, err);
    bl_free(spans);
    return rc;
}

bl_status bl_safetensors_read(bl_safetensors *st, const char *path, bl_error *err) {
    memset(st, 0, sizeof *st);
    if (!path) return bl_fail(err, BL_ERR_ARG, "safetensors read: NULL path");
    if (!host_is_little_endian())
        return bl_fail(err, BL_ERR_UNSUPPORTED, "%s: safetensors needs a little-endian host", path);
    bl_status rc = read_whole_file(path, &st->buf, &st->size, err);
    if (rc == BL_OK) rc = parse_header(st, path, err);
    if (rc != BL_OK) bl_safetensors_free(st);
    return rc;
}

const bl_tensor *bl_safetensors_find(const bl_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *bl_safetensors_meta(const bl_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

void bl_safetensors_free(bl_safetensors *st) {
    if (!st) return;
    bl_free(st->buf);
    bl_free(st->tensors);
    bl_free(st->meta);
    cJSON_Delete(st->json);
    memset(st, 0, sizeof *st);
}
