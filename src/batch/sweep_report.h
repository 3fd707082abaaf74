/* The sweep's report (sweep_report.c): plots, report.md and report.html. Used by
 * the loop (sweep.c); it reads the folder's paths through sweep_store.h. */
#ifndef BL_SWEEP_REPORT_H
#define BL_SWEEP_REPORT_H

#include "batch/sweep_store.h"

/* plots/ (through bl_plot; a missing gnuplot is noted in r->plot_msg, not an error; a
 * plot that could not be written is), report.md and report.html. */
bl_status sweep_write_report(const bl_sweep_config *c, const sweep_data_info *di,
                             bl_sweep_result *r, bl_error *err);

#endif
