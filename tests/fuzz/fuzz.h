/* Shared by the fuzz targets in tests/fuzz/: the libFuzzer entry points and
 * small helpers for turning fuzz bytes into what the library's readers take.
 *
 * Each target defines LLVMFuzzerTestOneInput. Built with BL_FUZZ=ON (clang) it is
 * linked with libFuzzer; in every other build it is linked with replay_main.c,
 * which runs it over the committed corpus as a regression test. A target must
 * not print, must free everything it allocates (leak detection is on), and
 * reports a broken invariant with abort(), which both drivers treat as a crash. */
#ifndef BL_FUZZ_H
#define BL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The readers take a path, so fuzz bytes go into an in-memory file (memfd) and
 * the reader opens "/proc/self/fd/N", a fresh descriptor at offset 0 each time.
 * Two slots (0 and 1) for targets that need a features file and a labels file.
 * Returns the path (static storage), or aborts if the memfd cannot be written. */
const char *fuzz_file(int slot, const uint8_t *data, size_t size);

/* Split data at the first occurrence of FUZZ_SPLIT: [0, *first) before it and
 * the rest after it (*second, *second_size). Returns 0 and the whole input as
 * the first part when there is no marker. */
#define FUZZ_SPLIT "#LABELS#"
int fuzz_split(const uint8_t *data, size_t size, size_t *first, const uint8_t **second,
               size_t *second_size);

/* A context with one compute thread, set up once per process; its memory
 * accounting is reset and given limit_bytes for each input. */
bl_ctx *fuzz_ctx(size_t limit_bytes);

/* With BL_FUZZ_VERBOSE=1 in the environment, print what happened to an input
 * ("ok" or the library's error message) to stderr: for checking that a new seed
 * gets as far as intended. Silent otherwise. */
void fuzz_note(const char *what, const char *msg);

/* Abort, naming the broken invariant, so the fuzzer keeps the input. Only
 * reached on a defect, so printing here is fine. */
void fuzz_fail(const char *what) __attribute__((noreturn));

#endif
