#!/usr/bin/env bash
# Sets up the project on Debian/Ubuntu (Node >= 20 already installed):
#   1. system packages: OpenBLAS + a C++ toolchain (the native GEMM add-on), Jupyter's headless parts
#      (notebooks and their tests), DejaVu fonts (figures), Chromium (the notebooks' browser test and
#      `npm run notebooks:screenshots`). Needs root or sudo.
#   2. npm ci (the dependencies; nothing runs at install, so the package installs the same way elsewhere)
#   3. npm run build:native: the OpenBLAS GEMM add-on for the wasm backend, failing loudly if it does not build
#   4. scripts/setup-tensorflow.sh: the native TensorFlow backend (tfjs-node built against the C library of
#      PyPI's tensorflow-cpu 2.16.2 wheel, ~50 s, 0.8 GB); where it cannot, it says why and wasm is used
#   5. npm run build:tf-ops: the fused L_ce + L_kl TensorFlow ops (native/src/ce-kl.c) against that library;
#      without it, the composed losses are used
#   6. npm run kernel:install: registers the tslab TypeScript kernel in ./.jupyter (never in your home)
#   7. npm run build: dist/, the library the notebooks import; then `npm run lab` opens them
#
# Settings: TAGI_SKIP_APT=1 skips step 1 (install the equivalents yourself, see environment.md);
# TAGI_SLURM=1 also installs Slurm and munge (the Slurm executor's test; a cluster's own Slurm is what users run);
# TAGI_SKIP_NATIVE=1 skips the add-on (the wasm GEMM path is used instead); TAGI_SKIP_TENSORFLOW=1 skips
# step 4 (wasm is used); TAGI_REQUIRE_TENSORFLOW=1 makes a failed step 4 an error (CI sets it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

T_START=$SECONDS
T_SECTION=$SECONDS
SECTION=""
end_section() {
  if [[ -n "$SECTION" ]]; then printf '=== %s: done in %ds\n' "$SECTION" "$((SECONDS - T_SECTION))"; fi
}
section() {
  end_section
  SECTION="$1"
  T_SECTION=$SECONDS
  printf '\n=== setup: %s (at %ds)\n' "$SECTION" "$((SECONDS - T_START))"
}
trap 'rc=$?; if [[ $rc -ne 0 ]]; then printf "\n=== setup FAILED in \"%s\" (exit %d)\n" "$SECTION" "$rc"; fi' EXIT

APT_PACKAGES=(
  build-essential python3 python3-pip libopenblas-dev
  jupyter-nbconvert python3-nbclient jupyter-client jupyter-core python3-ipython python3-ipykernel
  jupyter-notebook fonts-dejavu-core chromium
)
# TAGI_SLURM=1 (CI sets it): Slurm and munge too, for the Slurm executor's single-node cluster test
# (scripts/slurm-local.sh; nothing is started here).
if [[ "${TAGI_SLURM:-0}" == "1" ]]; then APT_PACKAGES+=(slurmctld slurmd slurm-client munge); fi

section "system packages (apt)"
if [[ "${TAGI_SKIP_APT:-0}" == "1" ]]; then
  echo "skipped (TAGI_SKIP_APT=1); needed: ${APT_PACKAGES[*]} (or their equivalents, see environment.md)"
elif ! command -v apt-get >/dev/null; then
  echo "no apt-get here: install OpenBLAS, a C++ compiler and Jupyter (nbclient) yourself, see environment.md"
else
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null; then
      SUDO="sudo"
    else
      echo "not root and no sudo: install ${APT_PACKAGES[*]} as root, then rerun with TAGI_SKIP_APT=1" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq -o Acquire::Retries=3
  # --no-install-recommends: jupyter-nbconvert recommends pandoc and TeX, which nothing here needs.
  $SUDO apt-get install -y -qq --no-install-recommends -o Acquire::Retries=3 "${APT_PACKAGES[@]}" >/dev/null
  dpkg-query -W -f='  ${Package} ${Version}\n' libopenblas-dev g++ python3-nbclient jupyter-client python3-ipython
fi

section "toolchain"
echo "node $(node --version), npm $(npm --version)"
node -e 'if (Number(process.versions.node.split(".")[0]) < 20) { console.error(`Node ${process.version}: tagi needs Node >= 20`); process.exit(1); }'

section "npm ci"
npm ci --no-audit --no-fund

section "native GEMM add-on (npm run build:native)"
if [[ "${TAGI_SKIP_NATIVE:-0}" == "1" ]]; then
  echo "skipped (TAGI_SKIP_NATIVE=1): the wasm GEMM path is used instead"
else
  npm run build:native
fi

section "native TensorFlow backend (scripts/setup-tensorflow.sh)"
bash scripts/setup-tensorflow.sh

section "fused L_ce + L_kl TensorFlow ops (npm run build:tf-ops)"
npm run build:tf-ops

section "Jupyter kernel (npm run kernel:install)"
npm run kernel:install

section "library build (npm run build): dist/, which the notebooks import as \"tagi\""
npm run build

end_section
printf '=== setup: done in %ds\n' "$((SECONDS - T_START))"
