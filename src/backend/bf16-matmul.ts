/**
 * bf16 matrix products on the native TensorFlow backend: the float32 inputs of every BatchMatMul (tf.matMul,
 * forward and backward) are rounded to bfloat16, multiplied by TensorFlow's CPU kernel (oneDNN, accumulating
 * in float32 with AVX512_BF16 / AMX instructions where the CPU has them), and the bf16 product comes back as
 * float32. Everything else stays float32: parameters and optimizer state (master weights), norms, softmax,
 * losses. This is what PyTorch's CPU autocast to bf16 does for matrix products (its outputs are bf16 too).
 *
 * tfjs has no bfloat16 dtype, so the bf16 tensors never become tfjs tensors: the kernel drives the binding
 * directly (Cast, BatchMatMulV2 with T = bfloat16, Cast back) and frees the intermediate handles itself.
 * Measured on an AMD EPYC (AVX512_BF16, 2 threads, tmp bench of this change): 1.7x-1.9x the float32 GFLOP/s on
 * [4096 x 256]·[256 x 768], [1024]^3 and the [2048 x 256]·[256 x 32128] LM head, casts included.
 *
 * Selected by setMatMulPrecision (initBackend's `precision` option, TAGI_PRECISION, a training config's
 * train.precision); where it cannot run (another backend, a CPU without bf16 instructions, a TensorFlow build
 * without the kernel) it says why and float32 stays in use.
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs-core";

export const PRECISIONS = ["fp32", "bf16"] as const;
export type Precision = (typeof PRECISIONS)[number];

export interface PrecisionStatus {
  requested: Precision;
  /** What matrix products run in now. */
  inUse: Precision;
  /** Why, in words (the fallback's cause when bf16 was requested and is not in use). */
  reason: string;
}

/** TF_DataType values of the C API (tensorflow/c/tf_datatype.h); the binding exports TF_FLOAT but not bf16. */
const TF_BFLOAT16 = 14;

interface TensorMetadata {
  id: number;
  shape: number[];
  dtype: number;
}
interface OpAttr {
  name: string;
  type: number;
  value: boolean | number;
}
/** The parts of tfjs-node's NodeJSKernelBackend this module uses. */
interface NodeBackend {
  binding: {
    TF_FLOAT: number;
    TF_ATTR_TYPE: number;
    TF_ATTR_BOOL: number;
    executeOp(name: string, attrs: OpAttr[], inputIds: number[], outputs: number): TensorMetadata[];
    deleteTensor(id: number): void;
    isUsingGpuDevice(): boolean;
  };
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(meta: TensorMetadata): tf.Tensor;
}

let stockKernel: tf.KernelConfig | null = null;
let status: PrecisionStatus = { requested: "fp32", inUse: "fp32", reason: "float32 matrix products (the default)" };

function cast(be: NodeBackend, id: number, from: number, to: number): TensorMetadata {
  const b = be.binding;
  const attrs = [
    { name: "SrcT", type: b.TF_ATTR_TYPE, value: from },
    { name: "DstT", type: b.TF_ATTR_TYPE, value: to },
    { name: "Truncate", type: b.TF_ATTR_BOOL, value: false }, // round to nearest even, as torch does
  ];
  return b.executeOp("Cast", attrs, [id], 1)[0]!;
}

/** a·b (with adjoints, broadcast batch dims) in bf16 with float32 in and out; frees every intermediate. */
function bf16BatchMatMul(be: NodeBackend, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): tf.Tensor {
  const bind = be.binding;
  const [aId, bId] = be.getInputTensorIds([a, b]) as [number, number];
  const temps: number[] = [];
  try {
    const a16 = cast(be, aId, bind.TF_FLOAT, TF_BFLOAT16);
    temps.push(a16.id);
    const b16 = aId === bId ? a16 : cast(be, bId, bind.TF_FLOAT, TF_BFLOAT16);
    if (b16 !== a16) temps.push(b16.id);
    const attrs = [
      { name: "T", type: bind.TF_ATTR_TYPE, value: TF_BFLOAT16 },
      { name: "adj_x", type: bind.TF_ATTR_BOOL, value: transposeA },
      { name: "adj_y", type: bind.TF_ATTR_BOOL, value: transposeB },
    ];
    const c16 = bind.executeOp("BatchMatMulV2", attrs, [a16.id, b16.id], 1)[0]!;
    temps.push(c16.id);
    return be.createOutputTensor(cast(be, c16.id, TF_BFLOAT16, bind.TF_FLOAT));
  } finally {
    for (const id of temps) bind.deleteTensor(id);
  }
}

