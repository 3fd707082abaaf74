/* The dataset readers' fuzz targets (csv, npy, idx) share one driver: they
 * differ in their seed corpus, which steers the fuzzer to one reader, and in
 * whether the input also carries a labels file. */
#ifndef BL_FUZZ_DATA_H
#define BL_FUZZ_DATA_H

#include <stddef.h>
#include <stdint.h>

/* data[0] picks the load options (label column, header, separator, class rules);
 * the rest is the file, or with_labels: features FUZZ_SPLIT labels. Loads it
 * through bl_dataset_load (the format comes from the content), checks what the
 * readers promise about a dataset they return, fits and applies a
 * normalisation, and frees everything. */
void fuzz_dataset(const uint8_t *data, size_t size, int with_labels);

#endif
