/* Running a model the fuzzer built (from a spec or a checkpoint) without
 * letting a legal but enormous model turn into a timeout. */
#ifndef BL_FUZZ_MODEL_H
#define BL_FUZZ_MODEL_H

#include "batchlab/model.h"

/* Multiply-adds (or element operations) of one forward pass at batch B, from the
 * layer shapes. Memory is capped by the bl_mem budget, but a conv with few
 * weights over a big image is cheap to hold and slow to run; targets skip the
 * pass above FUZZ_MAX_FLOPS. */
#define FUZZ_MAX_FLOPS 2e7
double fuzz_model_flops(const bl_model *m, int B);

/* Deterministic inputs for B samples of the model's input size (malloc'ed). */
float *fuzz_model_inputs(const bl_model *m, int B, const uint8_t *seed, size_t seed_size);

#endif
