#!/usr/bin/env bash
# The `small` training pipeline of the training issue, in order: stage 0 (pretrain-base), Tk-Instruct-style
# meta-training of one model per prompt format (Def, Def + 2 Pos: the Tk-Instruct rows and TAGI's logit teachers),
# the Def model's SNI-103 evaluation, then the per-category LoRA teachers. Every stage resumes from its
# checkpoint, so rerunning after a kill continues where it stopped. Weights go to runs/small/ (not committed);
# `npm run tagi -- training-report` then copies logs and run records to results/training/ and draws the curves.
# About 2 hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
tagi() { node --import tsx src/cli.ts "$@"; }
[ -f runs/small/base-span/model/model.safetensors ] || tagi pretrain-base --config configs/small/pretrain-base.json --out runs/small/base-span --resume
# the LM-adapt phase (prefix LM from the span-corruption model), as T5-LM-adapt
[ -f runs/small/base/model/model.safetensors ] || tagi pretrain-base --config configs/small/pretrain-base-lmadapt.json --out runs/small/base --resume
[ -f runs/small/metatrain/model/model.safetensors ] || tagi metatrain --config configs/small/metatrain.json --out runs/small/metatrain --resume
[ -f runs/small/metatrain-def2pos/model/model.safetensors ] || tagi metatrain --config configs/small/metatrain.json --out runs/small/metatrain-def2pos --resume --set format=def+2pos
# The evaluation and the teachers run side by side: both spend much of their time in single-threaded
# elementwise kernels, so two processes use the two cores better than one after the other.
[ -f results/eval/sni103-def-small-metatrain/summary.json ] || tagi evaluate --model runs/small/metatrain/model --benchmark sni \
  --format def --max-input-tokens 512 --max-new-tokens 32 --batch-size 16 --no-progress --out results/eval/sni103-def-small-metatrain &
tagi teachers --config configs/small/teachers.json --out runs/small/teachers --resume
wait
