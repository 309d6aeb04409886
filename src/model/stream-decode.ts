/**
 * Continuous batching for greedy decoding: a queue of inputs decoded `batchSize` rows at a time, each row
 * leaving at EOS (or after maxNewTokens) and the freed rows refilled from the queue.
 *
 * Why: the full SNI-103 Def + 2 Pos evaluation of the small model (1024 input / 128 new tokens) spent 9.5 of
 * its 14.5 minutes decoding at 11.6 rows per step of 64 (results/eval/sni103-def2pos-small-metatrain-1024-128):
 * in each batch a few rows never emit EOS and run all 128 steps after the others have left. Refilling keeps
 * the batch full, so a step's fixed cost is shared by batchSize rows instead of a dozen.
 *
 * How a joining row fits into a running batch:
 * - self-attention: T5's decoder bias depends only on key - query, so a row that joins when the batch's
 *   key/value cache has L slots is left-padded to them with masked slots (DecoderCache.selfMask) and decodes
 *   as it would alone;
 * - cross-attention: its keys/values are padded with masked columns to the batch's memory width (T5's
 *   cross-attention has no position bias, so masked columns change nothing);
 * - slots before every active row's first token, and memory columns past every active row's last, are
 *   trimmed as rows leave.
 * Rows admitted together are encoded in one call (and their references scored from that encoder output, as
 * generateAndScore does); their first step runs on its own, and they join the batch for the next.
 */
import * as tf from "@tensorflow/tfjs-core";
import { disposeSlicedRunOptions, encodeInChunks, ENCODE_CHUNK_ROWS, scoreEncoded, sliceRunOptions, timed, type GenerationTiming, type TargetScores } from "./generate";
import type { LoraAdapter } from "./lora";
import { decode, disposeCache, memoryMask, type DecoderCache, type RunOptions, type T5Model } from "./t5";

export interface StreamDecodeOptions {
  /** New tokens per row at most (HF's max_new_tokens). */
  maxNewTokens: number;
  /** Rows decoded at once; the batch is refilled as rows finish. */
  batchSize: number;
  /**
   * Rows admitted together once the batch has that much room (one encoder call). Default: a quarter of the
   * batch, at most ENCODE_CHUNK_ROWS (16 of 64); as large as the batch it would refill only an empty batch.
   */
  admitRows?: number;
  /**
   * Run options for batchSize rows. Batch-shaped parts (per-example LoRA factors, the fusion's instruction)
   * must hold the same values on every row, as one task's options do (evaluateSni's per-task runOptions): rows
   * are taken from the front, and the decoder applies row 0's adapter to the whole batch.
   */
  runOptions?: RunOptions;
  /** References scored under teacher forcing from the same encoder pass, one per input (the reference NLL). */
  labels?: number[][];
  timing?: GenerationTiming;
  /** Called as rows finish, with how many have finished so far. */
  onProgress?: (finished: number) => void;
}

export interface StreamDecodeResult {
  /** Per input: decoder_start_token_id, then the generated ids (EOS included when emitted), unpadded. */
  ids: number[][];
  /** The references' scores (as scoreTargets), or null without labels. */
  scores: TargetScores | null;
}

interface Row {
  /** Index of the input. */
  seq: number;
  /** Self-attention slot of its first token. */
  start: number;
  /** Memory columns up to its last valid one. */
  memLen: number;
  /** Finished, still in the batch until the next compaction (its tokens are computed and ignored). */
  done?: boolean;
}

interface Batch {
  rows: Row[];
  self: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  selfMask: tf.Tensor2D;
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  memMask: tf.Tensor2D;
}

