/**
 * Model sizes this project trains from scratch (no pretrained T5 can be downloaded here). Both use T5 v1.1 /
 * LM-adapt's architecture (gated-GELU, untied head, RMS norm, relative position buckets) and the real
 * 32,128-id T5 vocabulary, so the code paths are those of google/t5-base-lm-adapt, only narrower and
 * shallower. A user with a real checkpoint passes its folder instead of a preset.
 *
 * - tiny: d_model 64, 2+2 layers. Seconds per step; tests, CI and the README's end-to-end run.
 * - small: d_model 256, 4+4 layers, 4 heads of 64, d_ff 768: 24.3M parameters, 16.4M of them the two
 *   embedding matrices (7.9M in the blocks). About 2.7 s per optimizer step of 32 x 128 tokens here (~46
 *   GFLOP/s); the largest that lets the results grid (several methods x 3 seeds) finish in hours on 2 cores.
 *   Measured costs are in results/base/README.md.
 */
import { parseT5Config, type T5Config } from "./config";

export const MODEL_PRESETS = {
  tiny: {
    vocab_size: 32128,
    d_model: 64,
    d_kv: 16,
    d_ff: 128,
    num_layers: 2,
    num_decoder_layers: 2,
    num_heads: 4,
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: false,
    dropout_rate: 0.1,
  },
  small: {
    vocab_size: 32128,
    d_model: 256,
    d_kv: 64,
    d_ff: 768,
    num_layers: 4,
    num_decoder_layers: 4,
    num_heads: 4,
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: false,
    dropout_rate: 0.1,
  },
} as const;

export type ModelPreset = keyof typeof MODEL_PRESETS;

export function presetConfig(name: string): T5Config {
  const raw = (MODEL_PRESETS as Record<string, Record<string, unknown>>)[name];
  if (!raw) throw new Error(`unknown model preset '${name}' (presets: ${Object.keys(MODEL_PRESETS).join(", ")})`);
  return parseT5Config({ ...raw }, `preset ${name}`);
}

/** Parameter count of a config (embeddings included). */
export function countParameters(shapes: Map<string, number[]>): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}
