/* IDX reader (the MNIST family's format), raw or gzip-compressed.
 *
 * Layout: 2 zero bytes, a type byte (0x08 = unsigned byte, the only one we
 * accept), a dimension count, that many big-endian u32 dims, then the payload.
 * Everything goes through zlib's gz* API, which reads raw files transparently;
 * we still sniff the 1f 8b magic so messages can say whether a short read means
 * a truncated gzip stream or a short raw file. The payload is read with a large
 * gzbuffer in big gzread calls, and the buffer grows geometrically up to the
 * size the header promises, so a corrupt header that claims terabytes fails on
 * the short read instead of on one giant allocation. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "data/data_internal.h"
#include "core/alloc.h"

#define IDX_GZ_BUFFER (1u << 20)    /* zlib's internal input buffer */
#define IDX_READ_CHUNK (1u << 30)   /* gzread takes an unsigned length */
#define IDX_FIRST_ALLOC (64u << 20) /* initial payload buffer before growing */
static const char IDX_ZLIB_NOMEM[] = "out of memory";

/* Read up to n bytes and return how many arrived. A zlib error (a truncated or
 * corrupt stream) sets *zmsg; a clean end of data leaves it NULL. */
static size_t gz_read_full(gzFile f, void *buf, size_t n, const char **zmsg) {
    size_t got = 0;
    *zmsg = NULL;
    while (got < n) {
        size_t want = n - got < IDX_READ_CHUNK ? n - got : IDX_READ_CHUNK;
        int r = gzread(f, (char *)buf + got, (unsigned)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got < n) {
        /* zlib reports a truncated stream as Z_BUF_ERROR, possibly with r == 0. */
        int zerr = Z_OK;
        const char *m = gzerror(f, &zerr);
        if (zerr == Z_MEM_ERROR) {
            *zmsg = IDX_ZLIB_NOMEM; /* the machine's fault, not the file's */
        } else if (zerr != Z_OK && zerr != Z_STREAM_END) {
            /* gzdopen names the stream "<fd:N>", which means nothing to a user. */
            const char *colon = strstr(m, ": ");
            *zmsg = (m[0] == '<' && colon) ? colon + 2 : m;
        }
    }
    return got;
}

typedef struct idx_src {
    const char *path;
    int is_gz;
    long long file_bytes; /* on disk (compressed size for .gz) */
} idx_src;

/* A short read: either the gzip stream itself is broken, or the (decompressed)
 * data simply ends before what the header promised. */
static bl_status short_read(bl_error *err, const idx_src *src, size_t offset, const char *what,
                            size_t need, size_t got, const char *zmsg) {
    if (zmsg == IDX_ZLIB_NOMEM)
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory decompressing the %s", src->path,
                       what);
    if (zmsg)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: unexpected end of file after %lld bytes (truncated or corrupt "
                       "gzip?): decompression stopped inside the %s (at least %zu of %zu bytes "
                       "arrived); zlib: %s",
                       src->path, src->file_bytes, what, got, need, zmsg);
    return bl_fail(err, BL_ERR_FORMAT,
                   "%s: %s ends after %zu bytes, inside the %s: it needs %zu bytes from byte "
                   "offset %zu, only %zu are there",
                   src->path, src->is_gz ? "decompressed data" : "file", offset + got, what, need,
                   offset, got);
}

bl_status bl_idx_read_u8(const char *path, uint8_t **data, int *ndim, int dims[4], bl_error *err) {
    *data = NULL;
    *ndim = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    ssize_t mr = read(fd, magic, 2);
    struct stat sb;
    idx_src src = {path, mr == 2 && magic[0] == 0x1f && magic[1] == 0x8b, 0};
    if (fstat(fd, &sb) == 0) src.file_bytes = (long long)sb.st_size;
    if (mr < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        int e = errno;
        close(fd);
        return bl_fail(err, BL_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    }
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory starting the zlib reader", path);
    }
    gzbuffer(f, IDX_GZ_BUFFER);

    bl_status st = BL_OK;
    uint8_t *buf = NULL;
    const char *zmsg = NULL;
    unsigned char head[4 + 4 * 255];
    size_t r = gz_read_full(f, head, 4, &zmsg);
    if (r != 4) {
        st = short_read(err, &src, 0, "4-byte IDX magic", 4, r, zmsg);
        goto done;
    }
    if (head[0] != 0 || head[1] != 0) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: bad IDX magic: bytes 0-1 are %02x %02x, expected 00 00 (not an IDX "
                     "file%s?)",
                     path, head[0], head[1],
                     src.is_gz ? "" : ", or a gzip file with a damaged header");
        goto done;
    }
    if (head[2] != 0x08) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: IDX type byte (offset 2) is 0x%02x; only 0x08 (unsigned byte) is "
                     "supported",
                     path, head[2]);
        goto done;
    }
    int nd = head[3];
    if (nd < 1 || nd > 4) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: IDX dimension count (offset 3) is %d; expected 1 to 4", path, nd);
        goto done;
    }
    r = gz_read_full(f, head + 4, 4 * (size_t)nd, &zmsg);
    if (r != 4 * (size_t)nd) {
        st = short_read(err, &src, 4, "IDX dimensions", 4 * (size_t)nd, r, zmsg);
        goto done;
    }
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        const unsigned char *p = head + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > INT_MAX) {
            st = bl_fail(err, BL_ERR_FORMAT, "%s: IDX dimension %d (offset %d) is %u: too large",
                         path, i, 4 + 4 * i, d);
            goto done;
        }
        dims[i] = (int)d;
        if (d != 0 && total > SIZE_MAX / d) {
            st = bl_fail(err, BL_ERR_FORMAT, "%s: IDX dimensions overflow the address space", path);
            goto done;
        }
        total *= d;
    }
    for (int i = nd; i < 4; i++)
        dims[i] = 1;

    size_t header_bytes = 4 + 4 * (size_t)nd;
    size_t cap = total < IDX_FIRST_ALLOC ? total : IDX_FIRST_ALLOC;
    buf = bl_malloc(cap ? cap : 1);
    if (!buf) {
        st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory for a %zu-byte payload", path, cap);
        goto done;
    }
    size_t got = 0;
    while (got < total) {
        if (got == cap) {
            size_t ncap = cap > total / 2 ? total : cap * 2;
            uint8_t *nb = bl_realloc(buf, ncap);
            if (!nb) {
                st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory for a %zu-byte payload", path,
                             ncap);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        r = gz_read_full(f, buf + got, cap - got, &zmsg);
        if (r < cap - got) {
            char what[160];
            int w = snprintf(what, sizeof what, "payload (dims ");
            for (int i = 0; i < nd && w < (int)sizeof what; i++)
                w += snprintf(what + w, sizeof what - w, "%s%d", i ? "x" : "", dims[i]);
            if (w < (int)sizeof what) snprintf(what + w, sizeof what - w, ")");
            st = short_read(err, &src, header_bytes, what, total, got + r, zmsg);
            goto done;
        }
        got += r;
    }
    *data = buf;
    *ndim = nd;
    buf = NULL;
done:
    bl_free(buf);
    gzclose(f);
    return st;
}

