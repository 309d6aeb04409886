/**
 * A T5-shaped encoder block stack (RMS norm, multi-head self-attention, gated-GELU FFN, residuals) written
 * with plain tfjs ops, for measuring forward + backward speed. Not the model (that lives in src/model/):
 * a fixed workload whose matMul FLOPs are known exactly.
 */
import * as tf from "@tensorflow/tfjs-core";
import { BATCH, D_FF, D_MODEL, HEADS, SEQ } from "./shapes";

export type BlockParams = tf.Tensor[]; // per layer: ln1, q, k, v, o, ln2, wi0, wi1, wo

export function makeParams(layers: number, seed = 1): BlockParams {
  const params: tf.Tensor[] = [];
  for (let l = 0; l < layers; l++) {
    const s = seed * 100 + l * 10;
    params.push(tf.ones([D_MODEL]));
    for (let i = 0; i < 4; i++) params.push(tf.randomNormal([D_MODEL, D_MODEL], 0, D_MODEL ** -0.5, "float32", s + i));
    params.push(tf.ones([D_MODEL]));
    params.push(tf.randomNormal([D_MODEL, D_FF], 0, D_MODEL ** -0.5, "float32", s + 5));
    params.push(tf.randomNormal([D_MODEL, D_FF], 0, D_MODEL ** -0.5, "float32", s + 6));
    params.push(tf.randomNormal([D_FF, D_MODEL], 0, D_FF ** -0.5, "float32", s + 7));
  }
  return params;
}

function rmsNorm(x: tf.Tensor2D, w: tf.Tensor): tf.Tensor2D {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, 1e-6))), w) as tf.Tensor2D;
}

/** gelu_new (tanh form) through sigmoid: 0.5(1+tanh z) = sigmoid(2z); tanh and pow are slow on wasm. */
function gelu(x: tf.Tensor): tf.Tensor {
  const cube = tf.mul(x, tf.square(x));
  const inner = tf.mul(tf.add(x, tf.mul(0.044715, cube)), 2 * Math.sqrt(2 / Math.PI));
  return tf.mul(x, tf.sigmoid(inner));
}

function heads(x: tf.Tensor2D): tf.Tensor3D {
  const dk = D_MODEL / HEADS;
  return tf.reshape(tf.transpose(tf.reshape(x, [BATCH, SEQ, HEADS, dk]), [0, 2, 1, 3]), [BATCH * HEADS, SEQ, dk]);
}

function block(x: tf.Tensor2D, p: tf.Tensor[]): tf.Tensor2D {
  const [ln1, wq, wk, wv, wo, ln2, wi0, wi1, wout] = p as [tf.Tensor, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const h = rmsNorm(x, ln1);
  const q = heads(tf.matMul(h, wq));
  const k = heads(tf.matMul(h, wk));
  const v = heads(tf.matMul(h, wv));
  const scores = tf.matMul(q, k, false, true); // T5 does not scale by 1/sqrt(dk)
  const ctx = tf.matMul(tf.softmax(scores), v);
  const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [BATCH, HEADS, SEQ, D_MODEL / HEADS]), [0, 2, 1, 3]), [BATCH * SEQ, D_MODEL]);
  const x1 = tf.add(x, tf.matMul(merged, wo)) as tf.Tensor2D;
  const h2 = rmsNorm(x1, ln2);
  const ff = tf.matMul(tf.mul(gelu(tf.matMul(h2, wi0)), tf.matMul(h2, wi1)) as tf.Tensor2D, wout);
  return tf.add(x1, ff) as tf.Tensor2D;
}

/** One forward + backward over the stack; returns the loss value (gradients are computed and freed). */
export function step(x: tf.Tensor2D, params: BlockParams): number {
  const layers = params.length / 9;
  return tf.tidy(() => {
    const f = (...ps: tf.Tensor[]) => {
      let h = x;
      for (let l = 0; l < layers; l++) h = block(h, ps.slice(l * 9, l * 9 + 9));
      return tf.mean(tf.square(h));
    };
    const { value, grads } = tf.valueAndGrads(f)(params);
    // Reading one value from each gradient forces the whole backward pass to have run.
    let check = value.dataSync()[0]!;
    for (const g of grads) check += g.dataSync()[0]! * 0;
    return check;
  });
}
