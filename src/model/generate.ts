/**
 * Batched greedy decoding with a key/value cache, and per-token scoring of given targets.
 */
import * as tf from "@tensorflow/tfjs-core";
import { decode, disposeCache, encode, memoryMask, tokenLogProbs, type DecoderCache, type RunOptions, type T5Model } from "./t5";

export interface GreedyOptions extends RunOptions {
  /** Stop after this many new tokens (HF's max_new_tokens). */
  maxNewTokens: number;
  /** Keep decoding after EOS (benchmarks that need a fixed number of steps). Default false. */
  ignoreEos?: boolean;
  /** Drop finished sequences from the batch (default true); false decodes every row to the end. */
  compact?: boolean;
  /** Accumulates milliseconds spent encoding, decoding step by step, and scoring given targets. */
  timing?: GenerationTiming;
}

/** Where generation time goes (tfjs CPU backends run ops eagerly, so wall time around each part is its cost). */
export interface GenerationTiming {
  encodeMs: number;
  decodeMs: number;
  scoreMs: number;
  /** Decoder steps run, and rows summed over them (rows decoded; fewer than steps x batch when finished rows leave). */
  steps: number;
  rowSteps: number;
}

export function newGenerationTiming(): GenerationTiming {
  return { encodeMs: 0, decodeMs: 0, scoreMs: 0, steps: 0, rowSteps: 0 };
}

/** Runs fn, adding its wall time to timing[key] when timing is given. */
export function timed<T>(timing: GenerationTiming | undefined, key: "encodeMs" | "decodeMs" | "scoreMs", fn: () => T): T {
  if (!timing) return fn();
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    timing[key] += performance.now() - t0;
  }
}

/**
 * Greedy decoding, as HF's generate(do_sample=False, num_beams=1): returns ids [B, 1 + steps] starting with
 * decoder_start_token_id; a sequence that emitted EOS is padded with pad_token_id afterwards; decoding stops
 * when every sequence has finished or after maxNewTokens.
 *
 * A sequence that has finished leaves the batch: the rows still decoding are gathered (encoder output, its
 * mask, the key/value caches and per-example LoRA factors), so a batch of short answers and one long one costs
 * what its tokens cost, not batch x the longest. The ids are the same as decoding every row to the end
 * (test/generate.test.ts); `compact: false` keeps every row (the reference path).
 */
export function greedyDecode(model: T5Model, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | undefined, options: GreedyOptions): number[][] {
  checkMaxNewTokens(options.maxNewTokens);
  const enc = timed(options.timing, "encodeMs", () => encodeInChunks(model, inputIds, attentionMask, options));
  return timed(options.timing, "decodeMs", () => decodeGreedy(model, enc, memoryMask(options, attentionMask, inputIds.shape[0], inputIds.shape[1]), attentionMask, options));
}

/**
 * Rows per encoder call when a decoding batch is larger. Attention scores are [rows, heads, L, L]: at 64 rows of
 * up to 512 tokens the encoder ran slower per instance than at 16 (the same 1,020 dev instances of the
 * Def + 2 Pos evaluation: 59.7 s against 42.8 s of encoding), while the decoder wants as many rows per step
 * as it can get (31.0 s against 57.8 s). Encoding in chunks of this many rows keeps both.
 */
export const ENCODE_CHUNK_ROWS = 16;

/**
 * Rows [start, start + n) of the batch-shaped parts of run options (per-example LoRA factors, the instruction
 * fusion's encoding and mask), for a chunk of a batch; call inside tf.tidy or dispose them with
 * disposeSlicedRunOptions (the slices are new tensors).
 */
export function sliceRunOptions(o: RunOptions, start: number, n: number): RunOptions {
  const rows = <T extends tf.Tensor>(t: T): T => tf.slice(t, start, n) as T; // 1-D begin/size: the leading axis only
  let out = o;
  if (o.lora?.layout === "perExample") out = { ...out, lora: { ...o.lora, modules: new Map([...o.lora.modules].map(([m, { A, B }]) => [m, { A: rows(A), B: rows(B) }])) } };
  if (o.fusion) out = { ...out, fusion: { ...o.fusion, instruction: rows(o.fusion.instruction), instructionMask: rows(o.fusion.instructionMask) } };
  return out;
}

/** Disposes the tensors sliceRunOptions made (never the caller's: fusion parameters, a shared adapter). */
export function disposeSlicedRunOptions(o: RunOptions, from: RunOptions): void {
  if (o === from) return;
  if (o.lora !== from.lora && o.lora?.layout === "perExample") for (const { A, B } of o.lora.modules.values()) tf.dispose([A, B]);
  if (o.fusion && o.fusion !== from.fusion) tf.dispose([o.fusion.instruction, o.fusion.instructionMask]);
}