export async function streamGreedy(model: T5Model, inputs: readonly number[][], o: StreamDecodeOptions): Promise<StreamDecodeResult> {
  const c = model.config;
  const { maxNewTokens, batchSize } = o;
  const admitRows = o.admitRows ?? Math.max(1, Math.min(ENCODE_CHUNK_ROWS, Math.floor(batchSize / 4)));
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`streamGreedy: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`streamGreedy: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(admitRows) || admitRows < 1) throw new Error(`streamGreedy: admitRows must be a positive integer, got ${admitRows}`);
  if (o.labels && o.labels.length !== inputs.length) throw new Error(`streamGreedy: ${o.labels.length} label rows for ${inputs.length} inputs`);
  inputs.forEach((ids, i) => {
    if (ids.length === 0) throw new Error(`streamGreedy: input ${i} is empty`);
  });
  const base = o.runOptions ?? {};
  const optionRows = [...(base.lora?.layout === "perExample" ? [...base.lora.modules.values()].map((m) => m.A.shape[0]!) : []), ...(base.fusion ? [base.fusion.instruction.shape[0]] : [])];
  if (optionRows.some((r) => r < Math.min(batchSize, inputs.length)))
    throw new Error(`streamGreedy: the run options hold ${Math.min(...optionRows)} rows (per-example adapter / instruction encoding), fewer than batchSize ${batchSize}`);
  const out = inputs.map(() => [c.decoder_start_token_id]);
  const scored: TargetScores | null = o.labels ? { tokenLogProbs: [], sum: [], mean: [] } : null;
  const decodeOptions = rowInvariant(base);
  let batch: Batch | null = null;
  let next = 0;
  let finished = 0;

  /** Appends each row's chosen token; returns the indices of the rows still decoding. */
  const advance = (seqs: readonly number[], chosen: ArrayLike<number>): number[] => {
    const keep: number[] = [];
    seqs.forEach((seq, i) => {
      const t = chosen[i]!;
      out[seq]!.push(t);
      if (t === c.eos_token_id || out[seq]!.length - 1 >= maxNewTokens) finished++;
      else keep.push(i);
    });
    if (keep.length < seqs.length) o.onProgress?.(finished);
    return keep;
  };

  const argmax = (logits: tf.Tensor3D): Int32Array | Float32Array | Uint8Array => {
    const [n] = logits.shape;
    const a = tf.tidy(() => tf.argMax(tf.reshape(logits, [n, c.vocab_size]), -1));
    const v = a.dataSync();
    tf.dispose([a, logits]);
    return v;
  };

  /**
   * One step of the batch. Finished rows stay, ignored, until a quarter of the batch or admitRows have
   * finished: every compaction copies the whole cache (the cross-attention keys/values dominate), which costs
   * about as much as a step, so compacting whenever any row finishes (nearly every step of a full batch)
   * would double the decoding time.
   */
  const step = (b: Batch): Batch | null => {
    const n = b.rows.length;
    if (o.timing) {
      o.timing.steps++;
      o.timing.rowSteps += n;
    }
    const chosen = timed(o.timing, "decodeMs", () => {
      const ids = tf.tensor2d(b.rows.map((r) => (r.done ? c.pad_token_id : out[r.seq]!.at(-1)!)), [n, 1], "int32");
      const cache: DecoderCache = { self: b.self, cross: b.cross, selfMask: b.selfMask };
      const { logits, cache: extended } = decode(model, ids, null, b.memMask, decodeOptions, cache);
      ids.dispose();
      for (const e of b.self) tf.dispose([e.k, e.v]); // cross entries are carried over
      b.selfMask.dispose();
      b.self = extended.self;
      b.selfMask = extended.selfMask!;
      return argmax(logits);
    });
    const liveAt = b.rows.flatMap((r, i) => (r.done ? [] : [i]));
    const keep = new Set(advance(liveAt.map((i) => b.rows[i]!.seq), liveAt.map((i) => chosen[i]!)).map((j) => liveAt[j]!));
    b.rows.forEach((r, i) => {
      if (!keep.has(i)) r.done = true;
    });
    const dead = n - keep.size;
    return dead >= Math.min(admitRows, batchSize) || 4 * dead >= n ? timed(o.timing, "decodeMs", () => compact(b)) : b;
  };

  /** Encodes the next k inputs, scores their references, runs their first step and adds the survivors. */
  const admit = (b: Batch | null, k: number): Batch | null => {
    const seqs = Array.from({ length: k }, (_, i) => next + i);
    next += k;
    const width = Math.max(...seqs.map((s) => inputs[s]!.length));
    const ids = tf.tensor2d(seqs.map((s) => [...inputs[s]!, ...new Array<number>(width - inputs[s]!.length).fill(c.pad_token_id)]), [k, width], "int32");
    const mask = tf.tensor2d(seqs.map((s) => Array.from({ length: width }, (_, j) => (j < inputs[s]!.length ? 1 : 0))), [k, width], "int32");
    const ro = sliceRunOptions(base, 0, k);
    let mem: tf.Tensor2D | undefined;
    try {
      const enc = timed(o.timing, "encodeMs", () => encodeInChunks(model, ids, mask, ro));
      let first: { logits: tf.Tensor3D; cache: DecoderCache };
      try {
        mem = memoryMask(ro, mask, k, width) ?? mask;
        const m = mem;
        if (scored) {
          const s = timed(o.timing, "scoreMs", () => scoreEncoded(model, enc, m, seqs.map((q) => o.labels![q]!), ro));
          for (let i = 0; i < k; i++) {
            scored.tokenLogProbs[seqs[i]!] = s.tokenLogProbs[i]!;
            scored.sum[seqs[i]!] = s.sum[i]!;
            scored.mean[seqs[i]!] = s.mean[i]!;
          }
        }
        if (maxNewTokens === 0) {
          finished += k;
          o.onProgress?.(finished);
          return b;
        }
        if (o.timing) {
          o.timing.steps++;
          o.timing.rowSteps += k;
        }
        first = timed(o.timing, "decodeMs", () => {
          const start = tf.fill([k, 1], c.decoder_start_token_id, "int32") as tf.Tensor2D;
          try {
            return decode(model, start, enc, m, decodeOptions);
          } finally {
            start.dispose();
          }
        });
      } finally {
        enc.dispose();
      }
      const memLens = (mem.arraySync() as number[][]).map((row) => row.lastIndexOf(1) + 1);
      const keep = timed(o.timing, "decodeMs", () => advance(seqs, argmax(first.logits)));
      const fresh: Batch = {
        rows: seqs.map((seq, i) => ({ seq, start: 0, memLen: memLens[i]! })),
        self: first.cache.self,
        selfMask: tf.ones([k, 1], "int32"),
        cross: first.cache.cross,
        memMask: mem === mask ? (tf.clone(mask) as tf.Tensor2D) : mem,
      };
      mem = undefined; // owned by `fresh` now
      return timed(o.timing, "decodeMs", () => merge(b, keepRows(fresh, keep)));
    } finally {
      if (mem && mem !== mask) mem.dispose();
      tf.dispose([ids, mask]);
      disposeSlicedRunOptions(ro, base);
    }
  };

  try {
    while (next < inputs.length || batch) {
      if (batch) batch = step(batch);
      const room = batchSize - (batch?.rows.filter((r) => !r.done).length ?? 0);
      if (next < inputs.length && (room >= Math.min(admitRows, batchSize) || !batch)) {
        if (batch) batch = timed(o.timing, "decodeMs", () => compact(batch!));
        batch = admit(batch, Math.min(room, inputs.length - next));
        await new Promise<void>((r) => setImmediate(r)); // let a progress bar draw
      }
    }
  } finally {
    if (batch) disposeBatch(batch);
    if (decodeOptions !== base) for (const { A, B } of decodeOptions.lora!.modules.values()) tf.dispose([A, B]);
  }
  return { ids: out, scores: scored };
}

