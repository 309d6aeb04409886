/**
 * The fused L_ce + cached L_kl ops (native/src/ce-kl.c, src/backend/fused-ce-kl.ts) against the composed forms
 * (`composedCrossEntropyLoss`, `cachedDistillationKl`) run on tfjs's cpu backend from the same arrays: values
 * and gradients of a·L_ce + b·L_kl (both coefficients, either one zero, L_ce alone) within 1e-4, on odd
 * shapes, T5's 32,128-token vocabulary, -100 labels, the cache's padded positions and a clamped remainder;
 * bad labels and ids are refused with a message; no tfjs tensor or TensorFlow handle leaks.
 *
 * The ops run on the tensorflow backend only: elsewhere the tests are skipped with the reason, and on the
 * tensorflow backend an add-on that did not build fails them (unless TAGI_FUSED_LOSS=0 asked for it off).
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { fusedCeKl, fusedLossStatus, type CachedTopK } from "../src/backend/fused-ce-kl";
import { composedCrossEntropyLoss, crossEntropyLoss } from "../src/model/t5";
import { cachedDistillationKl, ceAndCachedKl } from "../src/tagi/teacher-logit-cache";
import { onBackend, relError, Rng } from "./helpers/crosscheck";

interface Case {
  b: number;
  t: number;
  v: number;
  k: number;
  temperature: number;
  /** coefficients of L_ce and L_kl in the differentiated sum; kl null: L_ce alone (no cache) */
  ce: number;
  kl: number | null;
  squared?: boolean;
  /** +30 on each position's first cached id: the student's q_rest is ~1e-10, below float32's resolution of 1 */
  peaked?: boolean;
  /** ill-conditioned for the composed form (q_rest = 1 - sum q_i cancels): checked against float64 only */
  float64Only?: boolean;
}

interface Arrays {
  z: Float32Array;
  labels: Int32Array;
  ids: Int32Array;
  logp: Float32Array;
  logRest: Float32Array;
}

/** Logits, labels (some -100), and a teacher top-k with the cache's padding (ids 0, log-mass -1e9) on one position. */
function arrays(c: Case, seed: number): Arrays {
  const rng = new Rng(seed);
  const n = c.b * c.t;
  const z = Float32Array.from({ length: n * c.v }, () => rng.normal() * 3);
  const labels = Int32Array.from({ length: n }, (_, i) => (i % 3 === 1 ? -100 : Math.floor(rng.next() * c.v)));
  const ids = new Int32Array(n * c.k);
  const logp = new Float32Array(n * c.k);
  const logRest = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    // k distinct ids (a partial Fisher-Yates shuffle) with a random distribution over k + 1 slots (the last
    // is the remainder)
    const perm = Array.from({ length: c.v }, (_, j) => j);
    for (let i = 0; i < c.k; i++) {
      const j = rng.int(i, c.v - 1);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    const w = Array.from({ length: c.k + 1 }, () => rng.next() + 0.05);
    if (c.k === c.v) w[c.k] = 1e-6;
    const s = w.reduce((a, x) => a + x, 0);
    for (let i = 0; i < c.k; i++) {
      ids[r * c.k + i] = perm[i]!;
      logp[r * c.k + i] = Math.log(w[i]! / s);
    }
    if (c.peaked) z[r * c.v + perm[0]!]! += 30;
    logRest[r] = Math.log(w[c.k]! / s);
  }
  const pad = n > 2 ? 2 : -1; // TeacherLogitCache.batch pads a position it has no entry for like this
  if (pad >= 0) {
    ids.fill(0, pad * c.k, (pad + 1) * c.k);
    logp.fill(-1e9, pad * c.k, (pad + 1) * c.k);
    logRest[pad] = -1e9;
  }
  return { z, labels, ids, logp, logRest };
}

function tensors(c: Case, a: Arrays): { z: tf.Tensor3D; labels: tf.Tensor2D; cached: CachedTopK } {
  return {
    z: tf.tensor3d(a.z, [c.b, c.t, c.v]),
    labels: tf.tensor2d(a.labels, [c.b, c.t], "int32"),
    cached: { ids: tf.tensor3d(a.ids, [c.b, c.t, c.k], "int32"), logp: tf.tensor3d(a.logp, [c.b, c.t, c.k]), logRest: tf.tensor2d(a.logRest, [c.b, c.t]) },
  };
}

/** [L_ce, L_kl, d(ce·L_ce + kl·L_kl)/dz...] from `losses` on the current backend. */
function evaluate(c: Case, a: Arrays, losses: (z: tf.Tensor3D, labels: tf.Tensor2D, cached: CachedTopK | null) => { ce: tf.Scalar; kl: tf.Scalar | null }): [number[], number[]] {
  return tf.tidy(() => {
    const { z, labels, cached } = tensors(c, a);
    const total = (x: tf.Tensor) => {
      const l = losses(x as tf.Tensor3D, labels, c.kl === null ? null : cached);
      return c.kl === null ? tf.mul(l.ce, c.ce) : tf.add(tf.mul(l.ce, c.ce), tf.mul(l.kl!, c.kl));
    };
    const { value, grad } = tf.valueAndGrad(total)(z);
    const l = losses(z, labels, c.kl === null ? null : cached);
    return [[l.ce.dataSync()[0]!, l.kl ? l.kl.dataSync()[0]! : 0, value.dataSync()[0]!], Array.from(grad.dataSync())];
  });
}

