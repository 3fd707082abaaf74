/* The fault-injection hooks (see fault.h). Both variables are parsed in a
 * constructor, before main and before any thread, so the hooks themselves need
 * no lock: one relaxed load says whether counting is on, and only then a
 * relaxed fetch-add numbers the call. The report at exit is the only output of
 * the library, and only when a test asked for it. */
#include "core/fault.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fault_hook {
    atomic_int on;        /* counting (armed, or "count") */
    atomic_ulong calls;   /* numbered from 1 */
    atomic_ulong fail_at; /* 0: count only */
    atomic_int kind;      /* write hook: ENOSPC, EIO, BL_FAULT_SHORT or BL_FAULT_FULL */
    const char *what;     /* "allocations", "writes" */
    int report;           /* print the count at exit (set from the environment) */
} fault_hook;

static fault_hook alloc_hook = {.what = "allocations"};
static fault_hook write_hook = {.what = "writes"};

/* Said at once, with write(2): a failing exit may skip the report at exit (the CLI leaves
 * through _exit), and this may run anywhere (no stdio, no allocation). */
static void say_injected(const char *what, unsigned long k, int kind) {
    char line[128];
    const char *how = kind == ENOSPC           ? " (ENOSPC)"
                      : kind == EIO            ? " (EIO)"
                      : kind == BL_FAULT_SHORT ? " (short)"
                      : kind == BL_FAULT_FULL  ? " (short, then the disk is full)"
                                               : "";
    int n =
        snprintf(line, sizeof line, "batchlab fault injection: %s %lu failed%s\n", what, k, how);
    if (n > 0 && write(2, line, (size_t)n) < 0) {
    }
}

int bl_fault_alloc_now(void) {
    fault_hook *h = &alloc_hook;
    if (!atomic_load_explicit(&h->on, memory_order_relaxed)) return 0;
    unsigned long k = atomic_fetch_add_explicit(&h->calls, 1, memory_order_relaxed) + 1;
    if (k != atomic_load_explicit(&h->fail_at, memory_order_relaxed)) return 0;
    if (h->report) say_injected("allocation", k, 0);
    return 1;
}

int bl_fault_write_now(int sync) {
    fault_hook *h = &write_hook;
    if (!atomic_load_explicit(&h->on, memory_order_relaxed)) return 0;
    unsigned long k = atomic_fetch_add_explicit(&h->calls, 1, memory_order_relaxed) + 1;
    unsigned long at = atomic_load_explicit(&h->fail_at, memory_order_relaxed);
    if (!at || k < at) return 0;
    int kind = atomic_load_explicit(&h->kind, memory_order_relaxed);
    if (k == at && h->report) say_injected(sync ? "fsync" : "write", k, kind);
    if (kind == BL_FAULT_FULL) return k == at && !sync ? BL_FAULT_SHORT : ENOSPC;
    if (kind == BL_FAULT_SHORT && sync) return 0;
    return k == at ? kind : 0;
}

static void arm(fault_hook *h, unsigned long n, int kind) {
    atomic_store(&h->calls, 0);
    atomic_store(&h->fail_at, n);
    atomic_store(&h->kind, kind);
    atomic_store(&h->on, n > 0 || h->report);
}

void bl_fault_alloc_arm(unsigned long n) {
    arm(&alloc_hook, n, ENOMEM);
}

void bl_fault_write_arm(unsigned long n, int kind) {
    arm(&write_hook, n, kind ? kind : ENOSPC);
}

unsigned long bl_fault_alloc_count(void) {
    return atomic_load(&alloc_hook.calls);
}

unsigned long bl_fault_write_count(void) {
    return atomic_load(&write_hook.calls);
}

static void report_one(const fault_hook *h) {
    if (!h->report) return;
    unsigned long calls = atomic_load(&h->calls), at = atomic_load(&h->fail_at);
    fprintf(stderr, "batchlab fault injection: %s=%lu failed=%lu\n", h->what, calls,
            at && at <= calls ? at : 0);
}

static void report(void) {
    report_one(&alloc_hook);
    report_one(&write_hook);
}

/* "count", "N" or (write hook) "N:enospc" / "N:eio" / "N:short"; 0 when malformed. */
static int parse(fault_hook *h, const char *v, int writes) {
    if (!strcmp(v, "count")) return 1;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || n == 0) return 0;
    int kind = writes ? ENOSPC : ENOMEM;
    if (writes && *end == ':') {
        const char *k = end + 1;
        kind = !strcmp(k, "enospc")  ? ENOSPC
               : !strcmp(k, "eio")   ? EIO
               : !strcmp(k, "short") ? BL_FAULT_SHORT
               : !strcmp(k, "full")  ? BL_FAULT_FULL
                                     : 0;
        if (!kind) return 0;
    } else if (*end) {
        return 0;
    }
    atomic_store(&h->fail_at, n);
    atomic_store(&h->kind, kind);
    return 1;
}

__attribute__((constructor)) static void fault_init(void) {
    const char *a = getenv("BATCHLAB_FAULT_ALLOC"), *w = getenv("BATCHLAB_FAULT_WRITE");
    int any = 0;
    if (a && *a && parse(&alloc_hook, a, 0)) alloc_hook.report = any = 1;
    if (w && *w && parse(&write_hook, w, 1)) write_hook.report = any = 1;
    if (a && *a && !alloc_hook.report)
        fprintf(stderr, "batchlab: BATCHLAB_FAULT_ALLOC='%s' is not N or count; ignored\n", a);
    if (w && *w && !write_hook.report)
        fprintf(stderr,
                "batchlab: BATCHLAB_FAULT_WRITE='%s' is not N[:enospc|eio|short|full] or count; "
                "ignored\n",
                w);
    atomic_store(&alloc_hook.on, alloc_hook.report);
    atomic_store(&write_hook.on, write_hook.report);
    if (any) atexit(report);
}
