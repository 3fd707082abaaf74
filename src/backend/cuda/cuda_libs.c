/* cuBLAS and cuDNN, opened with dlopen when a context first opens the CUDA
 * backend, not linked: linked, every run of the CLI paid for loading them
 * (0.4 s and 220 MB at start-up), GPU or not. By soname first (the loader's
 * path), then from where the build found them. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda_backend.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define CUBLAS_SONAME "libcublas.so." STR(CUBLAS_VER_MAJOR)
#define CUDNN_SONAME "libcudnn.so." STR(CUDNN_MAJOR)

struct cuda_libs cuda_lib;
static pthread_once_t libs_once = PTHREAD_ONCE_INIT;
static char libs_error[512]; /* empty once loaded */

/* The library by its soname (the loader's path), else where it was at build time. */
static void *open_lib(const char *soname, const char *build_dir) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", build_dir, soname);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    return h;
}

static void libs_load_once(void) {
    void *blas = open_lib(CUBLAS_SONAME, BL_CUBLAS_DIR);
    void *dnn = blas ? open_lib(CUDNN_SONAME, BL_CUDNN_DIR) : NULL;
    if (!blas || !dnn) {
        snprintf(libs_error, sizeof libs_error, "cannot open %s (nor in %s): %s",
                 blas ? CUDNN_SONAME : CUBLAS_SONAME, blas ? BL_CUDNN_DIR : BL_CUBLAS_DIR,
                 dlerror());
        return;
    }
#define SYM(lib, name)                                                                             \
    do {                                                                                           \
        *(void **)&cuda_lib.name = dlsym(lib, #name);                                              \
        if (!cuda_lib.name) {                                                                      \
            snprintf(libs_error, sizeof libs_error, "%s has no %s", #lib, #name);                  \
            return;                                                                                \
        }                                                                                          \
    } while (0)
    SYM(blas, cublasCreate_v2);
    SYM(blas, cublasDestroy_v2);
    SYM(blas, cublasSetStream_v2);
    SYM(blas, cublasSetMathMode);
    SYM(blas, cublasGetStatusString);
    SYM(blas, cublasSgemm_v2);
    SYM(dnn, cudnnCreate);
    SYM(dnn, cudnnDestroy);
    SYM(dnn, cudnnSetStream);
    SYM(dnn, cudnnGetErrorString);
    SYM(dnn, cudnnCreateTensorDescriptor);
    SYM(dnn, cudnnDestroyTensorDescriptor);
    SYM(dnn, cudnnSetTensor4dDescriptor);
    SYM(dnn, cudnnCreateFilterDescriptor);
    SYM(dnn, cudnnDestroyFilterDescriptor);
    SYM(dnn, cudnnSetFilter4dDescriptor);
    SYM(dnn, cudnnCreateConvolutionDescriptor);
    SYM(dnn, cudnnDestroyConvolutionDescriptor);
    SYM(dnn, cudnnSetConvolution2dDescriptor);
    SYM(dnn, cudnnSetConvolutionMathType);
    SYM(dnn, cudnnGetConvolutionForwardAlgorithm_v7);
    SYM(dnn, cudnnGetConvolutionBackwardDataAlgorithm_v7);
    SYM(dnn, cudnnGetConvolutionBackwardFilterAlgorithm_v7);
    SYM(dnn, cudnnConvolutionForward);
    SYM(dnn, cudnnConvolutionBackwardData);
    SYM(dnn, cudnnConvolutionBackwardFilter);
#undef SYM
}

/* 1 when cuBLAS and cuDNN are loaded; else 0, with why in libs_error. */
int cuda_libs_load(void) {
    pthread_once(&libs_once, libs_load_once);
    return libs_error[0] == '\0' && cuda_lib.cublasSgemm_v2 != NULL;
}

int cuda_libs_status(char *why, size_t why_len) {
    const int ok = cuda_libs_load();
    if (why && why_len)
        snprintf(why, why_len, "%s",
                 ok ? CUBLAS_SONAME " and " CUDNN_SONAME " loaded" : libs_error);
    return ok;
}

const char *cuda_libs_error(void) {
    return libs_error;
}
