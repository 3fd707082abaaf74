/* Process-level guards of the CLI around OpenBLAS (see blas_guard.c). */
#ifndef BL_CLI_BLAS_GUARD_H
#define BL_CLI_BLAS_GUARD_H

/* Under an address-space limit (ulimit -v), makes sure OpenBLAS has the work
 * buffers it will ask for, now, while there is room. Returns 0, or prints why
 * not ("out of memory: ...") and returns 1; the caller must then leave with
 * cli_exit_now. Does nothing (returns 0) without a limit. */
int cli_blas_guard(void);

/* Leaves the process with status rc after flushing every stdio stream,
 * without running atexit handlers or library destructors: OpenBLAS's joins a
 * worker that may be retrying an allocation forever. Under LeakSanitizer the
 * leak check runs first, as it would at exit. */
_Noreturn void cli_exit_now(int rc);

#endif
