/* The CUDA backend's entry point for bl_backend_get (backend.c): implemented
 * by src/backend/cuda/cuda_backend.c where CUDA is built, else by
 * src/backend/cuda_none.c, which says why it is not. */
#ifndef BL_BACKEND_CUDA_BACKEND_H
#define BL_BACKEND_CUDA_BACKEND_H

#include "batchlab/backend.h"

/* The shared instance of CUDA device `device` (the "cuda:N" of a --device),
 * to be opened by a context. BL_ERR_UNSUPPORTED, saying why, when that device
 * cannot be used here. */
bl_status cuda_backend_get(bl_backend **out, int device, bl_error *err);

/* The device a plain "cuda" means in this process: its local rank under an MPI
 * launcher (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID) modulo
 * n_devices, so each rank of a node gets its own GPU; 0 outside a launcher. */
int cuda_local_device(int n_devices);

/* Opens cuBLAS and cuDNN (once per process; a GPU is not needed) and says so
 * in why: 1 when both and every function the backend calls were found, else
 * 0 and the library or function that was not. -1 where CUDA is not built. */
int cuda_libs_status(char *why, size_t why_len);

#endif