static bl_status idx_exists(const char *path, bl_error *err) {
    if (access(path, R_OK) != 0)
        return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return BL_OK;
}

bl_status data_load_idx(bl_dataset *ds, bl_mem *mem, const char *images_path,
                        const char *labels_path, const bl_load_opts *o, bl_error *err) {
    memset(ds, 0, sizeof *ds);
    /* Check both files exist before spending time decompressing either. */
    bl_status st = idx_exists(images_path, err);
    if (st == BL_OK && labels_path) st = idx_exists(labels_path, err);
    if (st != BL_OK) return st;

    uint8_t *img = NULL, *lab = NULL;
    int ind = 0, lnd = 0, idims[4], ldims[4];
    st = bl_idx_read_u8(images_path, &img, &ind, idims, err);
    if (st != BL_OK) return st;
    if (labels_path) {
        st = bl_idx_read_u8(labels_path, &lab, &lnd, ldims, err);
        if (st != BL_OK) goto done;
    }

    if (ind < 2) {
        st = bl_fail(err, BL_ERR_SHAPE,
                     "%s: images file has %d dimension(s); expected (n, d), (n, h, w) or "
                     "(n, c, h, w)",
                     images_path, ind);
        goto done;
    }
    if (lab && lnd != 1) {
        st = bl_fail(err, BL_ERR_SHAPE, "%s: labels file has %d dimensions; expected 1 (n)",
                     labels_path, lnd);
        goto done;
    }
    if (lab && idims[0] != ldims[0]) {
        st = bl_fail(err, BL_ERR_SHAPE, "%s: images count (dimension 0) is %d but %s has %d labels",
                     images_path, idims[0], labels_path, ldims[0]);
        goto done;
    }
    if (idims[0] == 0) {
        st = bl_fail(err, BL_ERR_FORMAT, "%s: images count (dimension 0) is 0", images_path);
        goto done;
    }
    bl_shape shape = {1, 1, 1};
    if (ind == 2)
        shape.c = idims[1];
    else if (ind == 3)
        shape.h = idims[1], shape.w = idims[2];
    else
        shape.c = idims[1], shape.h = idims[2], shape.w = idims[3];
    size_t n = (size_t)idims[0], dim = bl_shape_size(shape);
    if (dim == 0) {
        st = bl_fail(err, BL_ERR_SHAPE, "%s: each image has 0 values", images_path);
        goto done;
    }

    ds->x = bl_mem_alloc(mem, n * dim * sizeof(float), "dataset images", err);
    ds->y = ds->x ? bl_mem_alloc(mem, n * sizeof(int32_t), "dataset labels", err) : NULL;
    if (!ds->x || !ds->y) {
        st = err ? err->code : BL_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n * dim; i++)
        ds->x[i] = (float)img[i];
    for (size_t i = 0; lab && i < n; i++)
        ds->y[i] = lab[i];
    ds->n = n;
    ds->shape = shape;
    ds->dim = dim;
    ds->n_classes = 0; /* unlabelled: y stays all 0 */
    ds->kind = BL_DATA_IMAGE;
    ds->format = "IDX";
    snprintf(ds->name, sizeof ds->name, "%s", images_path);
    if (lab) st = data_labels_finish(ds, o, labels_path, NULL, err);
done:
    bl_free(img);
    bl_free(lab);
    if (st != BL_OK) bl_dataset_free(ds, mem);
    return st;
}

bl_status bl_dataset_load_idx(bl_dataset *ds, bl_mem *mem, const char *images_path,
                              const char *labels_path, bl_error *err) {
    bl_load_opts o;
    bl_load_opts_default(&o);
    o.classes = BL_CLASSES_ANY;
    return data_load_idx(ds, mem, images_path, labels_path, &o, err);
}
