/* Fuzz target: the .npy reader, through bl_dataset_load. Byte 0 chooses the
 * load options; the rest is X.npy, optionally followed by "#LABELS#" and y.npy
 * (see fuzz_data.c). */
#include "fuzz.h"
#include "fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_dataset(data, size, 1);
    return 0;
}
