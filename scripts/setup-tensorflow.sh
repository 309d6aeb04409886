#!/usr/bin/env bash
# The native TensorFlow backend built against TensorFlow's C library from PyPI:
#   bash scripts/setup-tensorflow.sh         @tensorflow/tfjs-node 4.22.0 on tensorflow-cpu 2.16.2 (setup.sh runs it)
#   bash scripts/setup-tensorflow.sh --gpu   @tensorflow/tfjs-node-gpu 4.22.0 on tensorflow 2.16.2 + CUDA 12.3
#                                            wheels (scripts/setup-gpu.sh runs it; needs an NVIDIA driver)
#
# tfjs-node's own install script downloads libtensorflow from storage.googleapis.com, which these machines
# cannot reach. PyPI's TensorFlow wheels carry the same C library (libtensorflow_cc.so.2 exports every
# TF_*/TFE_* function the binding calls) and its headers, so this script:
#   1. downloads the pinned wheels with pip (sha256 checked) into a cache folder,
#   2. unpacks the tfjs-node(-gpu) package (npm pack) without running its install script, with the three
#      packages it loads at run time; it stays out of package.json, so `npm ci` never runs that script,
#   3. unpacks the two libraries and the headers into the package's deps/ (where its binding.gyp looks),
#      with the names the binding links against (GPU: the CUDA libraries beside them, where TensorFlow's
#      dlopen finds them through its $ORIGIN run path),
#   4. compiles the binding (node-pre-gyp --build-from-source, Node's headers from the local install),
#   5. checks it: the `tensorflow` backend initialises and a matMul and its gradient are right.
# Any failure removes the package again (never a half-installed one that breaks `npm test`), says why, and
# exits 0: the wasm backend is used. TAGI_REQUIRE_TENSORFLOW=1 makes a failure an error instead (CI).
#
# Pinned: TensorFlow 2.16.2 (from 2.17, tf.round on int32 returns zeros: tensorflow/tensorflow#74789).
# Cost (CPU): a 214 MB wheel (cached in $TAGI_CACHE, default ~/.cache/tagi), ~0.8 GB unpacked, ~50 s.
# Settings: TAGI_SKIP_TENSORFLOW=1 skips it; TAGI_CACHE=DIR moves the wheel cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GPU=0
[[ "${1:-}" == "--gpu" ]] && GPU=1
TF_VERSION=2.16.2
TFJS_NODE_VERSION=4.22.0
CACHE="${TAGI_CACHE:-$HOME/.cache/tagi}"
TAG=cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64
if [[ $GPU == 1 ]]; then
  NAME=tfjs-node-gpu
  # tensorflow[and-cuda]==2.16.2 as pip resolves it (the extra's pins), each "requirement wheel sha256"
  WHEELS=(
    "tensorflow==$TF_VERSION tensorflow-$TF_VERSION-$TAG.whl d8798dea8e2281b4a0b569d9c00e7949c0090509be363da271e1ef21828bffae"
    "nvidia-cublas-cu12==12.3.4.1 nvidia_cublas_cu12-12.3.4.1-py3-none-manylinux1_x86_64.whl 9b25b27bd5a5be1cc7e83a7b8004258daa338800798e22986e5b67ee06f0859d"
    "nvidia-cuda-cupti-cu12==12.3.101 nvidia_cuda_cupti_cu12-12.3.101-py3-none-manylinux1_x86_64.whl 7b984288af7db1faa1e6f1803db075d4350116b72a98d4be0e88d604dc812c0e"
    "nvidia-cuda-nvcc-cu12==12.3.107 nvidia_cuda_nvcc_cu12-12.3.107-py3-none-manylinux1_x86_64.whl a3344b94f5e89023fa17e0bbf8fb0dd26d5ef6f4091a5aab08f215e4999eac62"
    "nvidia-cuda-nvrtc-cu12==12.3.107 nvidia_cuda_nvrtc_cu12-12.3.107-py3-none-manylinux1_x86_64.whl 4db66788a37a234304a0b3203744f9a6c665f48bde65f69a096ae3b5799b5b1d"
    "nvidia-cuda-runtime-cu12==12.3.101 nvidia_cuda_runtime_cu12-12.3.101-py3-none-manylinux1_x86_64.whl 04604679ddca6acb96c76a7a9306282cddc16981f92e148e2dfe227078883cda"
    "nvidia-cudnn-cu12==8.9.7.29 nvidia_cudnn_cu12-8.9.7.29-py3-none-manylinux1_x86_64.whl adf4f59ed7a1341103822ed8df6e144f4d47ea8b10d9bf0ea0047ba738fd7b02"
    "nvidia-cufft-cu12==11.0.12.1 nvidia_cufft_cu12-11.0.12.1-py3-none-manylinux1_x86_64.whl 3b2c85d24d7dcc578720fdf39e2823950b5857e85164c3c1dc97184a8a8e0398"
    "nvidia-curand-cu12==10.3.4.107 nvidia_curand_cu12-10.3.4.107-py3-none-manylinux1_x86_64.whl d798db82ae445cf1d8bf6af9ca3bd6bb6cc87753c229a441cf8d2597b09332e5"
    "nvidia-cusolver-cu12==11.5.4.101 nvidia_cusolver_cu12-11.5.4.101-py3-none-manylinux1_x86_64.whl 783a3279553feaf8e47af12cab1fa769ffd5e644ea876db3dc2252f35f9bf256"
    "nvidia-cusparse-cu12==12.2.0.103 nvidia_cusparse_cu12-12.2.0.103-py3-none-manylinux1_x86_64.whl fe9e17daf406c98c28fbc8bcf785ecd4db301bf02ce626de6aa1046de66f84bd"
    "nvidia-nccl-cu12==2.19.3 nvidia_nccl_cu12-2.19.3-py3-none-manylinux1_x86_64.whl a9734707a2c96443331c1e48c717024aa6678a0e2a4cb66b2c364d18cee6b48d"
    "nvidia-nvjitlink-cu12==12.3.101 nvidia_nvjitlink_cu12-12.3.101-py3-none-manylinux1_x86_64.whl 64335a8088e2b9d196ae8665430bc6a2b7e6ef2eb877a9c735c804bd4ff6467c"
  )
