/* Plots through gnuplot, for any command that wants to show a curve.
 *
 *   double x[] = {16, 32, 64}, y[] = {4000, 2100, 1200};
 *   bl_plot_series s = {.title = "measured", .x = x, .y = y, .n = 3, .style = BL_PLOT_POINTS};
 *   bl_plot p = {.title = "Steps to target", .xlabel = "batch size", .ylabel = "steps",
 *                .logx = 1, .logy = 1, .series = &s, .n_series = 1};
 *   bl_plot_write(&p, "out/steps", &err);   // out/steps.png and out/steps.svg
 *
 * The library builds a gnuplot script with the data inline and runs gnuplot on
 * it (no shell involved, so paths and titles need no quoting care from the
 * caller). Each image is rendered to a temporary name in its own directory and
 * renamed into place, so a reader never sees a half-drawn file and a failure
 * leaves the previous image untouched. gnuplot's messages go into bl_error,
 * never to the terminal. */
#ifndef BATCHLAB_PLOT_H
#define BATCHLAB_PLOT_H

#include <stddef.h>
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BL_PLOT_POINTS, BL_PLOT_LINES, BL_PLOT_LINESPOINTS } bl_plot_style;

typedef struct bl_plot_series {
    const char *title;   /* legend entry; NULL or "" for none */
    const double *x, *y; /* n points; a non-finite point (or <= 0 on a log axis) is
                            left out, and breaks a line there */
    size_t n;
    bl_plot_style style;
    int dashed;                /* draw the line dashed (fits, reference lines) */
    const char *const *labels; /* optional text beside each point (NULL = none) */
    const double *ylo, *yhi;   /* optional error bars (both or neither; labels are then
                                  not drawn); a non-finite end is left open */
} bl_plot_series;

typedef struct bl_plot {
    const char *title, *xlabel, *ylabel;
    int logx, logy;          /* logarithmic axes (base 10 tics; logx2 for base 2) */
    int logx2;               /* with logx: label the x axis in powers of two */
    int width_px, height_px; /* 0 = 900 x 600 */
    const bl_plot_series *series;
    int n_series;
} bl_plot;

/* Render p to <base>.png and <base>.svg (base has no extension; its directory must
 * exist), each written atomically. BL_ERR_UNSUPPORTED when gnuplot cannot be run
 * (the message says to install gnuplot-nox); BL_ERR_ARG for a plot with no drawable
 * point; BL_ERR_IO with gnuplot's own message when it fails. */
bl_status bl_plot_write(const bl_plot *p, const char *base, bl_error *err);

/* 1 when gnuplot can be run here (cheap: looks it up on PATH). */
int bl_plot_available(void);

#ifdef __cplusplus
}
#endif

#endif
