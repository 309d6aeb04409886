/**
 * Run as a child process by backend-select.test.ts: initBackend on a machine where the native GEMM add-on
 * is missing. The add-on's default location is made to look absent (fs.existsSync answers false for it),
 * and TAGI_NATIVE_GEMM_PATH (set by the parent) points at a file that exists but is not an add-on. Prints
 * one JSON line: the BackendInfo and the error of a transposed batched matMul against a JS triple loop.
 */
import fs = require("node:fs");
import { join, resolve } from "node:path";

const defaultAddon = resolve(join(__dirname, "..", "..", "native", "build", "Release", "tagi_gemm.node"));
const realExistsSync = fs.existsSync;
(fs as { existsSync: (p: fs.PathLike) => boolean }).existsSync = (p: fs.PathLike) =>
  resolve(String(p)) === defaultAddon ? false : realExistsSync(p);

async function main(): Promise<void> {
  // Imported only now, after the patch.
  const tf = require("@tensorflow/tfjs-core") as typeof import("@tensorflow/tfjs-core");
  const backend = require("../../src/backend") as typeof import("../../src/backend");
  const info = await backend.initBackend({ backend: "wasm", log: false });
  // a[3,M,K] · b[3,N,K]ᵀ on the wasm path, against a plain loop.
  const [B, M, K, N] = [3, 5, 7, 4];
  const av = Float32Array.from({ length: B * M * K }, (_, i) => Math.sin(i));
  const bv = Float32Array.from({ length: B * N * K }, (_, i) => Math.cos(i));
  const c = tf.matMul(tf.tensor3d(av, [B, M, K]), tf.tensor3d(bv, [B, N, K]), false, true).dataSync();
  let maxErr = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += av[(b * M + i) * K + k]! * bv[(b * N + j) * K + k]!;
        maxErr = Math.max(maxErr, Math.abs(s - c[(b * M + i) * N + j]!));
      }
  console.log(
    JSON.stringify({
      info,
      described: backend.describeBackend(info),
      maxErr,
      overridesInstalled: backend.wasmOverridesInstalled(),
      nativeGemmInUse: backend.nativeGemmInUse(),
      defaultAddon,
    }),
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
