/* Internal to the library (and to cli/ and the tests): the pieces of
 * bl_cpu_count_usable (include/batchlab/core.h), split so that the parsing is
 * testable on given text, without the machine's /proc and /sys. */
#ifndef BATCHLAB_CORE_CPUS_H
#define BATCHLAB_CORE_CPUS_H

#include <stddef.h>

/* CPUs granted by a cgroup v2 cpu.max ("200000 100000" -> 2, rounded up:
 * "150000 100000" -> 2); 0 for no quota ("max 100000") or text that is not a
 * quota and a period. */
int bl_cgroup_quota_cpus(const char *cpu_max_text);
/* The same for cgroup v1: cpu.cfs_quota_us and cpu.cfs_period_us (quota -1 = none). */
int bl_cgroup_v1_quota_cpus(const char *quota_text, const char *period_text);
/* The cgroup path of a /proc/self/cgroup text for `controller` ("cpu" for a
 * v1 hierarchy that lists it; NULL for the v2 "0::" line) into out. Returns 1
 * if found, 0 if not (or if it does not fit). */
int bl_cgroup_path(const char *proc_self_cgroup, const char *controller, char *out, size_t n);

/* CPUs in this thread's affinity mask (sched_getaffinity), or the online
 * CPUs if that fails; at least 1. */
int bl_cpu_count_affinity(void);
/* The tightest CPU quota over this process's cgroup and its ancestors, v2 and
 * v1, rounded up to whole CPUs; 0 when none is set or none can be read. */
int bl_cpu_quota(void);

#endif
