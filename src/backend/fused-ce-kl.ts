/**
 * L_ce and the cached top-k L_kl in one pass over the logits, on the native TensorFlow backend: two custom
 * TensorFlow ops (native/src/ce-kl.c, built by scripts/setup-tensorflow.sh into native/tf-ops/build) that
 * tfjs-node runs by name once the add-on has registered them.
 *
 * Why: the composed forms (`crossEntropyLoss` in src/model/t5.ts, `cachedDistillationKl` in
 * src/tagi/teacher-logit-cache.ts) make ~20 passes over the [tokens, 32128] logits between them; the fused
 * forward reads them once (max, then both exp-sums) and the backward once more (writing the gradient), and
 * neither keeps a vocabulary-sized log-softmax alive for the backward. Measured A/B: `npm run bench` (the
 * TAGI stage-2 and campaign steps run with it; TAGI_FUSED_LOSS=0 turns it off).
 *
 * Where it cannot run (another backend, tfjs-node-gpu's GPU device, the add-on not built, TAGI_FUSED_LOSS=0)
 * the status says why and callers use the composed forms, which stay the reference (test/fused-ce-kl.test.ts
 * checks values and gradients against them on the cpu backend).
 */
import * as tf from "@tensorflow/tfjs-core";
import { addonCandidates, loadAddon } from "./addon";

export interface FusedLossStatus {
  inUse: boolean;
  /** Why it is or is not used, in words. */
  reason: string;
}

interface TensorMetadata {
  id: number;
  shape: number[];
  dtype: number;
}
/** The parts of tfjs-node's NodeJSKernelBackend this module uses. */
interface NodeBackend {
  binding: { executeOp(name: string, attrs: never[], inputIds: number[], outputs: number): TensorMetadata[]; isUsingGpuDevice(): boolean };
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(meta: TensorMetadata): tf.Tensor;
}

let status: FusedLossStatus = { inUse: false, reason: "not initialised (initBackend enables it on the tensorflow backend)" };
let addon: { setThreads(n: number): void } | null = null;

/**
 * Turns the fused ops on for this process where they can run (called by initBackend after the backend is set;
 * `threads` is the intra-op thread count). Never throws: the status says why they are off.
 */
export function enableFusedLoss(threads: number): FusedLossStatus {
  status = enable(threads);
  return status;
}

function enable(threads: number): FusedLossStatus {
  if (process.env.TAGI_FUSED_LOSS === "0") return { inUse: false, reason: "off (TAGI_FUSED_LOSS=0)" };
  if (tf.getBackend() !== "tensorflow") return { inUse: false, reason: `needs the tensorflow backend; this process runs '${tf.getBackend()}'` };
  const be = tf.backend() as unknown as NodeBackend;
  if (be.binding.isUsingGpuDevice()) return { inUse: false, reason: "the ops have CPU kernels only; tfjs-node-gpu runs on the GPU" };
  if (!addon) {
    // $TAGI_TF_OPS_PATH, then native/tf-ops/build/Release under the project root
    const r = loadAddon<{ setThreads(n: number): void }>(addonCandidates("TAGI_TF_OPS_PATH", "tf-ops", "build", "Release", "tagi_tf_ops.node"));
    if (!r.addon) return { inUse: false, reason: `add-on unavailable: ${r.tried.join("; ")}; npm run build:tf-ops (run by setup) builds it` };
    addon = r.addon;
  }
  addon.setThreads(threads);
  return { inUse: true, reason: `TensorFlow custom ops TagiCeKlForward/Backward, ${threads} thread${threads === 1 ? "" : "s"}` };
}

/** Whether the fused ops run now (the backend may have changed since they were enabled). */
export function fusedLossStatus(): FusedLossStatus {
  if (status.inUse && tf.getBackend() !== "tensorflow") return { inUse: false, reason: `needs the tensorflow backend; this process now runs '${tf.getBackend()}'` };
  return status;
}

function run(name: string, inputs: tf.Tensor[]): tf.Tensor {
  const be = tf.backend() as unknown as NodeBackend;
  const [meta] = be.binding.executeOp(name, [], be.getInputTensorIds(inputs), 1);
  return be.createOutputTensor(meta!);
}

