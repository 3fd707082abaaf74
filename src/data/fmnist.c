/* The Fashion-MNIST convenience loader: the four IDX files of Debian's
 * dataset-fashion-mnist package (or a folder holding them), checked for the
 * 1x28x28 shape and the ten classes. Built on the IDX reader (idx.c) and the
 * dataset operations (dataset.c), neither of which knows about it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "batchlab/data.h"

#define FASHION_MNIST_CLASSES 10

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
