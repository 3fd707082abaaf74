/* Dataset lifetime and whole-dataset operations: freeing, the Fashion-MNIST
 * convenience loader, label validation and the train/validation split.
 *
 * The split draws its permutation from its own derived RNG stream (tag "split"),
 * so it never correlates with the loader's per-epoch orders derived from the
 * same seed. Both halves keep file order: the permutation only decides
 * membership, which keeps shuffle=0 meaning "file order" downstream. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "batchlab/data.h"

#define SPLIT_TAG 0x73706c6974ULL /* "split" */
#define FASHION_MNIST_CLASSES 10

void bl_dataset_free(bl_dataset *ds, bl_mem *mem) {
    if (!ds) return;
    bl_mem_free(mem, ds->x);
    bl_mem_free(mem, ds->y);
    ds->x = NULL;
    ds->y = NULL;
    ds->n = 0;
}

bl_status bl_dataset_check_labels(const bl_dataset *ds, int n_classes, bl_error *err) {
    if (n_classes <= 0)
        return bl_fail(err, BL_ERR_ARG, "%s: number of classes %d is invalid: must be >= 1",
                       ds->name, n_classes);
    for (size_t i = 0; i < ds->n; i++) {
        if (ds->y[i] < 0 || ds->y[i] >= n_classes)
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: sample %zu has label %d, outside the valid range [0, %d)", ds->name,
                           i, (int)ds->y[i], n_classes);
    }
    return BL_OK;
}

/* A missing file is by far the most common failure here, so say how to fix it. */
static bl_status need_file(const char *path, const char *dir, bl_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0) return BL_OK;
    return bl_fail(err, BL_ERR_IO,
                   "%s: %s; Fashion-MNIST is not in %s: install it with: apt-get install "
                   "dataset-fashion-mnist (or pass a directory holding the four "
                   "*-ubyte.gz files)",
                   path, strerror(errno), dir);
}

static bl_status load_fmnist_split(bl_dataset *ds, bl_mem *mem, const char *dir, const char *prefix,
                                   const char *split, bl_error *err) {
    char img[4096], lab[4096];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    bl_status st = need_file(img, dir, err);
    if (st == BL_OK) st = need_file(lab, dir, err);
    if (st == BL_OK) st = bl_dataset_load_idx(ds, mem, img, lab, err);
    if (st != BL_OK) return st;
    if (ds->shape.c != 1 || ds->shape.h != 28 || ds->shape.w != 28) {
        bl_fail(err, BL_ERR_SHAPE, "%s: images are %dx%dx%d, expected Fashion-MNIST's 1x28x28", img,
                ds->shape.c, ds->shape.h, ds->shape.w);
        bl_dataset_free(ds, mem);
        return BL_ERR_SHAPE;
    }
    st = bl_dataset_check_labels(ds, FASHION_MNIST_CLASSES, err);
    if (st != BL_OK) {
        bl_dataset_free(ds, mem);
        return st;
    }
    ds->n_classes = FASHION_MNIST_CLASSES;
    snprintf(ds->name, sizeof ds->name, "fashion-mnist %s (%.200s)", split, dir);
    return BL_OK;
}

bl_status bl_dataset_load_fashion_mnist(bl_dataset *train, bl_dataset *test, bl_mem *mem,
                                        const char *dir, bl_error *err) {
    if (!dir) dir = BL_FASHION_MNIST_DIR;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    bl_status st = load_fmnist_split(train, mem, dir, "train", "train", err);
    if (st != BL_OK) return st;
    st = load_fmnist_split(test, mem, dir, "t10k", "test", err);
    if (st != BL_OK) bl_dataset_free(train, mem);
    return st;
}

/* Copy the rows of src whose membership byte equals `want`, in file order. */
static void gather_rows(bl_dataset *dst, const bl_dataset *src, const uint8_t *in_val,
                        uint8_t want) {
    size_t k = 0;
    for (size_t i = 0; i < src->n; i++) {
        if (in_val[i] != want) continue;
        memcpy(dst->x + k * src->dim, src->x + i * src->dim, src->dim * sizeof(float));
        dst->y[k++] = src->y[i];
    }
}

static bl_status alloc_like(bl_dataset *dst, const bl_dataset *src, size_t n, const char *tag,
                            bl_mem *mem, bl_error *err) {
    memset(dst, 0, sizeof *dst);
    dst->n = n;
    dst->shape = src->shape;
    dst->dim = src->dim;
    dst->n_classes = src->n_classes;
    dst->kind = src->kind;
    dst->format = src->format;
    snprintf(dst->name, sizeof dst->name, "%.200s (%s split)", src->name, tag);
    if (n == 0) return BL_OK;
    dst->x = bl_mem_alloc(mem, n * src->dim * sizeof(float), "split images", err);
    if (dst->x) dst->y = bl_mem_alloc(mem, n * sizeof(int32_t), "split labels", err);
    if (!dst->x || !dst->y) {
        bl_dataset_free(dst, mem);
        return err ? err->code : BL_ERR_NOMEM;
    }
    return BL_OK;
}

bl_status bl_dataset_split(bl_dataset *ds, bl_dataset *train, bl_dataset *val, size_t val_n,
                           uint64_t seed, bl_mem *mem, bl_error *err) {
    if (val_n >= ds->n)
        return bl_fail(err, BL_ERR_ARG,
                       "%s: validation size %zu is invalid: it must be less than the dataset "
                       "size (%zu) so training keeps at least one sample",
                       ds->name, val_n, ds->n);
    if (ds->n > UINT32_MAX)
        return bl_fail(err, BL_ERR_ARG, "%s: %zu samples is too many to split", ds->name, ds->n);
    bl_dataset src = *ds; /* train or val may alias ds */
    bl_dataset tr, va;
    if (val_n == 0) {
        /* Nothing to copy: train takes the buffers over. */
        tr = src;
        snprintf(tr.name, sizeof tr.name, "%.200s (train split)", src.name);
        alloc_like(&va, &src, 0, "val", mem, err);
        memset(ds, 0, sizeof *ds);
        *train = tr;
        *val = va;
        return BL_OK;
    }
    bl_status st = BL_OK;
    uint32_t *perm = bl_mem_alloc(mem, src.n * sizeof(uint32_t), "split permutation", err);
    uint8_t *in_val = perm ? bl_mem_alloc(mem, src.n, "split membership", err) : NULL;
    if (!perm || !in_val) {
        st = err ? err->code : BL_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < src.n; i++)
        perm[i] = (uint32_t)i;
    bl_rng r;
    bl_rng_derive(&r, seed, SPLIT_TAG);
    bl_rng_shuffle(&r, perm, src.n);
    for (size_t i = src.n - val_n; i < src.n; i++)
        in_val[perm[i]] = 1;

    st = alloc_like(&tr, &src, src.n - val_n, "train", mem, err);
    if (st != BL_OK) goto done;
    st = alloc_like(&va, &src, val_n, "val", mem, err);
    if (st != BL_OK) {
        bl_dataset_free(&tr, mem);
        goto done;
    }
    gather_rows(&tr, &src, in_val, 0);
    gather_rows(&va, &src, in_val, 1);
    bl_dataset_free(&src, mem);
    memset(ds, 0, sizeof *ds);
    *train = tr;
    *val = va;
done:
    bl_mem_free(mem, perm);
    bl_mem_free(mem, in_val);
    return st;
}
