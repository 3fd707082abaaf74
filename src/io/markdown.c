/* Markdown subset to HTML (see include/batchlab/markdown.h). A line-oriented
 * state machine: each line closes or continues the open block (paragraph,
 * list, table, code) and inline markup is expanded within a line, which is all
 * the generated reports need. Output goes through open_memstream, so there is
 * no size guessing. */
#define _GNU_SOURCE
#include "batchlab/markdown.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/alloc.h"

typedef enum { B_NONE, B_PARA, B_LIST, B_TABLE, B_CODE } block;

static void esc(FILE *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            fputs("&amp;", o);
            break;
        case '<':
            fputs("&lt;", o);
            break;
        case '>':
            fputs("&gt;", o);
            break;
        case '"':
            fputs("&quot;", o);
            break;
        default:
            fputc(s[i], o);
        }
    }
}

/* Writes a link or image target, optionally swapping a .png ending for .svg. */
static void put_src(FILE *o, const char *s, size_t n, int svg) {
    if (svg && n > 4 && !strncmp(s + n - 4, ".png", 4)) {
        esc(o, s, n - 4);
        fputs(".svg", o);
    } else {
        esc(o, s, n);
    }
}

static void inline_md(FILE *o, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const char *end;
        if (s[i] == '`' && (end = memchr(s + i + 1, '`', n - i - 1))) {
            fputs("<code>", o);
            esc(o, s + i + 1, (size_t)(end - s - i - 1));
            fputs("</code>", o);
            i = (size_t)(end - s) + 1;
        } else if (i + 1 < n && s[i] == '*' && s[i + 1] == '*' &&
                   (end = memmem(s + i + 2, n - i - 2, "**", 2))) {
            fputs("<strong>", o);
            inline_md(o, s + i + 2, (size_t)(end - s - i - 2));
            fputs("</strong>", o);
            i = (size_t)(end - s) + 2;
        } else if (s[i] == '[' && (end = memchr(s + i, ']', n - i)) && (size_t)(end - s) + 1 < n &&
                   end[1] == '(' && memchr(end, ')', n - (size_t)(end - s))) {
            const char *close = memchr(end, ')', n - (size_t)(end - s));
            fputs("<a href=\"", o);
            put_src(o, end + 2, (size_t)(close - end - 2), 0);
            fputs("\">", o);
            inline_md(o, s + i + 1, (size_t)(end - s - i - 1));
            fputs("</a>", o);
            i = (size_t)(close - s) + 1;
        } else {
            esc(o, s + i, 1);
            i++;
        }
    }
}

static void close_block(FILE *o, block *b) {
    static const char *closer[] = {"", "</p>\n", "</ul>\n", "</tbody></table>\n",
                                   "</code></pre>\n"};
    fputs(closer[*b], o);
    *b = B_NONE;
}

static int is_table_rule(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr("|-: ", s[i])) return 0;
    return n > 0 && memchr(s, '-', n) != NULL;
}

static void table_row(FILE *o, const char *s, size_t n, const char *cell) {
    if (n && s[0] == '|') s++, n--;
    if (n && s[n - 1] == '|') n--;
    fputs("<tr>", o);
    while (1) {
        const char *bar = memchr(s, '|', n);
        size_t len = bar ? (size_t)(bar - s) : n;
        size_t a = 0, z = len;
        while (a < z && s[a] == ' ')
            a++;
        while (z > a && s[z - 1] == ' ')
            z--;
        fprintf(o, "<%s>", cell);
        inline_md(o, s + a, z - a);
        fprintf(o, "</%s>", cell);
        if (!bar) break;
        n -= len + 1, s = bar + 1;
    }
    fputs("</tr>\n", o);
}

char *bl_markdown_to_html(const char *md, const char *title, int svg) {
    char *buf = NULL;
    size_t size = 0;
    FILE *o = open_memstream(&buf, &size);
    if (!o) return NULL;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", o);
    esc(o, title, strlen(title));
    fputs(
        "</title>\n<style>\nbody{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5;color:#222}\ntable{border-collapse:collapse;margin:1rem 0;"
        "font-size:.9rem}\nth,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}\n"
        "th{background:#f3f3f3}\ncode{background:#f3f3f3;padding:0 .2rem}\npre{background:#f3f3f3;"
        "padding:.75rem;overflow-x:auto}\nimg{max-width:100%;border:1px solid #ddd}\n"
        "figure{margin:1rem 0}\n</style></head><body>\n",
        o);
    block b = B_NONE;
    int table_head = 0;
    for (const char *line = md; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        const char *next = nl ? nl + 1 : line + n;
        if (b == B_CODE) {
            if (n >= 3 && !strncmp(line, "```", 3))
                close_block(o, &b);
            else
                esc(o, line, n), fputc('\n', o);
        } else if (n >= 3 && !strncmp(line, "```", 3)) {
            close_block(o, &b);
            fputs("<pre><code>", o);
            b = B_CODE;
        } else if (n == 0) {
            close_block(o, &b);
        } else if (line[0] == '#') {
            int level = 0;
            while (level < (int)n && line[level] == '#')
                level++;
            close_block(o, &b);
            if (level > 6) level = 6;
            size_t skip = (size_t)level + (n > (size_t)level && line[level] == ' ');
            fprintf(o, "<h%d>", level);
            inline_md(o, line + skip, n - skip);
            fprintf(o, "</h%d>\n", level);
        } else if (line[0] == '|') {
            if (b != B_TABLE) {
                close_block(o, &b);
                fputs("<table><thead>\n", o);
                b = B_TABLE;
                table_head = 1;
            }
            if (is_table_rule(line, n)) {
                if (table_head) fputs("</thead><tbody>\n", o);
                table_head = 0;
            } else {
                table_row(o, line, n, table_head ? "th" : "td");
            }
        } else if (n > 2 && line[0] == '-' && line[1] == ' ') {
            if (b != B_LIST) close_block(o, &b), fputs("<ul>\n", o), b = B_LIST;
            fputs("<li>", o);
            inline_md(o, line + 2, n - 2);
            fputs("</li>\n", o);
        } else if (n > 5 && line[0] == '!' && line[1] == '[' && line[n - 1] == ')' &&
                   strstr(line, "](") && (size_t)(strstr(line, "](") - line) < n) {
            const char *mid = strstr(line, "](");
            close_block(o, &b);
            fputs("<figure><img src=\"", o);
            put_src(o, mid + 2, (size_t)(line + n - 1 - mid - 2), svg);
            fputs("\" alt=\"", o);
            esc(o, line + 2, (size_t)(mid - line - 2));
            fputs("\"></figure>\n", o);
        } else {
            if (b != B_PARA)
                close_block(o, &b), fputs("<p>", o), b = B_PARA;
            else
                fputc('\n', o);
            inline_md(o, line, n);
        }
        line = next;
    }
    close_block(o, &b);
    fputs("</body></html>\n", o);
    if (fclose(o) != 0) {
        bl_free(buf);
        return NULL;
    }
    return buf;
}