/**
 * The decoder's options with row 0's per-example adapter as one shared adapter (PEFT layout), so that a batch
 * of any size reads it without copies per row. The decoder reads nothing else batch-shaped (the instruction
 * fusion acts in the encoder).
 */
function rowInvariant(o: RunOptions): RunOptions {
  if (o.lora?.layout !== "perExample") return o;
  const modules: LoraAdapter["modules"] = new Map();
  for (const [m, { A, B }] of o.lora.modules) {
    // per example: A [batch, in, r], B [batch, r, out]; PEFT: A [r, in], B [out, r]
    modules.set(m, tf.tidy(() => ({ A: tf.transpose(tf.squeeze(tf.slice(A, [0, 0, 0], [1, -1, -1]), [0])), B: tf.transpose(tf.squeeze(tf.slice(B, [0, 0, 0], [1, -1, -1]), [0])) })));
  }
  return { ...o, lora: { ...o.lora, layout: "peft", modules } };
}

/** The batch without its finished rows (null when none is left). Takes b over. */
function compact(b: Batch): Batch | null {
  return keepRows(
    b,
    b.rows.flatMap((r, i) => (r.done ? [] : [i])),
  );
}

/** The batch restricted to rows `keep` (indices into b.rows), trimmed; null when none is left. Takes b over. */
function keepRows(b: Batch, keep: readonly number[]): Batch | null {
  if (keep.length === b.rows.length) return trim(b);
  if (keep.length === 0) {
    disposeBatch(b);
    return null;
  }
  const idx = tf.tensor1d(keep as number[], "int32");
  const take = <T extends tf.Tensor>(t: T): T => tf.gather(t, idx, 0) as T;
  const kept: Batch = {
    rows: keep.map((i) => b.rows[i]!),
    self: b.self.map((e) => ({ k: take(e.k), v: take(e.v) })),
    selfMask: take(b.selfMask),
    cross: b.cross.map((e) => ({ k: take(e.k), v: take(e.v) })),
    memMask: take(b.memMask),
  };
  idx.dispose();
  disposeBatch(b);
  return trim(kept);
}

