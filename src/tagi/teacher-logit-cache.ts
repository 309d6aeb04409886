/**
 * Cached logit-teacher outputs for stage 2. Every TAGI run of a scale and format distils from the same frozen
 * meta-trained model reading the same prompts, and its forward pass over 512-token prompts is about as costly
 * as the student's whole step (measured: a `small` finetune step with L_kl took 1.8x the time of one
 * without). The cache runs the teacher once over the training examples and keeps, for every target
 * position, the teacher's k most likely tokens with their log-probabilities at the temperature T, and the
 * log of the remaining mass. Stage 2 then reads them instead of running the teacher.
 *
 * The KL from the cache is the KL between the teacher and student distributions coarse-grained to k + 1
 * outcomes (the k tokens and "any other token"):
 *   Σ_{i∈top-k} p_i (log p_i − log q_i) + r (log r − log q_rest),   r = 1 − Σ p_i, q_rest = 1 − Σ q_i,
 * which equals the full KL when the teacher puts no mass outside its top k and is never above it otherwise
 * (coarse-graining cannot increase a KL divergence). test/teacher-logit-cache.test.ts checks it equals the live
 * KL, values and gradients, at k = vocabulary size, and measures the gap at smaller k.
 *
 * Entries are keyed by content (the teacher's input ids and the target ids), so any run whose examples are in
 * the cache can use it whatever its seed or order; `fingerprint` names the teacher (its folder's content hash),
 * the temperature and k, and a run refuses a cache made for another teacher or temperature.
 *
 * Files: `<dir>/index.json` (fingerprint, k, temperature, the entries' keys, offsets and lengths) and
 * `<dir>/values.bin` (per entry and target position: k uint16 token ids, k float32 log-probabilities, one
 * float32 log remainder), written atomically.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { fusedCeKl, fusedLossStatus } from "../backend/fused-ce-kl";
import { writeFileAtomic } from "../model/safetensors";
import { crossEntropyLoss } from "../model/t5";
import { writeJsonAtomic } from "../train/checkpoint";

export interface TeacherLogitCacheInfo {
  /** Content hash of the teacher model folder (modelFolderFingerprint). */
  teacher: string;
  temperature: number;
  k: number;
  vocab: number;
}

interface IndexFile extends TeacherLogitCacheInfo {
  format: "tagi-teacher-logits/1";
  entries: Record<string, [offset: number, length: number]>;
  /** How it was made (command, commit), for the record. */
  made: Record<string, unknown>;
}

/** The content key of an example: the teacher's (unpadded) input ids and the target ids. */
export function exampleKey(teacherInput: readonly number[], target: readonly number[]): string {
  return createHash("sha1").update(`${teacherInput.join(",")}|${target.join(",")}`).digest("base64url");
}

/** Bytes per target position for k kept tokens. */
function positionBytes(k: number): number {
  return k * 2 + k * 4 + 4;
}

/**
 * Top-k log-probabilities at temperature T and the log of the remaining mass, per position: from teacher
 * logits [N, V] to { ids [N, k], logp [N, k], logRest [N] } (plain arrays; N = positions).
 */
export function topKLogProbs(logits: tf.Tensor2D, temperature: number, k: number): { ids: Int32Array; logp: Float32Array; logRest: Float32Array } {
  const [n, v] = logits.shape;
  if (!(k >= 1 && k <= v)) throw new Error(`teacher logit cache: k must be in [1, ${v}], got ${k}`);
  return tf.tidy(() => {
    const logp = tf.logSoftmax(tf.div(logits, temperature)) as tf.Tensor2D;
    const top = tf.topk(logp, k, true);
    // log(1 − Σ top-k p), clamped so that a rounding excess over 1 stays finite. At k = V nothing is left out:
    // the remainder is exactly zero mass (float32 sums of 32k probabilities miss 1 by ~1e-5, not mass).
    const kept = tf.sum(tf.exp(top.values), -1);
    const rest = k === v ? tf.fill([n], -1e9) : tf.log(tf.maximum(tf.sub(1, kept), 1e-30));
    const out = { ids: top.indices.dataSync() as Int32Array, logp: top.values.dataSync() as Float32Array, logRest: rest.dataSync() as Float32Array };
    if (out.ids.length !== n * k) throw new Error("topKLogProbs: unexpected shape");
    return out;
  });
}

