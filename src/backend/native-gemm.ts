/**
 * The optional native GEMM add-on (native/src/gemm.c): OpenBLAS sgemm running directly on the wasm heap.
 * Loading never throws: when the add-on is missing or broken the reason is kept and the wasm path is used.
 */
import { addonCandidates, loadAddon } from "./addon";

export interface NativeGemm {
  /** C_b = op(A_b)·op(B_b) for b < batch; offsets and strides in floats within `heap`; stride 0 broadcasts. */
  sgemm(
    heap: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transposeA: number,
    transposeB: number,
    aOffset: number,
    aStride: number,
    bOffset: number,
    bStride: number,
    cOffset: number,
    cStride: number,
  ): void;
  setThreads(n: number): void;
  getThreads(): number;
  config(): string;
  peakGflops(n: number, reps: number): number;
}

export interface NativeGemmStatus {
  loaded: boolean;
  /** Why it is or is not loaded, in words. */
  reason: string;
  path?: string;
  config?: string;
}

let cached: { gemm: NativeGemm | null; status: NativeGemmStatus } | null = null;

export function loadNativeGemm(): { gemm: NativeGemm | null; status: NativeGemmStatus } {
  if (cached) return cached;
  // OpenBLAS's idle workers spin for 2^28 cycles by default before sleeping; on a 2-core machine they would
  // take the core the (wasm) kernels between two products need. 2^16 cycles (~20 µs) keeps them warm across
  // back-to-back products only. Read by OpenBLAS when the library loads, so set it first.
  process.env.OPENBLAS_THREAD_TIMEOUT ??= "16";
  // $TAGI_NATIVE_GEMM_PATH, then native/build/Release under the project root
  const r = loadAddon<NativeGemm>(addonCandidates("TAGI_NATIVE_GEMM_PATH", "build", "Release", "tagi_gemm.node"), (g) => {
    if (typeof g.sgemm !== "function") throw new Error("no sgemm export");
  });
  if (r.addon) {
    cached = { gemm: r.addon, status: { loaded: true, reason: `loaded ${r.path}`, path: r.path, config: r.addon.config() } };
    return cached;
  }
  const tried = r.tried;
  cached = {
    gemm: null,
    status: {
      loaded: false,
      reason: `native GEMM add-on unavailable: ${tried.join("; ")}. Build it with 'npm run build:native' (needs libopenblas-dev).`,
    },
  };
  return cached;
}
