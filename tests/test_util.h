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
int tu_file_exists(const char *path);
/* dir/name in one of 8 rotating static buffers (so a few may be alive at once). */
const char *tu_join(const char *dir, const char *name);
/* Writes n bytes to path, gzip-compressed when gz; a fixture that cannot be written
 * is a broken test machine, so it says why and aborts. */
void tu_write_file(const char *path, const void *data, size_t n, int gz);
#endif
