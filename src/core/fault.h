/* Fault injection for tests, as SQLite does it: make the N-th heap allocation or
 * the N-th file write of the process fail, and check that the program fails
 * cleanly (an error naming memory or the file, no crash, no torn file, no leak).
 *
 *   BATCHLAB_FAULT_ALLOC=N       the N-th allocation (from process start) fails
 *   BATCHLAB_FAULT_ALLOC=count   none fails; the total is printed at exit
 *   BATCHLAB_FAULT_WRITE=N[:enospc|eio|short|full]  the N-th write or fsync fails
 *                                with ENOSPC (the default) or EIO; or writes half its
 *                                bytes (short: the writer must write the rest); or
 *                                writes half and the disk is full from then on (full:
 *                                every later write and fsync fails with ENOSPC)
 *   BATCHLAB_FAULT_WRITE=count   the total is printed at exit
 *
 * Each variable is read once, before main. While one is set, the process says on
 * stderr "batchlab fault injection: allocation N failed" (write, fsync) when it
 * injects the fault, and "batchlab fault injection: allocations=T failed=N" (or
 * writes=...) at a normal exit, so a test knows how far to walk and whether its
 * fault was reached. Unset, a hook costs one relaxed atomic load. Allocations inside other
 * libraries (OpenBLAS, libmicrohttpd, zlib, libc) are not counted; cJSON's are. */
#ifndef BL_CORE_FAULT_H
#define BL_CORE_FAULT_H

#define BL_FAULT_SHORT (-1) /* bl_fault_write_now: write only part of the bytes */
#define BL_FAULT_FULL (-2)  /* arm kind: a short write, then ENOSPC for every later one */

/* 1 when the allocation being made must fail. */
int bl_fault_alloc_now(void);
/* 0, or what the write (sync = 0) or fsync (sync = 1) being made must do instead: ENOSPC,
 * EIO or, for a write, BL_FAULT_SHORT. A short fault leaves an fsync alone; a full disk
 * fails it with ENOSPC. */
int bl_fault_write_now(int sync);

/* For in-process tests: count from 0 again and fail the n-th allocation (write) from
 * now on, with kind ENOSPC, EIO, BL_FAULT_SHORT or BL_FAULT_FULL; n = 0 disarms. Not thread-safe
 * against allocations running while it is called. */
void bl_fault_alloc_arm(unsigned long n);
void bl_fault_write_arm(unsigned long n, int kind);
/* Allocations (writes) counted since the process started or the hook was armed. */
unsigned long bl_fault_alloc_count(void);
unsigned long bl_fault_write_count(void);

#endif
