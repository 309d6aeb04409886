/**
 * FLOPs accounting: matrix-product FLOPs (2 per multiply-add) of T5 passes, counted from the config and
 * the shapes. Elementwise work, softmax and norms are not counted (they are memory-bound and small in FLOPs),
 * so "achieved GFLOP/s" figures are matMul FLOPs over wall time, the usual convention.
 */
import type { T5Config } from "../model/config";

export interface T5PassShape {
  batch: number;
  inputLength: number;
  targetLength: number;
}

/** Forward matMul FLOPs of a teacher-forced T5 pass (encoder + decoder + lm_head). */
export function t5ForwardFlops(c: T5Config, s: T5PassShape): number {
  const inner = c.num_heads * c.d_kv;
  const ne = s.batch * s.inputLength;
  const nd = s.batch * s.targetLength;
  const ffnMats = c.feed_forward_proj === "gated-gelu" ? 3 : 2;
  const ffn = (n: number) => ffnMats * 2 * n * c.d_model * c.d_ff;
  const enc = c.num_layers * (4 * 2 * ne * c.d_model * inner + 2 * 2 * s.batch * c.num_heads * s.inputLength ** 2 * c.d_kv + ffn(ne));
  const dec =
    c.num_decoder_layers *
    (4 * 2 * nd * c.d_model * inner + // self q k v o
      2 * 2 * s.batch * c.num_heads * s.targetLength ** 2 * c.d_kv + // self scores and mix
      2 * 2 * nd * c.d_model * inner + // cross q o
      2 * 2 * ne * c.d_model * inner + // cross k v over the encoder output
      2 * 2 * s.batch * c.num_heads * s.targetLength * s.inputLength * c.d_kv + // cross scores and mix
      ffn(nd));
  return enc + dec + 2 * nd * c.d_model * c.vocab_size;
}

/** Forward + backward (gradients for activations and all weights): 3x the forward products. */
export function t5TrainStepFlops(c: T5Config, s: T5PassShape): number {
  return 3 * t5ForwardFlops(c, s);
}

/** Forward matMul FLOPs of the encoder over `length` tokens per sequence. */
export function t5EncoderFlops(c: T5Config, batch: number, length: number): number {
  const inner = c.num_heads * c.d_kv;
  const n = batch * length;
  const ffnMats = c.feed_forward_proj === "gated-gelu" ? 3 : 2;
  return c.num_layers * (4 * 2 * n * c.d_model * inner + 2 * 2 * batch * c.num_heads * length ** 2 * c.d_kv + ffnMats * 2 * n * c.d_model * c.d_ff);
}

/**
 * Forward matMul FLOPs of the decoder (and lm_head) over `targetLength` tokens attending to a memory of
 * `memoryLength` positions, of which the keys and values of `cachedMemory` positions are already computed
 * (e.g. an instruction's, once per task) and not counted.
 */
export function t5DecoderFlops(c: T5Config, batch: number, targetLength: number, memoryLength: number, cachedMemory = 0): number {
  const inner = c.num_heads * c.d_kv;
  const nd = batch * targetLength;
  const ffnMats = c.feed_forward_proj === "gated-gelu" ? 3 : 2;
  return (
    c.num_decoder_layers *
      (4 * 2 * nd * c.d_model * inner +
        2 * 2 * batch * c.num_heads * targetLength ** 2 * c.d_kv +
        2 * 2 * nd * c.d_model * inner +
        2 * 2 * batch * (memoryLength - cachedMemory) * c.d_model * inner +
        2 * 2 * batch * c.num_heads * targetLength * memoryLength * c.d_kv +
        ffnMats * 2 * nd * c.d_model * c.d_ff) +
    2 * nd * c.d_model * c.vocab_size
  );
}
