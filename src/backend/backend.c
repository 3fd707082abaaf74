/* The backends this build can open, by name. The "cpu" and "opaque" backends
 * keep no state of their own beyond the kernel choice (isa.c) and the opaque
 * memory pool, so each is one static object, without a thread pool; a context
 * copies it into its own bl_backend and adds its own thread pool (ctx.c).
 * "cuda[:N]" is one static object per device, which a context opens to get
 * its own stream and handles (cuda/cuda_backend.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cuda_backend.h"
#include "backend/host_backend.h"

static bl_backend cpu_backend = {
    .name = "cpu", .ops = &host_backend_ops, .impl = NULL, .host_visible = 1};
static bl_backend opaque_backend = {
    .name = "opaque", .ops = &host_backend_ops, .impl = &opaque_pool_process, .host_visible = 0};

int bl_backend_names(const char **names, int cap) {
#if BL_HAVE_CUDA
    static const char *const all[] = {"cpu", "opaque", "cuda"};
#else
    static const char *const all[] = {"cpu", "opaque"};
#endif
    int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n && i < cap; i++)
        names[i] = all[i];
    return n;
}

int cuda_local_device(int n_devices) {
    /* the launchers' local rank: Open MPI, MPICH/Hydra, Slurm */
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                       "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        char *end;
        if (!v || !*v) continue;
        errno = 0;
        long r = strtol(v, &end, 10);
        if (!errno && !*end && r >= 0 && n_devices > 0) return (int)(r % n_devices);
    }
    return 0;
}

/* "cuda" or "cuda:N" into N ("cuda": this process's local rank's device, see
 * cuda_local_device); -1 when name is not a CUDA device, -2 when it is one with
 * a bad index. */
static int cuda_index(const char *name) {
    if (!name || strncmp(name, "cuda", 4) || (name[4] != '\0' && name[4] != ':')) return -1;
    if (name[4] == '\0') {
        int n = bl_cuda_devices(NULL, 0, NULL, 0);
        return n > 0 ? cuda_local_device(n) : 0;
    }
    char *end;
    errno = 0;
    long device = strtol(name + 5, &end, 10);
    if (errno || end == name + 5 || *end || device < 0 || device > 255) return -2;
    return (int)device;
}

bl_status bl_device_free_bytes(const char *device, size_t *out, char *where, size_t where_len,
                               bl_error *err) {
    *out = 0;
    if (!device || !*device) device = getenv("BATCHLAB_DEVICE");
    const int index = cuda_index(device);
    if (index == -2)
        return bl_fail(err, BL_ERR_ARG, "device '%s': expected cuda or cuda:N", device);
    if (index >= 0) {
        bl_gpu_info gpus[16];
        char why[256];
        int n = bl_cuda_devices(gpus, 16, why, sizeof why);
        if (n < 0) return bl_fail(err, BL_ERR_UNSUPPORTED, "device cuda:%d: %s", index, why);
        if (index >= n || index >= 16)
            return bl_fail(err, BL_ERR_ARG, "device cuda:%d: this machine has %d CUDA device%s",
                           index, n, n == 1 ? "" : "s");
        *out = gpus[index].free_bytes;
        if (where && where_len)
            snprintf(where, where_len, "free on cuda:%d (%s)", index, gpus[index].name);
        return BL_OK;
    }
    /* host memory: what the kernel says can be had without swapping */
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return bl_fail(err, BL_ERR_IO, "/proc/meminfo: %s", strerror(errno));
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    fclose(f);
    if (!found) return bl_fail(err, BL_ERR_FORMAT, "/proc/meminfo: no MemAvailable line");
    *out = (size_t)kb * 1024;
    if (where && where_len) snprintf(where, where_len, "the host's MemAvailable");
    return BL_OK;
}

bl_status bl_backend_get(bl_backend **out, const char *name, bl_error *err) {
    if (!name || !*name || !strcmp(name, "cpu")) {
        *out = &cpu_backend;
        return BL_OK;
    }
    if (!strcmp(name, "opaque")) {
        *out = &opaque_backend;
        return BL_OK;
    }
    const int index = cuda_index(name);
    if (index == -2) {
        *out = NULL;
        return bl_fail(err, BL_ERR_ARG,
                       "device '%s': expected cuda or cuda:N with N a device index", name);
    }
    if (index >= 0) return cuda_backend_get(out, index, err);
    *out = NULL;
    return bl_fail(err, BL_ERR_ARG, "unknown device '%s' (expected cpu, opaque, cuda or cuda:N)",
                   name);
}

bl_status bl_backend_fail(bl_error *err, bl_status st, const bl_backend *be, const char *what) {
    return bl_fail(err, st, "backend %s: %s failed (%s)", be ? be->name : "?", what,
                   bl_status_name(st));
}
