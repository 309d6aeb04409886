/**
 * BatchMatMul and _FusedMatMul for the wasm backend, at the speed of the plain 2-D GEMM.
 *
 * Stock tfjs-backend-wasm 4.22 runs only `A[1,M,K]·B[1,K,N]` (no transposes, no batch) through XNNPACK;
 * every transposed or batched product — every matMul gradient and all of attention — falls to a scalar
 * triple loop (~1-3 GFLOP/s). Two fast paths replace it:
 *  1. native: OpenBLAS sgemm on the wasm heap (transposes and batch strides handled by BLAS), when the
 *     optional add-on is loaded;
 *  2. wasm: transposes materialised with the stock (C++) Transpose kernel, batch folded into rows when B is
 *     shared across the batch, otherwise the stock XNNPACK 2-D path per batch slice on aliases of the same
 *     heap buffers (no copies).
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  aliasTensor,
  heapF32,
  internals,
  releaseAlias,
  tensorData,
  type WasmBackendInternals,
} from "../wasm-internals";
import type { NativeGemm } from "../native-gemm";

type Cwrapped = (...args: unknown[]) => unknown;
const xnnMatMulFor = new WeakMap<object, Cwrapped>();

let nativeGemm: NativeGemm | null = null;

/** Route products through the native add-on (pass null to use the wasm path). */
export function setNativeGemm(gemm: NativeGemm | null): void {
  nativeGemm = gemm;
}

export function nativeGemmInUse(): boolean {
  return nativeGemm !== null;
}

function xnnMatMul(backend: WasmBackendInternals): Cwrapped {
  let f = xnnMatMulFor.get(backend);
  if (!f) {
    // Same C entry point as the stock kernel; called only with untransposed, unbatched operands, which
    // the C++ side routes to XNNPACK's fully-connected operator.
    f = backend.wasm.cwrap("BatchMatMul", null, [
      "number", "array", "number", "number", "array", "number", "number", "number", "number",
    ]);
    xnnMatMulFor.set(backend, f);
  }
  return f;
}

interface Plan {
  m: number;
  n: number;
  k: number;
  outShape: number[];
  /** For every output batch index, the batch index into A and into B (broadcasting resolved). */
  aBatch: number[];
  bBatch: number[];
}

/** Shapes and broadcasting, with the same error text as tfjs for mismatched inner dimensions. */
function plan(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): Plan {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new Error(`BatchMatMul: operands must have rank >= 2, got [${a.shape}] and [${b.shape}]`);
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (k !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and ` +
        `transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const batch = outer.reduce((x, y) => x * y, 1);
  const aBatch = new Array<number>(batch);
  const bBatch = new Array<number>(batch);
  const rank = outer.length;
  const index = new Array<number>(rank).fill(0);
  for (let i = 0; i < batch; i++) {
    aBatch[i] = broadcastIndex(index, outerA);
    bBatch[i] = broadcastIndex(index, outerB);
    for (let d = rank - 1; d >= 0; d--) {
      if (++index[d]! < outer[d]!) break;
      index[d] = 0;
    }
  }
  return { m, n, k, outShape: [...outer, m, n], aBatch, bBatch };
}

/** Flat batch index into an operand whose batch dims are right-aligned with the output's and may be 1. */
function broadcastIndex(outIndex: number[], shape: number[]): number {
  let flat = 0;
  const offset = outIndex.length - shape.length;
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d]!;
    flat = flat * size + (size === 1 ? 0 : outIndex[d + offset]!);
  }
  return flat;
}

/** If `batches[i] === i * stride` for all i, the constant stride (in batches); otherwise null. */
function uniformStride(batches: number[]): number | null {
  if (batches.length <= 1) return 0;
  const s = batches[1]! - batches[0]!;
  if (batches[0] !== 0 || (s !== 0 && s !== 1)) return null;
  for (let i = 0; i < batches.length; i++) if (batches[i] !== i * s) return null;
  return s;
}

export function batchMatMulImpl(
  backendAny: unknown,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): tf.TensorInfo {
  if (a.dtype !== "float32" || b.dtype !== "float32") {
    throw new Error(`BatchMatMul on wasm supports float32 only, got ${a.dtype} and ${b.dtype}`);
  }
  const backend = internals(backendAny);
  const p = plan(a, b, transposeA, transposeB);
  const out = backend.makeOutput(p.outShape, "float32");
  const batch = p.aBatch.length;
  if (batch === 0 || p.m === 0 || p.n === 0) return out;
  if (p.k === 0) {
    heapF32(backend).fill(0, tensorData(backend, out).memoryOffset / 4, tensorData(backend, out).memoryOffset / 4 + batch * p.m * p.n);
    return out;
  }
  if (nativeGemm) nativeProduct(nativeGemm, backend, a, b, out, p, transposeA, transposeB);
  else wasmProduct(backend, a, b, out, p, transposeA, transposeB);
  return out;
}

function nativeProduct(
  gemm: NativeGemm,
  backend: WasmBackendInternals,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  out: tf.TensorInfo,
  p: Plan,
  transposeA: boolean,
  transposeB: boolean,
): void {
  const heap = heapF32(backend);
  const aOff = tensorData(backend, a).memoryOffset / 4;
  const bOff = tensorData(backend, b).memoryOffset / 4;
  const cOff = tensorData(backend, out).memoryOffset / 4;
  const { m, n, k } = p;
  const batch = p.aBatch.length;
  const sa = uniformStride(p.aBatch);
  const sb = uniformStride(p.bBatch);
  const ta = transposeA ? 1 : 0;
  const tb = transposeB ? 1 : 0;
  if (sb === 0 && sa === 1 && !transposeA) {
    // B shared by every batch and A's rows contiguous: one GEMM with batch*M rows.
    gemm.sgemm(heap, 1, batch * m, n, k, 0, tb, aOff, 0, bOff, 0, cOff, 0);
  } else if (sa !== null && sb !== null) {
    gemm.sgemm(heap, batch, m, n, k, ta, tb, aOff, sa * m * k, bOff, sb * k * n, cOff, m * n);
  } else {
    for (let i = 0; i < batch; i++) {
      gemm.sgemm(heap, 1, m, n, k, ta, tb, aOff + p.aBatch[i]! * m * k, 0, bOff + p.bBatch[i]! * k * n, 0, cOff + i * m * n, 0);
    }
  }
}