/**
 * The encoder output of a batch, computed ENCODE_CHUNK_ROWS rows at a time and joined (the same values: rows
 * are independent; batch-shaped options are sliced with them). Dropout (training) encodes the batch whole.
 */
export function encodeInChunks(model: T5Model, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | undefined, options: RunOptions): tf.Tensor3D {
  const rows = inputIds.shape[0];
  if (rows <= ENCODE_CHUNK_ROWS || options.training === true) return encode(model, inputIds, attentionMask, options);
  const parts: tf.Tensor3D[] = [];
  try {
    for (let start = 0; start < rows; start += ENCODE_CHUNK_ROWS) {
      const n = Math.min(ENCODE_CHUNK_ROWS, rows - start);
      parts.push(
        tf.tidy(() =>
          encode(model, tf.slice(inputIds, [start, 0], [n, -1]), attentionMask ? tf.slice(attentionMask, [start, 0], [n, -1]) : undefined, sliceRunOptions(options, start, n)),
        ),
      );
    }
    return tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}

function checkMaxNewTokens(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`greedyDecode: maxNewTokens must be a non-negative integer, got ${n}`);
}

/**
 * Greedy decoding from an encoder output, which it takes over (disposes), as it does the memory mask unless
 * that is the caller's `attentionMask`.
 */
function decodeGreedy(model: T5Model, encoded: tf.Tensor3D, memoryMaskIn: tf.Tensor2D | undefined, attentionMask: tf.Tensor2D | undefined, options: GreedyOptions): number[][] {
  const { maxNewTokens } = options;
  const c = model.config;
  const b = encoded.shape[0];
  const out = Array.from({ length: b }, () => [c.decoder_start_token_id]);
  const finished = new Array<boolean>(b).fill(false);
  let enc = encoded;
  let memMask = memoryMaskIn;
  const ownsMask = () => memMask !== undefined && memMask !== attentionMask;
  let runOptions: RunOptions = options;
  /** Row i of the current batch is sequence rows[i]. */
  let rows = Array.from({ length: b }, (_, i) => i);
  let cache: DecoderCache | undefined;
  try {
    const compact = options.compact !== false;
    for (let step = 0; step < maxNewTokens && rows.some((r) => !finished[r]); step++) {
      const n = rows.length;
      if (options.timing) {
        options.timing.steps++;
        options.timing.rowSteps += n;
      }
      const ids = tf.tensor2d(rows.map((r) => out[r]!.at(-1)!), [n, 1], "int32");
      const { logits, cache: extended } = decode(model, ids, enc, memMask, runOptions, cache);
      ids.dispose();
      if (cache) for (const e of cache.self) tf.dispose([e.k, e.v]); // cross entries are carried over
      cache = extended;
      const argmax = tf.tidy(() => tf.argMax(tf.reshape(logits, [n, c.vocab_size]), -1));
      const chosen = argmax.dataSync();
      tf.dispose([logits, argmax]);
      const keep: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = rows[i]!;
        if (finished[r]) {
          out[r]!.push(c.pad_token_id); // only without compaction: a finished row decodes padding
          continue;
        }
        out[r]!.push(chosen[i]!);
        if (chosen[i] === c.eos_token_id && !options.ignoreEos) finished[r] = true;
        else keep.push(i);
      }
      if (compact && keep.length < n && keep.length > 0) {
        // Gather the rows still decoding; everything batch-shaped follows them.
        const idx = tf.tensor1d(keep, "int32");
        const take = <T extends tf.Tensor>(t: T): T => tf.gather(t, idx, 0) as T;
        const old = { enc, memMask, cache, runOptions, ownsMask: ownsMask() };
        enc = take(enc);
        memMask = memMask ? take(memMask) : undefined;
        cache = { self: cache.self.map((e) => ({ k: take(e.k), v: take(e.v) })), cross: cache.cross.map((e) => ({ k: take(e.k), v: take(e.v) })) };
        runOptions = compactRunOptions(runOptions, take);
        idx.dispose();
        old.enc.dispose();
        if (old.ownsMask) old.memMask!.dispose();
        disposeCache(old.cache);
        disposeSlicedRunOptions(old.runOptions, options);
        rows = keep.map((i) => rows[i]!);
      }
    }
    // Rows that left (or never decoded) are padded to the common length, as HF pads finished sequences.
    const len = Math.max(...out.map((o) => o.length));
    for (const o of out) while (o.length < len) o.push(c.pad_token_id);
  } finally {
    if (cache) disposeCache(cache);
    enc.dispose();
    if (ownsMask()) memMask!.dispose();
    disposeSlicedRunOptions(runOptions, options);
  }
  return out;
}

