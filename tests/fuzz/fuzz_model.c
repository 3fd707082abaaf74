/* Helpers for the targets that build and run models (see fuzz_model.h). */
#include "fuzz_model.h"
#include <stdlib.h>
#include "nn/layer.h"

double fuzz_model_flops(const bl_model *m, int B) {
    double total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const bl_layer *l = &m->layers[i];
        double in = (double)bl_shape_size(l->in), out = (double)bl_shape_size(l->out);
        if (l->kind == BL_LAYER_DENSE)
            total += in * l->units;
        else if (l->kind == BL_LAYER_CONV)
            total += out * (double)l->in.c * l->R * l->S;
        else if (l->kind == BL_LAYER_MAXPOOL || l->kind == BL_LAYER_AVGPOOL)
            total += out * (double)l->pool * l->pool;
        else
            total += in + out;
    }
    return total * B;
}

float *fuzz_model_inputs(const bl_model *m, int B, const uint8_t *seed, size_t seed_size) {
    size_t n = (size_t)B * bl_shape_size(bl_model_input_shape(m));
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) return NULL;
    for (size_t i = 0; i < n; i++)
        x[i] = seed_size ? (float)seed[i % seed_size] / 64.0f - 2.0f : 0.5f;
    return x;
}
