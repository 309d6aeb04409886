#!/usr/bin/env bash
# The tiny training pipeline end to end, in a few minutes on 2 cores: stage 0 (a T5 pretrained from scratch
# with span corruption on SNI train-task text), Tk-Instruct-style meta-training, two per-category LoRA
# teachers, an SNI-103 evaluation of the meta-trained model on 5 instances per task, and the training report
# (curves, run records) in results/training/tiny/. Weights go to runs/tiny/ (not committed). Rerunning starts
# over; each stage also resumes with --resume after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
tagi() { node --import tsx src/cli.ts "$@"; }
rm -rf runs/tiny results/eval/sni103-def2pos-tiny-metatrain
tagi pretrain-base --config configs/tiny/pretrain-base.json --out runs/tiny/base
tagi metatrain --config configs/tiny/metatrain.json --out runs/tiny/metatrain
tagi teachers --config configs/tiny/teachers.json --out runs/tiny/teachers
tagi evaluate --model runs/tiny/metatrain/model --benchmark sni --format def+2pos --max-input-tokens 256 \
  --max-new-tokens 32 --batch-size 16 --max-instances-per-task 5 --no-progress --out results/eval/sni103-def2pos-tiny-metatrain
tagi training-report --runs runs/tiny --out results/training/tiny --eval results/eval/sni103-def2pos-tiny-metatrain
echo "[tagi] done: results/training/tiny/README.md (figures: results/training/tiny/*.png), results/eval/sni103-def2pos-tiny-metatrain/"