/**
 * The losses in float64 (q_rest summed over the ids outside the top-k, as the definition reads), and the
 * gradient of ce·L_ce + kl·L_kl by central differences: an evaluation independent of both implementations.
 */
function float64Reference(c: Case, a: Arrays): [number[], number[]] {
  const n = c.b * c.t;
  const scale = c.squared === false ? 1 : c.temperature * c.temperature;
  const losses = (z: Float64Array): [number, number] => {
    let ce = 0;
    let kl = 0;
    let count = 0;
    for (let r = 0; r < n; r++) {
      if (a.labels[r] === -100) continue;
      count++;
      const row = z.subarray(r * c.v, (r + 1) * c.v);
      const m = Math.max(...row);
      let s1 = 0;
      for (const x of row) s1 += Math.exp(x - m);
      ce += m + Math.log(s1) - row[a.labels[r]!]!;
      if (c.kl === null || c.k === 0) continue;
      const s = Array.from(row, (x) => x / c.temperature);
      const ms = Math.max(...s);
      let s2 = 0;
      for (const x of s) s2 += Math.exp(x - ms);
      const lse2 = ms + Math.log(s2);
      const top = new Set(Array.from(a.ids.subarray(r * c.k, (r + 1) * c.k)));
      let rest = 0;
      for (let j = 0; j < c.v; j++) if (!top.has(j)) rest += Math.exp(s[j]! - lse2);
      for (let i = 0; i < c.k; i++) {
        const lp = a.logp[r * c.k + i]!;
        kl += Math.exp(lp) * (lp - (s[a.ids[r * c.k + i]!]! - lse2));
      }
      const lr = a.logRest[r]!;
      kl += Math.exp(lr) * (lr - Math.log(Math.max(rest, 1e-30)));
    }
    count = Math.max(count, 1);
    return [ce / count, (kl / count) * scale];
  };
  const z = Float64Array.from(a.z);
  const [ce, kl] = losses(z);
  const total = (x: Float64Array) => {
    const [l1, l2] = losses(x);
    return c.ce * l1 + (c.kl ?? 0) * l2;
  };
  const h = 1e-5;
  const grad = Array.from(z, (_, i) => {
    const x0 = z[i]!;
    z[i] = x0 + h;
    const up = total(z);
    z[i] = x0 - h;
    const down = total(z);
    z[i] = x0;
    return (up - down) / (2 * h);
  });
  return [[ce, c.kl === null ? 0 : kl, total(z)], grad];
}

function assertClose(label: string, [[ce, kl, total], grad]: [number[], number[]], [[ceRef, klRef, totalRef], gradRef]: [number[], number[]]) {
  for (const [name, x, y] of [["L_ce", ce, ceRef], ["L_kl", kl, klRef], ["total", total, totalRef]] as const) {
    assert.ok(Math.abs(x! - y!) <= 1e-4 * Math.max(1, Math.abs(y!)), `${label}, ${name}: fused ${x} vs ${y}`);
  }
  const err = relError(grad, gradRef);
  assert.ok(err <= 1e-4, `${label}: gradients differ by ${err}`);
}

const composed = (c: Case) => (z: tf.Tensor3D, labels: tf.Tensor2D, cached: CachedTopK | null) => ({
  ce: composedCrossEntropyLoss(z, labels),
  kl: cached ? cachedDistillationKl(z, cached, labels, { temperature: c.temperature, scaleByTemperatureSquared: c.squared ?? true }) : null,
});
const fused = (c: Case) => (z: tf.Tensor3D, labels: tf.Tensor2D, cached: CachedTopK | null) =>
  fusedCeKl(z, labels, cached, { temperature: c.temperature, scaleByTemperatureSquared: c.squared ?? true });

interface Binding {
  getNumOfTensors(): number;
}

