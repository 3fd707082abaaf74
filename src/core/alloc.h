/* The heap of the library and the CLI. Every allocation in src/ and cli/ goes
 * through these (and cJSON's too, through its hooks), so that one place counts
 * them and a test can make any one of them fail (core/fault.h). They behave as
 * their libc namesakes, except that a size of 0 still allocates (so NULL
 * always means failure); memory from them is released with bl_free, which is
 * free(3), so it also takes what libc allocated (getline, open_memstream). */
#ifndef BL_CORE_ALLOC_H
#define BL_CORE_ALLOC_H

#include <stddef.h>

void *bl_malloc(size_t bytes);
void *bl_calloc(size_t n, size_t size);
/* On failure p is left as it was (and still owned by the caller), as realloc. */
void *bl_realloc(void *p, size_t bytes);
char *bl_strdup(const char *s);
/* align is a power of two and a multiple of sizeof(void *); release with bl_free. */
void *bl_aligned_alloc(size_t align, size_t bytes);
void bl_free(void *p);

/* Allocations that have failed on this thread so far. A builder that cannot see
 * every failure (a cJSON tree: cJSON_Add* drops what it could not allocate)
 * compares the count before and after, and reports BL_ERR_NOMEM when it moved. */
unsigned bl_alloc_failures(void);

#endif
