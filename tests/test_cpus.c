/* The machine as the library sees it: the CPUs this process may use (the
 * cgroup quota parsers on given text, then bl_cpu_count_usable against
 * sched_getaffinity, before and after pinning this thread to one CPU) and
 * the OpenBLAS blocking the memory model picks per core type. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CPU_COUNT, sched_setaffinity */
#endif
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "backend/cpu/blas_model.h"
#include "batchlab/backend.h"
#include "batchlab/core.h"
#include "core/cpus.h"

extern char *openblas_get_corename(void);

/* ---- cgroup text -------------------------------------------------------- */

static void v2_cpu_max_is_parsed(void **state) {
    assert_int_equal(bl_cgroup_quota_cpus("max 100000"), 0);
    assert_int_equal(bl_cgroup_quota_cpus("max 100000\n"), 0);
    assert_int_equal(bl_cgroup_quota_cpus("200000 100000"), 2);
    assert_int_equal(bl_cgroup_quota_cpus("200000 100000\n"), 2);
    assert_int_equal(bl_cgroup_quota_cpus("150000 100000"), 2); /* rounded up */
    assert_int_equal(bl_cgroup_quota_cpus("50000 100000"), 1);
    assert_int_equal(bl_cgroup_quota_cpus("1 100000"), 1);
    assert_int_equal(bl_cgroup_quota_cpus("800000 50000\n"), 16);
}

static void v2_garbage_is_no_quota(void **state) {
    const char *bad[] = {"",
                         "\n",
                         "max",
                         "200000",
                         "abc 100000",
                         "200000 abc",
                         "200000x 100000",
                         "200000 100000 7",
                         "200000 0",
                         "-200000 100000",
                         "0 100000",
                         "99999999999999999999999 100000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(bl_cgroup_quota_cpus(bad[i]), 0);
    assert_int_equal(bl_cgroup_quota_cpus(NULL), 0);
}

static void v1_cfs_quota_is_parsed(void **state) {
    assert_int_equal(bl_cgroup_v1_quota_cpus("-1\n", "100000\n"), 0);
    assert_int_equal(bl_cgroup_v1_quota_cpus("200000\n", "100000\n"), 2);
    assert_int_equal(bl_cgroup_v1_quota_cpus("150000", "100000"), 2);
    assert_int_equal(bl_cgroup_v1_quota_cpus("50000", "100000"), 1);
    assert_int_equal(bl_cgroup_v1_quota_cpus("50000", "0"), 0);
    assert_int_equal(bl_cgroup_v1_quota_cpus("max", "100000"), 0);
    assert_int_equal(bl_cgroup_v1_quota_cpus(NULL, "100000"), 0);
}

static void proc_self_cgroup_is_parsed(void **state) {
    char p[256];
    assert_true(bl_cgroup_path("0::/user.slice/run-1.scope\n", NULL, p, sizeof p));
    assert_string_equal(p, "/user.slice/run-1.scope");
    const char *v1 = "9:name=systemd:/\n5:cpuset:/pinned\n3:cpu,cpuacct:/docker/abc\n"
                     "2:memory:/m\n0::/\n";
    assert_true(bl_cgroup_path(v1, "cpu", p, sizeof p));
    assert_string_equal(p, "/docker/abc"); /* "cpuset" is not "cpu" */
    assert_true(bl_cgroup_path(v1, NULL, p, sizeof p));
    assert_string_equal(p, "/");
    assert_false(bl_cgroup_path("4:memory:/m\n", "cpu", p, sizeof p));
    assert_false(bl_cgroup_path("4:memory:/m\n", NULL, p, sizeof p));
    assert_false(bl_cgroup_path("0::/a/long/path\n", NULL, p, 4)); /* does not fit */
    assert_false(bl_cgroup_path("garbage", NULL, p, sizeof p));
    assert_true(bl_cgroup_path("1:cpu:/last", "cpu", p, sizeof p)); /* no final newline */
    assert_string_equal(p, "/last");
}

/* ---- this machine ------------------------------------------------------------ */

static int affinity_count(cpu_set_t *set) {
    CPU_ZERO(set);
    assert_int_equal(sched_getaffinity(0, sizeof *set, set), 0);
    return CPU_COUNT(set);
}

static void usable_cpus_follow_affinity_and_quota(void **state) {
    cpu_set_t saved;
    int n = affinity_count(&saved), quota = bl_cpu_quota();
    int expect = quota > 0 && quota < n ? quota : n;
    assert_true(n >= 1);
    assert_int_equal(bl_cpu_count_affinity(), n);
    assert_int_equal(bl_cpu_count_usable(), expect);

    /* pinned to one CPU (the first it may use), it counts one */
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &saved)) {
            CPU_SET(c, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    int pinned = bl_cpu_count_usable(), pinned_affinity = bl_cpu_count_affinity();
    assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0); /* restore first */
    assert_int_equal(pinned, 1);
    assert_int_equal(pinned_affinity, 1);
    assert_int_equal(bl_cpu_count_usable(), expect);
}

static void default_context_uses_the_usable_cpus(void **state) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, 0);
    assert_int_equal(ctx.threads, bl_cpu_count_usable());
    assert_int_equal(bl_cpu_pool_threads(ctx.be->pool), bl_cpu_count_usable());
    bl_ctx_free(&ctx);
    bl_ctx_init(&ctx, 1);
    assert_int_equal(ctx.threads, 1);
    assert_int_equal(bl_cpu_pool_threads(ctx.be->pool), 1);
    bl_ctx_free(&ctx);
    bl_ctx_free(&ctx); /* idempotent */
}

