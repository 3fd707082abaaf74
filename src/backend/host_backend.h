/* Internals shared by the backends that compute on this CPU (host_ops.c) and
 * the opaque backend's memory pool (opaque_pool.c). */
#ifndef BL_HOST_BACKEND_H
#define BL_HOST_BACKEND_H

#include "batchlab/backend.h"

extern const bl_backend_ops host_backend_ops;

/* The opaque backend's pool: memory that is PROT_NONE except between an open
 * and its close, which name the pointers (into blocks of the pool; others and
 * NULL are ignored) whose blocks become readable. Opens are serialised across
 * threads (one backend call at a time). Allocations are zero-filled and
 * page-aligned. */
typedef struct opaque_pool opaque_pool;
extern opaque_pool opaque_pool_process; /* the one pool of the process */
void opaque_pool_open(void *pool, const void *const *ptrs, int n);
void opaque_pool_close(void *pool, const void *const *ptrs, int n);
bl_status opaque_pool_alloc(void *pool, bl_mem *mem, size_t bytes, const char *what, void **out,
                            bl_error *err);
void opaque_pool_release(void *pool, bl_mem *mem, void *p);
int opaque_pool_owns(void *pool, const void *p);

#endif