/** The teacher's cached top-k (src/tagi/teacher-logit-cache.ts): ids and log-probabilities [B,T,k], remainder [B,T]. */
export interface CachedTopK {
  ids: tf.Tensor3D;
  logp: tf.Tensor3D;
  logRest: tf.Tensor2D;
}

/**
 * Mean L_ce over the labels that are not -100 and, with `cached`, the mean top-k L_kl over the same positions
 * (times T² unless `scaleByTemperatureSquared` is false): the values and gradients of `crossEntropyLoss` and
 * `cachedDistillationKl`, from one forward and one backward kernel. Only while `fusedLossStatus().inUse`.
 */
export function fusedCeKl(
  logits: tf.Tensor3D,
  labels: tf.Tensor2D,
  cached: CachedTopK | null,
  opts: { temperature: number; scaleByTemperatureSquared?: boolean },
): { ce: tf.Scalar; kl: tf.Scalar | null } {
  if (!fusedLossStatus().inUse) throw new Error(`fusedCeKl: the fused ops are off here (${fusedLossStatus().reason})`);
  const [b, t, v] = logits.shape;
  const n = b * t;
  const T = opts.temperature;
  if (!(T > 0)) throw new Error(`fusedCeKl: temperature must be > 0, got ${T}`);
  if (cached && (cached.ids.shape[0] !== b || cached.ids.shape[1] !== t)) throw new Error(`fusedCeKl: cached [${cached.ids.shape}] does not match the logits [${logits.shape}]`);
  const k = cached ? cached.ids.shape[2] : 0;
  const scale = opts.scaleByTemperatureSquared === false ? 1 : T * T;
  const f = tf.customGrad((...args: unknown[]) => {
    const [x, save] = [args[0] as tf.Tensor, args[args.length - 1] as tf.GradSaveFunc];
    // Constants of the loss (no gradient flows into them). Everything the backward reads is saved: the
    // forward runs inside a tidy that frees the rest before the backward.
    const labelFlat = tf.reshape(tf.cast(labels, "int32"), [n]);
    const ids = cached ? tf.reshape(tf.cast(cached.ids, "int32"), [n, k]) : tf.zeros([n, 0], "int32");
    const logp = cached ? tf.reshape(cached.logp, [n, k]) : tf.zeros([n, 0]);
    const logRest = cached ? tf.reshape(cached.logRest, [n]) : tf.zeros([n]);
    const invT = tf.scalar(1 / T);
    const valid = tf.cast(tf.notEqual(labelFlat, -100), "float32");
    const count = tf.maximum(tf.sum(valid), 1);
    const z = tf.reshape(x, [n, v]);
    const rows = run("TagiCeKlForward", [z, labelFlat, ids, logp, logRest, invT]); // [N, 5]: lse1, lse2, ce_n, kl_n, lseRest
    const perRow = (col: number) => tf.reshape(tf.slice(rows, [0, col], [n, 1]), [n]);
    const ce = tf.div(tf.sum(tf.mul(perRow(2), valid)), count);
    const kl = tf.mul(tf.div(tf.sum(tf.mul(perRow(3), valid)), count), scale);
    save([z, labelFlat, ids, logp, logRest, invT, rows, valid, count]);
    return {
      value: tf.stack([ce, kl]),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [zs, lab, id, lp, lr, it, r, w, cnt] = saved;
        const d = dy as tf.Tensor1D;
        const perPosition = tf.div(w!, cnt!);
        const a = tf.mul(perPosition, tf.slice(d, [0], [1]));
        const c = tf.mul(perPosition, tf.mul(tf.slice(d, [1], [1]), scale / T));
        return [tf.reshape(run("TagiCeKlBackward", [zs!, lab!, id!, lp!, lr!, it!, r!, a, c]), [b, t, v])];
      },
    };
  });
  const both = (f as (x: tf.Tensor) => tf.Tensor1D)(logits);
  const ce = tf.reshape(tf.slice(both, [0], [1]), []) as tf.Scalar;
  return { ce, kl: cached ? (tf.reshape(tf.slice(both, [1], [1]), []) as tf.Scalar) : null };
}
