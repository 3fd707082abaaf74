/* Option parsing for the subcommands (see args.h). Accepts --name value and
 * --name=value. */
#include "args.h"
#include "batchlab/core.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/alloc.h"

static int silent; /* CLI-process state: set once at start-up by distributed runs */

void cli_set_silent(int s) {
    silent = s;
}

int cli_error(const char *cmd, const char *fmt, ...) {
    if (silent) return 2;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "batchlab %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

int cli_print_json(const char *cmd, const cJSON *j, unsigned mark) {
    char *s = j && bl_alloc_failures() == mark ? cJSON_Print(j) : NULL;
    if (!s) return cli_fail(cmd, "out of memory formatting the JSON result");
    printf("%s\n", s);
    bl_free(s);
    return 0;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    if (silent) return 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "batchlab %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static void print_help(const char *cmd, const char *usage, const cli_opt *opts, int n) {
    printf("usage: batchlab %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < n; i++) {
        const char *meta = opts[i].type == ARG_FLAG                                  ? ""
                           : opts[i].type == ARG_STR                                 ? " S"
                           : opts[i].type == ARG_FLOAT || opts[i].type == ARG_DOUBLE ? " X"
                                                                                     : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", opts[i].name, meta);
        printf("  %-24s %s\n", left, opts[i].help);
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

static int set_value(const char *cmd, cli_opt *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case ARG_FLAG:
        *(int *)o->ptr = 1;
        return 0;
    case ARG_STR:
        *(const char **)o->ptr = v;
        return 0;
    case ARG_INT:
    case ARG_LONG:
    case ARG_SIZE: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return cli_error(cmd, "--%s expects an integer, got '%s'", o->name, v);
        if (o->type == ARG_SIZE && x < 0)
            return cli_error(cmd, "--%s must not be negative, got '%s'", o->name, v);
        if (o->type == ARG_INT) {
            if (x < -2147483647LL || x > 2147483647LL)
                return cli_error(cmd, "--%s value '%s' is out of range", o->name, v);
            *(int *)o->ptr = (int)x;
        } else if (o->type == ARG_LONG) {
            *(long *)o->ptr = (long)x;
        } else {
            *(size_t *)o->ptr = (size_t)x;
        }
        return 0;
    }
    case ARG_FLOAT:
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return cli_error(cmd, "--%s expects a finite number, got '%s'", o->name, v);
        if (o->type == ARG_FLOAT)
            *(float *)o->ptr = (float)x;
        else
            *(double *)o->ptr = x;
        return 0;
    }
    }
    return 2;
}

int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int n_opts, int argc, char **argv,
              const char **positional, int max_pos, int *n_pos) {
    if (n_pos) *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(cmd, usage, opts, n_opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!positional || !n_pos || *n_pos >= max_pos)
                return cli_error(cmd, "unexpected argument '%s' (see batchlab %s --help)", a, cmd);
            positional[(*n_pos)++] = a;
            continue;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a + 2, len);
        name[len] = '\0';
        cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (!strcmp(opts[k].name, name)) o = &opts[k];
        if (!o) return cli_error(cmd, "unknown option '--%s' (see batchlab %s --help)", name, cmd);
        const char *v = NULL;
        if (o->type != ARG_FLAG) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return cli_error(cmd, "--%s needs a value", name);
        } else if (eq) {
            return cli_error(cmd, "--%s takes no value", name);
        }
        if (set_value(cmd, o, v)) return 2;
        o->seen = 1;
    }
    return 0;
}

const cli_opt *cli_opt_find(const cli_opt *opts, int n_opts, const char *name) {
    for (int i = 0; i < n_opts; i++)
        if (!strcmp(opts[i].name, name)) return &opts[i];
    return NULL;
}

/* "512M", "2G", "1.5GiB", "1000000" -> bytes (decimal K/M/G; KiB/MiB/GiB binary). */
int cli_parse_bytes(const char *s, size_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return -1;
    double mult = 1;
    if (!strcasecmp(end, "") || !strcasecmp(end, "b"))
        mult = 1;
    else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb"))
        mult = 1e3;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb"))
        mult = 1e6;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb"))
        mult = 1e9;
    else if (!strcasecmp(end, "kib"))
        mult = 1024.0;
    else if (!strcasecmp(end, "mib"))
        mult = 1024.0 * 1024;
    else if (!strcasecmp(end, "gib"))
        mult = 1024.0 * 1024 * 1024;
    else
        return -1;
    /* Converting a double beyond size_t's range is undefined behaviour, and
     * "1e300G" is no budget anyway. */
    if (!(v * mult < (double)SIZE_MAX)) return -1;
    *out = (size_t)(v * mult);
    return 0;
}

/* "16,32,64" into ints (> 0) or doubles (> 0); messages name the flag. */
int cli_parse_list(const char *cmd, const char *flag, const char *s, int as_int, int *ints,
                   double *dbls, int cap, int *n) {
    *n = 0;
    const char *p = s;
    while (1) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || !isfinite(v) || !(v > 0) ||
            (as_int && (v != floor(v) || v > 1e9))) {
            size_t len = strcspn(p, ",");
            return cli_error(cmd, "%s: '%.*s' in '%s' is not a positive %s", flag, (int)len, p, s,
                             as_int ? "integer" : "number");
        }
        if (*n >= cap) return cli_error(cmd, "%s: at most %d values are allowed", flag, cap);
        for (int i = 0; i < *n; i++)
            if (as_int ? ints[i] == (int)v : dbls[i] == v)
                return cli_error(cmd, "%s: %g is listed twice", flag, v);
        if (as_int)
            ints[(*n)++] = (int)v;
        else
            dbls[(*n)++] = v;
        if (*end == '\0') return 0;
        p = end + 1;
    }
}

void cli_note(const char *fmt, ...) {
    if (silent) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int cli_ctx_init(const char *cmd, bl_ctx *ctx, int threads, const cli_device *dev) {
    bl_error err = {0};
    bl_ctx_init(ctx, threads);
    if (bl_ctx_set_device(ctx, dev->name, &err))
        return bl_ctx_free(ctx), cli_error(cmd, "--device: %s", err.msg);
    if (bl_ctx_set_tf32(ctx, dev->tf32, &err))
        return bl_ctx_free(ctx), cli_error(cmd, "--tf32: %s", err.msg);
    return 0;
}