/** Run options with per-example LoRA factors gathered to the rows still decoding (others are batch-free). */
function compactRunOptions(o: RunOptions, take: <T extends tf.Tensor>(t: T) => T): RunOptions {
  if (!o.lora || o.lora.layout !== "perExample") return o;
  const modules = new Map([...o.lora.modules].map(([m, { A, B }]) => [m, { A: take(A), B: take(B) }]));
  return { ...o, lora: { ...o.lora, modules } };
}

/**
 * Log-likelihood of given targets: per-token log p [B, T] (0 at -100 labels), and per sequence the sum and
 * the token-averaged value (rank classification picks the answer with the highest average).
 */
export function scoreTargets(
  model: T5Model,
  inputIds: tf.Tensor2D,
  attentionMask: tf.Tensor2D | undefined,
  labels: number[][],
  options: RunOptions = {},
): TargetScores {
  const enc = encode(model, inputIds, attentionMask, options);
  const memMask = memoryMask(options, attentionMask, inputIds.shape[0], inputIds.shape[1]);
  try {
    return scoreEncoded(model, enc, memMask, labels, options);
  } finally {
    enc.dispose();
    if (memMask && memMask !== attentionMask) memMask.dispose();
  }
}

export interface TargetScores {
  tokenLogProbs: number[][];
  sum: number[];
  mean: number[];
}

export function scoreEncoded(model: T5Model, enc: tf.Tensor3D, memMask: tf.Tensor2D | undefined, labels: number[][], options: RunOptions): TargetScores {
  const c = model.config;
  /** Teacher-forced log p of rows [from, from + n), padded to their own longest label. */
  const score = (e: tf.Tensor3D, m: tf.Tensor2D | undefined, from: number, n: number): number[][] =>
    tf.tidy(() => {
      const o = n === labels.length ? options : sliceRunOptions(options, from, n);
      const rows = labels.slice(from, from + n);
      const t = Math.max(...rows.map((l) => l.length));
      const padded = rows.map((l) => [...l, ...new Array<number>(t - l.length).fill(-100)]);
      const decoderIds = padded.map((row) => [c.decoder_start_token_id, ...row.slice(0, -1)].map((id) => (id === -100 ? c.pad_token_id : id)));
      const { logits, cache } = decode(model, tf.tensor2d(decoderIds, undefined, "int32"), e, m, o);
      disposeCache(cache);
      return tokenLogProbs(logits, tf.tensor2d(padded, undefined, "int32")).arraySync();
    });
  // As encoding (encodeInChunks): a large batch is scored a chunk of rows at a time, each chunk padded to its
  // own longest reference rather than the batch's.
  const rows = labels.length;
  let values: number[][];
  if (rows <= ENCODE_CHUNK_ROWS || options.training === true) values = score(enc, memMask, 0, rows);
  else {
    values = [];
    for (let start = 0; start < rows; start += ENCODE_CHUNK_ROWS) {
      const n = Math.min(ENCODE_CHUNK_ROWS, rows - start);
      const e = tf.slice(enc, [start, 0, 0], [n, -1, -1]) as tf.Tensor3D;
      const m = memMask ? (tf.slice(memMask, [start, 0], [n, -1]) as tf.Tensor2D) : undefined;
      try {
        values.push(...score(e, m, start, n));
      } finally {
        tf.dispose(m ? [e, m] : [e]);
      }
    }
  }
  const sum = values.map((row, i) => row.slice(0, labels[i]!.length).reduce((a, x) => a + x, 0));
  const mean = sum.map((s, i) => s / Math.max(1, labels[i]!.length));
  return { tokenLogProbs: values.map((row, i) => row.slice(0, labels[i]!.length)), sum, mean };
}

/**
 * Greedy decoding and the teacher-forced scores of `labels` from one encoder pass (an evaluation wants both:
 * the generated text and the reference's NLL); the same values as greedyDecode and scoreTargets apart.
 */
export function generateAndScore(
  model: T5Model,
  inputIds: tf.Tensor2D,
  attentionMask: tf.Tensor2D | undefined,
  labels: number[][],
  options: GreedyOptions,
): { ids: number[][]; scores: TargetScores } {
  checkMaxNewTokens(options.maxNewTokens);
  const enc = timed(options.timing, "encodeMs", () => encodeInChunks(model, inputIds, attentionMask, options));
  const memMask = memoryMask(options, attentionMask, inputIds.shape[0], inputIds.shape[1]);
  let scores: TargetScores;
  try {
    scores = timed(options.timing, "scoreMs", () => scoreEncoded(model, enc, memMask, labels, options));
  } catch (e) {
    enc.dispose();
    if (memMask && memMask !== attentionMask) memMask.dispose();
    throw e;
  }
  return { ids: timed(options.timing, "decodeMs", () => decodeGreedy(model, enc, memMask, attentionMask, options)), scores };
}
