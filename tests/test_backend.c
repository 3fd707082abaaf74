/* The backend object: the registry, memory and transfers, and the opaque
 * backend's promise that host code cannot read its memory (which is what makes
 * the suite's @opaque runs a test of the seam). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "backend/cuda_backend.h"
#include "batchlab/backend.h"
#include "batchlab/core.h"
#include "test_util.h"

static bl_backend *get(const char *name) {
    bl_backend *be = NULL;
    bl_error err = {0};
    assert_int_equal(bl_backend_get(&be, name, &err), BL_OK);
    assert_non_null(be);
    return be;
}

static void registry_names_and_errors(void **state) {
    (void)state;
    const char *names[4];
    assert_int_equal(bl_backend_names(names, 4), 2 + BL_HAVE_CUDA);
    assert_string_equal(names[0], "cpu");
    assert_string_equal(names[1], "opaque");
    if (BL_HAVE_CUDA) assert_string_equal(names[2], "cuda");
    assert_string_equal(get("cpu")->name, "cpu");
    assert_string_equal(get(NULL)->name, "cpu");
    assert_string_equal(get("opaque")->name, "opaque");
    assert_true(get("cpu")->host_visible);
    assert_false(get("opaque")->host_visible);
    bl_backend *be = (bl_backend *)1;
    bl_error err = {0};
    assert_int_equal(bl_backend_get(&be, "cuda0", &err), BL_ERR_ARG);
    assert_null(be);
    assert_non_null(strstr(err.msg, "'cuda0'"));
    assert_non_null(strstr(err.msg, "cpu, opaque, cuda or cuda:N"));
    assert_int_equal(bl_backend_get(&be, "cuda:", &err), BL_ERR_ARG);
    assert_int_equal(bl_backend_get(&be, "cuda:1x", &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "'cuda:1x'"));
    /* a context takes the device by name, and refuses an unknown one */
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    assert_int_equal(bl_ctx_set_device(&ctx, "opaque", &err), BL_OK);
    assert_string_equal(ctx.be->name, "opaque");
    assert_int_equal(bl_ctx_set_device(&ctx, "gpu", &err), BL_ERR_ARG);
    assert_string_equal(ctx.be->name, "opaque");
    bl_ctx_free(&ctx);
}

static void memory_round_trip(bl_backend *be);

/* "cuda" opens where a device can be used, and otherwise says why; the
 * context then keeps the backend it had. */
static void cuda_is_opened_or_refused_with_a_reason(void **state) {
    (void)state;
    char why[256] = "";
    bl_gpu_info gpus[4];
    int n = bl_cuda_devices(gpus, 4, why, sizeof why);
    assert_true(why[0] != '\0');
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    assert_int_equal(bl_ctx_set_device(&ctx, "cpu", NULL), BL_OK);
    bl_error err = {0};
    bl_status st = bl_ctx_set_device(&ctx, "cuda", &err);
    if (n < 0) {
        assert_int_equal(st, BL_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "cuda"));
        assert_non_null(strstr(err.msg, why));
        assert_string_equal(ctx.be->name, "cpu");
        assert_int_equal(bl_ctx_set_device(&ctx, "cuda:0", &err), BL_ERR_UNSUPPORTED);
    } else {
        assert_true(n >= 1);
        assert_true(gpus[0].total_bytes > 0);
        assert_int_equal(st, BL_OK);
        assert_string_equal(ctx.be->name, "cuda:0");
        assert_false(ctx.be->host_visible);
        memory_round_trip(ctx.be);
        /* a device index past the last one is refused by name */
        char name[32];
        snprintf(name, sizeof name, "cuda:%d", n);
        assert_int_equal(bl_ctx_set_device(&ctx, name, &err), BL_ERR_ARG);
        assert_non_null(strstr(err.msg, name));
        assert_string_equal(ctx.be->name, "cuda:0");
    }
    bl_ctx_free(&ctx);
    bl_ctx_free(&ctx); /* a second free is harmless */
}

/* A plain "cuda" under an MPI launcher is the local rank's GPU. */
static void cuda_device_follows_the_local_rank(void **state) {
    (void)state;
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK"), unsetenv("MPI_LOCALRANKID"), unsetenv("SLURM_LOCALID");
    assert_int_equal(cuda_local_device(4), 0);
    setenv("SLURM_LOCALID", "2", 1);
    assert_int_equal(cuda_local_device(4), 2);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1); /* Open MPI's goes first */
    assert_int_equal(cuda_local_device(4), 1);
    assert_int_equal(cuda_local_device(8), 5);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x1", 1); /* not a number: the next one */
    assert_int_equal(cuda_local_device(4), 2);
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK"), unsetenv("SLURM_LOCALID");
}

/* cuBLAS and cuDNN open with every function the backend calls, no GPU needed:
 * a misspelt or missing symbol is a bug; a library missing is this machine's. */
