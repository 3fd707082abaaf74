/* The text side of the CSV reader: reading a file (gzip or not), splitting it
 * into lines, detecting the separator and the header, splitting cells and
 * parsing numbers. csv.c builds a dataset from these.
 *
 * Lines end in LF, CRLF or a lone CR (old Mac files, and some exports): all
 * three are one line break, so line numbers match what an editor shows.
 * Nothing here prints a cell raw: messages go through data_escape, so a stray
 * CR or tab shows as \r or \t instead of moving the cursor. */
#include "data/csv_internal.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/alloc.h"

bl_status csv_read_file(const char *path, char **out, size_t *len, int *gz, bl_error *err) {
    *out = NULL;
    *len = 0;
    FILE *probe = fopen(path, "rb");
    if (!probe) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    *gz = fread(magic, 1, 2, probe) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    fclose(probe);
    /* zlib reads a file that is not gzip as it is, so one path serves both. */
    gzFile f = gzopen(path, "rb");
    if (!f) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(f, 1u << 17);
    size_t cap = 1 << 16, n = 0;
    char *buf = bl_malloc(cap + 1);
    int r = 0;
    while (buf) {
        r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r <= 0) break;
        n += (size_t)r;
        if (n < cap) continue;
        cap *= 2;
        char *nb = bl_realloc(buf, cap + 1);
        if (!nb) bl_free(buf);
        buf = nb;
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(f, &zerr);
    char zcopy[128];
    snprintf(zcopy, sizeof zcopy, "%s", zmsg ? zmsg : "");
    gzclose(f);
    if (!buf) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (r < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
        bl_free(buf);
        return bl_fail(err, BL_ERR_FORMAT, "%s: read error after %zu bytes%s: %s", path, n,
                       *gz ? " (truncated or corrupt gzip?)" : "", zcopy);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return BL_OK;
}

void data_escape(char *out, size_t cap, const char *s, size_t max_in) {
    static const char hex[] = "0123456789abcdef";
    size_t w = 0, i = 0;
    if (cap == 0) return;
    for (; s[i] && i < max_in; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[5];
        size_t k = 0;
        if (c == '\r' || c == '\n' || c == '\t') {
            e[k++] = '\\';
            e[k++] = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
        } else if (c < 0x20 || c == 0x7f) {
            e[k++] = '\\', e[k++] = 'x', e[k++] = hex[c >> 4], e[k++] = hex[c & 15];
        } else {
            e[k++] = (char)c;
        }
        if (w + k + 4 > cap) break; /* keep room for "..." */
        memcpy(out + w, e, k);
        w += k;
    }
    if (s[i] && w + 4 <= cap) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = '\0';
}

int csv_is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

int csv_line_is_blank(const char *s) {
    for (; *s; s++)
        if (!csv_is_blank(*s)) return 0;
    return 1;
}

void csv_lines_init(csv_lines *it, char *buf, size_t len) {
    it->p = buf;
    it->end = buf + len;
    it->lineno = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) it->p += 3; /* UTF-8 BOM */
}

int csv_next_line(csv_lines *it, char **line, int *has_nul) {
    if (it->p >= it->end) return 0;
    char *s = it->p, *q = s;
    *has_nul = 0;
    while (q < it->end && *q != '\n' && *q != '\r') {
        if (!*q) *has_nul = 1;
        q++;
    }
    char *next = q;
    if (q < it->end) next = q + ((*q == '\r' && q + 1 < it->end && q[1] == '\n') ? 2 : 1);
    *q = '\0';
    it->p = next;
    it->lineno++;
    *line = s;
    return 1;
}

char csv_detect_sep(const char *line) {
    if (strchr(line, ',')) return ',';
    if (strchr(line, '\t')) return '\t';
    if (strchr(line, ';')) return ';';
    const char *s = line;
    while (csv_is_blank(*s))
        s++;
    while (*s && !csv_is_blank(*s))
        s++;
    while (csv_is_blank(*s))
        s++;
    return *s ? ' ' : ','; /* a second token after blanks: space-separated */
}

