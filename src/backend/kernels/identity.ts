/**
 * Identity, and Cast to the same dtype, without a copy on wasm.
 *
 * Stock wasm copies the whole tensor for both; tfjs calls Identity for every gradient it passes through
 * unchanged (128 copies, ~80 ms, in one T5-block training step). Tensors are immutable, so the output can
 * share the input's memory with its reference count raised, exactly as the cpu backend and wasm's own
 * Reshape do.
 */
import * as tf from "@tensorflow/tfjs-core";
import { internals, viewOf } from "../wasm-internals";
import { runStock } from "./stock";

let stockIdentity: tf.KernelConfig | undefined;
let stockCast: tf.KernelConfig | undefined;

export function rememberStock(name: string, config: tf.KernelConfig | undefined): void {
  if (name === tf.Identity) stockIdentity ??= config;
  if (name === tf.Cast) stockCast ??= config;
}

function share(backend: tf.KernelBackend, x: tf.TensorInfo): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

export const identityConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: "wasm",
  kernelFunc: (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    if (x.dtype === "string") return runStock(stockIdentity, "Identity", args);
    return share(args.backend as tf.KernelBackend, x);
  },
};

export const castConfig: tf.KernelConfig = {
  kernelName: tf.Cast,
  backendName: "wasm",
  kernelFunc: (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
    if (dtype === x.dtype && x.dtype !== "string") return share(args.backend as tf.KernelBackend, x);
    if (dtype === "bool" && (x.dtype === "float32" || x.dtype === "int32")) {
      // Stock wasm Cast copies with TypedArray.set, which wraps numbers into a bool's byte (-2 -> 254,
      // 0.5 -> 0, 256 -> 0). tfjs's cast to bool is x != 0, as on the cpu backend.
      const backend = internals(args.backend);
      const out = backend.makeOutput(x.shape, "bool");
      const src = viewOf(backend, x);
      const dst = viewOf(backend, out);
      for (let i = 0; i < src.length; i++) dst[i] = src[i] !== 0 ? 1 : 0;
      return out;
    }
    return runStock(stockCast, "Cast", args);
  },
};
