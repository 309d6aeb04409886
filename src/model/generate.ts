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
}

/**
 * Greedy decoding, as HF's generate(do_sample=False, num_beams=1): returns ids [B, 1 + steps] starting with
 * decoder_start_token_id; a sequence that emitted EOS is padded with pad_token_id afterwards; decoding stops
 * when every sequence has finished or after maxNewTokens.
 */
export function greedyDecode(model: T5Model, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | undefined, options: GreedyOptions): number[][] {
  const { maxNewTokens } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`greedyDecode: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const c = model.config;
  const b = inputIds.shape[0];
  const out = Array.from({ length: b }, () => [c.decoder_start_token_id]);
  const finished = new Array<boolean>(b).fill(false);
  const enc = encode(model, inputIds, attentionMask, options);
  const memMask = memoryMask(options, attentionMask, b, inputIds.shape[1]);
  let cache: DecoderCache | undefined;
  try {
    let next = out.map((row) => row[row.length - 1]!);
    for (let step = 0; step < maxNewTokens && finished.some((f) => !f); step++) {
      const ids = tf.tensor2d(next, [b, 1], "int32");
      const { logits, cache: extended } = decode(model, ids, enc, memMask, options, cache);
      ids.dispose();
      if (cache) for (const e of cache.self) tf.dispose([e.k, e.v]); // cross entries are carried over
      cache = extended;
      const argmax = tf.tidy(() => tf.argMax(tf.reshape(logits, [b, c.vocab_size]), -1));
      const chosen = argmax.dataSync();
      tf.dispose([logits, argmax]);
      next = [];
      for (let i = 0; i < b; i++) {
        const id = finished[i] ? c.pad_token_id : chosen[i]!;
        out[i]!.push(id);
        if (id === c.eos_token_id && !options.ignoreEos) finished[i] = true;
        next.push(id);
      }
    }
  } finally {
    if (cache) disposeCache(cache);
    enc.dispose();
    if (memMask && memMask !== attentionMask) memMask.dispose();
  }
  return out;
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
): { tokenLogProbs: number[][]; sum: number[]; mean: number[] } {
  const c = model.config;
  const t = Math.max(...labels.map((l) => l.length));
  const padded = labels.map((l) => [...l, ...new Array<number>(t - l.length).fill(-100)]);
  const decoderIds = padded.map((row) => [c.decoder_start_token_id, ...row.slice(0, -1)].map((id) => (id === -100 ? c.pad_token_id : id)));
  const values = tf.tidy(() => {
    const enc = encode(model, inputIds, attentionMask, options);
    const dec = tf.tensor2d(decoderIds, undefined, "int32");
    const { logits, cache } = decode(model, dec, enc, memoryMask(options, attentionMask, inputIds.shape[0], inputIds.shape[1]), options);
    disposeCache(cache);
    return tokenLogProbs(logits, tf.tensor2d(padded, undefined, "int32")).arraySync();
  });
  const sum = values.map((row) => row.reduce((a, x) => a + x, 0));
  const mean = sum.map((s, i) => s / Math.max(1, labels[i]!.length));
  return { tokenLogProbs: values.map((row, i) => row.slice(0, labels[i]!.length)), sum, mean };
}