else
  NAME=tfjs-node
  WHEELS=("tensorflow-cpu==$TF_VERSION tensorflow_cpu-$TF_VERSION-$TAG.whl c855cb6bf05d32dd5928086b03a5f6b4189b63c22b95e017703cbee4291023ca")
fi
PKG="node_modules/@tensorflow/$NAME"

say() { printf '[tensorflow backend] %s\n' "$*"; }
STARTED=0 # set once this script starts replacing $PKG: a failure after that removes it
give_up() {
  say "$NAME NOT installed: $1"
  if [[ $STARTED == 1 ]]; then rm -rf "$PKG"; fi
  if [[ "${TAGI_REQUIRE_TENSORFLOW:-0}" == "1" ]]; then
    say "TAGI_REQUIRE_TENSORFLOW=1: failing"
    exit 1
  fi
  say "the wasm backend is used instead (see environment.md, 'The native TensorFlow backend')"
  exit 0
}

if [[ "${TAGI_SKIP_TENSORFLOW:-0}" == "1" ]]; then
  say "skipped (TAGI_SKIP_TENSORFLOW=1): the wasm backend is used"
  exit 0
fi
[[ "$(uname -s)" == "Linux" && "$(uname -m)" == "x86_64" ]] || give_up "the PyPI wheels used here are for Linux x86-64, this is $(uname -s) $(uname -m)"
grep -qw avx /proc/cpuinfo || give_up "this CPU has no AVX, which TensorFlow's PyPI builds require"
if [[ $GPU == 1 ]]; then
  # The CUDA libraries come from the wheels; the driver (libcuda.so.1, the kernel module) must be the host's.
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' || [[ ! -e /proc/driver/nvidia/version ]]; then
    say "$NAME NOT installed: no NVIDIA CUDA driver on this machine (no libcuda.so.1 in the linker cache, or no /proc/driver/nvidia/version)."
    say "Install the NVIDIA driver (>= 525, for CUDA 12.3) first; without a GPU, use bash scripts/setup-tensorflow.sh (CPU)."
    exit 1
  fi
fi
command -v python3 >/dev/null || give_up "python3 is missing (pip downloads the wheels)"
python3 -m pip --version >/dev/null 2>&1 || give_up "pip is missing (apt-get install python3-pip)"
[[ -d node_modules/@tensorflow/tfjs-core ]] || give_up "run npm ci first"

# An installed, working binding of the pinned versions: nothing to do.
if [[ -f "$PKG/lib/napi-v8/tfjs_binding.node" && -f "$PKG/deps/.tagi-tensorflow-$TF_VERSION" ]] &&
  node scripts/check-tensorflow.mjs "@tensorflow/$NAME" "$TF_VERSION" >/dev/null 2>&1; then
  say "already installed ($NAME $TFJS_NODE_VERSION on TensorFlow $TF_VERSION)"
  exit 0
fi

# 1. The wheels, each checked against its pinned hash (they are code this project will load).
mkdir -p "$CACHE"
FILES=()
for w in "${WHEELS[@]}"; do
  read -r req file sha <<<"$w"
  if [[ ! -f "$CACHE/$file" ]]; then
    say "downloading $req from PyPI into $CACHE"
    python3 -m pip download "$req" --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311 -d "$CACHE" -q ||
      give_up "pip could not download $req"
  fi
  [[ -f "$CACHE/$file" ]] || give_up "pip did not produce $file"
  echo "$sha  $CACHE/$file" | sha256sum -c --status || {
    rm -f "$CACHE/$file"
    give_up "$file does not have the pinned sha256 (deleted; rerun to download it again)"
  }
  FILES+=("$CACHE/$file")
