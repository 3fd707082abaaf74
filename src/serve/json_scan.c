/* One pass over an infer request's JSON that checks all of it and takes the one big
 * thing out: inputs[0].data.
 *
 * cJSON builds a heap node (about 64 bytes) per number and converts each with strtod:
 * for a 784-pixel image that is ~800 allocations and most of the request's CPU time,
 * and a 60 MB body became 2.5 GB. So this scanner reads the whole text once against
 * the JSON grammar (strings must be valid UTF-8 with valid escapes, no bytes may follow
 * the value), follows the path root."inputs"[0]."data" (keys compared after their
 * escapes are decoded, first occurrence winning, as cJSON_GetObjectItemCaseSensitive
 * does) and reads that array's numbers straight into floats. The caller then hands
 * cJSON only the remainder, with the array replaced by [], and bounds its size: memory
 * is a small constant times the body on every path, because no other path exists.
 * Other keys named "data" (say parameters.data) are ordinary values of the remainder.
 *
 * The values are bit-identical to cJSON's: a number is first rounded correctly to double
 * (exactly, by Clinger's fast path when the significand fits in 53 bits and the power
 * of ten is exact, else by strtod on the token), then cast to float, which is what cJSON
 * followed by (float)valuedouble does. */
#include <stdlib.h>
#include <string.h>
#include "serve_internal.h"
#include "core/alloc.h"

#define MAX_DEPTH 64     /* deeper nesting is refused (cJSON allows 1000: a stack risk) */
#define MAX_DATA_DEPTH 8 /* nested arrays inside inputs[0].data */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

typedef enum { ROLE_OTHER, ROLE_ROOT, ROLE_INPUTS, ROLE_INPUT0, ROLE_DATA } role;

typedef struct scan {
    const char *s;
    size_t len, i;
    json_request_scan *out;
    float *x; /* inputs[0].data's numbers, x[0..n) of cap */
    long n, cap;
} scan;

static int fail(scan *sc, json_scan_error e, const char *what) {
    if (sc->out->error == JSON_SCAN_OK) {
        sc->out->error = e;
        sc->out->at = sc->i;
        sc->out->what = what;
    }
    return -1;
}

static void skip_space(scan *sc) {
    while (sc->i < sc->len && is_space(sc->s[sc->i]))
        sc->i++;
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
    if (!out) return 0;
    if (!truncated && mant <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        *out = neg ? -d : d;
        return 0;
    }
    char tok[64];
    if (p - start >= sizeof tok) { /* 64+ characters: the allocation is bounded by it */
        char *big = bl_malloc(p - start + 1);
        if (!big) return -1;
        memcpy(big, s + start, p - start);
        big[p - start] = '\0';
        *out = strtod(big, NULL);
        bl_free(big);
        return 0;
    }
    memcpy(tok, s + start, p - start);
    tok[p - start] = '\0';
    *out = strtod(tok, NULL);
    return 0;
}

static int hex4(const char *s, size_t len, size_t i, unsigned *v) {
    if (i + 4 > len) return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[i + (size_t)k];
        unsigned d = is_digit(c)              ? (unsigned)(c - '0')
                     : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10)
                     : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10)
                                              : 16u;
        if (d > 15) return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

/* Length of the UTF-8 sequence at s[i] (1..4), or 0 when it is not valid UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static int utf8_len(const unsigned char *s, size_t len, size_t i) {
    unsigned c = s[i];
    if (c < 0x80) return 1;
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!n || c > 0xF4 || i + (size_t)n > len) return 0;
    for (int k = 1; k < n; k++)
        if ((s[i + (size_t)k] & 0xC0) != 0x80) return 0;
    unsigned c1 = s[i + 1];
    if (c == 0xE0 && c1 < 0xA0) return 0;  /* overlong */
    if (c == 0xED && c1 >= 0xA0) return 0; /* UTF-16 surrogate */
    if (c == 0xF0 && c1 < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && c1 >= 0x90) return 0; /* above U+10FFFF */
    return n;
}

/* A string at s[i] == '"'. With key != NULL, *match says whether its decoded text equals
 * key (an ASCII word). */
