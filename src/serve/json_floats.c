/* A fast path for the one big thing in a JSON infer request: the "data" array.
 *
 * cJSON builds a heap node per number and converts each with strtod; for a 784-pixel
 * image that is ~800 allocations and most of the request's CPU time (about 100 us,
 * against a forward pass of a few hundred). Here the "data" array is located with a
 * string-aware scan and its numbers are read straight into floats; cJSON then parses
 * only the small remainder (the array replaced by []).
 *
 * The values are bit-identical to cJSON's: a number is first rounded correctly to double
 * (exactly, by Clinger's fast path when the significand fits in 53 bits and the power
 * of ten is exact, else by strtod on the token), then cast to float, which is what cJSON
 * followed by (float)valuedouble does. Anything unusual (no "data" key or several, a
 * non-number element, a malformed array) returns -1 and the caller parses the whole
 * body with cJSON, which also produces the error messages. */
#include <stdlib.h>
#include <string.h>
#include "serve_internal.h"
#include "core/alloc.h"

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One JSON number at s[*i] (grammar checked); 0 on success. */
static int parse_number(const char *s, size_t len, size_t *i, double *out) {
    size_t p = *i, start = p;
    int neg = 0, digits = 0, exp10 = 0, truncated = 0;
    uint64_t mant = 0;
    if (p < len && s[p] == '-') {
        neg = 1;
        p++;
    }
    if (p >= len || !is_digit(s[p])) return -1;
    if (s[p] == '0') {
        p++;
    } else {
        for (; p < len && is_digit(s[p]); p++) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(s[p] - '0');
                digits += mant > 0; /* leading zeros are not significant */
            } else {
                exp10++; /* a dropped integer digit still scales the value */
                truncated |= s[p] != '0';
            }
        }
    }
    if (p < len && s[p] == '.') {
        p++;
        if (p >= len || !is_digit(s[p])) return -1;
        for (; p < len && is_digit(s[p]); p++) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(s[p] - '0');
                digits += mant > 0;
                exp10--;
            } else {
                truncated |= s[p] != '0';
            }
        }
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        int esign = 1, ex = 0;
        if (p < len && (s[p] == '+' || s[p] == '-')) esign = s[p++] == '-' ? -1 : 1;
        if (p >= len || !is_digit(s[p])) return -1;
        for (; p < len && is_digit(s[p]); p++)
            if (ex < 100000) ex = ex * 10 + (s[p] - '0');
        exp10 += esign * ex;
    }
    *i = p;
    if (!truncated && mant <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        *out = neg ? -d : d;
        return 0;
    }
    char tok[64];
    if (p - start >= sizeof tok) return -1;
    memcpy(tok, s + start, p - start);
    tok[p - start] = '\0';
    *out = strtod(tok, NULL);
    return 0;
}

static void skip_space(const char *s, size_t len, size_t *i) {
    while (*i < len && is_space(s[*i]))
        (*i)++;
}

/* A (possibly nested) array of numbers at s[*i] == '[', appended to out[*n < cap]. */
static int parse_array(const char *s, size_t len, size_t *i, float *out, long cap, long *n,
                       int depth) {
    if (depth > 8) return -1;
    (*i)++; /* '[' */
    skip_space(s, len, i);
    if (*i < len && s[*i] == ']') {
        (*i)++;
        return 0;
    }
    for (;;) {
        skip_space(s, len, i);
        if (*i >= len) return -1;
        if (s[*i] == '[') {
            if (parse_array(s, len, i, out, cap, n, depth + 1)) return -1;
        } else {
            double v;
            if (*n >= cap || parse_number(s, len, i, &v)) return -1;
            out[(*n)++] = (float)v;
        }
        skip_space(s, len, i);
        if (*i >= len) return -1;
        if (s[*i] == ']') {
            (*i)++;
            return 0;
        }
        if (s[*i] != ',') return -1;
        (*i)++;
    }
}

long json_data_floats(const char *s, size_t len, size_t *begin, size_t *end, float **out) {
    *out = NULL;
    size_t value = 0;
    int keys = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '"') continue;
        size_t a = ++i;
        while (i < len && s[i] != '"')
            i += s[i] == '\\' ? 2 : 1;
        if (i >= len) return -1;
        size_t b = i, j = i + 1;
        skip_space(s, len, &j);
        if (j < len && s[j] == ':' && b - a == 4 && !memcmp(s + a, "data", 4)) {
            keys++;
            j++;
            skip_space(s, len, &j);
            value = j;
        }
    }
    if (keys != 1 || value >= len || s[value] != '[') return -1;
    long cap = (long)((len - value) / 2 + 1), n = 0;
    float *x = bl_malloc((size_t)cap * sizeof(float));
    if (!x) return -1;
    size_t i = value;
    if (parse_array(s, len, &i, x, cap, &n, 0)) {
        bl_free(x);
        return -1;
    }
    *begin = value;
    *end = i;
    *out = x;
    return n;
}
