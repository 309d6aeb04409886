/**
 * T5 attention pieces: relative position buckets and bias, masks, and multi-head attention over
 * [batch, time, d_model] activations. Names follow Hugging Face's modeling_t5.py.
 */
import * as tf from "@tensorflow/tfjs-core";

/**
 * T5's relative position bucket of (key - query), as HF's `_relative_position_bucket`, computed in float32
 * steps (Math.fround) so bucket boundaries fall exactly where PyTorch's float32 arithmetic puts them.
 */
export function relativePositionBucket(relative: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  let buckets = 0;
  let n = numBuckets;
  let rp = relative;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rp > 0) buckets += n;
    rp = Math.abs(rp);
  } else {
    rp = -Math.min(rp, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (rp < maxExact) return buckets + rp;
  const f = Math.fround;
  const ratio = f(f(rp) / f(maxExact));
  const logRatio = f(Math.log(ratio));
  const scaled = f(f(logRatio / f(Math.log(maxDistance / maxExact))) * f(n - maxExact));
  const large = Math.min(maxExact + Math.trunc(scaled), n - 1);
  return buckets + large;
}

/** Bucket ids [queryLength, keyLength] for queries at positions queryOffset.. and keys at 0... */
export function relativePositionBuckets(
  queryLength: number,
  keyLength: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
  queryOffset = 0,
): Int32Array {
  const out = new Int32Array(queryLength * keyLength);
  for (let i = 0; i < queryLength; i++) {
    for (let j = 0; j < keyLength; j++) {
      out[i * keyLength + j] = relativePositionBucket(j - (i + queryOffset), bidirectional, numBuckets, maxDistance);
    }
  }
  return out;
}

/** The learned relative position bias [1, heads, queryLength, keyLength] from the table [buckets, heads]. */
export function positionBias(
  table: tf.Tensor,
  queryLength: number,
  keyLength: number,
  bidirectional: boolean,
  maxDistance: number,
  queryOffset = 0,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [numBuckets, heads] = table.shape as [number, number];
    const ids = tf.tensor2d(
      relativePositionBuckets(queryLength, keyLength, bidirectional, numBuckets, maxDistance, queryOffset),
      [queryLength, keyLength],
      "int32",
    );
    const bias = tf.gather(table, ids); // [q, k, heads]
    return tf.reshape(tf.transpose(bias, [2, 0, 1]), [1, heads, queryLength, keyLength]) as tf.Tensor4D;
  });
}

/**
 * Additive mask [batch, 1, 1|q, k]: 0 where attending is allowed, a large negative number elsewhere. HF uses
 * float32's minimum; any value that drives exp() to 0 gives the same softmax, and -1e9 keeps sums finite.
 */
export const MASKED = -1e9;

export function paddingMask(attentionMask: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, k] = attentionMask.shape;
    return tf.reshape(tf.mul(tf.sub(1, tf.cast(attentionMask, "float32")), MASKED), [b, 1, 1, k]) as tf.Tensor4D;
  });
}

/** Causal mask [1, 1, q, k] for queries at positions queryOffset.. over keys 0..k-1. */
export function causalMask(queryLength: number, keyLength: number, queryOffset = 0): tf.Tensor4D {
  const v = new Float32Array(queryLength * keyLength);
  for (let i = 0; i < queryLength; i++) for (let j = 0; j < keyLength; j++) if (j > i + queryOffset) v[i * keyLength + j] = MASKED;
  return tf.tensor4d(v, [1, 1, queryLength, keyLength]);
}

/** [B*T, H*dk] -> [B, H, T, dk] */
export function splitHeads(x: tf.Tensor, batch: number, time: number, heads: number, dk: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [batch, time, heads, dk]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/** [B, H, T, dk] -> [B*T, H*dk] */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor2D {
  const [b, h, t, dk] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b * t, h * dk]) as tf.Tensor2D;
}

/**
 * softmax(q k^T + bias) v — T5 does not scale scores by 1/sqrt(dk) (the scale is folded into its init).
 * q [B,H,Tq,dk], k/v [B,H,Tk,dk], bias broadcastable to [B,H,Tq,Tk].
 */
export function scaledDotProduct(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor,
  dropout: (x: tf.Tensor) => tf.Tensor,
): tf.Tensor4D {
  const [b, h, tq, dk] = q.shape;
  const tk = k.shape[2];
  const scores = tf.add(tf.reshape(tf.matMul(tf.reshape(q, [b * h, tq, dk]), tf.reshape(k, [b * h, tk, dk]), false, true), [b, h, tq, tk]), bias);
  const weights = dropout(tf.softmax(scores, -1));
  return tf.reshape(tf.matMul(tf.reshape(weights, [b * h, tq, tk]), tf.reshape(v, [b * h, tk, dk])), [b, h, tq, dk]) as tf.Tensor4D;
}