static int scan_string(scan *sc, const char *key, int *match) {
    const char *s = sc->s;
    size_t k = 0, klen = key ? strlen(key) : 0;
    int same = key != NULL;
    sc->i++;
    for (;;) {
        if (sc->i >= sc->len) return fail(sc, JSON_SCAN_MALFORMED, "an unterminated string");
        unsigned char c = (unsigned char)s[sc->i];
        unsigned cp;
        if (c == '"') break;
        if (c < 0x20) return fail(sc, JSON_SCAN_MALFORMED, "a control character in a string");
        if (c == '\\') {
            if (sc->i + 1 >= sc->len) return fail(sc, JSON_SCAN_MALFORMED, "a bad escape");
            char e = s[sc->i + 1];
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *p = e ? strchr(from, e) : NULL;
            if (p) {
                cp = (unsigned char)to[p - from];
                sc->i += 2;
            } else if (e == 'u' && !hex4(s, sc->len, sc->i + 2, &cp)) {
                sc->i += 6;
                if (cp == 0) return fail(sc, JSON_SCAN_MALFORMED, "\\u0000 in a string");
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(sc, JSON_SCAN_MALFORMED, "a lone UTF-16 surrogate escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (sc->i + 1 >= sc->len || s[sc->i] != '\\' || s[sc->i + 1] != 'u' ||
                        hex4(s, sc->len, sc->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(sc, JSON_SCAN_MALFORMED, "a lone UTF-16 surrogate escape");
                    sc->i += 6;
                }
            } else {
                return fail(sc, JSON_SCAN_MALFORMED, "a bad escape");
            }
        } else {
            int n = utf8_len((const unsigned char *)s, sc->len, sc->i);
            if (!n) return fail(sc, JSON_SCAN_BAD_UTF8, "invalid UTF-8 in a string");
            cp = n == 1 ? c : 0x80; /* any non-ASCII code point: never matches a key */
            sc->i += (size_t)n;
        }
        same = same && k < klen && cp == (unsigned char)key[k];
        k++;
    }
    sc->i++;
    if (match) *match = same && k == klen;
    return 0;
}

static int scan_value(scan *sc, role r, int depth);

/* At a list's opening bracket: step over it; 1 when the list is empty (its close is
 * stepped over too). */
static int list_open(scan *sc, char close) {
    sc->i++;
    skip_space(sc);
    if (sc->i < sc->len && sc->s[sc->i] == close) {
        sc->i++;
        return 1;
    }
    return 0;
}

/* After an element: 1 at the close, 0 at a comma (either stepped over), -1 otherwise. */
static int list_next(scan *sc, char close) {
    skip_space(sc);
    int array = close == ']';
    if (sc->i >= sc->len)
        return fail(sc, JSON_SCAN_MALFORMED,
                    array ? "an unterminated array" : "an unterminated object");
    if (sc->s[sc->i] == close) {
        sc->i++;
        return 1;
    }
    if (sc->s[sc->i] != ',')
        return fail(sc, JSON_SCAN_MALFORMED,
                    array ? "a missing ',' or ']'" : "a missing ',' or '}'");
    sc->i++;
    return 0;
}

/* inputs[0].data's array: numbers (nested up to MAX_DATA_DEPTH) into sc->x. */
static int scan_data(scan *sc, int depth) {
    if (depth > MAX_DATA_DEPTH)
        return fail(sc, JSON_SCAN_DATA, "inputs[0].data is nested too deeply");
    if (list_open(sc, ']')) return 0;
    for (int k = 0; !k; k = list_next(sc, ']')) {
        skip_space(sc);
        if (sc->i >= sc->len) return fail(sc, JSON_SCAN_MALFORMED, "an unterminated array");
        char c = sc->s[sc->i];
        if (c == '[') {
            if (scan_data(sc, depth + 1)) return -1;
        } else if (c == '-' || is_digit(c)) {
            double v;
            if (parse_number(sc->s, sc->len, &sc->i, &v))
                return fail(sc, JSON_SCAN_MALFORMED, "a malformed number");
            /* reserve_data stops counting at a string or object, which is refused anyway */
            if (sc->n < sc->cap)
                sc->x[sc->n] = (float)v;
            else if (sc->out->bad_index < 0)
                return fail(sc, JSON_SCAN_NOMEM, "inputs[0].data");
            sc->n++;
        } else { /* reported by the caller after the fields before it (datatype...) */
            if (sc->out->bad_index < 0) sc->out->bad_index = sc->n;
            if (scan_value(sc, ROLE_OTHER, depth + 1)) return -1;
        }
    }
    return sc->out->error ? -1 : 0;
}

/* Size the float buffer for the array at s[i] == '[': one float per ',' plus one,
 * which bounds its numbers (each separator is a comma, nested or not). */
static int reserve_data(scan *sc) {
    long commas = 0;
    int depth = 0;
    for (size_t p = sc->i; p < sc->len; p++) {
        char c = sc->s[p];
        if (c == ',')
            commas++;
        else if (c == '[')
            depth++;
        else if (c == ']' && --depth == 0)
            break;
        else if (c == '"' || c == '{')
            break; /* not numbers: scan_data says where */
    }
    sc->cap = commas + 1;
    sc->x = bl_malloc((size_t)sc->cap * sizeof(float));
    return sc->x ? 0 : fail(sc, JSON_SCAN_NOMEM, "inputs[0].data");
}

static int scan_array(scan *sc, role r, int depth) {
    if (list_open(sc, ']')) return 0;
    long idx = 0;
    for (int k = 0; !k; k = list_next(sc, ']'))
        if (scan_value(sc, r == ROLE_INPUTS && idx++ == 0 ? ROLE_INPUT0 : ROLE_OTHER, depth + 1))
            return -1;
    return sc->out->error ? -1 : 0;
}

static int scan_object(scan *sc, role r, int depth) {
    const char *want = r == ROLE_ROOT ? "inputs" : r == ROLE_INPUT0 ? "data" : NULL;
    role inner = r == ROLE_ROOT ? ROLE_INPUTS : ROLE_DATA;
    int found = 0;
    if (list_open(sc, '}')) return 0;
    for (int k = 0; !k; k = list_next(sc, '}')) {
        skip_space(sc);
        if (sc->i >= sc->len || sc->s[sc->i] != '"')
            return fail(sc, JSON_SCAN_MALFORMED, "a missing object key");
        int match = 0;
        if (scan_string(sc, want, &match)) return -1;
        skip_space(sc);
        if (sc->i >= sc->len || sc->s[sc->i] != ':')
            return fail(sc, JSON_SCAN_MALFORMED, "a missing ':'");
        sc->i++;
        int take = match && !found;
        found |= match;
        if (scan_value(sc, take ? inner : ROLE_OTHER, depth + 1)) return -1;
    }
    return sc->out->error ? -1 : 0;
}

static int scan_literal(scan *sc, const char *word) {
    size_t n = strlen(word);
    if (sc->len - sc->i < n || memcmp(sc->s + sc->i, word, n))
        return fail(sc, JSON_SCAN_MALFORMED, "an unexpected character");
    sc->i += n;
    return 0;
}

static int scan_value(scan *sc, role r, int depth) {
    if (depth > MAX_DEPTH) return fail(sc, JSON_SCAN_MALFORMED, "nesting deeper than 64");
    skip_space(sc);
    if (sc->i >= sc->len) return fail(sc, JSON_SCAN_MALFORMED, "an unexpected end");
    char c = sc->s[sc->i];
    if (r == ROLE_DATA && c == '[' && !sc->x) {
        sc->out->begin = sc->i;
        if (reserve_data(sc) || scan_data(sc, 0)) return -1;
        sc->out->end = sc->i;
        return 0;
    }
    switch (c) {
    case '{':
        return scan_object(sc, r, depth);
    case '[':
        return scan_array(sc, r, depth);
    case '"':
        return scan_string(sc, NULL, NULL);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        if (c == '-' || is_digit(c)) {
            if (parse_number(sc->s, sc->len, &sc->i, NULL))
                return fail(sc, JSON_SCAN_MALFORMED, "a malformed number");
            return 0;
        }
        return fail(sc, JSON_SCAN_MALFORMED, "an unexpected character");
    }
}

json_scan_error json_scan_request(const char *s, size_t len, json_request_scan *out) {
    memset(out, 0, sizeof *out);
    out->n = -1;
    out->bad_index = -1;
    scan sc = {s, len, 0, out, NULL, 0, 0};
    if (!scan_value(&sc, ROLE_ROOT, 0)) {
        skip_space(&sc);
        if (sc.i < len) fail(&sc, JSON_SCAN_TRAILING, "bytes after the JSON value");
    }
    if (out->error) {
        bl_free(sc.x);
        return out->error;
    }
    if (sc.x) {
        out->x = sc.x;
        out->n = sc.n;
    }
    return JSON_SCAN_OK;
}
