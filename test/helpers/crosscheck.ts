/**
 * Test helpers: a seeded random source and a wasm-versus-cpu cross-check.
 *
 * Relative error, as used everywhere in the backend tests:
 *     relError(x, y) = max_i |x_i - y_i| / max(1, max_i |y_i|)
 * with y the reference (tfjs's pure-JS cpu backend). Non-finite values must match exactly (NaN with NaN,
 * +Inf with +Inf); any other NaN makes the error Infinity.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";

/** Deterministic random numbers (mulberry32), so a failure reproduces. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[Math.floor(this.next() * xs.length)];
    if (x === undefined) throw new Error("Rng.pick: empty list");
    return x;
  }
  bool(pTrue = 0.5): boolean {
    return this.next() < pTrue;
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  normals(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = scale * this.normal();
    return out;
  }
  ints(n: number, lo: number, hi: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(lo, hi);
    return out;
  }
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** max|x - y| / max(1, max|y|); Infinity when lengths differ or a non-finite value does not match. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const x = actual[i]!;
    const y = expected[i]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y))) continue;
      return Infinity;
    }
    maxDiff = Math.max(maxDiff, Math.abs(x - y));
    maxRef = Math.max(maxRef, Math.abs(y));
  }
  return maxDiff / Math.max(1, maxRef);
}

export interface Readout {
  dtype: tf.DataType;
  shape: number[];
  values: number[];
}

/** Runs `fn` in a tidy scope, reads every output synchronously and disposes them. */
export function readAll(fn: () => tf.Tensor[]): Readout[] {
  const outs = tf.tidy(fn);
  try {
    return outs.map((t) => ({ dtype: t.dtype, shape: [...t.shape], values: Array.from(t.dataSync() as ArrayLike<number>) }));
  } finally {
    tf.dispose(outs);
  }
}

/** Runs `fn` on another backend and always switches back to the one that was current. */
export async function onBackend<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  if (!(await tf.setBackend(name))) throw new Error(`could not switch to backend ${name}`);
  try {
    return await fn();
  } finally {
    if (!(await tf.setBackend(previous))) throw new Error(`could not switch back to backend ${previous}`);
  }
}

export interface CrossCheckOptions {
  /** Largest allowed relError (default 1e-4). */
  tol?: number;
  /** For messages. */
  label?: string;
  /** Kernel names that must have run (via the engine) during the wasm computation. */
  kernels?: string[];
  /** Accept a dtype difference for these output indices (a documented quirk of the reference). */
  dtypeMayDiffer?: number[];
}

/**
 * Computes `fn` on the current backend (must be wasm), then on cpu from the same arrays, and compares every
 * output: shapes and dtypes equal, relError <= tol. `fn` must create its inputs from captured arrays.
 * Returns the wasm readouts and the largest error seen.
 */
export async function crossCheck(fn: () => tf.Tensor[], options: CrossCheckOptions = {}): Promise<{ wasm: Readout[]; maxErr: number }> {
  const { tol = 1e-4, label = "case", kernels = [], dtypeMayDiffer = [] } = options;
  assert.equal(tf.getBackend(), "wasm", `${label}: cross-checks start on wasm`);
  const wasm = readAll(fn);
  if (kernels.length > 0) {
    // A second, profiled run lists the kernels the engine dispatched. (Run after the plain one: a kernel
    // that throws while profiling on wasm surfaces as an unhandled rejection, not as this test's error.)
    const profile = await tf.profile(() => {
      readAll(fn);
    });
    for (const k of kernels) {
      assert.ok(profile.kernelNames.includes(k), `${label}: kernel ${k} did not run on wasm (ran: ${profile.kernelNames.join(", ")})`);
    }
  }
  const cpu = await onBackend("cpu", () => readAll(fn));
  assert.equal(wasm.length, cpu.length, `${label}: number of outputs`);
  let maxErr = 0;
  for (let i = 0; i < cpu.length; i++) {
    const w = wasm[i]!;
    const c = cpu[i]!;
    assert.deepEqual(w.shape, c.shape, `${label}: output ${i} shape`);
    if (!dtypeMayDiffer.includes(i)) assert.equal(w.dtype, c.dtype, `${label}: output ${i} dtype`);
    const err = relError(w.values, c.values);
    assert.ok(err <= tol, `${label}: output ${i} [${c.shape}] relative error ${err} > ${tol}`);
    maxErr = Math.max(maxErr, err);
  }
  return { wasm, maxErr };
}
