#!/usr/bin/env bash
# The `small` scale's shared stages, as configs/small/experiments.json lists them under "prepare": the base
# model (span corruption, then the LM-adapt phase), the 60 category LoRA teachers on it, the meta-trained model
# of each prompt format (the Tk-Instruct rows and TAGI's logit teachers) and the stage-1 generator. Each
# published stage is copied to artifacts/small/<name>/ when it finishes (bf16 where frozen; commit it then), and
# later stages read that copy. Published stages are read, never retrained; a killed stage resumes from its
# checkpoint when this script is rerun. Extra arguments go to `tagi prepare`, e.g. `--through
# artifacts/small/teachers` to stop after one stage (the times of each are in artifacts/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx src/cli.ts prepare --scale small "$@"
