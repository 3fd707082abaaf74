/* How many CPUs this process may really use: the CPUs in its affinity mask
 * (taskset, cpusets, a container's --cpuset-cpus), lowered to the CPU quota of
 * its cgroup (a container's --cpus, a systemd CPUQuota=), which the online CPU
 * count knows nothing of. Threads beyond a quota do not run in parallel; they
 * take turns within each scheduling period, and a fork-join step waits for
 * the slowest of them.
 *
 * The quota is read at every level from the process's own cgroup up to the
 * root, since a parent's limit binds its children, in both the v2 hierarchy
 * (cpu.max under /sys/fs/cgroup) and a v1 cpu hierarchy (cpu.cfs_quota_us and
 * cpu.cfs_period_us under /sys/fs/cgroup/cpu); the tightest wins. A
 * container usually sees its own cgroup mounted as the root with
 * /proc/self/cgroup naming the host's path; a level that does not exist is
 * skipped, so the root's file is what is read there. Nothing is cached: the
 * mask and the quota can change while the process runs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CPU_ALLOC, sched_getaffinity */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "batchlab/core.h"
#include "core/cpus.h"

#define CGROUP_V2_ROOT "/sys/fs/cgroup"
static const char *const cgroup_v1_cpu_roots[] = {"/sys/fs/cgroup/cpu",
                                                  "/sys/fs/cgroup/cpu,cpuacct"};

/* ---- parsing ------------------------------------------------------------- */

/* A decimal integer after optional blanks; advances *s past it. */
static int parse_int(const char **s, long long *v) {
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!(*p == '-' || (*p >= '0' && *p <= '9'))) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (errno || end == p) return 0;
    *v = x, *s = end;
    return 1;
}

static int only_space(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return *s == '\0';
}

static int quota_cpus(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    long long n = quota / period + (quota % period != 0);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int bl_cgroup_quota_cpus(const char *cpu_max_text) {
    long long quota, period;
    const char *p = cpu_max_text;
    if (!p || !parse_int(&p, &quota) || !parse_int(&p, &period) || !only_space(p)) return 0;
    return quota_cpus(quota, period);
}

int bl_cgroup_v1_quota_cpus(const char *quota_text, const char *period_text) {
    long long quota, period;
    const char *q = quota_text, *p = period_text;
    if (!q || !p || !parse_int(&q, &quota) || !only_space(q) || !parse_int(&p, &period) ||
        !only_space(p))
        return 0;
    return quota_cpus(quota, period);
}

/* Does the comma-separated list [s, e) name controller? */
static int lists(const char *s, const char *e, const char *controller) {
    size_t n = strlen(controller);
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        if (!c) c = e;
        if ((size_t)(c - s) == n && !memcmp(s, controller, n)) return 1;
        s = c + 1;
    }
    return 0;
}

int bl_cgroup_path(const char *text, const char *controller, char *out, size_t n) {
    if (!text || !out || n == 0) return 0;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        /* hierarchy-id ":" controller-list ":" path */
        const char *c1 = memchr(line, ':', (size_t)(eol - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (c2) {
            int match = controller ? lists(c1 + 1, c2, controller)
                                   : (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1);
            size_t len = (size_t)(eol - c2 - 1);
            if (match) {
                if (len + 1 > n) return 0;
                memcpy(out, c2 + 1, len);
                out[len] = '\0';
                return 1;
            }
        }
        line = *eol ? eol + 1 : eol;
    }
    return 0;
}

/* ---- the machine ---------------------------------------------------------- */

/* Reads a small file into buf (NUL-terminated). Returns 1 if it was read. */
static int read_text(const char *path, char *buf, size_t n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t r = read(fd, buf + got, n - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return got > 0;
}

static int tighter(int a, int b) {
    if (a <= 0) return b;
    if (b <= 0) return a;
    return a < b ? a : b;
}

static int v2_level_quota(const char *dir) {
    char path[PATH_MAX], text[128];
    if (snprintf(path, sizeof path, "%s/cpu.max", dir) >= (int)sizeof path) return 0;
    return read_text(path, text, sizeof text) ? bl_cgroup_quota_cpus(text) : 0;
}

static int v1_level_quota(const char *dir) {
    char path[PATH_MAX], quota[64], period[64];
    if (snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir) >= (int)sizeof path ||
        !read_text(path, quota, sizeof quota))
        return 0;
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    return read_text(path, period, sizeof period) ? bl_cgroup_v1_quota_cpus(quota, period) : 0;
}

/* The tightest quota at root + rel and at each ancestor up to root itself. */
static int quota_up_from(const char *root, const char *rel, int (*level_quota)(const char *)) {
    char dir[PATH_MAX];
    int best = 0;
    if (snprintf(dir, sizeof dir, "%s%s", root, rel) >= (int)sizeof dir) return 0;
    size_t root_len = strlen(root);
    for (;;) {
        size_t len = strlen(dir);
        while (len > root_len && dir[len - 1] == '/')
            dir[--len] = '\0';
        best = tighter(best, level_quota(dir));
        if (len <= root_len) break;
        char *slash = strrchr(dir + root_len, '/');
        if (!slash) slash = dir + root_len;
        *slash = '\0';
    }
    return best;
}

int bl_cpu_quota(void) {
    char cgroups[8192], rel[PATH_MAX];
    if (!read_text("/proc/self/cgroup", cgroups, sizeof cgroups)) cgroups[0] = '\0';
    if (!bl_cgroup_path(cgroups, NULL, rel, sizeof rel)) strcpy(rel, "/");
    int best = quota_up_from(CGROUP_V2_ROOT, rel, v2_level_quota);
    if (!bl_cgroup_path(cgroups, "cpu", rel, sizeof rel)) strcpy(rel, "/");
    for (size_t i = 0; i < sizeof cgroup_v1_cpu_roots / sizeof *cgroup_v1_cpu_roots; i++)
        if (access(cgroup_v1_cpu_roots[i], F_OK) == 0) {
            best = tighter(best, quota_up_from(cgroup_v1_cpu_roots[i], rel, v1_level_quota));
            break; /* the second name is usually a link to the first */
        }
    return best;
}

int bl_cpu_count_affinity(void) {
    /* cpu_set_t holds 1024 CPUs; a bigger machine needs a bigger mask (EINVAL) */
    for (int ncpu = CPU_SETSIZE; ncpu <= (1 << 20); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set) break;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(size, set);
        int rc = sched_getaffinity(0, size, set), err = errno;
        int n = rc == 0 ? CPU_COUNT_S(size, set) : 0;
        CPU_FREE(set);
        if (rc == 0 && n > 0) return n;
        if (rc == 0 || err != EINVAL) break;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
}

int bl_cpu_count_usable(void) {
    return tighter(bl_cpu_count_affinity(), bl_cpu_quota());
}