done

# 2. The package, without its install script, and the three packages it loads at run time in its own
#    node_modules. Not `npm install`: the project's npm override (danfojs-node's tfjs-node -> tfjs) would
#    apply to it too. Its @tensorflow/tfjs is the project's (same version), so there is one tfjs-core and
#    the 'tensorflow' backend registers where the project looks.
say "installing @tensorflow/$NAME@$TFJS_NODE_VERSION (without its install script)"
STARTED=1
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
(
  cd "$STAGE"
  npm pack "@tensorflow/$NAME@$TFJS_NODE_VERSION" --silent >/dev/null
  tar xzf "tensorflow-$NAME-$TFJS_NODE_VERSION.tgz"
  mkdir deps && cd deps && echo '{"private": true}' >package.json
  npm install --ignore-scripts --no-audit --no-fund --silent @mapbox/node-pre-gyp@1.0.9 google-protobuf@3.21.4 progress@2.0.3
) >/dev/null 2>&1 || give_up "npm could not fetch @tensorflow/$NAME@$TFJS_NODE_VERSION or its run-time packages"
[[ "$(node -p "require('$STAGE/package/package.json').dependencies['@tensorflow/tfjs']")" == "$(node -p "require('./node_modules/@tensorflow/tfjs/package.json').version")" ]] ||
  give_up "$NAME $TFJS_NODE_VERSION wants another @tensorflow/tfjs than the project's"
rm -rf "$PKG"
mv "$STAGE/package" "$PKG"
mv "$STAGE/deps/node_modules" "$PKG/node_modules"

# 3. The C library and headers where binding.gyp looks, named as it links them (-ltensorflow, and the
#    libtensorflow.so.2.9.1 whose presence tells install.js not to download); GPU: the CUDA libraries too.
say "unpacking TensorFlow's C library and headers into $PKG/deps"
python3 - "$PKG/deps" "${FILES[@]}" <<'EOF' || give_up "unpacking the wheels failed"
import os, sys, zipfile
deps, wheels = sys.argv[1], sys.argv[2:]
lib, inc = os.path.join(deps, "lib"), os.path.join(deps, "include")
os.makedirs(lib, exist_ok=True); os.makedirs(inc, exist_ok=True)
def safe(rel, n):
    if rel.startswith("/") or ".." in rel.split("/"):
        raise SystemExit(f"refusing a path outside deps/: {n}")
    return rel
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            if n.endswith("/"):
                continue
            if n in ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2"):
                target = os.path.join(lib, os.path.basename(n))
            elif n.startswith("tensorflow/include/"):
                target = os.path.join(inc, safe(n[len("tensorflow/include/"):], n))
            elif n.startswith("nvidia/") and "/lib/" in n and ".so" in os.path.basename(n):
                # CUDA 12 wheels: nvidia/<part>/lib/libX.so.N, found by TensorFlow's dlopen via $ORIGIN
                target = os.path.join(lib, safe(os.path.basename(n), n))
            else:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(n) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
for link, to in [("libtensorflow.so", "libtensorflow_cc.so.2"), ("libtensorflow.so.2", "libtensorflow_cc.so.2"),
                 ("libtensorflow.so.2.9.1", "libtensorflow_cc.so.2"), ("libtensorflow_framework.so", "libtensorflow_framework.so.2")]:
    os.symlink(to, os.path.join(lib, link))
EOF
touch "$PKG/deps/.tagi-tensorflow-$TF_VERSION"

# 4. The binding, compiled here (node-pre-gyp would otherwise try to download a prebuilt one).
say "compiling the binding"
NODEDIR="$(dirname "$(dirname "$(command -v node)")")"
[[ -f "$NODEDIR/include/node/node.h" ]] || give_up "Node's headers are not in $NODEDIR/include/node (node-gyp would download them)"
(
  cd "$PKG"
  export npm_config_nodedir="$NODEDIR"
  PATH="$PWD/../../.bin:$PATH" node node_modules/@mapbox/node-pre-gyp/bin/node-pre-gyp rebuild --build-from-source >build.log 2>&1
) || {
  tail -20 "$PKG/build.log" || true
  give_up "compiling the binding failed (log above)"
}

# 5. The check.
node scripts/check-tensorflow.mjs "@tensorflow/$NAME" "$TF_VERSION" || give_up "the compiled backend does not work (message above)"
say "installed: $NAME $TFJS_NODE_VERSION on TensorFlow $TF_VERSION ($(du -sh "$PKG" | cut -f1) on disk)"
