/* The sweep's figures, drawn from its results (see sweep_plots.c). */
#ifndef BL_SWEEP_PLOTS_H
#define BL_SWEEP_PLOTS_H

#include "batchlab/sweep.h"

enum {
    SWEEP_PLOT_STEPS,   /* steps to target vs B, fit and perfect scaling */
    SWEEP_PLOT_FRONT,   /* examples vs steps */
    SWEEP_PLOT_TIME,    /* wall-clock to target vs B */
    SWEEP_PLOT_GAP,     /* generalisation gap vs B */
    SWEEP_PLOT_NOISE_B, /* noise scale at the target vs B, with B_crit */
    SWEEP_PLOT_NOISE_T, /* noise scale over training */
    SWEEP_PLOT_VAL,     /* validation accuracy over training */
    SWEEP_N_PLOTS
};
extern const char *const sweep_plot_names[SWEEP_N_PLOTS]; /* file names under plots/ */

/* Draws plots/<name>.png and .svg for each figure the results allow; drawn[i] says which
 * exist. A missing gnuplot (or a figure with no point to draw) is recorded in r->plot_msg
 * (the first one) and is not an error; a plot that could not be written is (BL_ERR_IO,
 * BL_ERR_NOMEM, naming the file). */
bl_status sweep_draw_plots(const bl_sweep_config *c, bl_sweep_result *r, int drawn[SWEEP_N_PLOTS],
                           bl_error *err);

#endif
