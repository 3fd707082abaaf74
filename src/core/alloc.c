/* The counted heap (see alloc.h). There is no header in front of the blocks:
 * bl_free is free(3), so the library may mix its memory with libc's, and the
 * only cost over malloc is the fault hook's relaxed load. */
#include "core/alloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/fault.h"

static _Thread_local unsigned failures;

static void *failed(void) {
    failures++;
    errno = ENOMEM;
    return NULL;
}

unsigned bl_alloc_failures(void) {
    return failures;
}

void *bl_malloc(size_t bytes) {
    if (bl_fault_alloc_now()) return failed();
    void *p = malloc(bytes ? bytes : 1);
    return p ? p : failed();
}

void *bl_calloc(size_t n, size_t size) {
    if (bl_fault_alloc_now()) return failed();
    void *p = calloc(n && size ? n : 1, n && size ? size : 1);
    return p ? p : failed();
}

void *bl_realloc(void *p, size_t bytes) {
    if (bl_fault_alloc_now()) return failed();
    void *q = realloc(p, bytes ? bytes : 1);
    return q ? q : failed();
}

char *bl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = bl_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *bl_aligned_alloc(size_t align, size_t bytes) {
    if (bl_fault_alloc_now()) return failed();
    void *p = NULL;
    if (posix_memalign(&p, align, bytes ? bytes : 1) != 0) return failed();
    return p;
}

void bl_free(void *p) {
    free(p);
}

/* cJSON allocates through the same functions, from before main on. Both are
 * malloc-compatible, so a program that sets its own hooks later loses nothing. */
__attribute__((constructor)) static void hook_cjson(void) {
    cJSON_Hooks hooks = {.malloc_fn = bl_malloc, .free_fn = bl_free};
    cJSON_InitHooks(&hooks);
}
