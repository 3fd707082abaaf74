/* Fuzz target: the CSV reader (plain or gzip), through bl_dataset_load. Byte 0
 * chooses the load options; the rest is the file (see fuzz_data.c). */
#include "fuzz.h"
#include "fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_dataset(data, size, 0);
    return 0;
}