size_t csv_count_cells(const char *line, char sep) {
    size_t n = 0;
    if (sep == ' ') {
        for (const char *s = line; *s;) {
            while (csv_is_blank(*s))
                s++;
            if (!*s) break;
            n++;
            while (*s && !csv_is_blank(*s))
                s++;
        }
        return n;
    }
    n = 1;
    for (const char *p = line; *p; p++)
        n += *p == sep;
    return n;
}

/* Trim blanks and one pair of surrounding double quotes, in place. */
static char *trim_cell(char *s) {
    while (csv_is_blank(*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && csv_is_blank(e[-1]))
        *--e = '\0';
    if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
        e[-1] = '\0';
        s++;
    }
    return s;
}

char *csv_next_cell(char **p, char sep) {
    char *s = *p;
    if (sep == ' ') {
        while (csv_is_blank(*s))
            s++;
        char *e = s;
        while (*e && !csv_is_blank(*e))
            e++;
        *p = *e ? e + 1 : e;
        *e = '\0';
        return s;
    }
    char *c = strchr(s, sep);
    if (c) *c = '\0';
    *p = c ? c + 1 : s + strlen(s);
    return trim_cell(s);
}

csv_num csv_parse_number(const char *cell, double *v) {
    if (!*cell) return CSV_EMPTY;
    char *end;
    errno = 0;
    *v = strtod(cell, &end);
    if (*end != '\0' || end == cell) return CSV_NOT_NUMBER;
    if (!isfinite(*v)) return CSV_NOT_FINITE;
    if (fabs(*v) > 3.4028234663852886e38) return CSV_TOO_LARGE; /* FLT_MAX */
    return CSV_OK;
}

/* names = 0: every cell of the line but cell `skip` parses as a number, finite or not.
 * names = 1: some cell is a name (not empty, not a number). Tokenises a copy: -1 when it
 * cannot be made (a guess would skip a data row, or read a header as data). */
static int scan_cells(const char *line, char sep, size_t skip, int names) {
    char *tmp = bl_strdup(line);
    if (!tmp) return -1;
    size_t cells = csv_count_cells(tmp, sep);
    char *p = tmp;
    int numeric = 1, named = 0;
    for (size_t i = 0; i < cells; i++) {
        double v;
        csv_num k = csv_parse_number(csv_next_cell(&p, sep), &v);
        named |= k == CSV_NOT_NUMBER;
        numeric &= i == skip || (k != CSV_EMPTY && k != CSV_NOT_NUMBER);
    }
    bl_free(tmp);
    return names ? named : numeric;
}

int csv_looks_like_header(const char *first, const char *second, char sep, size_t label) {
    int named = scan_cells(first, sep, SIZE_MAX, 1);
    if (named <= 0) return named;
    return !second ? 1 : scan_cells(second, sep, label, 0);
}

/* Copy of [s, e) as a string. */
static char *dup_range(const char *s, const char *e) {
    char *c = bl_malloc((size_t)(e - s) + 1);
    if (c) {
        memcpy(c, s, (size_t)(e - s));
        c[e - s] = '\0';
    }
    return c;
}

int csv_peek(const csv_lines *it, char **first, char **second) {
    *first = *second = NULL;
    const char *p = it->p;
    int found = 0;
    while (p < it->end && found < 2) {
        const char *q = p;
        while (q < it->end && *q != '\n' && *q != '\r' && *q)
            q++;
        int blank = 1;
        for (const char *c = p; c < q && blank; c++)
            blank = csv_is_blank(*c);
        if (!blank) {
            char *d = dup_range(p, q);
            if (!d) { /* out of memory for the second line: the first is not the caller's */
                bl_free(*first);
                *first = NULL;
                return -1;
            }
            *(found == 0 ? first : second) = d;
            found++;
        }
        if (q < it->end && *q == '\0') break; /* a NUL byte: the reader reports it */
        p = q < it->end ? q + ((*q == '\r' && q + 1 < it->end && q[1] == '\n') ? 2 : 1) : q;
    }
    return found;
}
