/* A build without the CUDA backend: the entry points say why it is missing
 * (BL_CUDA_WHY comes from CMakeLists.txt). */
#include <stdio.h>
#include "backend/cuda_backend.h"

int bl_cuda_devices(bl_gpu_info *out, int cap, char *why, size_t why_len) {
    (void)out;
    (void)cap;
    if (why && why_len) snprintf(why, why_len, "this build has no CUDA backend: %s", BL_CUDA_WHY);
    return -1;
}

bl_status cuda_backend_get(bl_backend **out, int device, bl_error *err) {
    *out = NULL;
    return bl_fail(err, BL_ERR_UNSUPPORTED, "device cuda:%d: this build has no CUDA backend: %s",
                   device, BL_CUDA_WHY);
}

int cuda_libs_status(char *why, size_t why_len) {
    if (why && why_len) snprintf(why, why_len, "this build has no CUDA backend: %s", BL_CUDA_WHY);
    return -1;
}
