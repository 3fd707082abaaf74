/* The sweep's folder (sweep_store.c): the settings record, one record per trial,
 * the results table. Used by the loop (sweep.c) and the report (sweep_report.c);
 * depends on neither. */
#ifndef BL_SWEEP_STORE_H
#define BL_SWEEP_STORE_H

#include <stddef.h>
#include "batchlab/sweep.h"

/* Facts about the data that go into the settings record and the report. */
typedef struct sweep_data_info {
    size_t n_train, n_val, n_test;
    int test_is_val; /* no test split: the generalisation gap uses validation */
} sweep_data_info;

/* out = dir + "/" + rel. */
void sweep_path(char *out, size_t cap, const char *dir, const char *rel);
/* "B64_lr0.025". */
void sweep_trial_id(char *out, size_t cap, int batch, double lr);

/* Creates out_dir and its subfolders; writes sweep.json, or checks that the one there
 * has the same settings (BL_ERR_ARG naming the first that differs). */
bl_status sweep_prepare_dir(const bl_sweep_config *c, const sweep_data_info *di, bl_error *err);
/* Reads trials/<t->id>.json into *t (id, batch and lr already set) when it exists:
 * returns 1 when read, 0 when absent, -1 on a damaged file (err filled). */
int sweep_trial_load(const char *dir, bl_trial *t, bl_error *err);
bl_status sweep_trial_save(const char *dir, const bl_trial *t, bl_error *err);
/* results.csv and results.json. */
bl_status sweep_write_results(const bl_sweep_config *c, const sweep_data_info *di,
                              const bl_sweep_result *r, bl_error *err);

#endif
