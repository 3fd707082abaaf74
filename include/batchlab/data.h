/* Datasets and the batch iterator.
 *
 * A bl_dataset holds every sample in memory as float32 (n, dim) plus int32
 * labels. Readers (IDX/.gz, CSV/.gz, .npy) fill one; bl_dataset_load picks the
 * reader from the file's content, not its name. Helpers normalise and split
 * it; a bl_loader walks it in mini-batches in a deterministic per-epoch order
 * derived from (seed, epoch) alone, so a run resumes from (epoch, position)
 * with no other state. A prefetch thread gathers the next batch while the
 * current one is being computed.
 *
 * Every reader rejects non-finite inputs (naming the row and column) and
 * labels that are not class numbers, so nothing downstream sees a NaN from a
 * file or a model sized by a stray label. */
#ifndef BATCHLAB_DATA_H
#define BATCHLAB_DATA_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "batchlab/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_shape {
    int c, h, w; /* per-sample shape; a flat vector of d features is (d, 1, 1) */
} bl_shape;

static inline size_t bl_shape_size(bl_shape s) {
    return (size_t)s.c * s.h * s.w;
}

/* What the samples are, for `auto` normalisation: images are scaled as a whole,
 * tabular features each on their own. */
typedef enum { BL_DATA_TABULAR = 0, BL_DATA_IMAGE = 1 } bl_data_kind;

typedef struct bl_dataset {
    size_t n;           /* samples */
    bl_shape shape;     /* per-sample shape */
    size_t dim;         /* c*h*w */
    float *x;           /* (n, dim), owned (bl_mem_alloc) */
    int32_t *y;         /* (n), owned; labels in [0, n_classes) (all 0 when unlabelled) */
    int n_classes;      /* 1 + max label seen (or as declared by the loader); 0 = unlabelled */
    char name[256];     /* where it came from, for messages and logs */
    bl_data_kind kind;  /* IMAGE: IDX, uint8 or (n, h, w) / (n, c, h, w) arrays; else TABULAR */
    const char *format; /* "CSV", ".npy" or "IDX" (a static string; NULL if built by hand) */
} bl_dataset;

/* Release the buffers (safe on a zeroed struct). */
void bl_dataset_free(bl_dataset *ds, bl_mem *mem);

/* ---- readers. Each names the file (and row/column, or byte offset) in its errors. */

/* File formats, told apart by their first bytes. */
typedef enum { BL_FILE_TEXT, BL_FILE_NPY, BL_FILE_IDX } bl_file_format;
/* Sniff path: "\x93NUMPY" is .npy, two zero bytes (IDX's 00 00 TYPE NDIM) are IDX,
 * anything else is text (CSV). A gzip file (1f 8b) is looked at after decompression and
 * sets *gz. BL_ERR_IO if the file cannot be read. */
bl_status bl_data_sniff(const char *path, bl_file_format *fmt, int *gz, bl_error *err);

#define BL_HEADER_AUTO (-1) /* bl_load_opts.header: detect it */
#define BL_CLASSES_ANY (-1) /* bl_load_opts.classes: any label in 0..65535, gaps allowed */
#define BL_MAX_CLASSES 65536
typedef struct bl_load_opts {
    int label_col;   /* CSV: 0 first, -1 last, -2 none (BL_LABEL_*), or a 0-based column */
    int header;      /* CSV: BL_HEADER_AUTO, 0 (no header) or 1 (skip line 1) */
    char sep;        /* CSV: 0 = detect from the first line, or ',' '\t' ';' ' ' (runs of
                        spaces) */
    int classes;     /* 0: K = 1 + the largest label, and each of 0..K-1 must occur;
                        K > 0: declared, labels must be < K (classes may have no rows);
                        BL_CLASSES_ANY: any label in 0..65535 */
    int min_classes; /* fail when fewer distinct labels occur (2 for training data) */
} bl_load_opts;
/* Last label column, header detected, separator detected, classes 0, min_classes 0. */
void bl_load_opts_default(bl_load_opts *o);

/* What bl_dataset_load found, for the caller to report. */
typedef struct bl_load_info {
    bl_file_format format;
    int gz;                /* the file was gzip-compressed */
    char sep;              /* CSV: the separator used */
    int header;            /* CSV: line 1 was read as a header */
    int header_detected;   /* ... because it looked like one (header was BL_HEADER_AUTO) */
    char header_text[128]; /* CSV: the header line, shortened, control characters escaped */
} bl_load_info;

/* Load path, whatever its format (bl_data_sniff): CSV (.gz or not) with its labels in a
 * column, or .npy / IDX features with labels from labels_path (NULL: unlabelled, y all
 * 0 and n_classes 0). Labels follow o->classes and o->min_classes; errors name the file
 * and the row (as numbered in the file) or element. info may be NULL. */
bl_status bl_dataset_load(bl_dataset *ds, bl_mem *mem, const char *path, const char *labels_path,
                          const bl_load_opts *o, bl_load_info *info, bl_error *err);

/* Raw IDX file (gz detected by its magic bytes 1f 8b). Returns the uint8 payload
 * (caller frees with free()) and its dims. Only type 0x08 (unsigned byte) is accepted. */
bl_status bl_idx_read_u8(const char *path, uint8_t **data, int *ndim, int dims[4], bl_error *err);
/* IDX images (n, h, w) or (n, d) + IDX labels (n). Pixels are stored as floats 0..255
 * (unnormalised; see bl_norm_fit). labels_path NULL loads the images unlabelled
 * (y all 0, n_classes 0), e.g. for prediction. Labels as BL_CLASSES_ANY. */
