/**
 * UnsortedSegmentSum for the wasm backend: a scatter-add over typed-array views of the heap.
 *
 * It is the gradient of `gather`, i.e. of every embedding lookup. Stock wasm does not register it, and
 * tfjs's generic fallback goes through the cpu backend (~10 s per T5-small step); this costs milliseconds.
 * Semantics follow TensorFlow: ids outside [0, numSegments) are dropped, missing segments are zero.
 */
import * as tf from "@tensorflow/tfjs-core";
import { internals, viewOf } from "../wasm-internals";

export function unsortedSegmentSumImpl(
  backendAny: unknown,
  x: tf.TensorInfo,
  segmentIds: tf.TensorInfo,
  numSegments: number,
): tf.TensorInfo {
  const backend = internals(backendAny);
  if (x.dtype !== "float32" && x.dtype !== "int32") {
    throw new Error(`UnsortedSegmentSum on wasm: unsupported dtype ${x.dtype}`);
  }
  if (segmentIds.dtype !== "int32") throw new Error(`UnsortedSegmentSum: segmentIds must be int32, got ${segmentIds.dtype}`);
  const idsRank = segmentIds.shape.length;
  const prefix = x.shape.slice(0, idsRank);
  if (prefix.some((d, i) => d !== segmentIds.shape[i])) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`);
  }
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`UnsortedSegmentSum: numSegments must be a non-negative integer, got ${numSegments}`);
  }
  const inner = x.shape.slice(idsRank);
  const innerSize = inner.reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([numSegments, ...inner], x.dtype);
  const dst = viewOf(backend, out) as Float32Array | Int32Array;
  dst.fill(0); // heap memory from malloc is not zeroed
  const src = viewOf(backend, x) as Float32Array | Int32Array;
  const ids = viewOf(backend, segmentIds) as Int32Array;
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const from = i * innerSize;
    const to = s * innerSize;
    for (let j = 0; j < innerSize; j++) dst[to + j]! += src[from + j]!;
  }
  return out;
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
    const { numSegments } = attrs as unknown as { numSegments: number };
    return unsortedSegmentSumImpl(backend, x, segmentIds, numSegments);
  },
};
