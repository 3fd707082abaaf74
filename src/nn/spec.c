/* Model-spec parser. A spec is a comma-separated list of tokens, each one
 * layer (see include/batchlab/model.h). Errors name the token by position and
 * text, and suggest the closest known layer name for typos, because a spec is
 * typed by hand on the command line. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/layer.h"

static const char *const known_names[] = {"dense", "conv",    "maxpool", "avgpool",
                                          "flatten", "relu",  "lrelu",   "tanh",
                                          "sigmoid", "gelu",  "dropout", "bn"};
#define N_KNOWN (sizeof known_names / sizeof known_names[0])

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 31 || lb > 31) return 99;
    int d[32][32];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* Parse a positive integer that spans all of s. */
static int parse_pos_int(const char *s, int *out) {
    if (!*s || !isdigit((unsigned char)*s)) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v <= 0 || v > 1000000) return 0;
    *out = (int)v;
    return 1;
}

static int parse_nonneg_int(const char *s, int *out) {
    if (!strcmp(s, "0")) {
        *out = 0;
        return 1;
    }
    return parse_pos_int(s, out);
}

static int parse_float(const char *s, float *out) {
    if (!*s) return 0;
    char *end;
    float v = strtof(s, &end);
    if (*end) return 0;
    *out = v;
    return 1;
}

/* Options after the first ':'-separated argument: ":s2", ":p1". */
static bl_status parse_stride_pad(bl_layer *l, char **opts, int n_opts, int allow_pad, int index,
                                  const char *tok, bl_error *err) {
    for (int i = 0; i < n_opts; i++) {
        const char *o = opts[i];
        if (o[0] == 's' && parse_pos_int(o + 1, &l->stride)) continue;
        if (allow_pad && o[0] == 'p' && parse_nonneg_int(o + 1, &l->pad)) continue;
        return bl_fail(err, BL_ERR_ARG,
                       "model spec: token %d '%s': unknown option '%s' (expected %s)", index, tok,
                       o, allow_pad ? "sN for stride or pN for padding" : "sN for stride");
    }
    return BL_OK;
}

static bl_status parse_token(bl_layer *l, char *tok, int index, bl_error *err) {
    char original[128];
    snprintf(original, sizeof original, "%s", tok);
    char *parts[8];
    int n = 0;
    for (char *s = tok; n < 8;) {
        parts[n++] = s;
        char *c = strchr(s, ':');
        if (!c) break;
        *c = '\0';
        s = c + 1;
    }
    const char *name = parts[0];
    memset(l, 0, sizeof *l);
    l->stride = 1;
    if (!strcmp(name, "dense")) {
        l->kind = BL_LAYER_DENSE;
        if (n != 2 || !parse_pos_int(parts[1], &l->units))
            return bl_fail(err, BL_ERR_ARG,
                           "model spec: token %d '%s': expected dense:N with N a positive "
                           "integer (e.g. dense:128)",
                           index, original);
        return BL_OK;
    }
    if (!strncmp(name, "conv", 4)) {
        l->kind = BL_LAYER_CONV;
        char dims[32];
        snprintf(dims, sizeof dims, "%s", name + 4);
        char *x = strchr(dims, 'x');
        if (x) *x = '\0';
        if (!x || !parse_pos_int(dims, &l->R) || !parse_pos_int(x + 1, &l->S) || n < 2 ||
            !parse_pos_int(parts[1], &l->K))
            return bl_fail(err, BL_ERR_ARG,
                           "model spec: token %d '%s': expected convRxS:K[:sN][:pN] "
                           "(e.g. conv3x3:32)",
                           index, original);
        l->pad = l->R / 2;
        return parse_stride_pad(l, parts + 2, n - 2, 1, index, original, err);
    }
    if (!strncmp(name, "maxpool", 7) || !strncmp(name, "avgpool", 7)) {
        l->kind = name[0] == 'm' ? BL_LAYER_MAXPOOL : BL_LAYER_AVGPOOL;
        if (!parse_pos_int(name + 7, &l->pool))
            return bl_fail(err, BL_ERR_ARG,
                           "model spec: token %d '%s': expected %.7sK[:sN] (e.g. %.7s2)", index,
                           original, name, name);
        l->stride = l->pool;
        return parse_stride_pad(l, parts + 1, n - 1, 0, index, original, err);
    }
    struct {
        const char *name;
        bl_act act;
    } acts[] = {{"relu", BL_ACT_RELU},
                {"lrelu", BL_ACT_LEAKY_RELU},
                {"tanh", BL_ACT_TANH},
                {"sigmoid", BL_ACT_SIGMOID},
                {"gelu", BL_ACT_GELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(name, acts[i].name)) continue;
        l->kind = BL_LAYER_ACT;
        l->act = acts[i].act;
        l->alpha = 0.01f;
        /* An infinite slope ("lrelu:inf") would turn every negative input into -inf. */
        if (l->act == BL_ACT_LEAKY_RELU && n == 2 && parse_float(parts[1], &l->alpha) &&
            l->alpha >= 0 && isfinite(l->alpha))
            return BL_OK;
        if (n == 1) return BL_OK;
        return bl_fail(err, BL_ERR_ARG, "model spec: token %d '%s': %s takes %s", index,
                       original, name,
                       l->act == BL_ACT_LEAKY_RELU ? "one optional finite slope >= 0 (lrelu:0.1)"
                                                   : "no arguments");
    }
    if (!strcmp(name, "flatten") && n == 1) {
        l->kind = BL_LAYER_FLATTEN;
        return BL_OK;
    }
    if (!strcmp(name, "bn") && n == 1) {
        l->kind = BL_LAYER_BN;
        return BL_OK;
    }
    if (!strcmp(name, "dropout")) {
        l->kind = BL_LAYER_DROPOUT;
        l->p = 0.5f;
        if (n == 1 || (n == 2 && parse_float(parts[1], &l->p) && l->p >= 0 && l->p < 1))
            return BL_OK;
        return bl_fail(err, BL_ERR_ARG,
                       "model spec: token %d '%s': expected dropout[:P] with 0 <= P < 1", index,
                       original);
    }
    /* Unknown: suggest the nearest name. */
    const char *best = NULL;
    int best_d = 99;
    char stem[64];
    snprintf(stem, sizeof stem, "%s", name);
    for (char *s = stem; *s; s++)
        if (isdigit((unsigned char)*s)) *s = '\0';
    for (size_t i = 0; i < N_KNOWN; i++) {
        int d = edit_distance(stem, known_names[i]);
        if (d < best_d) best_d = d, best = known_names[i];
    }
    if (best && best_d <= 2)
        return bl_fail(err, BL_ERR_ARG,
                       "model spec: token %d '%s': unknown layer '%s' (did you mean '%s'?)",
                       index, original, name, best);
    return bl_fail(err, BL_ERR_ARG,
                   "model spec: token %d '%s': unknown layer '%s' (known: dense, convRxS, "
                   "maxpoolK, avgpoolK, flatten, relu, lrelu, tanh, sigmoid, gelu, dropout, "
                   "bn; presets: mlp, cnn, logreg)",
                   index, original, name);
}

