/**
 * A BatchMatMul gradient that handles broadcast batch dimensions.
 *
 * tfjs 4.22's gradient returns d(a) and d(b) with the *output's* batch shape, so any product whose batch
 * dims broadcast — the everyday `[B,T,D]·[D,F]` of a linear layer — fails in the backward pass on every
 * backend. This one sums each gradient back to its input's shape, and for the common linear-layer case
 * computes the weight gradient as one 2-D product over all B*T rows instead of B products and a sum.
 */
import * as tf from "@tensorflow/tfjs-core";

/** Sums `x` over the leading and size-1-broadcast dims so that it has `shape`. */
function sumToShape(x: tf.Tensor, shape: number[]): tf.Tensor {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && x.shape[i] !== 1) axes.push(i);
  }
  return tf.reshape(axes.length ? tf.sum(x, axes) : x, shape);
}

export const batchMatMulGradConfig: tf.GradConfig = {
  kernelName: tf.BatchMatMul,
  inputsToSave: ["a", "b"],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs?: tf.NamedAttrMap) => {
    const g = dy as tf.Tensor;
    const [a, b] = saved as [tf.Tensor, tf.Tensor];
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (b.rank === 2 && a.rank > 2 && !transposeA) {
      // Linear layer: all batch rows share B. d(b) is one GEMM over the flattened rows.
      const k = a.shape[a.rank - 1]!;
      const n = g.shape[g.rank - 1]!;
      const rows = a.shape.slice(0, -1).reduce((x, y) => x * y, 1); // not -1: tfjs cannot infer it for 0 rows
      return {
        a: () => tf.matMul(g, b, false, !transposeB),
        b: () => {
          const a2 = tf.reshape(a, [rows, k]) as tf.Tensor2D;
          const g2 = tf.reshape(g, [rows, n]) as tf.Tensor2D;
          return transposeB ? tf.matMul(g2, a2, true, false) : tf.matMul(a2, g2, true, false);
        },
      };
    }
    let da: () => tf.Tensor;
    let db: () => tf.Tensor;
    if (!transposeA && !transposeB) {
      da = () => tf.matMul(g, b, false, true);
      db = () => tf.matMul(a, g, true, false);
    } else if (!transposeA && transposeB) {
      da = () => tf.matMul(g, b, false, false);
      db = () => tf.matMul(g, a, true, false);
    } else if (transposeA && !transposeB) {
      da = () => tf.matMul(b, g, false, true);
      db = () => tf.matMul(a, g, false, false);
    } else {
      da = () => tf.matMul(b, g, true, true);
      db = () => tf.matMul(g, a, true, true);
    }
    return { a: () => sumToShape(da(), a.shape), b: () => sumToShape(db(), b.shape) };
  },
};

/**
 * Replaces tfjs's BatchMatMul gradient (for every backend). Idempotent, and safe to call again: another copy
 * of the tfjs bundle loaded later (danfojs-node brings one) re-registers the stock gradient over this one,
 * so initBackend and the report module call it after such imports.
 */
export function registerGradientFixes(): void {
  if (tf.getGradient(tf.BatchMatMul) !== batchMatMulGradConfig) tf.registerGradient(batchMatMulGradConfig);
}