static void cuda_libraries_load_by_name(void **state) {
    (void)state;
    char why[600] = "";
    int st = cuda_libs_status(why, sizeof why);
    fprintf(stderr, "cuda libraries: %d (%s)\n", st, why);
    assert_true(why[0] != '\0');
    if (!BL_HAVE_CUDA) {
        assert_int_equal(st, -1);
        return;
    }
    assert_null(strstr(why, "has no"));
    if (st == 0) assert_non_null(strstr(why, "cannot open"));
}

/* upload, a kernel, copy, download; bytes charged to and returned to mem. */
static void memory_round_trip(bl_backend *be) {
    bl_mem mem = {0};
    bl_error err = {0};
    float host[100], back[100];
    for (int i = 0; i < 100; i++)
        host[i] = (float)i - 50.0f;
    void *a = NULL, *b = NULL;
    assert_int_equal(be->ops->alloc(be, &mem, sizeof host, BL_BUFFER_DEVICE, "a", &a, &err), BL_OK);
    assert_int_equal(be->ops->alloc(be, &mem, sizeof host, BL_BUFFER_DEVICE, "b", &b, &err), BL_OK);
    assert_int_equal(mem.cur_bytes, 2 * sizeof host);
    assert_int_equal(be->ops->upload(be, a, host, sizeof host), BL_OK);
    assert_int_equal(be->ops->scale(be, a, 100, 2.0f), BL_OK);
    assert_int_equal(be->ops->copy(be, b, a, sizeof host), BL_OK);
    double ss = 0;
    assert_int_equal(be->ops->sumsq(be, &ss, b, 100), BL_OK);
    double want = 0;
    for (int i = 0; i < 100; i++)
        want += 4.0 * host[i] * host[i];
    assert_true(ss == want);
    assert_int_equal(be->ops->synchronize(be), BL_OK);
    assert_int_equal(be->ops->download(be, back, b, sizeof back), BL_OK);
    for (int i = 0; i < 100; i++)
        assert_true(back[i] == 2.0f * host[i]);
    int finite = 0;
    assert_int_equal(be->ops->all_finite(be, &finite, b, 100), BL_OK);
    assert_true(finite);
    be->ops->release(be, &mem, a);
    be->ops->release(be, &mem, b);
    be->ops->release(be, &mem, NULL);
    assert_int_equal(mem.cur_bytes, 0);
    assert_int_equal(mem.peak_bytes, 2 * sizeof host);
    /* a budget is enforced, with a message naming the buffer */
    mem.limit_bytes = 1000;
    assert_int_equal(be->ops->alloc(be, &mem, 4000, BL_BUFFER_DEVICE, "big one", &a, &err),
                     BL_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "big one"));
    assert_int_equal(mem.cur_bytes, 0);
}

static void cpu_round_trip(void **state) {
    (void)state;
    memory_round_trip(get("cpu"));
}

static void opaque_round_trip(void **state) {
    (void)state;
    memory_round_trip(get("opaque"));
}

/* Exit status of a child that reads (or writes) p: the signal number when one
 * killed it, 0 when the access went through. */
static int access_in_child(float *p, int write) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        if (write)
            *(volatile float *)p = 1.0f;
        else
            (void)*(volatile float *)p;
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void opaque_memory_is_unreadable_by_the_host(void **state) {
    (void)state;
    bl_backend *opaque = get("opaque"), *cpu = get("cpu");
    void *p = NULL, *q = NULL, *h = NULL;
    bl_error err = {0};
    assert_int_equal(opaque->ops->alloc(opaque, NULL, 4096 * 3, BL_BUFFER_DEVICE, "p", &p, &err),
                     BL_OK);
    assert_int_equal(cpu->ops->alloc(cpu, NULL, 64, BL_BUFFER_DEVICE, "q", &q, &err), BL_OK);
    /* pinned host staging is host memory on every backend */
    assert_int_equal(opaque->ops->alloc(opaque, NULL, 64, BL_BUFFER_HOST, "h", &h, &err), BL_OK);
    float one = 1.0f;
    assert_int_equal(opaque->ops->upload(opaque, (float *)p + 2000, &one, sizeof one), BL_OK);
    assert_int_equal(access_in_child(p, 0), SIGSEGV);
    assert_int_equal(access_in_child((float *)p + 2000, 1), SIGSEGV); /* inside, not only at 0 */
    assert_int_equal(access_in_child(q, 0), 0); /* the check is live: CPU memory is readable */
    assert_int_equal(access_in_child(h, 1), 0);
    float back = 0;
    assert_int_equal(opaque->ops->download(opaque, &back, (float *)p + 2000, sizeof back), BL_OK);
    assert_true(back == 1.0f);
    opaque->ops->release(opaque, NULL, p);
    opaque->ops->release(opaque, NULL, h);
    cpu->ops->release(cpu, NULL, q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_names_and_errors),
        cmocka_unit_test(cuda_is_opened_or_refused_with_a_reason),
        cmocka_unit_test(cuda_libraries_load_by_name),
        cmocka_unit_test(cuda_device_follows_the_local_rank),
        cmocka_unit_test(cpu_round_trip),
        cmocka_unit_test(opaque_round_trip),
        cmocka_unit_test(opaque_memory_is_unreadable_by_the_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
