/* The backends this build can open, by name. The "cpu" and "opaque" backends
 * keep no state of their own beyond the kernel choice (isa.c) and the opaque
 * memory pool, so each is one static object, without a thread pool; a context
 * copies it into its own bl_backend and adds its own thread pool (ctx.c). */
#include <string.h>
#include "backend/host_backend.h"

static bl_backend cpu_backend = {
    .name = "cpu", .ops = &host_backend_ops, .impl = NULL, .host_visible = 1};
static bl_backend opaque_backend = {
    .name = "opaque", .ops = &host_backend_ops, .impl = &opaque_pool_process, .host_visible = 0};

int bl_backend_names(const char **names, int cap) {
    static const char *const all[] = {"cpu", "opaque"};
    int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n && i < cap; i++)
        names[i] = all[i];
    return n;
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
    *out = NULL;
    return bl_fail(err, BL_ERR_ARG, "unknown device '%s' (expected cpu or opaque)", name);
}

bl_status bl_backend_fail(bl_error *err, bl_status st, const bl_backend *be, const char *what) {
    return bl_fail(err, st, "backend %s: %s failed (%s)", be ? be->name : "?", what,
                   bl_status_name(st));
}
