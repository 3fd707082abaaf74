#ifndef BL_TRAINER_INTERNAL_H
#define BL_TRAINER_INTERNAL_H
#include "batchlab/train.h"

struct bl_trainer {
    bl_ctx *ctx;
    bl_train_config cfg;
    char spec[4096];
    const bl_dataset *train;
    int n_classes;
    bl_model *model;
    bl_optim opt;
    bl_loader loader;
    int loader_ready;
    long step;
    long samples_seen;
    bl_noise noise;
    int stop_requested;
    float lr_factor;   /* > 0: lr = cfg.lr x this (set_batch), replacing batch scaling */
    int resumed_world; /* ranks of the run that wrote the resumed checkpoint */
};

#endif
