/* The opaque backend's memory: a pool whose pages are PROT_NONE except while
 * a backend call that names them runs. A host read or write of a backend
 * pointer anywhere else is a SIGSEGV at the exact instruction, which is how
 * the test suite proves that nothing reaches past the seam: a GPU's device
 * memory would be just as unreadable, only silently.
 *
 * The pool is a few large mappings (chunks) carved into page-aligned blocks,
 * so that a call opens only the blocks its arguments point into (one
 * mprotect each): the cost follows the memory a call touches, as the
 * kernel's own does, not the whole pool. Freed blocks are reused best-fit;
 * chunks are never unmapped. One pool serves the process (a test backend,
 * like the CPU kernel choice in isa.c); calls from several threads are
 * serialised by a lock held from open to close. */
#define _GNU_SOURCE /* PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include "backend/host_backend.h"
#include "core/alloc.h"

#define CHUNK_BYTES ((size_t)64 << 20)
#define PAGE ((size_t)4096)

typedef struct chunk {
    char *base;
    size_t size, top; /* bytes reserved, bytes handed out */
} chunk;

typedef struct block {
    char *p;
    size_t size;  /* whole pages */
    size_t bytes; /* asked for, and charged to the caller's bl_mem */
    int used;
} block;

struct opaque_pool {
    pthread_mutex_t lock; /* held from open to the matching close */
    chunk *chunks;
    int n_chunks;
    block *blocks;
    size_t n_blocks, cap_blocks;
};

opaque_pool opaque_pool_process = {.lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP};

/* The block in use that holds address ptr, or NULL. */
static block *find_block(opaque_pool *p, const void *ptr) {
    const char *c = ptr;
    for (size_t i = 0; i < p->n_blocks; i++) {
        block *b = &p->blocks[i];
        if (b->used && c >= b->p && c < b->p + b->size) return b;
    }
    return NULL;
}

static void protect(opaque_pool *p, const void *const *ptrs, int n, int prot) {
    for (int i = 0; i < n; i++) {
        block *b = ptrs[i] ? find_block(p, ptrs[i]) : NULL;
        if (b) mprotect(b->p, b->size, prot);
    }
}

void opaque_pool_open(void *pool, const void *const *ptrs, int n) {
    opaque_pool *p = pool;
    pthread_mutex_lock(&p->lock);
    protect(p, ptrs, n, PROT_READ | PROT_WRITE);
}

void opaque_pool_close(void *pool, const void *const *ptrs, int n) {
    opaque_pool *p = pool;
    protect(p, ptrs, n, PROT_NONE);
    pthread_mutex_unlock(&p->lock);
}

static block *find_free(opaque_pool *p, size_t size) {
    block *best = NULL;
    for (size_t i = 0; i < p->n_blocks; i++) {
        block *b = &p->blocks[i];
        if (!b->used && b->size >= size && (!best || b->size < best->size)) best = b;
    }
    return best;
}

static char *carve(opaque_pool *p, size_t size) {
    for (int i = 0; i < p->n_chunks; i++) {
        chunk *c = &p->chunks[i];
        if (c->size - c->top >= size) {
            char *r = c->base + c->top;
            c->top += size;
            return r;
        }
    }
    size_t want = size > CHUNK_BYTES ? size : CHUNK_BYTES;
    chunk *grown = bl_realloc(p->chunks, (size_t)(p->n_chunks + 1) * sizeof *grown);
    if (!grown) return NULL;
    p->chunks = grown;
    void *base = mmap(NULL, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return NULL;
    p->chunks[p->n_chunks++] = (chunk){.base = base, .size = want, .top = size};
    return base;
}

bl_status opaque_pool_alloc(void *pool, bl_mem *mem, size_t bytes, const char *what, void **out,
                            bl_error *err) {
    opaque_pool *p = pool;
    *out = NULL;
    if (mem && mem->limit_bytes && mem->cur_bytes + bytes > mem->limit_bytes)
        return bl_fail(err, BL_ERR_NOMEM,
                       "allocating %zu bytes for %s would exceed the memory budget of %zu bytes "
                       "(%zu in use)",
                       bytes, what ? what : "buffer", mem->limit_bytes, mem->cur_bytes);
    size_t size = bytes > SIZE_MAX - PAGE ? 0 : (bytes + PAGE - 1) / PAGE * PAGE;
    if (!size && bytes) return bl_fail(err, BL_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    if (!size) size = PAGE;
    pthread_mutex_lock(&p->lock);
    bl_status st = BL_OK;
    block *b = find_free(p, size);
    if (!b) {
        if (p->n_blocks == p->cap_blocks) {
            size_t cap = p->cap_blocks ? 2 * p->cap_blocks : 64;
            block *grown = bl_realloc(p->blocks, cap * sizeof *grown);
            if (grown) p->blocks = grown, p->cap_blocks = cap;
        }
        char *r = p->n_blocks < p->cap_blocks ? carve(p, size) : NULL;
        if (r) {
            b = &p->blocks[p->n_blocks++];
            *b = (block){.p = r, .size = size};
        }
    }
    if (b) {
        b->used = 1;
        b->bytes = bytes;
        mprotect(b->p, b->size, PROT_READ | PROT_WRITE);
        memset(b->p, 0, bytes);
        mprotect(b->p, b->size, PROT_NONE);
        *out = b->p;
        if (mem) {
            mem->cur_bytes += bytes;
            if (mem->cur_bytes > mem->peak_bytes) mem->peak_bytes = mem->cur_bytes;
        }
    } else {
        st = bl_fail(err, BL_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes,
                     what ? what : "buffer");
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

static block *block_at(opaque_pool *p, const void *ptr) {
    block *b = find_block(p, ptr);
    return b && b->p == ptr ? b : NULL;
}

int opaque_pool_owns(void *pool, const void *ptr) {
    opaque_pool *p = pool;
    pthread_mutex_lock(&p->lock);
    int owns = block_at(p, ptr) != NULL;
    pthread_mutex_unlock(&p->lock);
    return owns;
}

void opaque_pool_release(void *pool, bl_mem *mem, void *ptr) {
    opaque_pool *p = pool;
    pthread_mutex_lock(&p->lock);
    block *b = block_at(p, ptr);
    if (b) {
        b->used = 0;
        if (mem) mem->cur_bytes = mem->cur_bytes >= b->bytes ? mem->cur_bytes - b->bytes : 0;
    }
    pthread_mutex_unlock(&p->lock);
}
