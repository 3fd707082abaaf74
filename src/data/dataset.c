/* Dataset lifetime and whole-dataset operations: freeing, label validation and
 * the train/validation split. The readers (idx.c, csv.c, npy.c) and the
 * Fashion-MNIST loader (fmnist.c) depend on this file, never the reverse.
 *
 * The split draws its permutation from its own derived RNG stream (tag "split"),
 * so it never correlates with the loader's per-epoch orders derived from the
 * same seed. Both halves keep file order: the permutation only decides
 * membership, which keeps shuffle=0 meaning "file order" downstream. */
#include <stdio.h>
#include <string.h>
#include "batchlab/data.h"

#define SPLIT_TAG 0x73706c6974ULL /* "split" */

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
