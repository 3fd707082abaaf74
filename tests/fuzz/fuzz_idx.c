/* Fuzz target: the IDX reader, raw or gzip-compressed. Byte 0 chooses the load
 * options; the rest is an images file, optionally followed by "#LABELS#" and a
 * labels file, loaded through bl_dataset_load (see fuzz_data.c). The images
 * file also goes through bl_idx_read_u8 on its own, which takes any 1-4
 * dimensional file the dataset loader would refuse after reading it. */
#include <stdlib.h>
#include "batchlab/data.h"
#include "fuzz.h"
#include "fuzz_data.h"

static volatile uint8_t idx_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_dataset(data, size, 1);
    if (size < 1) return 0;
    size_t x_size;
    const uint8_t *y;
    size_t y_size;
    fuzz_split(data + 1, size - 1, &x_size, &y, &y_size);
    uint8_t *payload = NULL;
    int ndim = 0, dims[4];
    bl_error err = {0};
    if (bl_idx_read_u8(fuzz_file(0, data + 1, x_size), &payload, &ndim, dims, &err) == BL_OK) {
        size_t total = 1;
        for (int i = 0; i < ndim; i++)
            total *= (size_t)dims[i];
        if (ndim < 1 || ndim > 4 || !payload) fuzz_fail("bl_idx_read_u8: bad result");
        /* Read the last byte (through a volatile, which the compiler must keep): the
         * payload must hold what the dims say. */
        if (total) idx_sink = payload[total - 1];
    }
    free(payload);
    return 0;
}
