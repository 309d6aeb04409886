/**
 * Slice for the wasm backend without copying the input out of the heap.
 *
 * The stock kernel starts with `readSync(x)`, a copy of the whole input, for every slice, and loops per
 * element above rank 4 (47 ms where 0.3 ms is possible on attention-shaped tensors). This one reads a view of
 * the heap and copies contiguous runs: trailing dimensions taken whole are merged into one run, so a slice
 * costs what it outputs.
 */
import * as tf from "@tensorflow/tfjs-core";
import { internals, viewOf } from "../wasm-internals";
import { runStock } from "./stock";

let stockSlice: tf.KernelConfig | undefined;

/** The original kernel, for string tensors (which do not live on the heap). */
export function rememberStockSlice(config: tf.KernelConfig | undefined): void {
  stockSlice ??= config;
}

export function sliceImpl(backendAny: unknown, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const backend = internals(backendAny);
  const out = backend.makeOutput(size, x.dtype);
  const total = size.reduce((a, b) => a * b, 1);
  if (total === 0) return out;
  // Views after makeOutput: allocation may have grown the heap.
  const src = viewOf(backend, x);
  const dst = viewOf(backend, out);
  copyBox(src, x.shape, begin, size, dst);
  return out;
}

/** Copies the box `begin..begin+size` of a row-major array of `shape` into `dst`. */
export function copyBox(
  src: { subarray(a: number, b: number): ArrayLike<number> },
  shape: number[],
  begin: number[],
  size: number[],
  dst: { set(a: ArrayLike<number>, offset: number): void },
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst.set(src.subarray(0, 1), 0);
    return;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1]! * shape[d + 1]!;
  // Merge trailing dims taken whole into the contiguous run; `lead` is the first dim of the run.
  let lead = rank - 1;
  while (lead > 0 && size[lead] === shape[lead] && begin[lead] === 0) lead--;
  const run = size.slice(lead).reduce((a, b) => a * b, 1);
  const outer = size.slice(0, lead);
  const index = new Array<number>(lead).fill(0);
  const outerCount = outer.reduce((a, b) => a * b, 1);
  let base = 0;
  for (let d = 0; d < rank; d++) base += begin[d]! * strides[d]!;
  let dstOffset = 0;
  for (let i = 0; i < outerCount; i++) {
    let offset = base;
    for (let d = 0; d < lead; d++) offset += index[d]! * strides[d]!;
    dst.set(src.subarray(offset, offset + run), dstOffset);
    dstOffset += run;
    for (let d = lead - 1; d >= 0; d--) {
      if (++index[d]! < outer[d]!) break;
      index[d] = 0;
    }
  }
}

export const sliceConfig: tf.KernelConfig = {
  kernelName: tf.Slice,
  backendName: "wasm",
  kernelFunc: (args) => {
    const { inputs, backend, attrs } = args;
    const { x } = inputs as { x: tf.TensorInfo };
    if (x.dtype === "string") {
      return runStock(stockSlice, "Slice", args);
    }
    const { begin, size } = attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, size) as [number[], number[]];
    tf.slice_util.assertParamsValid(x, begin_, size_);
    return sliceImpl(backend, x, begin_, size_);
  },
};
