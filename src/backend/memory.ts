/**
 * Memory utilities: per-layer activation recomputation ("gradient checkpointing") and a leak check.
 *
 * tfjs keeps every forward activation until the backward pass ends; wasm32 caps the heap at 4 GB, so a
 * T5-small step at batch 8 already peaks at ~3.3 GB. `recompute` runs a layer forward without keeping
 * its intermediates and recomputes them inside its gradient: memory falls to the layer boundaries, time
 * rises by one extra forward per layer.
 */
import * as tf from "@tensorflow/tfjs-core";

interface EngineState {
  activeTape: unknown[] | null;
}

function engineState(): EngineState {
  return (tf.engine() as unknown as { state: EngineState }).state;
}

/**
 * Wraps `layer(inputs, params)` so its activations are recomputed during backprop instead of stored.
 *
 * Gradients reach `inputs` and `params` (pass every trainable tensor the layer reads: tfjs's customGrad only
 * differentiates explicit arguments). Values and gradients equal the plain layer's.
 */
export function recompute(
  layer: (inputs: tf.Tensor[], params: tf.Tensor[]) => tf.Tensor,
): (inputs: tf.Tensor[], params: tf.Tensor[]) => tf.Tensor {
  return (inputs, params) => {
    const nIn = inputs.length;
    const all = [...inputs, ...params];
    const split = (xs: tf.Tensor[]) => layer(xs.slice(0, nIn), xs.slice(nIn));
    const wrapped = tf.customGrad((...args: unknown[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const xs = args.slice(0, -1) as tf.Tensor[];
      // Forward inside tidy: intermediates are freed now, only the output survives.
      const value = tf.tidy(() => split(xs));
      save(xs);
      return {
        value,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          // A nested tf.grads resets tfjs's global tape when it returns (it thinks it is the outermost
          // gradient computation); keep the outer backward pass's tape alive across it.
          const state = engineState();
          const outerTape = state.activeTape;
          try {
            // allowNoGradients: an input the layer does not use gets a zero gradient instead of an error.
            const { value, grads } = tf.engine().gradients(() => split(saved), saved, dy as tf.Tensor, true);
            value.dispose();
            return saved.map((x, i) => grads[i] ?? tf.zerosLike(x));
          } finally {
            state.activeTape = outerTape;
          }
        },
      };
    });
    return (wrapped as (...xs: tf.Tensor[]) => tf.Tensor)(...all);
  };
}

/** Heap size past which a training step risks stalling at wasm32's 4 GiB cap (see warnIfHeapNearCap). */
export const HEAP_WARN_BYTES = 3.5 * 2 ** 30;

/** Size of the wasm backend's linear memory in bytes (it never shrinks), or null on other backends. */
export function wasmHeapBytes(): number | null {
  if (tf.getBackend() !== "wasm") return null;
  const w = (tf.backend() as unknown as { wasm?: { wasmMemory?: WebAssembly.Memory; HEAPU8?: Uint8Array } }).wasm;
  const buffer = w?.wasmMemory?.buffer ?? w?.HEAPU8?.buffer;
  return buffer ? buffer.byteLength : null;
}

/** Live tensor and byte counts, for leak checks and memory reports. */
export function liveTensors(): { numTensors: number; numBytes: number } {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
}

/**
 * Runs `step` `repeats` times (after `warmup` runs that may create caches) and throws if the number of live
 * tensors grew: a leak in a training step is a crash some hours later.
 */
export async function assertNoLeak(
  step: () => unknown | Promise<unknown>,
  options: { repeats?: number; warmup?: number; label?: string } = {},
): Promise<void> {
  const { repeats = 3, warmup = 1, label = "step" } = options;
  for (let i = 0; i < warmup; i++) await step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) await step();
  const after = tf.memory().numTensors;
  if (after !== before) {
    throw new Error(`tensor leak in ${label}: ${after - before} tensors left alive after ${repeats} repeats (${before} -> ${after})`);
  }
}
