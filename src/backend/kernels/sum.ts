/**
 * Sum over leading axes on wasm, as a row accumulation over a heap view.
 *
 * Every gradient of a broadcast (a bias, a norm scale: `[rows, d] * [d]`) ends in a sum over the leading
 * axes. Stock wasm first transposes the reduced axes to the end, then sums: 6-10 ms for a [1024,512]
 * input where the accumulation itself costs well under 1 ms. Other reductions go to the stock kernel.
 */
import * as tf from "@tensorflow/tfjs-core";
import { internals, viewOf } from "../wasm-internals";
import { runStock } from "./stock";

let stockSum: tf.KernelConfig | undefined;

export function rememberStockSum(config: tf.KernelConfig | undefined): void {
  stockSum ??= config;
}

/** The reduced axes, normalised and sorted; null when they are not exactly the leading ones [0..p). */
function leadingAxes(axis: number | number[], rank: number): number | null {
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  if (axes.length === 0 || axes.length === rank) return null;
  return axes.every((a, i) => a === i) ? axes.length : null;
}

export const sumConfig: tf.KernelConfig = {
  kernelName: tf.Sum,
  backendName: "wasm",
  kernelFunc: (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    if (x.dtype === "float32" && x.shape.some((d) => d === 0)) {
      // A sum over nothing is 0. The stock kernel leaves such an output unwritten, so it held whatever the
      // heap held there (seen as a wrong gradient of a batch-0 product); write the zeros here.
      const rank = x.shape.length;
      const axes = new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)));
      const outShape = x.shape.flatMap((d, i) => (axes.has(i) ? (keepDims ? [1] : []) : [d]));
      const backend = internals(args.backend);
      const out = backend.makeOutput(outShape, "float32");
      (viewOf(backend, out) as Float32Array).fill(0);
      return out;
    }
    const p = x.dtype === "float32" ? leadingAxes(axis, x.shape.length) : null;
    if (p === null) return runStock(stockSum, "Sum", args);
    const backend = internals(args.backend);
    const rows = x.shape.slice(0, p).reduce((a, b) => a * b, 1);
    const inner = x.shape.slice(p);
    const width = inner.reduce((a, b) => a * b, 1);
    const outShape = keepDims ? [...x.shape.slice(0, p).map(() => 1), ...inner] : inner;
    const out = backend.makeOutput(outShape, "float32");
    const src = viewOf(backend, x) as Float32Array;
    const dst = viewOf(backend, out) as Float32Array;
    // Accumulate in float64: long columns (thousands of rows) lose digits in float32.
    const acc = new Float64Array(width);
    for (let r = 0; r < rows; r++) {
      const base = r * width;
      for (let j = 0; j < width; j++) acc[j]! += src[base + j]!;
    }
    dst.set(acc);
    return out;
  },
};
