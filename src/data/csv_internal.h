/* Text handling for the CSV reader (csv_text.c), used by csv.c. */
#ifndef BL_CSV_INTERNAL_H
#define BL_CSV_INTERNAL_H

#include <stddef.h>
#include "data/data_internal.h"

/* The whole file, decompressed when it is gzip (*gz set), NUL-terminated; caller frees. */
bl_status csv_read_file(const char *path, char **out, size_t *len, int *gz, bl_error *err);

/* Walks a buffer line by line: LF, CRLF and CR all end a line. */
typedef struct csv_lines {
    char *p, *end;
    size_t lineno; /* of the line last returned, 1-based */
} csv_lines;
void csv_lines_init(csv_lines *it, char *buf, size_t len);
/* Next line, NUL-terminated in place (no line break); 0 at the end. *has_nul is set
 * when the line holds a NUL byte (a binary file). */
int csv_next_line(csv_lines *it, char **line, int *has_nul);
/* Copies (caller frees) of the next two non-blank lines, without consuming them; returns
 * how many were found (0 to 2), or -1 when out of memory. */
int csv_peek(const csv_lines *it, char **first, char **second);

int csv_is_blank(char c);
int csv_line_is_blank(const char *s);
/* ',' if the line has a comma, else tab, else ';', else ' ' (runs of blanks) when it
 * has two blank-separated tokens, else ','. */
char csv_detect_sep(const char *line);
size_t csv_count_cells(const char *line, char sep);
/* Split the next cell off *p (NUL-terminating it in place), trimmed of blanks and one
 * pair of double quotes. */
char *csv_next_cell(char **p, char sep);

typedef enum { CSV_OK, CSV_EMPTY, CSV_NOT_NUMBER, CSV_NOT_FINITE, CSV_TOO_LARGE } csv_num;
/* Parse a whole cell as a number; CSV_NOT_FINITE for nan/inf/1e999, CSV_TOO_LARGE beyond
 * float32. */
csv_num csv_parse_number(const char *cell, double *v);
/* first is a header: it holds a name (a cell neither empty nor a number), and second
 * (NULL: no second line) is all numbers but for its label cell (index label; SIZE_MAX for
 * none), which may be a class name. -1: out of memory. */
int csv_looks_like_header(const char *first, const char *second, char sep, size_t label);

#endif
