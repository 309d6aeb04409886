#!/usr/bin/env bash
# The results tables at the `small` scale (results/README.md): every experiment of experiments/ at seeds
# 0, 1, 2, most informative first (all of seed 0, then seeds 1 and 2), then `npm run results`.
# Needs scripts/train-small.sh and the stage-1 generator (runs/small/pretrain-hyper; the runner trains it
# when missing). Finished experiments are skipped, so rerunning the script continues where it stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
run() { node --import tsx src/cli.ts experiment "$1" --scale small --seed "$2" || echo "[experiments] $1 seed $2 failed (see results/$1/small/seed-$2/*.log)"; }
TRAINED="tagi tk-instruct hint hypter tk-instruct-lora"
ABLATIONS="tagi-no-kl tagi-no-ins tagi-no-ce tagi-no-fusion tagi-no-pretrain"
PROBES="probe-other-instruction probe-shuffled-words"
# No training (one seed: nothing in them depends on the seed).
for e in no-ft mean-adapter; do run "$e" 0; done
for seed in 0 1 2; do
  for e in $TRAINED $ABLATIONS $PROBES; do run "$e" "$seed"; done
  [ "$seed" = 0 ] && run adapter-similarity 0
  node --import tsx src/cli.ts results
done