const bf16Kernel: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: "tensorflow",
  kernelFunc: (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== "float32" || b.dtype !== "float32") return stockKernel!.kernelFunc(args); // int products stay exact
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    return bf16BatchMatMul(args.backend as unknown as NodeBackend, a, b, transposeA, transposeB);
  },
};

/** The CPU's bf16 instructions from /proc/cpuinfo (Linux), or null where that file cannot be read. */
export function cpuBf16Flags(cpuinfo?: string): string[] | null {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return null;
    }
  }
  const flags = new Set((/^flags\s*:(.*)$/m.exec(text)?.[1] ?? "").trim().split(/\s+/));
  return ["avx512_bf16", "amx_bf16"].filter((f) => flags.has(f));
}

/** Why bf16 products cannot run here, or null when they can (a 2 x 2 product is tried). */
function bf16Unavailable(): string | null {
  if (tf.getBackend() !== "tensorflow") return `bf16 matrix products need the tensorflow backend (TensorFlow's oneDNN kernels); this process runs '${tf.getBackend()}'`;
  const be = tf.backend() as unknown as NodeBackend;
  if (!be.binding.isUsingGpuDevice()) {
    const flags = cpuBf16Flags();
    if (flags !== null && flags.length === 0) return "this CPU has neither AVX512_BF16 nor AMX-BF16 (/proc/cpuinfo): bf16 products would be emulated, slower than float32";
  }
  try {
    tf.tidy(() => {
      const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
      const y = bf16BatchMatMul(be, x, x, false, true);
      const got = Array.from(y.dataSync());
      if (got.join() !== "5,11,11,25") throw new Error(`a 2 x 2 check product gave [${got.join(", ")}], expected [5, 11, 11, 25]`);
    });
  } catch (e) {
    return `TensorFlow's bf16 BatchMatMulV2 failed here: ${(e as Error).message.split("\n")[0]}`;
  }
  return null;
}

/**
 * Sets the precision of matrix products for the current backend; returns what is in use and why. bf16 where it
 * cannot run leaves float32 in use (the reason names the cause). Switching the backend afterwards keeps
 * float32 there: call again after initBackend.
 */
export function setMatMulPrecision(requested: Precision): PrecisionStatus {
  if (!(PRECISIONS as readonly string[]).includes(requested)) throw new Error(`unknown matmul precision '${String(requested)}'; valid: ${PRECISIONS.join(", ")}`);
  const installed = tf.getKernel(tf.BatchMatMul, "tensorflow");
  if (installed === bf16Kernel) {
    tf.unregisterKernel(tf.BatchMatMul, "tensorflow");
    tf.registerKernel(stockKernel!);
  }
  if (requested === "fp32") {
    status = { requested, inUse: "fp32", reason: "float32 matrix products" };
    return status;
  }
  const why = bf16Unavailable();
  if (why) {
    status = { requested, inUse: "fp32", reason: `${why}; float32 products are used` };
    return status;
  }
  stockKernel = tf.getKernel(tf.BatchMatMul, "tensorflow")!;
  tf.unregisterKernel(tf.BatchMatMul, "tensorflow");
  tf.registerKernel(bf16Kernel);
  const flags = cpuBf16Flags();
  const be = tf.backend() as unknown as NodeBackend;
  const hw = be.binding.isUsingGpuDevice() ? "the GPU" : flags?.length ? flags.join(", ") : "a CPU whose flags could not be read";
  status = { requested, inUse: "bf16", reason: `bf16 inputs and products, float32 accumulation; TensorFlow BatchMatMulV2 on ${hw}` };
  return status;
}

export function matMulPrecision(): PrecisionStatus {
  // A backend switch since the last call (the bf16 kernel is registered for 'tensorflow' only) leaves fp32.
  if (status.inUse === "bf16" && tf.getBackend() !== "tensorflow") return { ...status, inUse: "fp32", reason: `backend is '${tf.getBackend()}' now; float32 products` };
  return status;
}

/** TAGI_PRECISION (fp32 | bf16), checked; undefined when unset. */
export function envPrecision(): Precision | undefined {
  const v = process.env.TAGI_PRECISION;
  if (v === undefined || v === "") return undefined;
  if (!(PRECISIONS as readonly string[]).includes(v)) throw new Error(`TAGI_PRECISION=${v}: expected one of ${PRECISIONS.join(", ")}`);
  return v as Precision;
}
