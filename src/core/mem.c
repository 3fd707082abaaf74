/* Counted allocations. Each block carries a 64-byte header holding its size,
 * so bl_mem_free needs no size argument and the accounting stays exact. The
 * header also keeps the payload 64-byte aligned for AVX-512 loads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/core.h"
#include "core/alloc.h"

#define BL_MEM_HEADER 64

void *bl_mem_alloc(bl_mem *m, size_t bytes, const char *what, bl_error *err) {
    if (m && m->limit_bytes && m->cur_bytes + bytes > m->limit_bytes) {
        bl_fail(err, BL_ERR_NOMEM,
                "allocating %zu bytes for %s would exceed the memory budget of %zu bytes "
                "(%zu in use)",
                bytes, what ? what : "buffer", m->limit_bytes, m->cur_bytes);
        return NULL;
    }
    void *raw =
        bytes <= SIZE_MAX - BL_MEM_HEADER ? bl_aligned_alloc(64, BL_MEM_HEADER + bytes) : NULL;
    if (!raw) {
        bl_fail(err, BL_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes,
                what ? what : "buffer");
        return NULL;
    }
    memset(raw, 0, BL_MEM_HEADER + bytes);
    *(size_t *)raw = bytes;
    if (m) {
        m->cur_bytes += bytes;
        if (m->cur_bytes > m->peak_bytes) m->peak_bytes = m->cur_bytes;
    }
    return (char *)raw + BL_MEM_HEADER;
}

void bl_mem_free(bl_mem *m, void *p) {
    if (!p) return;
    void *raw = (char *)p - BL_MEM_HEADER;
    size_t bytes = *(size_t *)raw;
    if (m) m->cur_bytes = m->cur_bytes >= bytes ? m->cur_bytes - bytes : 0;
    bl_free(raw);
}
