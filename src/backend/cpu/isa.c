/* Run-time choice of the CPU kernels' ISA level.
 *
 * The kernel files are compiled once per level (CMakeLists.txt: baseline =
 * x86-64-v2, avx2 = x86-64-v3, avx512 = x86-64-v4; or a single "native" one
 * with BL_NATIVE), each into its own table, cpu_kernel_table_<level>. This
 * file, built for the baseline, asks the CPU what it can run (cpuid, and the
 * OS's saved-register support through __builtin_cpu_supports) and hands out
 * the best table, once per process, as ggml's CPU variants do. BATCHLAB_ISA
 * lowers the choice for tests and for users chasing a numerical difference;
 * a level this CPU cannot run is never chosen, whatever it says. */
#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cpu/cpu.h"

#if BL_CPU_HAVE_BASELINE
const bl_kernels *cpu_kernel_table_baseline(void);
#endif
#if BL_CPU_HAVE_AVX2
const bl_kernels *cpu_kernel_table_avx2(void);
#endif
#if BL_CPU_HAVE_AVX512
const bl_kernels *cpu_kernel_table_avx512(void);
#endif
#if BL_CPU_HAVE_NATIVE
const bl_kernels *cpu_kernel_table_native(void);
#endif

static const char *const isa_names[BL_CPU_ISA_COUNT] = {"baseline", "avx2", "avx512", "native"};

const char *bl_cpu_isa_name(bl_cpu_isa isa) {
    return (unsigned)isa < BL_CPU_ISA_COUNT ? isa_names[isa] : "?";
}

bl_status bl_cpu_isa_parse(const char *name, bl_cpu_isa *isa, bl_error *err) {
    for (int i = 0; i < BL_CPU_ISA_COUNT; i++)
        if (name && strcmp(name, isa_names[i]) == 0) {
            *isa = (bl_cpu_isa)i;
            return BL_OK;
        }
    return bl_fail(err, BL_ERR_ARG, "unknown ISA level '%s' (expected baseline, avx2, avx512%s)",
                   name ? name : "", bl_cpu_isa_built(BL_CPU_ISA_NATIVE) ? " or native" : "");
}

static const bl_kernels *table_of(bl_cpu_isa isa) {
    switch (isa) {
#if BL_CPU_HAVE_BASELINE
    case BL_CPU_ISA_BASELINE:
        return cpu_kernel_table_baseline();
#endif
#if BL_CPU_HAVE_AVX2
    case BL_CPU_ISA_AVX2:
        return cpu_kernel_table_avx2();
#endif
#if BL_CPU_HAVE_AVX512
    case BL_CPU_ISA_AVX512:
        return cpu_kernel_table_avx512();
#endif
#if BL_CPU_HAVE_NATIVE
    case BL_CPU_ISA_NATIVE:
        return cpu_kernel_table_native();
#endif
    default:
        return NULL;
    }
}

int bl_cpu_isa_built(bl_cpu_isa isa) {
    return table_of(isa) != NULL;
}

/* cpuid bits that __builtin_cpu_supports does not name in every compiler. */
static int cpuid_bit(unsigned leaf, int reg, int bit) {
    unsigned r[4];
    if (!__get_cpuid(leaf, &r[0], &r[1], &r[2], &r[3])) return 0;
    return (r[reg] >> bit) & 1;
}
enum { EAX, EBX, ECX, EDX };

/* What x86-64-v2/v3/v4 promise the compiler (gcc's -march=x86-64-vN), as far
 * as the generated code can use it. __builtin_cpu_supports also checks that
 * the OS saves the wide registers (XCR0), which cpuid alone does not say. */
static int cpu_runs(bl_cpu_isa isa) {
    __builtin_cpu_init();
    const int v2 = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt") &&
                   __builtin_cpu_supports("ssse3");
    const int v3 = v2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                   cpuid_bit(1, ECX, 29) /* f16c */ && cpuid_bit(1, ECX, 22) /* movbe */ &&
                   cpuid_bit(0x80000001u, ECX, 5) /* lzcnt */;
    const int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512vl");
    switch (isa) {
    case BL_CPU_ISA_BASELINE:
        return v2;
    case BL_CPU_ISA_AVX2:
        return v3;
    case BL_CPU_ISA_AVX512:
        return v4;
    case BL_CPU_ISA_NATIVE:
        return 1; /* built for this host by whoever chose BL_NATIVE */
    default:
        return 0;
    }
}

int bl_cpu_isa_usable(bl_cpu_isa isa) {
    return bl_cpu_isa_built(isa) && cpu_runs(isa);
}

const bl_kernels *bl_cpu_kernels_isa(bl_cpu_isa isa) {
    return bl_cpu_isa_usable(isa) ? table_of(isa) : NULL;
}

/* The choice, made once (pthread_once) and never changed: a process that
 * mixed levels would give results that depend on which call came first. */
static pthread_once_t choice_once = PTHREAD_ONCE_INIT;
static bl_cpu_isa choice_isa;
static char choice_why[256];

static void choose(void) {
    bl_cpu_isa best = BL_CPU_ISA_COUNT;
    for (int i = BL_CPU_ISA_COUNT - 1; i >= 0 && best == BL_CPU_ISA_COUNT; i--)
        if (bl_cpu_isa_usable((bl_cpu_isa)i)) best = (bl_cpu_isa)i;
    if (best == BL_CPU_ISA_COUNT) best = BL_CPU_ISA_BASELINE; /* pre-v2 CPU: try anyway */
    const char *env = getenv("BATCHLAB_ISA");
    bl_cpu_isa want = best;
    choice_isa = best;
    if (best == BL_CPU_ISA_NATIVE) {
        snprintf(choice_why, sizeof choice_why, "built with BL_NATIVE for the build host%s",
                 env && *env ? "; BATCHLAB_ISA has no effect" : "");
    } else if (!env || !*env) {
        snprintf(choice_why, sizeof choice_why, "the best level this CPU supports (cpuid)");
    } else if (bl_cpu_isa_parse(env, &want, NULL) != BL_OK) {
        snprintf(choice_why, sizeof choice_why,
                 "BATCHLAB_ISA=%.40s is not a level (baseline, avx2, avx512), so the best this "
                 "CPU supports",
                 env);
    } else if (!bl_cpu_isa_usable(want)) {
        snprintf(choice_why, sizeof choice_why,
                 "BATCHLAB_ISA=%s is beyond this CPU, so the best it supports", env);
    } else {
        choice_isa = want;
        snprintf(choice_why, sizeof choice_why, "forced by BATCHLAB_ISA=%s%s", env,
                 want == best ? " (also the best this CPU supports)" : "");
    }
}

bl_cpu_isa bl_cpu_isa_selected(const char **why) {
    pthread_once(&choice_once, choose);
    if (why) *why = choice_why;
    return choice_isa;
}

const bl_kernels *bl_cpu_kernels(void) {
    return table_of(bl_cpu_isa_selected(NULL));
}
