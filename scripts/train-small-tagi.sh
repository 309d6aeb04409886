#!/usr/bin/env bash
# TAGI at the `small` scale, after scripts/train-small.sh (base model, meta-trained teacher, LoRA teachers):
# stage 1 (generator pretraining), stage 2 (finetuning with the three losses), and the SNI-103 evaluation of
# the result with Def + 2 Pos instructions. Every stage resumes from its checkpoint after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
tagi() { node --import tsx src/cli.ts "$@"; }
[ -f runs/small/pretrain-hyper/model/tagi.safetensors ] || tagi pretrain-hyper --config configs/small/pretrain-hyper.json --out runs/small/pretrain-hyper --resume
[ -f runs/small/finetune/model/tagi.safetensors ] || tagi finetune --config configs/small/finetune.json --out runs/small/finetune --resume
[ -f results/eval/sni103-def-small-tagi/summary.json ] || tagi evaluate --tagi runs/small/finetune/model --benchmark sni \
  --format def --max-input-tokens 128 --max-new-tokens 32 --batch-size 16 --no-progress --out results/eval/sni103-def-small-tagi
