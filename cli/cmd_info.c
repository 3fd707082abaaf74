/* batchlab info: what this build and machine offer, and (with --model) the
 * parameter count and predicted memory of a model at a batch size. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "args.h"
#include "cli.h"
#include "core/cpus.h"
#include "backend/cuda_backend.h"
#include "batchlab/backend.h"
#include "batchlab/dist.h"
#include "batchlab/model.h"
#include "batchlab/optim.h"
#include "core/alloc.h"

extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);

/* "available: N devices" or why not, and the devices in *gpus (count in *n). */
static const char *cuda_status(bl_gpu_info *gpus, int cap, int *n) {
    static char why[512]; /* CLI-only, filled once */
    *n = bl_cuda_devices(gpus, cap, why, sizeof why);
    if (*n < 0) return why;
    static char buf[600];
    snprintf(buf, sizeof buf, "available (%s): --device cuda or cuda:N", why);
    return buf;
}

static const char *mpi_status(void) {
    static char buf[512]; /* CLI-only, filled once */
    if (!bl_dist_built()) return bl_dist_library();
    snprintf(buf, sizeof buf, "available (%s): mpirun -np N batchlab train ...", bl_dist_library());
    return buf;
}

int cli_info(int argc, char **argv) {
    const char *cmd = "info";
    const char *model = NULL, *input = "1x28x28", *optimizer = "momentum";
    int batch = 64, classes = 10, json = 0, threads = 0;
    cli_device device = {0};
    cli_opt opts[] = {
        {"model", ARG_STR, &model, "also report a model's size and memory (spec or preset)", 0},
        {"batch", ARG_INT, &batch, "batch size for the memory prediction (default 64)", 0},
        {"input", ARG_STR, &input, "input shape CxHxW (default 1x28x28)", 0},
        {"classes", ARG_INT, &classes, "number of outputs (default 10)", 0},
        {"optimizer", ARG_STR, &optimizer, "optimizer whose state is counted (default momentum)",
         0},
        {"threads", ARG_INT, &threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(device),
        {"json", ARG_FLAG, &json, "print as JSON", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "[--model M --batch B]", opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    unsigned mark = bl_alloc_failures();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", BL_VERSION);
    cJSON_AddStringToObject(j, "blas", openblas_get_config());
    cJSON_AddStringToObject(j, "blas_core", openblas_get_corename());
    cJSON_AddNumberToObject(j, "threads", ctx.threads);
    cJSON_AddNumberToObject(j, "cpus_online", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(j, "cpus_usable", bl_cpu_count_usable());
    cJSON_AddNumberToObject(j, "cpus_affinity", bl_cpu_count_affinity());
    cJSON_AddNumberToObject(j, "cpu_quota", bl_cpu_quota()); /* 0: none */
    cJSON_AddStringToObject(j, "backend", ctx.be->name);
    const char *names[8];
    int n_names = bl_backend_names(names, 8);
    cJSON *bj = cJSON_AddArrayToObject(j, "backends");
    for (int i = 0; bj && i < n_names && i < 8; i++)
        cJSON_AddItemToArray(bj, cJSON_CreateString(names[i]));
    const char *isa_why;
    const bl_cpu_isa isa = bl_cpu_isa_selected(&isa_why);
    cJSON_AddStringToObject(j, "isa", bl_cpu_isa_name(isa));
    cJSON_AddStringToObject(j, "isa_reason", isa_why);
    cJSON *levels = cJSON_AddObjectToObject(j, "isa_usable"); /* built and runnable here */
    for (int i = 0; i < BL_CPU_ISA_COUNT; i++)
        if (bl_cpu_isa_built((bl_cpu_isa)i))
            cJSON_AddBoolToObject(levels, bl_cpu_isa_name((bl_cpu_isa)i),
                                  bl_cpu_isa_usable((bl_cpu_isa)i));
    bl_gpu_info gpus[16];
    int n_gpus;
    const char *cuda_why = cuda_status(gpus, 16, &n_gpus);
    cJSON_AddBoolToObject(j, "cuda", n_gpus > 0);
    cJSON_AddStringToObject(j, "cuda_status", cuda_why);
    char libs_why[600] = "";
    const int libs = BL_HAVE_CUDA ? cuda_libs_status(libs_why, sizeof libs_why) : -1;
    if (libs >= 0) cJSON_AddStringToObject(j, "cuda_libraries", libs_why);
    cJSON *gj = cJSON_AddArrayToObject(j, "gpus");
    for (int i = 0; gj && i < n_gpus && i < 16; i++) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "index", gpus[i].index);
        cJSON_AddStringToObject(g, "name", gpus[i].name);
        char cc[16];
        snprintf(cc, sizeof cc, "%d.%d", gpus[i].cc_major, gpus[i].cc_minor);
        cJSON_AddStringToObject(g, "compute_capability", cc);
        cJSON_AddNumberToObject(g, "sms", gpus[i].sm_count);
        cJSON_AddNumberToObject(g, "total_bytes", (double)gpus[i].total_bytes);
        cJSON_AddNumberToObject(g, "free_bytes", (double)gpus[i].free_bytes);
        cJSON_AddItemToArray(gj, g);
    }
    cJSON_AddBoolToObject(j, "mpi", bl_dist_built());
    cJSON_AddStringToObject(j, "mpi_status", mpi_status());
    if (model) {
        bl_shape in;
        bl_error err = {0};
        if (sscanf(input, "%dx%dx%d", &in.c, &in.h, &in.w) != 3 || in.c <= 0 || in.h <= 0 ||
            in.w <= 0)
            return cJSON_Delete(j), bl_ctx_free(&ctx),
                   cli_error(cmd, "--input expects CxHxW (e.g. 1x28x28), got '%s'", input);
        if (batch <= 0)
            return cJSON_Delete(j), bl_ctx_free(&ctx),
                   cli_error(cmd, "--batch %d is invalid: it must be at least 1", batch);
        bl_optim_config oc;
        if (bl_optim_parse(&oc, optimizer, &err))
            return cJSON_Delete(j), bl_ctx_free(&ctx), cli_error(cmd, "--optimizer: %s", err.msg);
        bl_model *m;
        if (bl_model_create(&m, model, in, classes, &err))
            return cJSON_Delete(j), bl_ctx_free(&ctx), cli_error(cmd, "%s", err.msg);
        size_t np = bl_model_num_params(m);
        size_t state = oc.kind == BL_OPT_SGD ? (oc.momentum > 0 ? np : 0) : 2 * np;
        size_t model_bytes = bl_model_memory_bytes_on(m, ctx.be, batch);
        /* parameters and gradients (arenas, as allocated), the rest is per batch:
         * activations, their gradients, conv workspace and BLAS's packing buffers */
        size_t weight_bytes = (2 * (np + 1) + bl_model_num_buffers(m) + 1) * sizeof(float);
        cJSON *mj = cJSON_AddObjectToObject(j, "model");
        cJSON_AddStringToObject(mj, "spec", bl_model_spec(m));
        cJSON_AddNumberToObject(mj, "params", (double)np);
        cJSON_AddNumberToObject(mj, "batch", batch);
        cJSON_AddNumberToObject(mj, "model_bytes", (double)model_bytes);
        cJSON_AddNumberToObject(mj, "weight_bytes", (double)weight_bytes);
        cJSON_AddNumberToObject(mj, "activation_bytes", (double)(model_bytes - weight_bytes));
        cJSON_AddNumberToObject(mj, "optimizer_state_bytes", (double)(state * sizeof(float)));
        cJSON_AddNumberToObject(mj, "predicted_bytes",
                                (double)(model_bytes + state * sizeof(float)));
        bl_model_free(m);
    }
    /* The text below reads the JSON back: it must be whole. */
    if (json || bl_alloc_failures() != mark) {
        rc = cli_print_json(cmd, j, mark);
    } else {
        printf("batchlab %s\n", BL_VERSION);
        printf("backend   %s (this build has:", ctx.be->name);
        for (int i = 0; i < n_names && i < 8; i++)
            printf(" %s", names[i]);
        printf("; choose with --device or BATCHLAB_DEVICE)\n");
        printf("isa       %s: %s\n", bl_cpu_isa_name(isa), isa_why);
        printf("levels   ");
        for (int i = 0; i < BL_CPU_ISA_COUNT; i++)
            if (bl_cpu_isa_built((bl_cpu_isa)i))
                printf(" %s%s", bl_cpu_isa_name((bl_cpu_isa)i),
                       bl_cpu_isa_usable((bl_cpu_isa)i) ? "" : " (not on this CPU)");
        printf("  [built into this binary]\n");
        printf("blas      %s (core %s)\n", openblas_get_config(), openblas_get_corename());
        const int quota = bl_cpu_quota();
        char quota_s[32] = "none";
        if (quota > 0) snprintf(quota_s, sizeof quota_s, "%d CPUs", quota);
        printf("threads   %d (usable CPUs %d: affinity %d of %ld online, cgroup quota %s)\n",
               ctx.threads, bl_cpu_count_usable(), bl_cpu_count_affinity(),
               sysconf(_SC_NPROCESSORS_ONLN), quota_s);
        printf("cuda      %s\n", cuda_why);
        if (libs >= 0) printf("cuda libs %s\n", libs_why);
        for (int i = 0; i < n_gpus && i < 16; i++)
            printf("gpu       cuda:%d %s (compute %d.%d, %d SMs), %.1f GiB, %.1f GiB free\n",
                   gpus[i].index, gpus[i].name, gpus[i].cc_major, gpus[i].cc_minor,
                   gpus[i].sm_count, gpus[i].total_bytes / 1073741824.0,
                   gpus[i].free_bytes / 1073741824.0);
        printf("mpi       %s\n", mpi_status());
        cJSON *mj = cJSON_GetObjectItem(j, "model");
        if (mj) {
            printf("model     %s\n", cJSON_GetObjectItem(mj, "spec")->valuestring);
            printf("params    %.0f\n", cJSON_GetObjectItem(mj, "params")->valuedouble);
            printf("memory    %.1f MB at batch %d: weights+gradients %.1f MB, optimizer state %.1f "
                   "MB,\n"
                   "          activations+workspace+BLAS buffers %.1f MB (peak resident-set growth "
                   "of\n"
                   "          a training process; the data set and its batches come on top)\n",
                   cJSON_GetObjectItem(mj, "predicted_bytes")->valuedouble / 1e6, batch,
                   cJSON_GetObjectItem(mj, "weight_bytes")->valuedouble / 1e6,
                   cJSON_GetObjectItem(mj, "optimizer_state_bytes")->valuedouble / 1e6,
                   cJSON_GetObjectItem(mj, "activation_bytes")->valuedouble / 1e6);
        }
    }
    cJSON_Delete(j);
    bl_ctx_free(&ctx);
    return rc;
}
