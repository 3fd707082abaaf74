/* Small helpers shared by the cmocka tests. */
#ifndef BL_TEST_UTIL_H
#define BL_TEST_UTIL_H
#include <stddef.h>
#include <stdint.h>

/* A fresh empty directory under /tmp, removed by tu_rmtree. Static buffer per call slot. */
const char *tu_tmpdir(void);
void tu_rmtree(const char *dir);
/* Run a shell command, capture stdout+stderr (truncated to cap) and return the exit
 * status (-1 if it died on a signal, so tests can assert "never a signal"). */
int tu_run(const char *cmd, char *out, size_t cap);
/* Max |a-b| / (atol + rtol |b|) over n; <= 1 means all within tolerance. */
double tu_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol);
/* Fill with N(0, sd) from a fixed seed. */
void tu_fill_normal(float *x, size_t n, uint64_t seed, float sd);
/* Kernels against double references: n floats of N(0, 1) from seed, n zeroed
 * doubles, and a double copy of x (calloc'd: the caller frees them). */
float *tu_frand(size_t n, uint64_t seed);
double *tu_dnew(size_t n);
double *tu_todouble(const float *x, size_t n);
/* Worst |got - want| / (atol scale + rtol |want|), scale = max(1, max |want|):
 * the absolute part follows the tensor's magnitude, because float sums of many
 * terms lose digits relative to the terms, not to the result. <= 1 passes; a
 * failure prints the worst element, prefixed by what. */
double tu_close_err(const float *got, const double *want, size_t n, double atol, double rtol,
                    const char *what);
int tu_file_exists(const char *path);
/* dir/name in one of 8 rotating static buffers (so a few may be alive at once). */
const char *tu_join(const char *dir, const char *name);
/* Writes n bytes to path, gzip-compressed when gz; a fixture that cannot be written
 * is a broken test machine, so it says why and aborts. */
void tu_write_file(const char *path, const void *data, size_t n, int gz);

/* The committed Fashion-MNIST sample (600 training, 200 test images) into train and
 * test (NULL: not kept), scaled to [0, 1] by the training split's statistics; ctx gets
 * bl_ctx_init(ctx, 1) first (the caller owes a bl_ctx_free). 0, or -1 after printing why. */
struct bl_ctx;
struct bl_dataset;
int tu_load_sample(struct bl_ctx *ctx, struct bl_dataset *train, struct bl_dataset *test);
/* Undoes tu_load_sample (test may be NULL): frees the sets, then the context. Returns 0. */
int tu_free_sample(struct bl_ctx *ctx, struct bl_dataset *train, struct bl_dataset *test);

/* ---- models, through the backend seam (tests run on "cpu" and "opaque") ---- */
#include "batchlab/model.h"
/* A host copy of a model's arena (params, grads or buffers), malloc'd: the caller
 * frees it. A failed transfer is a failed test: it says why and aborts. */
float *tu_arena(bl_model *m, bl_arena a);
/* Host values replace the arena's first n floats (aborts on failure). */
void tu_arena_set(bl_model *m, bl_arena a, const float *host, size_t n);
/* Forward (train or eval) of host x; out (may be NULL) gets the (B, out_dim) output. */
void tu_forward(bl_model *m, const float *x, int B, int train, float *out);
/* Forward (train), loss and backward with per-sample weight scale; returns the
 * loss SUM and adds argmax hits to *correct (may be NULL). Gradients accumulate. */
double tu_step(bl_model *m, const float *x, const int32_t *labels, int B, bl_loss_kind loss,
               float scale, int *correct);
/* Loss of the last forward (SUM), with hits added to *correct (may be NULL). */
double tu_loss(bl_model *m, const int32_t *labels, bl_loss_kind loss, int *correct);
/* bl_model_init / zero_grad that abort on failure. */
void tu_init(bl_model *m, uint64_t seed);
void tu_zero_grad(bl_model *m);
/* 1 when two models' arenas hold the same bits, 0 otherwise. */
int tu_arena_equal(bl_model *a, bl_model *b, bl_arena arena);
/* 1 when model m's arena holds the same bits as host[0..n), 0 otherwise. */
int tu_arena_is(bl_model *m, bl_arena arena, const float *host);
/* Reads / writes float i of a model's arena (aborts on failure). */
float tu_arena_get1(bl_model *m, bl_arena arena, size_t i);
void tu_arena_set1(bl_model *m, bl_arena arena, size_t i, float v);
#endif
