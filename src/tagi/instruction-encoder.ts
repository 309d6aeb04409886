/**
 * The instruction encoder (paper §3.2): the base model's own frozen encoder reads the instruction (the task
 * definition, plus two positive examples in "Def + 2 Pos") into I_x [B, S, d]; a pooled vector feeds the
 * hypernetwork.
 *
 * Pooling: "mean" (default) averages the last layer's states over non-padding tokens; "first-last" is the
 * official code's: the mean over all S positions, padding included, of (embedding output + last layer) / 2 —
 * HF's hidden_states[0] and hidden_states[-1].
 */
import * as tf from "@tensorflow/tfjs-core";
import { encode, type T5Model } from "../model/t5";
import type { T5Tokenizer } from "../text/tokenizer";
import { truncateIds } from "../data/instances";

export type Pooling = "mean" | "first-last";

export interface InstructionEncoding {
  /** I_x: last-layer states [B, S, d_model]. */
  states: tf.Tensor3D;
  /** 1 on tokens, 0 on padding [B, S] (int32). */
  mask: tf.Tensor2D;
  /** The pooled instruction [B, d_model]. */
  pooled: tf.Tensor2D;
}

export function disposeEncoding(e: InstructionEncoding): void {
  tf.dispose([e.states, e.mask, e.pooled]);
}

/**
 * Token ids of instructions, right-padded, with a clear error for an empty or whitespace-only instruction and
 * a warning (via `onTruncate`) when one is longer than `maxTokens` and is cut.
 */
export function tokenizeInstructions(
  tokenizer: T5Tokenizer,
  instructions: readonly string[],
  maxTokens: number,
  onTruncate: (index: number, length: number) => void = (i, n) => console.warn(`[tagi] instruction ${i} has ${n} tokens; truncated to ${maxTokens}`),
): { ids: number[][]; mask: number[][] } {
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new Error(`instruction encoder: maxTokens must be an integer >= 2, got ${maxTokens}`);
  const rows = instructions.map((text, i) => {
    if (typeof text !== "string" || !text.trim()) throw new Error(`instruction encoder: instruction ${i} is empty or whitespace; a task needs an instruction to generate its adapter`);
    const ids = tokenizer.encode(text);
    if (ids.length > maxTokens) onTruncate(i, ids.length);
    return truncateIds(ids, maxTokens, tokenizer.eosId);
  });
  const len = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...r, ...Array<number>(len - r.length).fill(tokenizer.padId)]),
    mask: rows.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(len - r.length).fill(0)]),
  };
}

/** Encodes instruction ids [B, S] with the model's encoder (no adapter, no dropout) and pools them. */
export function encodeInstruction(model: T5Model, inputIds: tf.Tensor2D, mask: tf.Tensor2D, pooling: Pooling = "mean"): InstructionEncoding {
  if (pooling !== "mean" && pooling !== "first-last") throw new Error(`instruction encoder: pooling must be "mean" or "first-last", got ${String(pooling)}`);
  const states = encode(model, inputIds, mask);
  const pooled = tf.tidy(() => {
    if (pooling === "mean") {
      const m = tf.expandDims(tf.cast(mask, "float32"), -1);
      return tf.div(tf.sum(tf.mul(states, m), 1), tf.maximum(tf.sum(m, 1), 1)) as tf.Tensor2D;
    }
    const [b, s] = inputIds.shape;
    const emb = tf.reshape(tf.gather(model.params.get("shared.weight")!, tf.reshape(inputIds, [b * s])), [b, s, model.config.d_model]);
    return tf.mean(tf.div(tf.add(emb, states), 2), 1) as tf.Tensor2D;
  });
  return { states, mask: tf.cast(mask, "int32") as tf.Tensor2D, pooled };
}