/** Writes a cache: `entries` maps each example key to its positions' top-k (as topKLogProbs returns, one row per target position). */
export class TeacherLogitCacheWriter {
  private readonly chunks: Buffer[] = [];
  private readonly entries: Record<string, [number, number]> = {};
  private offset = 0;

  constructor(readonly info: TeacherLogitCacheInfo) {}

  has(key: string): boolean {
    return key in this.entries;
  }

  get size(): number {
    return Object.keys(this.entries).length;
  }

  add(key: string, positions: number, ids: Int32Array, logp: Float32Array, logRest: Float32Array, rowOffset = 0): void {
    const k = this.info.k;
    const buf = Buffer.alloc(positions * positionBytes(k));
    for (let j = 0; j < positions; j++) {
      const r = rowOffset + j;
      const base = j * positionBytes(k);
      for (let i = 0; i < k; i++) buf.writeUInt16LE(ids[r * k + i]!, base + 2 * i);
      for (let i = 0; i < k; i++) buf.writeFloatLE(logp[r * k + i]!, base + 2 * k + 4 * i);
      buf.writeFloatLE(logRest[r]!, base + 6 * k);
    }
    this.entries[key] = [this.offset, positions];
    this.offset += buf.byteLength;
    this.chunks.push(buf);
  }

  save(dir: string, made: Record<string, unknown>): void {
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomic(path.join(dir, "values.bin"), (fd) => {
      for (const c of this.chunks) for (let done = 0; done < c.byteLength; ) done += fs.writeSync(fd, c, done, c.byteLength - done);
    });
    const index: IndexFile = { format: "tagi-teacher-logits/1", ...this.info, entries: this.entries, made };
    writeJsonAtomic(path.join(dir, "index.json"), index);
  }
}

/** A cache read into memory, answering batches. */
export class TeacherLogitCache {
  private constructor(
    readonly dir: string,
    readonly info: TeacherLogitCacheInfo,
    private readonly entries: Record<string, [number, number]>,
    private readonly values: Buffer,
  ) {}

  static load(dir: string): TeacherLogitCache {
    const indexFile = path.join(dir, "index.json");
    const valuesFile = path.join(dir, "values.bin");
    if (!fs.existsSync(indexFile) || !fs.existsSync(valuesFile)) throw new Error(`teacher logit cache ${dir}: index.json or values.bin is missing (build it with \`tagi teacher-logits\`)`);
    const index = JSON.parse(fs.readFileSync(indexFile, "utf8")) as IndexFile;
    if (index.format !== "tagi-teacher-logits/1") throw new Error(`${indexFile}: not a teacher logit cache (format ${JSON.stringify(index.format)})`);
    const values = fs.readFileSync(valuesFile);
    const pb = positionBytes(index.k);
    for (const [key, [off, len]] of Object.entries(index.entries)) {
      if (off + len * pb > values.byteLength) throw new Error(`${valuesFile}: entry ${key} runs past the end of the file (truncated?)`);
    }
    return new TeacherLogitCache(dir, { teacher: index.teacher, temperature: index.temperature, k: index.k, vocab: index.vocab }, index.entries, values);
  }

  get size(): number {
    return Object.keys(this.entries).length;
  }

  /** Why this cache cannot stand in for `teacher` at `temperature` (null when it can). */
  mismatch(teacher: string, temperature: number, vocab: number): string | null {
    const p: string[] = [];
    if (this.info.teacher !== teacher) p.push(`it was made from another teacher (content ${this.info.teacher.slice(0, 12)}, the run's is ${teacher.slice(0, 12)})`);
    if (this.info.temperature !== temperature) p.push(`it holds probabilities at temperature ${this.info.temperature}, the run distils at ${temperature}`);
    if (this.info.vocab !== vocab) p.push(`its vocabulary has ${this.info.vocab} ids, the model ${vocab}`);
    return p.length ? `teacher logit cache ${this.dir}: ${p.join("; ")}` : null;
  }

