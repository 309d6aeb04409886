#!/usr/bin/env bash
# The results tables at the `small` scale (results/README.md): every experiment of experiments/ at seeds
# 0, 1, 2, in order of importance (the main table at three seeds, then the ablations and probes, then the
# variants beyond the paper), with
# `npm run results` after each phase so the report is always current. Needs scripts/train-small.sh and the
# stage-1 generator (runs/small/pretrain-hyper; the runner trains it when missing). Finished experiments are
# skipped, so rerunning the script continues where it stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
run() { node --import tsx src/cli.ts experiment "$1" --scale small --seed "$2" || echo "[experiments] $1 seed $2 failed (see results/$1/small/seed-$2/*.log)"; }
report() { node --import tsx src/cli.ts results; }
MAIN="tagi hint hypter tk-instruct-lora"
ABLATIONS="tagi-no-kl tagi-no-ins tagi-no-ce tagi-no-fusion tagi-no-pretrain"
PROBES="probe-other-instruction probe-shuffled-words"
BEYOND="tagi-ins-relative tagi-ins-cosine" # scale-free L_ins (beyond the paper)
run no-ft 0 # no training: one seed
run tk-instruct 0 # the shared meta-trained model of each format (TAGI's logit teacher): the same at every seed
for e in $MAIN; do run "$e" 0; done
report
for seed in 1 2; do for e in $MAIN; do run "$e" "$seed"; done; done
report
for e in $ABLATIONS $PROBES adapter-similarity mean-adapter; do run "$e" 0; done
report
for seed in 1 2; do for e in $ABLATIONS $PROBES; do run "$e" "$seed"; done; done
report
for e in $BEYOND adapter-similarity-ins-relative adapter-similarity-ins-cosine; do run "$e" 0; done
for seed in 1 2; do for e in $BEYOND; do run "$e" "$seed"; done; done
run tagi-train-ffn 0
report
