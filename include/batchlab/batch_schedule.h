/* A batch-size schedule: which batch (and learning-rate factor) training used
 * from which update on. The trainer records one as the batch changes
 * (bl_trainer_set_batch) and keeps it in its checkpoints; `--batch auto` logs
 * the same changes as decision records; a schedule read back from such a log
 * (or from a CSV of step,batch rows) replays a run exactly, since the
 * adaptive controller's decisions follow measured throughput and so cannot be
 * repeated by running the controller again.
 *
 * An entry (step, batch, lr_factor) takes effect after update `step` (step 0:
 * before the first update): later updates use `batch` samples and learning
 * rate lr x lr_factor (lr_factor 0: the configured batch-size scaling rule).
 * Entries are in step order; several at one step apply in order. */
#ifndef BATCHLAB_BATCH_SCHEDULE_H
#define BATCHLAB_BATCH_SCHEDULE_H

#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_batch_change {
    long step;
    int batch;
    float lr_factor;
} bl_batch_change;

typedef struct bl_batch_schedule {
    bl_batch_change *v; /* owned */
    int n, cap;
} bl_batch_schedule;

/* Append an entry; its step must not be below the last one's (BL_ERR_ARG), BL_ERR_NOMEM. */
bl_status bl_batch_schedule_add(bl_batch_schedule *s, long step, int batch, float lr_factor,
                                bl_error *err);
/* The entry in effect after update `step` (the last with .step <= step), or NULL if none. */
const bl_batch_change *bl_batch_schedule_at(const bl_batch_schedule *s, long step);
/* Largest batch in the schedule (0 when empty). */
int bl_batch_schedule_max_batch(const bl_batch_schedule *s);
/* Read a schedule from `path`: a JSON Lines run log (the first step record's batch at
 * step 0, then every "decision" record's step, to_batch and lr_factor), or CSV rows
 * "step,batch[,lr_factor]" with an optional header line. Errors name the file and line. */
bl_status bl_batch_schedule_load(bl_batch_schedule *s, const char *path, bl_error *err);
/* As text "step:batch:lr_factor;..." (lr_factor exact to the float); the caller frees the
 * string (NULL when out of memory). Parsing appends to s, BL_ERR_FORMAT naming `what`. */
char *bl_batch_schedule_format(const bl_batch_schedule *s);
bl_status bl_batch_schedule_parse(bl_batch_schedule *s, const char *text, const char *what,
                                  bl_error *err);
void bl_batch_schedule_free(bl_batch_schedule *s);

#ifdef __cplusplus
}
#endif

#endif
