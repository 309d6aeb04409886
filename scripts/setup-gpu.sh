#!/usr/bin/env bash
# For machines with an NVIDIA GPU: @tensorflow/tfjs-node-gpu 4.22.0 built against the full tensorflow 2.16.2
# wheel and the CUDA 12.3 / cuDNN 8.9 libraries of its [and-cuda] extra, all from PyPI (about 3 GB of
# wheels, cached in $TAGI_CACHE). Run it after scripts/setup.sh; initBackend() then prefers tfjs-node-gpu.
# Fails with a clear message where no NVIDIA driver is present. Never run on a GPU by this project's
# maintainers (their machines have none): see environment.md, "GPU".
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/setup-tensorflow.sh" --gpu
