#!/usr/bin/env bash
# The main job on the embedded default: install, build, then train the `mlp`
# preset on Fashion-MNIST (Debian's dataset-fashion-mnist) for a few epochs,
# with a run log and a checkpoint under runs/main/, ending with a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh >/dev/null
mkdir -p runs/main
./build/batchlab train --data fashion-mnist --model mlp --epochs 3 --batch 128 --lr 0.05 \
    --log runs/main/log.jsonl --save runs/main/model.safetensors "$@"
./build/batchlab eval --checkpoint runs/main/model.safetensors --data fashion-mnist