/** Runs the stock Transpose kernel (C++) on a [batch, r, c] view: returns [batch, c, r]; caller disposes. */
function transposeLast2(backendAny: unknown, x: tf.TensorInfo, batch: number, r: number, c: number): tf.TensorInfo {
  const kernel = tf.getKernel("Transpose", "wasm");
  if (!kernel) throw new Error("tagi backend: wasm Transpose kernel not registered");
  const x3: tf.TensorInfo = { dataId: x.dataId, shape: [batch, r, c], dtype: x.dtype };
  return kernel.kernelFunc({ inputs: { x: x3 }, backend: backendAny as tf.KernelBackend, attrs: { perm: [0, 2, 1] } }) as tf.TensorInfo;
}

function wasmProduct(
  backend: WasmBackendInternals,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  out: tf.TensorInfo,
  p: Plan,
  transposeA: boolean,
  transposeB: boolean,
): void {
  const { m, n, k } = p;
  const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  // XNNPACK's fully-connected operator wants plain row-major A[M,K] and B[K,N]: materialise transposes.
  const aT = transposeA ? transposeLast2(backend, a, batchA, k, m) : null;
  const bT = transposeB ? transposeLast2(backend, b, batchB, n, k) : null;
  try {
    const aOff = tensorData(backend, aT ?? a).memoryOffset;
    const bOff = tensorData(backend, bT ?? b).memoryOffset;
    const cOff = tensorData(backend, out).memoryOffset;
    const call = xnnMatMul(backend);
    const batch = p.aBatch.length;
    const run = (aByte: number, rows: number, bByte: number, cByte: number) => {
      const aId = aliasTensor(backend, aByte, rows * k);
      const bId = aliasTensor(backend, bByte, k * n);
      const cId = aliasTensor(backend, cByte, rows * n);
      try {
        call(aId, shapeBytes([1, rows, k]), 3, bId, shapeBytes([1, k, n]), 3, false, false, cId);
      } finally {
        releaseAlias(backend, aId);
        releaseAlias(backend, bId);
        releaseAlias(backend, cId);
      }
    };
    if (uniformStride(p.bBatch) === 0 && uniformStride(p.aBatch) === 1) {
      run(aOff, batch * m, bOff, cOff); // B shared: fold the batch into rows
    } else {
      for (let i = 0; i < batch; i++) {
        run(aOff + 4 * p.aBatch[i]! * m * k, m, bOff + 4 * p.bBatch[i]! * k * n, cOff + 4 * i * m * n);
      }
    }
  } finally {
    if (aT) backend.disposeData(aT.dataId);
    if (bT) backend.disposeData(bT.dataId);
  }
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    return batchMatMulImpl(backend, a, b, transposeA, transposeB);
  },
};

/** Activation kernels that _FusedMatMul may apply after the product (tfjs's fused activations). */
function applyActivation(
  backend: unknown,
  x: tf.TensorInfo,
  activation: string,
  alpha: tf.TensorInfo | undefined,
  leakyreluAlpha: number,
): tf.TensorInfo | null {
  const run = (name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}) => {
    const kernel = tf.getKernel(name, "wasm");
    if (!kernel) throw new Error(`tagi backend: wasm kernel ${name} not registered (needed by _FusedMatMul)`);
    return kernel.kernelFunc({ inputs, backend: backend as tf.KernelBackend, attrs }) as tf.TensorInfo;
  };
  switch (activation) {
    case "linear":
      return null;
    case "relu":
      return run("Relu", { x });
    case "relu6":
      return run("Relu6", { x });
    case "elu":
      return run("Elu", { x });
    case "sigmoid":
      return run("Sigmoid", { x });
    case "leakyrelu":
      return run("LeakyRelu", { x }, { alpha: leakyreluAlpha });
    case "prelu":
      if (!alpha) throw new Error("_FusedMatMul: prelu activation needs preluActivationWeights");
      return run("Prelu", { x, alpha });
    default:
      throw new Error(`_FusedMatMul: unknown activation '${activation}'`);
  }
}

export const fusedMatMulConfig: tf.KernelConfig = {
  kernelName: tf._FusedMatMul,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { a, b, bias, preluActivationWeights } = inputs as Record<string, tf.TensorInfo | undefined>;
    const { transposeA, transposeB, activation, leakyreluAlpha } = attrs as unknown as {
      transposeA: boolean;
      transposeB: boolean;
      activation: string;
      leakyreluAlpha?: number;
    };
    const w = internals(backend);
    let out = batchMatMulImpl(backend, a!, b!, transposeA, transposeB);
    if (bias) {
      const add = tf.getKernel(tf.Add, "wasm")!;
      const withBias = add.kernelFunc({ inputs: { a: out, b: bias }, backend: backend as tf.KernelBackend, attrs: {} }) as tf.TensorInfo;
      w.disposeData(out.dataId);
      out = withBias;
    }
    const activated = applyActivation(backend, out, activation ?? "linear", preluActivationWeights, leakyreluAlpha ?? 0.2);
    if (activated) {
      w.disposeData(out.dataId);
      out = activated;
    }
    return out;
  },
};
