#!/usr/bin/env bash
# The main job on the embedded default (Fashion-MNIST from Debian's
# dataset-fashion-mnist): install, build, then let batchlab choose the batch size
# while training the `mlp` preset to 88% validation accuracy (goodput from the
# measured gradient noise scale, --batch auto), and end with a summary and a short
# report with its plots under runs/main/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh >/dev/null
mkdir -p runs/main
./build/batchlab train --data fashion-mnist --model mlp --batch auto --lr 0.05 \
    --target-acc 0.88 --epochs 10 --eval-every 100 \
    --log runs/main/log.jsonl --save runs/main/model.safetensors --report runs/main "$@"
echo
echo "report: runs/main/report.md (runs/main/report.html in a browser), plots in runs/main/plots/"
