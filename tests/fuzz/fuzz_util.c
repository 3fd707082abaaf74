/* Helpers shared by the fuzz targets (see fuzz.h). */
#define _GNU_SOURCE
#include "fuzz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfds[2] = {-1, -1};
static char paths[2][64];

const char *fuzz_file(int slot, const uint8_t *data, size_t size) {
    if (slot < 0 || slot > 1) fuzz_fail("fuzz_file: slot must be 0 or 1");
    if (memfds[slot] < 0) {
        /* Created once and rewritten per input: a memfd per input would be one
         * more system call pair for every execution, for nothing. */
        memfds[slot] = memfd_create(slot ? "fuzz-labels" : "fuzz-input", MFD_CLOEXEC);
        if (memfds[slot] < 0) fuzz_fail("memfd_create failed");
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", memfds[slot]);
    }
    int fd = memfds[slot];
    if (ftruncate(fd, 0) != 0) fuzz_fail("ftruncate of the memfd failed");
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w <= 0) fuzz_fail("write to the memfd failed");
        done += (size_t)w;
    }
    return paths[slot];
}

int fuzz_split(const uint8_t *data, size_t size, size_t *first, const uint8_t **second,
               size_t *second_size) {
    size_t m = sizeof FUZZ_SPLIT - 1;
    const uint8_t *at = size >= m ? memmem(data, size, FUZZ_SPLIT, m) : NULL;
    if (!at) {
        *first = size;
        *second = NULL;
        *second_size = 0;
        return 0;
    }
    *first = (size_t)(at - data);
    *second = at + m;
    *second_size = size - *first - m;
    return 1;
}

bl_ctx *fuzz_ctx(size_t limit_bytes) {
    static bl_ctx ctx;
    static int ready;
    if (!ready) {
        /* One thread: the targets run tiny models, and a thread pool would only
         * add scheduling noise to every execution. */
        bl_ctx_init(&ctx, 1);
        ready = 1;
    }
    memset(&ctx.mem, 0, sizeof ctx.mem);
    ctx.mem.limit_bytes = limit_bytes;
    return &ctx;
}

void fuzz_note(const char *what, const char *msg) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("BL_FUZZ_VERBOSE") && atoi(getenv("BL_FUZZ_VERBOSE")) > 0;
    if (verbose) fprintf(stderr, "%s: %s\n", what, msg);
}

void fuzz_fail(const char *what) {
    fprintf(stderr, "fuzz invariant broken: %s\n", what);
    abort();
}
