/**
 * Transpose with the identity permutation shares its input on wasm instead of copying it.
 *
 * tfjs's gather gradient (every embedding lookup) transposes its [vocab, d_model] result with an identity
 * permutation twice: two 64 MB copies (~170 ms) per T5-small training step for nothing. Real permutations
 * go to the stock kernel.
 */
import * as tf from "@tensorflow/tfjs-core";
import { runStock } from "./stock";

let stockTranspose: tf.KernelConfig | undefined;

export function rememberStockTranspose(config: tf.KernelConfig | undefined): void {
  stockTranspose ??= config;
}

export const transposeConfig: tf.KernelConfig = {
  kernelName: tf.Transpose,
  backendName: "wasm",
  kernelFunc: (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const { perm } = args.attrs as unknown as { perm: number[] };
    if (x.dtype !== "string" && perm.every((p, i) => p === i)) {
      (args.backend as tf.KernelBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    }
    return runStock(stockTranspose, "Transpose", args);
  },
};