bl_status bl_dataset_load_idx(bl_dataset *ds, bl_mem *mem, const char *images_path,
                              const char *labels_path, bl_error *err);

typedef enum { BL_LABEL_FIRST = 0, BL_LABEL_LAST = -1, BL_LABEL_NONE = -2 } bl_label_col_special;
/* CSV (or .csv.gz): one sample per line, numeric cells, one integer label column; the
 * separator (comma, tab, semicolon or spaces) is detected from the first line.
 * label_col: 0 = first, -1 = last, k >= 0 = that 0-based column, BL_LABEL_NONE = no
 * label column (every cell is a feature; y all 0, n_classes 0). has_header skips
 * line 1. LF, CRLF and CR line endings; blank lines (only whitespace) are skipped; a
 * row with the wrong number of cells, a non-numeric or non-finite cell fails with
 * "path: row LINE, column COL: ...". Labels as BL_CLASSES_ANY (bl_dataset_load for
 * more checks). */
bl_status bl_dataset_load_csv(bl_dataset *ds, bl_mem *mem, const char *path, int label_col,
                              int has_header, bl_error *err);
/* NumPy: x.npy is float32 or uint8, C order, shape (n, ...) with 1 to 3 trailing dims
 * ((n,d) -> (d,1,1); (n,h,w) -> (1,h,w); (n,c,h,w) -> (c,h,w)); y.npy is an integer
 * array of shape (n) (int32/int64/uint8). float64 x is also read (converted to float32).
 * A NaN or Inf fails, naming the element. y_path NULL loads x unlabelled (y all 0,
 * n_classes 0). Labels as BL_CLASSES_ANY. */
bl_status bl_dataset_load_npy(bl_dataset *ds, bl_mem *mem, const char *x_path, const char *y_path,
                              bl_error *err);
/* Write a float32 C-order .npy of shape (rows, cols), atomically. */
bl_status bl_npy_write_f32(const char *path, const float *data, size_t rows, size_t cols,
                           bl_error *err);
/* Write an int64 ('<i8') C-order .npy of shape (rows, cols), atomically. */
bl_status bl_npy_write_i64(const char *path, const int64_t *data, size_t rows, size_t cols,
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
typedef enum {
    BL_NORM_NONE,
    BL_NORM_UNIT, /* x / max|x| -> [-1, 1], one scale for every feature */
    BL_NORM_STANDARD,
    BL_NORM_AUTO /* resolved when fitting: UNIT for image data, STANDARD for tabular */
} bl_norm_kind;
typedef struct bl_norm {
    bl_norm_kind kind;
    size_t dim;
    float *mean;  /* (dim) for STANDARD, owned */
    float *scale; /* (dim) multiply by this after subtracting mean, owned */
} bl_norm;
/* UNIT uses the global max of ds (255 for images); STANDARD per-feature mean and 1/std,
 * with scale 1 for a feature that is constant in ds (as scikit-learn's StandardScaler);
 * AUTO picks one of them by bl_norm_auto, and nm->kind holds the choice. */
bl_status bl_norm_fit(bl_norm *nm, bl_mem *mem, const bl_dataset *ds, bl_norm_kind kind,
                      bl_error *err);
/* The kind AUTO resolves to for ds: UNIT for images (ds->kind), else STANDARD. If why is
 * not NULL it gets the reason, e.g. "tabular CSV". */
bl_norm_kind bl_norm_auto(const bl_dataset *ds, char *why, size_t cap);
void bl_norm_apply(const bl_norm *nm, bl_dataset *ds);
void bl_norm_free(bl_norm *nm, bl_mem *mem);
/* Parse "none" | "unit" | "standard" | "auto". */
bl_status bl_norm_parse(bl_norm_kind *out, const char *s, bl_error *err);
/* "none", "unit", "standard" or "auto". */
const char *bl_norm_name(bl_norm_kind kind);

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
/* Bytes of the batch buffers bl_loader_init allocates for max_batch samples of dim
 * floats (inputs and labels, double-buffered); the permutation (4 bytes a sample of
 * the dataset) comes on top. What the memory model counts. */
size_t bl_loader_batch_bytes(size_t dim, int max_batch);
/* Next batch of up to B <= max_batch samples (B may differ call to call: adaptive batch
 * size). Returns 1 and fills out, or 0 at the end of the epoch (then the next call starts
 * epoch+1). With drop_last, a final batch smaller than B is skipped. The batch memory
 * stays valid until the next call. */
int bl_loader_next(bl_loader *ld, int B, bl_batch *out);
/* Jump to (epoch, pos), e.g. when resuming from a checkpoint. */
void bl_loader_seek(bl_loader *ld, long epoch, size_t pos);
/* Steps (updates, or batches) in one epoch of n samples at batch size `batch` (< 1
 * counts as 1): ceil(n / batch), or floor(n / batch) when the short last batch is
 * dropped. The one place this is computed: the loader, the trainer's callers (train's
 * --epochs, the sweep's epoch cap) and progress all use it. */
long bl_steps_per_epoch(size_t n, int batch, int drop_last);
/* Batches per epoch at batch size B (clamped to max_batch). */
size_t bl_loader_batches_per_epoch(const bl_loader *ld, int B);
void bl_loader_free(bl_loader *ld, bl_mem *mem);

#ifdef __cplusplus
}
#endif

#endif