describe("fused L_ce + cached L_kl (TensorFlow custom ops)", function () {
  this.timeout(300_000);
  let on = false;

  before(async function () {
    await initBackend({ log: false });
    on = fusedLossStatus().inUse;
    if (tf.getBackend() === "tensorflow" && !on && process.env.TAGI_FUSED_LOSS !== "0") {
      assert.fail(`the tensorflow backend runs but the fused ops are off: ${fusedLossStatus().reason}`);
    }
  });
  beforeEach(function () {
    if (!on) this.skip(); // not the tensorflow backend (the reason: fusedLossStatus().reason)
  });

  const cases: Case[] = [
    { b: 2, t: 3, v: 40, k: 4, temperature: 2, ce: 1, kl: 1 },
    { b: 2, t: 3, v: 40, k: 4, temperature: 2, ce: 0.7, kl: 1.3, squared: false },
    { b: 1, t: 1, v: 7, k: 1, temperature: 1, ce: 1, kl: 1 },
    { b: 3, t: 5, v: 129, k: 7, temperature: 0.7, ce: 1, kl: 2 },
    { b: 2, t: 4, v: 33, k: 33, temperature: 2.5, ce: 1, kl: 1, float64Only: true }, // q_rest is exactly 0: clamped
    { b: 2, t: 3, v: 40, k: 1, temperature: 1, ce: 1, kl: 1, peaked: true, float64Only: true },
    { b: 2, t: 3, v: 57, k: 5, temperature: 2, ce: 0, kl: 1 }, // w/o L_ce: the CE slot's gradient is 0
    { b: 2, t: 3, v: 57, k: 5, temperature: 2, ce: 1, kl: 0 }, // w/o L_kl
    { b: 3, t: 2, v: 61, k: 0, temperature: 1, ce: 1, kl: null }, // L_ce alone (crossEntropyLoss)
    { b: 2, t: 3, v: 32128, k: 64, temperature: 2, ce: 1, kl: 1 }, // T5's vocabulary, the campaign's k
  ];
  for (const [i, c] of cases.entries()) {
    const against = c.float64Only ? "float64" : c.b * c.t * c.v <= 5000 ? "the composed losses on the cpu backend and float64" : "the composed losses on the cpu backend";
    it(`equals ${against}: [${c.b},${c.t},${c.v}], k=${c.k}, T=${c.temperature}, ${c.ce}·L_ce + ${c.kl ?? "no"}·L_kl${c.peaked ? ", q_rest ~1e-10" : ""}${c.squared === false ? ", no T²" : ""}`, async () => {
      const a = arrays(c, 100 + i);
      const ours = evaluate(c, a, fused(c));
      assert.ok(ours[1]!.every(Number.isFinite), "finite gradient");
      if (!c.float64Only) assertClose("vs composed", ours, await onBackend("cpu", () => evaluate(c, a, composed(c))));
      if (c.b * c.t * c.v <= 5000) assertClose("vs float64", ours, float64Reference(c, a));
    });
  }

  it("crossEntropyLoss and ceAndCachedKl dispatch to the fused ops here", async () => {
    const c: Case = { b: 2, t: 3, v: 40, k: 4, temperature: 2, ce: 1, kl: 1 };
    const a = arrays(c, 7);
    const profile = await tf.profile(() => {
      tf.tidy(() => {
        const { z, labels, cached } = tensors(c, a);
        const both = ceAndCachedKl(z, cached, labels, { temperature: 2 });
        tf.stack([crossEntropyLoss(z, labels), both.ce, both.kl]).dataSync();
      });
    });
    // The custom ops are not tfjs kernels: a dispatch to the composed form would show its log-softmax.
    assert.ok(!profile.kernelNames.includes("LogSoftmax") && !profile.kernelNames.includes("Softmax"), `composed kernels ran: ${profile.kernelNames.join(", ")}`);
  });

  it("refuses a label outside the vocabulary and a cached id outside it, naming the input", () => {
    const c: Case = { b: 1, t: 2, v: 10, k: 2, temperature: 2, ce: 1, kl: 1 };
    const a = arrays(c, 3);
    const bad = (patch: (x: Arrays) => void) => {
      const x: Arrays = { z: a.z, labels: a.labels.slice(), ids: a.ids.slice(), logp: a.logp, logRest: a.logRest };
      patch(x);
      return () => tf.tidy(() => {
        const { z, labels, cached } = tensors(c, x);
        fusedCeKl(z, labels, cached, { temperature: 2 }).ce.dataSync();
      });
    };
    assert.throws(bad((x) => (x.labels[0] = 10)), /label is outside \[0, vocabulary size\) and not -100/);
    assert.throws(bad((x) => (x.labels[0] = -1)), /label is outside/);
    assert.throws(bad((x) => (x.ids[1] = 12)), /cached teacher id is outside/);
    assert.throws(() => fusedCeKl(tf.zeros([1, 2, 10]) as tf.Tensor3D, tf.zeros([1, 2], "int32") as tf.Tensor2D, null, { temperature: 0 }), /temperature must be > 0/);
  });

  it("leaves no tfjs tensor and no TensorFlow handle behind over repeated steps (gradient outside tidy)", () => {
    const c: Case = { b: 2, t: 5, v: 300, k: 8, temperature: 2, ce: 1, kl: 1 };
    const { z, labels, cached } = tensors(c, arrays(c, 11));
    const binding = (tf.backend() as unknown as { binding: Binding }).binding;
    const step = () => {
      const g = tf.grad((x) => {
        const l = ceAndCachedKl(x as tf.Tensor3D, cached, labels, { temperature: 2 });
        return tf.add(l.ce, l.kl);
      })(z);
      g.dispose();
    };
    step(); // warm-up: first-use allocations
    const before = { tfjs: tf.memory().numTensors, tf: binding.getNumOfTensors() };
    for (let i = 0; i < 20; i++) step();
    assert.deepEqual({ tfjs: tf.memory().numTensors, tf: binding.getNumOfTensors() }, before);
    tf.dispose([z, labels, cached.ids, cached.logp, cached.logRest]);
  });
});