  /** Keys of `keys` that are not in the cache. */
  missing(keys: readonly string[]): string[] {
    return keys.filter((k) => !(k in this.entries));
  }

  /**
   * The batch's cached teacher outputs, padded to `positions` target positions: ids [B, P, k] int32 (0 on
   * padding), logp [B, P, k] (−1e9 on padding: no mass), logRest [B, P] (−1e9 on padding).
   */
  batch(keys: readonly string[], positions: number): { ids: tf.Tensor3D; logp: tf.Tensor3D; logRest: tf.Tensor2D } {
    const k = this.info.k;
    const b = keys.length;
    const ids = new Int32Array(b * positions * k);
    const logp = new Float32Array(b * positions * k).fill(-1e9);
    const logRest = new Float32Array(b * positions).fill(-1e9);
    const pb = positionBytes(k);
    keys.forEach((key, e) => {
      const entry = this.entries[key];
      if (!entry) throw new Error(`teacher logit cache ${this.dir}: no entry for an example of this batch (key ${key}); rebuild the cache for this run's examples`);
      const [off, len] = entry;
      if (len > positions) throw new Error(`teacher logit cache ${this.dir}: entry ${key} has ${len} target positions, the batch ${positions}`);
      for (let j = 0; j < len; j++) {
        const base = off + j * pb;
        const row = (e * positions + j) * k;
        for (let i = 0; i < k; i++) ids[row + i] = this.values.readUInt16LE(base + 2 * i);
        for (let i = 0; i < k; i++) logp[row + i] = this.values.readFloatLE(base + 2 * k + 4 * i);
        logRest[e * positions + j] = this.values.readFloatLE(base + 6 * k);
      }
    });
    return { ids: tf.tensor3d(ids, [b, positions, k], "int32"), logp: tf.tensor3d(logp, [b, positions, k]), logRest: tf.tensor2d(logRest, [b, positions]) };
  }
}

/**
 * T²·KL between the cached teacher and the student, coarse-grained to the teacher's top k and the rest (see
 * the module comment), averaged over valid target positions (labels ≠ −100). Gradients reach the student
 * logits only.
 *
 * The gradient is written out rather than differentiated through the gather: autodiff of a gather of k of
 * the V log-probabilities per position is TensorFlow's UnsortedSegmentSum into a [B·T·V] tensor, which took
 * 80-400 ms of a 1.5 s TAGI step (`tf.profile` of bench/tagi-step.ts), against 12 ms for ScatterNd of the
 * same values. With s = z/T, q = softmax(s), per position
 *   ∂KL/∂log q_i = −p_i + p_rest · q_i / q_rest   on the teacher's top-k ids i (0 elsewhere; the second term
 *                                                    is 0 where q_rest is clamped at 1e-30, as max's gradient)
 *   ∂KL/∂z = (g − q · Σ_i g_i) / T                  (log-softmax's backward, g the scattered ∂KL/∂log q)
 * test/teacher-logit-cache.test.ts checks it against autodiff of the same forward.
 */
