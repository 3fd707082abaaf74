/* Datasets and the batch iterator.
 *
 * A bl_dataset holds every sample in memory as float32 (n, dim) plus int32
 * labels. Readers (IDX/.gz, CSV, .npy) fill one; helpers normalise and split
 * it; a bl_loader walks it in mini-batches in a deterministic per-epoch order
 * derived from (seed, epoch) alone, so a run resumes from (epoch, position)
 * with no other state. A prefetch thread gathers the next batch while the
 * current one is being computed. */
#ifndef BATCHLAB_DATA_H
#define BATCHLAB_DATA_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "batchlab/core.h"

typedef struct bl_shape {
    int c, h, w; /* per-sample shape; a flat vector of d features is (d, 1, 1) */
} bl_shape;

static inline size_t bl_shape_size(bl_shape s) {
    return (size_t)s.c * s.h * s.w;
}

typedef struct bl_dataset {
    size_t n;       /* samples */
    bl_shape shape; /* per-sample shape */
    size_t dim;     /* c*h*w */
    float *x;       /* (n, dim), owned (bl_mem_alloc) */
    int32_t *y;     /* (n), owned; labels in [0, n_classes) (all 0 when unlabelled) */
    int n_classes;  /* 1 + max label seen (or as declared by the loader); 0 = unlabelled */
    char name[256]; /* where it came from, for messages and logs */
} bl_dataset;

/* Release the buffers (safe on a zeroed struct). */
void bl_dataset_free(bl_dataset *ds, bl_mem *mem);

/* ---- readers. Each names the file (and row/column, or byte offset) in its errors. */

/* Raw IDX file (gz detected by its magic bytes 1f 8b). Returns the uint8 payload
 * (caller frees with free()) and its dims. Only type 0x08 (unsigned byte) is accepted. */
bl_status bl_idx_read_u8(const char *path, uint8_t **data, int *ndim, int dims[4], bl_error *err);
/* IDX images (n, h, w) or (n, d) + IDX labels (n). Pixels are stored as floats 0..255
 * (unnormalised; see bl_normalise). labels_path NULL loads the images unlabelled
 * (y all 0, n_classes 0), e.g. for prediction. */
bl_status bl_dataset_load_idx(bl_dataset *ds, bl_mem *mem, const char *images_path,
                              const char *labels_path, bl_error *err);

typedef enum { BL_LABEL_FIRST = 0, BL_LABEL_LAST = -1, BL_LABEL_NONE = -2 } bl_label_col_special;
/* CSV: one sample per line, numeric cells, one integer label column.
 * label_col: 0 = first, -1 = last, k >= 0 = that 0-based column, BL_LABEL_NONE = no
 * label column (every cell is a feature; y all 0, n_classes 0). has_header skips
 * line 1. Blank lines (only whitespace) are skipped; a row with the wrong number of
 * cells or a non-numeric cell fails with "path:LINE: column COL: ...". */
bl_status bl_dataset_load_csv(bl_dataset *ds, bl_mem *mem, const char *path, int label_col,
                              int has_header, bl_error *err);
/* NumPy: x.npy is float32 or uint8, C order, shape (n, ...) with 1 to 3 trailing dims
 * ((n,d) -> (d,1,1); (n,h,w) -> (1,h,w); (n,c,h,w) -> (c,h,w)); y.npy is an integer
 * array of shape (n) (int32/int64/uint8). float64 x is also read (converted to float32).
 * y_path NULL loads x unlabelled (y all 0, n_classes 0). */
bl_status bl_dataset_load_npy(bl_dataset *ds, bl_mem *mem, const char *x_path, const char *y_path,
                              bl_error *err);
/* Write a float32 C-order .npy of shape (rows, cols), atomically. */
bl_status bl_npy_write_f32(const char *path, const float *data, size_t rows, size_t cols,
                           bl_error *err);

