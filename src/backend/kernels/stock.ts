/**
 * Calling a stock wasm kernel from an override (for the cases the override leaves to it).
 *
 * A stock kernel binds its C entry points to one wasm module in its setupFunc, which tfjs runs only for
 * kernels registered when a backend is set. A replaced kernel is no longer registered, so after initBackend
 * re-creates the wasm module its bindings would point at the disposed one (garbage or an abort). Bind it to
 * the calling backend first.
 */
import type * as tf from "@tensorflow/tfjs-core";

const boundTo = new WeakMap<tf.KernelConfig, unknown>();

export function runStock(config: tf.KernelConfig | undefined, name: string, args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> {
  if (!config) throw new Error(`tagi backend: the stock wasm ${name} kernel is missing`);
  if (config.setupFunc && boundTo.get(config) !== args.backend) {
    config.setupFunc(args.backend as tf.KernelBackend);
    boundTo.set(config, args.backend);
  }
  return config.kernelFunc(args);
}