void bl_layer_format_token(bl_layer *l) {
    static const char *act_names[] = {"relu", "lrelu", "tanh", "sigmoid", "gelu"};
    char *t = l->token;
    size_t n = sizeof l->token;
    switch (l->kind) {
    case BL_LAYER_DENSE: snprintf(t, n, "dense:%d", l->units); break;
    case BL_LAYER_CONV:
        snprintf(t, n, "conv%dx%d:%d:s%d:p%d", l->R, l->S, l->K, l->stride, l->pad);
        break;
    case BL_LAYER_MAXPOOL: snprintf(t, n, "maxpool%d:s%d", l->pool, l->stride); break;
    case BL_LAYER_AVGPOOL: snprintf(t, n, "avgpool%d:s%d", l->pool, l->stride); break;
    case BL_LAYER_FLATTEN: snprintf(t, n, "flatten"); break;
    case BL_LAYER_ACT:
        if (l->act == BL_ACT_LEAKY_RELU)
            snprintf(t, n, "lrelu:%g", (double)l->alpha);
        else
            snprintf(t, n, "%s", act_names[l->act]);
        break;
    case BL_LAYER_DROPOUT: snprintf(t, n, "dropout:%g", (double)l->p); break;
    case BL_LAYER_BN: snprintf(t, n, "bn"); break;
    }
}

bl_status bl_spec_parse(bl_layer *layers, int *n_layers, const char *spec, int n_classes,
                        bl_error *err) {
    char buf[4096];
    if (!spec || !*spec) return bl_fail(err, BL_ERR_ARG, "model spec is empty");
    if (!strcmp(spec, "mlp"))
        snprintf(buf, sizeof buf, "flatten,dense:1024,relu,dense:1024,relu,dense:%d", n_classes);
    else if (!strcmp(spec, "cnn"))
        snprintf(buf, sizeof buf,
                 "conv3x3:32,relu,conv3x3:64,relu,maxpool2,flatten,dense:128,relu,dense:%d",
                 n_classes);
    else if (!strcmp(spec, "logreg"))
        snprintf(buf, sizeof buf, "flatten,dense:%d", n_classes);
    else if (strlen(spec) >= sizeof buf)
        return bl_fail(err, BL_ERR_ARG, "model spec is too long (%zu characters)", strlen(spec));
    else
        snprintf(buf, sizeof buf, "%s", spec);
    int n = 0;
    char *save = NULL;
    int index = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), index++) {
        while (isspace((unsigned char)*tok)) tok++;
        for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]);) *--e = '\0';
        if (!*tok)
            return bl_fail(err, BL_ERR_ARG, "model spec: token %d is empty ('%s')", index, spec);
        if (n >= BL_MAX_LAYERS)
            return bl_fail(err, BL_ERR_ARG, "model spec: more than %d layers", BL_MAX_LAYERS);
        bl_status st = parse_token(&layers[n], tok, index, err);
        if (st) return st;
        bl_layer_format_token(&layers[n]);
        n++;
    }
    if (n == 0) return bl_fail(err, BL_ERR_ARG, "model spec '%s' has no layers", spec);
    *n_layers = n;
    return BL_OK;
}