/** Drops self-attention slots before every row's first token and memory columns past every row's last. */
function trim(b: Batch): Batch {
  /** [from, to) of t along axis; t is disposed. */
  const cut = <T extends tf.Tensor>(t: T, axis: number, from: number, to: number): T => {
    const r = tf.slice(
      t,
      t.shape.map((_, i) => (i === axis ? from : 0)),
      t.shape.map((_, i) => (i === axis ? to - from : -1)),
    ) as T;
    t.dispose();
    return r;
  };
  const from = Math.min(...b.rows.map((r) => r.start));
  const slots = b.selfMask.shape[1];
  if (from > 0) {
    b.self = b.self.map((e) => ({ k: cut(e.k, 2, from, slots), v: cut(e.v, 2, from, slots) }));
    b.selfMask = cut(b.selfMask, 1, from, slots);
    b.rows = b.rows.map((r) => ({ ...r, start: r.start - from }));
  }
  const used = Math.max(...b.rows.map((r) => r.memLen));
  if (used < b.memMask.shape[1]) {
    b.cross = b.cross.map((e) => ({ k: cut(e.k, 2, 0, used), v: cut(e.v, 2, 0, used) }));
    b.memMask = cut(b.memMask, 1, 0, used);
  }
  return b;
}

/** The rows of `fresh` (one self-attention slot each) appended to the running batch `b`. Takes both over. */
function merge(b: Batch | null, fresh: Batch | null): Batch | null {
  if (!b || !fresh) return b ?? fresh;
  const slots = b.selfMask.shape[1];
  const width = Math.max(b.memMask.shape[1], fresh.memMask.shape[1]);
  const padRight = <T extends tf.Tensor>(t: T, axis: number, to: number): T =>
    t.shape[axis] === to ? t : (tf.pad(t, t.shape.map((n, i) => (i === axis ? [0, to - n] : [0, 0])) as [number, number][]) as T);
  const padLeft = <T extends tf.Tensor>(t: T, axis: number, by: number): T => (by === 0 ? t : (tf.pad(t, t.shape.map((_, i) => (i === axis ? [by, 0] : [0, 0])) as [number, number][]) as T));
  const joined = tf.tidy(() => ({
    self: b.self.map((e, l) => ({ k: tf.concat([e.k, padLeft(fresh.self[l]!.k, 2, slots - 1)], 0) as tf.Tensor4D, v: tf.concat([e.v, padLeft(fresh.self[l]!.v, 2, slots - 1)], 0) as tf.Tensor4D })),
    selfMask: tf.concat([b.selfMask, padLeft(fresh.selfMask, 1, slots - 1)], 0) as tf.Tensor2D,
    cross: b.cross.map((e, l) => ({
      k: tf.concat([padRight(e.k, 2, width), padRight(fresh.cross[l]!.k, 2, width)], 0) as tf.Tensor4D,
      v: tf.concat([padRight(e.v, 2, width), padRight(fresh.cross[l]!.v, 2, width)], 0) as tf.Tensor4D,
    })),
    memMask: tf.concat([padRight(b.memMask, 1, width), padRight(fresh.memMask, 1, width)], 0) as tf.Tensor2D,
  }));
  const rows = [...b.rows, ...fresh.rows.map((r) => ({ ...r, start: r.start + slots - 1 }))];
  disposeBatch(b);
  disposeBatch(fresh);
  return { rows, ...joined };
}

function disposeBatch(b: Batch): void {
  disposeCache({ self: b.self, cross: b.cross, selfMask: b.selfMask });
  b.memMask.dispose();
}
