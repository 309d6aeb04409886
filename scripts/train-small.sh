#!/usr/bin/env bash
# The `small` scale's shared stages, as configs/small/experiments.json lists them under "prepare": the base
# model (span corruption, then the LM-adapt phase), the 60 category LoRA teachers on it, the meta-trained model
# of each prompt format (the Tk-Instruct rows and TAGI's logit teachers) and the stage-1 generator. Each
# published stage is copied to artifacts/small/<name>/ when it finishes (bf16 where frozen; commit it then), and
# later stages read that copy. Published stages are read, never retrained; a killed stage resumes from its
# checkpoint when this script is rerun. Extra arguments go to `tagi prepare`, e.g. `--through
# artifacts/small/teachers` to stop after one stage (the times of each are in artifacts/README.md).
#
# Without arguments it then trains and publishes the Def + 2 Pos TAGI generator that the README's main job
# (`npm run demo -- --scale small`, configs/small/demo.json) evaluates: stage 2 with configs/small/finetune.json
# as the grid's TAGI cell of seed 0 runs it (format, logit teacher and its cache set as the runner sets them),
# from the stage-1 generator. It is not a prepare stage because the runner retrains every cell itself.
set -euo pipefail
cd "$(dirname "$0")/.."
tagi() { node --import tsx src/cli.ts "$@"; }
tagi prepare --scale small "$@"
[ $# -eq 0 ] || exit 0
if [ ! -f artifacts/small/tagi-def2pos/artifact.json ]; then
  tagi finetune --config configs/small/finetune.json --out runs/small/tagi-def2pos --resume \
    --set format=def+2pos --set teacher=artifacts/small/metatrain-def2pos/model \
    --set teacherLogits=runs/small/teacher-logits-def2pos --set train.seed=0 --set initSeed=0
  tagi publish --run runs/small/tagi-def2pos --out artifacts/small/tagi-def2pos --dtype bf16
fi
