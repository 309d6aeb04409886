#!/usr/bin/env bash
# The tiny TAGI pipeline end to end, in a few minutes on 2 cores: stage 0 (a T5 pretrained from scratch with
# span corruption on SNI train-task text, then a prefix-LM phase as T5-LM-adapt), Tk-Instruct-style meta-training (the logit teacher), two
# per-category LoRA teachers (the parameter teachers), TAGI stage 1 (generator pretraining on a|b|c text) and
# stage 2 (finetuning with L_ce + L_kl + L_ins), SNI-103 evaluations of the meta-trained model and of TAGI on
# 5 instances per task, and the training report (curves, run records) in results/training/tiny/. Weights go
# to runs/tiny/ (not committed). Rerunning starts over; each stage also resumes with --resume after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
tagi() { node --import tsx src/cli.ts "$@"; }
rm -rf runs/tiny results/eval/sni103-def2pos-tiny-metatrain results/eval/sni103-def2pos-tiny-tagi
tagi pretrain-base --config configs/tiny/pretrain-base.json --out runs/tiny/base-span
tagi pretrain-base --config configs/tiny/pretrain-base-lmadapt.json --out runs/tiny/base
tagi metatrain --config configs/tiny/metatrain.json --out runs/tiny/metatrain
tagi teachers --config configs/tiny/teachers.json --out runs/tiny/teachers
tagi pretrain-hyper --config configs/tiny/pretrain-hyper.json --out runs/tiny/pretrain-hyper
tagi finetune --config configs/tiny/finetune.json --out runs/tiny/finetune
tagi evaluate --model runs/tiny/metatrain/model --benchmark sni --format def+2pos --max-input-tokens 384 \
  --max-new-tokens 32 --batch-size 16 --max-instances-per-task 5 --no-progress --out results/eval/sni103-def2pos-tiny-metatrain
tagi evaluate --tagi runs/tiny/finetune/model --benchmark sni --format def+2pos --max-input-tokens 128 \
  --max-new-tokens 32 --batch-size 16 --max-instances-per-task 5 --no-progress --out results/eval/sni103-def2pos-tiny-tagi
tagi training-report --runs runs/tiny --out results/training/tiny --eval results/eval/sni103-def2pos-tiny-metatrain,results/eval/sni103-def2pos-tiny-tagi
echo "[tagi] done: results/training/tiny/README.md (figures: results/training/tiny/*.png), results/eval/sni103-def2pos-tiny-{metatrain,tagi}/"
