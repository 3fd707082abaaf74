/* Checkpoint metadata for the schedule, the batch history and the noise-scale
 * estimator (checkpoint_state.c), used by checkpoint.c. */
#ifndef BL_CHECKPOINT_STATE_H
#define BL_CHECKPOINT_STATE_H

#include "batchlab/io.h"
#include "train/trainer_internal.h"

#define CKPT_STATE_N_META 13

/* Text of the values, alive until the checkpoint is written. */
typedef struct ckpt_state_text {
    char base_batch[16], warmup[32], total[32], step_size[32], gamma[32], min_lr[32], lr_factor[32],
        noise_g2[40], noise_tr[40], noise_n[32];
    char *history; /* owned */
} ckpt_state_text;

/* Fills kv[0 .. CKPT_STATE_N_META) from t, the values living in b; returns how many. */
int ckpt_state_meta(const bl_trainer *t, ckpt_state_text *b, bl_meta_kv *kv);
void ckpt_state_text_free(ckpt_state_text *b);
/* Restores what ckpt_state_meta wrote (and the noise stream's "rng.noise"), all or
 * nothing; a checkpoint without it leaves t as it was. */
bl_status ckpt_state_restore(bl_trainer *t, const bl_safetensors *st, const char *path,
                             bl_error *err);

#endif