/* ---- OpenBLAS blocking per core ------------------------------------------------ */

static void blas_blocking_follows_the_core(void **state) {
    cpu_blas_params p;
    assert_int_equal(cpu_blas_params_for("Haswell", 512, &p), 1);
    assert_string_equal(p.core, "Haswell");
    assert_int_equal(p.p, 320), assert_int_equal(p.q, 320), assert_int_equal(p.r, 104512);
    assert_int_equal(p.unroll_m, 8), assert_int_equal(p.unroll_n, 4);
    assert_int_equal(cpu_blas_params_for("zen", 512, &p), 1); /* any case */
    assert_int_equal(p.p, 320), assert_int_equal(p.q, 320);
    assert_int_equal(cpu_blas_params_for("Sandybridge", 512, &p), 1);
    assert_int_equal(p.p, 768), assert_int_equal(p.q, 384), assert_int_equal(p.r, 86592);
    assert_int_equal(p.unroll_m, 16);
    assert_int_equal(cpu_blas_params_for("SkylakeX", 1024, &p), 1);
    assert_int_equal(p.p, 448), assert_int_equal(p.q, 448), assert_int_equal(p.r, 74432);
    assert_int_equal(cpu_blas_params_for("Nehalem", 256, &p), 1);
    assert_int_equal(p.p, 504), assert_int_equal(p.q, 512), assert_int_equal(p.r, 65008);
    assert_int_equal(p.unroll_m, 4), assert_int_equal(p.unroll_n, 8);
    /* the older cores size P from the L2 */
    assert_int_equal(cpu_blas_params_for("Prescott", 512, &p), 1);
    assert_int_equal(p.p, 224), assert_int_equal(p.q, 128);
    assert_int_equal(cpu_blas_params_for("Prescott", 256, &p), 1);
    assert_int_equal(p.p, 112);
    assert_int_equal(cpu_blas_params_for("Core2", 512, &p), 1);
    assert_int_equal(p.p, 104), assert_int_equal(p.q, 256);
    /* unknown: Haswell's blocking, said so */
    assert_int_equal(cpu_blas_params_for("NEOVERSEN1", 1024, &p), 0);
    assert_string_equal(p.core, "default");
    assert_int_equal(p.p, 320), assert_int_equal(p.q, 320);
    assert_int_equal(cpu_blas_params_for(NULL, 0, &p), 0);
    assert_int_equal(p.p, 320);

    const cpu_blas_params *cur = cpu_blas_params_current();
    assert_non_null(cur);
    assert_ptr_equal(cur, cpu_blas_params_current());
    assert_true(cur->p > 0 && cur->q > 0 && cur->r > 0);
    if (cpu_blas_params_for(openblas_get_corename(), 0, &p)) assert_string_equal(cur->core, p.core);
}

static void blas_bytes_follow_the_blocking(void **state) {
    cpu_blas_params h;
    cpu_blas_params_for("Haswell", 512, &h);
    const size_t slack = (size_t)128 << 10;
    assert_int_equal(cpu_blas_gemm_bytes(&h, 0, 10, 10, 1), 0);
    /* one thread, m = 1024 >= 2P: a 320 x 320 panel of A, all 128 columns of B */
    assert_int_equal(cpu_blas_gemm_bytes(&h, 128, 1024, 784, 1), 4 * 320 * (320 + 128) + slack);
    /* m = 10 <= P: B is packed 3 x unroll_n columns at a time */
    assert_int_equal(cpu_blas_gemm_bytes(&h, 2048, 10, 1024, 1), 4 * 320 * (10 + 12) + slack);
    /* two threads split m: each packs its 512 rows (halved: 256) of A */
    assert_int_equal(cpu_blas_gemm_bytes(&h, 128, 1024, 784, 2), 4 * 320 * (2 * 256 + 128) + slack);
    /* at most CPU_BLAS_SERIAL_MNK, OpenBLAS stays on one thread */
    assert_int_equal(cpu_blas_gemm_bytes(&h, 64, 128, 32, 2),
                     cpu_blas_gemm_bytes(&h, 64, 128, 32, 1));
    assert_true(cpu_blas_gemm_bytes(&h, 64, 136, 32, 2) > cpu_blas_gemm_bytes(&h, 64, 136, 32, 1));
    cpu_blas_params s;
    cpu_blas_params_for("Sandybridge", 512, &s);
    assert_true(cpu_blas_gemm_bytes(&s, 512, 1024, 784, 1) >
                cpu_blas_gemm_bytes(&h, 512, 1024, 784, 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(v2_cpu_max_is_parsed),
        cmocka_unit_test(v2_garbage_is_no_quota),
        cmocka_unit_test(v1_cfs_quota_is_parsed),
        cmocka_unit_test(proc_self_cgroup_is_parsed),
        cmocka_unit_test(usable_cpus_follow_affinity_and_quota),
        cmocka_unit_test(default_context_uses_the_usable_cpus),
        cmocka_unit_test(blas_blocking_follows_the_core),
        cmocka_unit_test(blas_bytes_follow_the_blocking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