/* Default directory of Debian's dataset-fashion-mnist package. */
#define BL_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* Train (60k) and test (10k) splits from dir (NULL = default). A missing file gives
 * an error that says to `apt-get install dataset-fashion-mnist`. */
bl_status bl_dataset_load_fashion_mnist(bl_dataset *train, bl_dataset *test, bl_mem *mem,
                                        const char *dir, bl_error *err);

/* Check that every label is in [0, n_classes); names the first bad sample. */
bl_status bl_dataset_check_labels(const bl_dataset *ds, int n_classes, bl_error *err);

/* ---- normalisation, fitted on the training set and applied to every split. */
typedef enum { BL_NORM_NONE, BL_NORM_UNIT /* x / max -> [0,1] */, BL_NORM_STANDARD } bl_norm_kind;
typedef struct bl_norm {
    bl_norm_kind kind;
    size_t dim;
    float *mean;  /* (dim) for STANDARD, owned */
    float *scale; /* (dim) multiply by this after subtracting mean, owned */
} bl_norm;
/* UNIT uses the global max of ds (255 for images); STANDARD per-feature mean and 1/std
 * (std floored at 1e-6 so constant pixels do not blow up). */
bl_status bl_norm_fit(bl_norm *nm, bl_mem *mem, const bl_dataset *ds, bl_norm_kind kind,
                      bl_error *err);
void bl_norm_apply(const bl_norm *nm, bl_dataset *ds);
void bl_norm_free(bl_norm *nm, bl_mem *mem);
/* Parse "none" | "unit" | "standard". */
bl_status bl_norm_parse(bl_norm_kind *out, const char *s, bl_error *err);

/* Split ds into train and validation: the last val_n samples of a seeded permutation
 * go to val. ds is consumed (its buffers are freed). val_n may be 0. */
bl_status bl_dataset_split(bl_dataset *ds, bl_dataset *train, bl_dataset *val, size_t val_n,
                           uint64_t seed, bl_mem *mem, bl_error *err);

/* ---- the batch iterator ------------------------------------------------ */
typedef struct bl_batch {
    const float *x;   /* (B, dim) */
    const int32_t *y; /* (B) */
    int B;
} bl_batch;

typedef struct bl_loader {
    const bl_dataset *ds;
    int max_batch;
    int drop_last;
    int shuffle;
    uint64_t seed;
    /* position: the next batch starts at perm[pos] of epoch `epoch` */
    long epoch;
    size_t pos;
    uint32_t *perm; /* (n) order of the current epoch */
    /* double buffer; the prefetch thread fills buf[fill] while the caller reads buf[1-fill] */
    float *xbuf[2];
    int32_t *ybuf[2];
    int prefetch;
    /* prefetch thread state (opaque to callers) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int thread_started, stop, job_pending, job_done, job_B, cur;
    size_t job_pos;
    long job_epoch;
} bl_loader;

/* max_batch > 0 and <= ds->n (else BL_ERR_ARG naming the batch size and dataset size).
 * shuffle=0 keeps file order. prefetch=1 starts the background thread. */
bl_status bl_loader_init(bl_loader *ld, const bl_dataset *ds, int max_batch, int drop_last,
                         int shuffle, uint64_t seed, int prefetch, bl_mem *mem, bl_error *err);
/* Next batch of up to B <= max_batch samples (B may differ call to call: adaptive batch
 * size). Returns 1 and fills out, or 0 at the end of the epoch (then the next call starts
 * epoch+1). With drop_last, a final batch smaller than B is skipped. The batch memory
 * stays valid until the next call. */
int bl_loader_next(bl_loader *ld, int B, bl_batch *out);
/* Jump to (epoch, pos), e.g. when resuming from a checkpoint. */
void bl_loader_seek(bl_loader *ld, long epoch, size_t pos);
/* Batches per epoch at batch size B. */
size_t bl_loader_batches_per_epoch(const bl_loader *ld, int B);
void bl_loader_free(bl_loader *ld, bl_mem *mem);

#endif