export function cachedDistillationKl(
  studentLogits: tf.Tensor3D,
  cached: { ids: tf.Tensor3D; logp: tf.Tensor3D; logRest: tf.Tensor2D },
  labels: tf.Tensor2D,
  opts: { temperature: number; scaleByTemperatureSquared?: boolean },
): tf.Scalar {
  const T = opts.temperature;
  const [b, t, v] = studentLogits.shape;
  const k = cached.ids.shape[2];
  const n = b * t;
  if (cached.ids.shape[0] !== b || cached.ids.shape[1] !== t) throw new Error(`cachedDistillationKl: cached [${cached.ids.shape}] does not match the student logits [${studentLogits.shape}]`);
  const scale = opts.scaleByTemperatureSquared === false ? 1 : T * T;
  const kl = tf.customGrad((...args: unknown[]) => {
    const [z, save] = [args[0] as tf.Tensor3D, args[args.length - 1] as tf.GradSaveFunc];
    const logq = tf.logSoftmax(tf.reshape(tf.div(z, T), [n, v])); // [N, V]
    // Flat positions of the teacher's top-k tokens in the student's [N·V] log-probabilities.
    const rows = tf.mul(tf.reshape(tf.range(0, n, 1, "int32"), [n, 1]), tf.scalar(v, "int32"));
    const flat = tf.reshape(tf.add(rows, tf.reshape(cached.ids, [n, k])), [n * k]);
    const logqTop = tf.reshape(tf.gather(tf.reshape(logq, [n * v]), flat), [n, k]);
    const logpTop = tf.reshape(cached.logp, [n, k]);
    const logpRest = tf.reshape(cached.logRest, [n]);
    const qRestRaw = tf.sub(1, tf.sum(tf.exp(logqTop), -1));
    const qRest = tf.maximum(qRestRaw, 1e-30);
    const top = tf.sum(tf.mul(tf.exp(logpTop), tf.sub(logpTop, logqTop)), -1);
    const rest = tf.mul(tf.exp(logpRest), tf.sub(logpRest, tf.log(qRest)));
    const weight = tf.cast(tf.notEqual(tf.reshape(labels, [n]), -100), "float32");
    const count = tf.maximum(tf.sum(weight), 1);
    const value = tf.mul(tf.div(tf.sum(tf.mul(tf.add(top, rest), weight)), count), scale) as tf.Scalar;
    save([logq, logqTop, logpTop, logpRest, qRestRaw, qRest, weight, count, flat]);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [lq, lqTop, lpTop, lpRest, rawRest, clamped, w, cnt, idx] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Scalar, tf.Tensor1D];
        // c_n = dy · scale · w_n / count / T: the whole chain's factor per position, folded into g once.
        const c = tf.reshape(tf.div(tf.mul(w, tf.mul(dy as tf.Scalar, scale / T)), cnt), [n, 1]);
        const restFactor = tf.mul(tf.exp(lpRest), tf.cast(tf.greaterEqual(rawRest, 1e-30), "float32"));
        const g = tf.mul(tf.add(tf.neg(tf.exp(lpTop)), tf.mul(tf.reshape(tf.div(restFactor, clamped), [n, 1]), tf.exp(lqTop))), c); // [N, k]
        const sparse = tf.scatterND(tf.reshape(idx, [n * k, 1]), tf.reshape(g, [n * k]), [n * v]);
        const dz = tf.sub(tf.reshape(sparse, [n, v]), tf.mul(tf.exp(lq), tf.sum(g, -1, true)));
        return [tf.reshape(dz, [b, t, v])];
      },
    };
  });
  return (kl as (x: tf.Tensor) => tf.Scalar)(studentLogits);
}

/**
 * L_ce and the cached L_kl of one batch: from the fused ops in one pass over the logits where they run
 * (src/backend/fused-ce-kl.ts), else `crossEntropyLoss` and `cachedDistillationKl` (the same values and
 * gradients; test/fused-ce-kl.test.ts).
 */
export function ceAndCachedKl(
  studentLogits: tf.Tensor3D,
  cached: { ids: tf.Tensor3D; logp: tf.Tensor3D; logRest: tf.Tensor2D },
  labels: tf.Tensor2D,
  opts: { temperature: number; scaleByTemperatureSquared?: boolean },
): { ce: tf.Scalar; kl: tf.Scalar } {
  if (fusedLossStatus().inUse) {
    const { ce, kl } = fusedCeKl(studentLogits, labels, cached, opts);
    return { ce, kl: kl! };
  }
  return { ce: crossEntropyLoss(studentLogits, labels), kl: cachedDistillationKl(studentLogits, cached, labels, opts) };
}
