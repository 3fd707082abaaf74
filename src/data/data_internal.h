/* Shared by the readers in src/data/: the format-specific loaders behind
 * bl_dataset_load, the label rules they all apply, and message helpers. */
#ifndef BL_DATA_INTERNAL_H
#define BL_DATA_INTERNAL_H

#include <stddef.h>
#include "batchlab/data.h"

/* The readers, with the label rules of o (labels_path NULL: unlabelled). */
bl_status data_load_csv(bl_dataset *ds, bl_mem *mem, const char *path, const bl_load_opts *o,
                        bl_load_info *info, bl_error *err);
bl_status data_load_npy(bl_dataset *ds, bl_mem *mem, const char *x_path, const char *y_path,
                        const bl_load_opts *o, bl_error *err);
bl_status data_load_idx(bl_dataset *ds, bl_mem *mem, const char *images_path,
                        const char *labels_path, const bl_load_opts *o, bl_error *err);

/* Apply o->classes and o->min_classes to ds->y (n values already known to be integers in
 * 0..BL_MAX_CLASSES-1) and set ds->n_classes. line[i] is sample i's line in path (CSV);
 * NULL names samples by their 0-based index instead (.npy, IDX). */
bl_status data_labels_finish(bl_dataset *ds, const bl_load_opts *o, const char *path,
                             const size_t *line, bl_error *err);

/* Copy up to max_in bytes of s into out (cap bytes, always terminated), with control
 * characters escaped (\r, \n, \t, \xHH; UTF-8 passes), so a message never moves the
 * cursor or colours a terminal; "..." marks a cut. */
void data_escape(char *out, size_t cap, const char *s, size_t max_in);

#endif
