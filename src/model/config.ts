/**
 * T5 configuration with the field names of Hugging Face's `config.json`, so a checkpoint folder's config
 * reads as it is. Two families: T5 v1.1 / LM-adapt (gated-GELU FFN, untied lm_head) and the original T5
 * (ReLU FFN, tied embeddings with the d_model^-0.5 rescale).
 */
export type FeedForwardProj = "relu" | "gated-gelu";

export interface T5Config {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_decoder_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  dropout_rate: number;
  layer_norm_epsilon: number;
  feed_forward_proj: FeedForwardProj;
  tie_word_embeddings: boolean;
  pad_token_id: number;
  eos_token_id: number;
  decoder_start_token_id: number;
}

/** HF's defaults for fields a config.json may omit (transformers' T5Config). */
const DEFAULTS: Omit<T5Config, "vocab_size" | "d_model" | "d_kv" | "d_ff" | "num_layers" | "num_heads"> = {
  num_decoder_layers: -1, // = num_layers
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  dropout_rate: 0.1,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: "relu",
  tie_word_embeddings: true,
  pad_token_id: 0,
  eos_token_id: 1,
  decoder_start_token_id: 0,
};

/** Fields of HF's T5 config.json that change the computation and that this implementation does not support. */
const UNSUPPORTED: Record<string, (v: unknown) => string | null> = {
  is_encoder_decoder: (v) => (v === false ? "encoder-only / decoder-only T5 is not supported" : null),
  is_gated_act: () => null,
  dense_act_fn: (v) => (v === undefined || v === "relu" || v === "gelu_new" ? null : `dense_act_fn '${String(v)}' (supported: relu, gelu_new)`),
};

/**
 * Parses a config.json object: HF defaults for omitted fields, and one clear error listing every invalid or
 * unsupported value (keys HF uses for other purposes, such as `architectures`, are ignored).
 */
export function parseT5Config(raw: Record<string, unknown>, source = "config"): T5Config {
  const problems: string[] = [];
  const num = (key: string, fallback?: number, min = 1): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      problems.push(`${key}: expected a number, got ${JSON.stringify(raw[key])}`);
      return NaN;
    }
    if (v < min) problems.push(`${key}: must be >= ${min}, got ${v}`);
    return v;
  };
  const int = (key: string, fallback?: number, min = 1): number => {
    const v = num(key, fallback, min);
    if (Number.isFinite(v) && !Number.isInteger(v)) problems.push(`${key}: must be an integer, got ${v}`);
    return v;
  };
  let ffp = String(raw.feed_forward_proj ?? DEFAULTS.feed_forward_proj);
  if (ffp === "gated-gelu_new") ffp = "gated-gelu";
  if (ffp !== "relu" && ffp !== "gated-gelu") problems.push(`feed_forward_proj: '${ffp}' is not supported (relu, gated-gelu)`);
  for (const [key, check] of Object.entries(UNSUPPORTED)) {
    const msg = check(raw[key]);
    if (msg) problems.push(`${key}: ${msg}`);
  }
  const numLayers = int("num_layers");
  const cfg: T5Config = {
    vocab_size: int("vocab_size"),
    d_model: int("d_model"),
    d_kv: int("d_kv"),
    d_ff: int("d_ff"),
    num_layers: numLayers,
    num_decoder_layers: raw.num_decoder_layers == null ? numLayers : int("num_decoder_layers"),
    num_heads: int("num_heads"),
    relative_attention_num_buckets: int("relative_attention_num_buckets", DEFAULTS.relative_attention_num_buckets),
    relative_attention_max_distance: int("relative_attention_max_distance", DEFAULTS.relative_attention_max_distance),
    dropout_rate: num("dropout_rate", DEFAULTS.dropout_rate, 0),
    layer_norm_epsilon: num("layer_norm_epsilon", DEFAULTS.layer_norm_epsilon, 0),
    feed_forward_proj: ffp as FeedForwardProj,
    tie_word_embeddings: Boolean(raw.tie_word_embeddings ?? DEFAULTS.tie_word_embeddings),
    pad_token_id: int("pad_token_id", DEFAULTS.pad_token_id, 0),
    eos_token_id: int("eos_token_id", DEFAULTS.eos_token_id, 0),
    decoder_start_token_id: int("decoder_start_token_id", DEFAULTS.decoder_start_token_id, 0),
  };
  if (cfg.dropout_rate >= 1) problems.push(`dropout_rate: must be < 1, got ${cfg.dropout_rate}`);
  // Absurd sizes are refused here, before any allocation: a config.json is untrusted input, and a million
  // layers or a vocabulary of 10^12 would otherwise fail after gigabytes (or overflow the stack).
  for (const [key, max] of Object.entries(T5_LIMITS) as [keyof typeof T5_LIMITS, number][]) {
    const v = cfg[key];
    if (Number.isFinite(v) && v > max) problems.push(`${key}: ${v} is above the limit of ${max.toLocaleString("en-US")} (see T5_LIMITS in src/model/config.ts)`);
  }
  for (const key of ["pad_token_id", "eos_token_id", "decoder_start_token_id"] as const) {
    if (Number.isFinite(cfg[key]) && Number.isFinite(cfg.vocab_size) && cfg[key] >= cfg.vocab_size) problems.push(`${key}: ${cfg[key]} is not below vocab_size ${cfg.vocab_size}`);
  }
  if (!problems.length) {
    const largest = Math.max(cfg.vocab_size * cfg.d_model, cfg.d_ff * cfg.d_model, cfg.num_heads * cfg.d_kv * cfg.d_model);
    if (largest > MAX_TENSOR_ELEMENTS) {
      problems.push(`the largest weight matrix would hold ${largest.toExponential(2)} values, above the ${MAX_TENSOR_ELEMENTS.toExponential(2)} one JavaScript typed array can hold`);
    }
    const bytes = 4 * t5ParameterCount(cfg);
    if (bytes > MAX_MODEL_BYTES) {
      problems.push(`the model would need ${(bytes / 2 ** 30).toFixed(1)} GiB of float32 weights, above the ${(MAX_MODEL_BYTES / 2 ** 30).toFixed(0)} GiB limit (MAX_MODEL_BYTES)`);
    }
  }
  if (problems.length) throw new Error(`${source}: invalid T5 config:\n  - ${problems.join("\n  - ")}`);
  return cfg;
}

/**
 * Upper limits on config.json sizes, far above any released T5 (T5-11B / XXL: 24 layers, d_model 1024, d_ff
 * 65,536, 128 heads of d_kv 128; mT5: a 250,112-token vocabulary; byT5: 36 encoder layers).
 */
export const T5_LIMITS = {
  num_layers: 256,
  num_decoder_layers: 256,
  d_model: 65_536,
  d_ff: 1_048_576,
  d_kv: 4_096,
  num_heads: 1_024,
  vocab_size: 4_194_304,
  relative_attention_num_buckets: 4_096,
  relative_attention_max_distance: 1_048_576,
} as const;

/** One tensor's values must fit one typed array (2^31 - 1 elements keeps every index an int32). */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
/** Total float32 weight bytes accepted (64 GiB: T5-11B is 45 GB). */
export const MAX_MODEL_BYTES = 64 * 2 ** 30;

/** The number of parameters, in closed form (no shapes are built: the config may be absurd). */
export function t5ParameterCount(c: T5Config): number {
  const inner = c.num_heads * c.d_kv;
  const attn = 4 * inner * c.d_model;
  const ffn = (c.feed_forward_proj === "gated-gelu" ? 3 : 2) * c.d_ff * c.d_model;
  const bias = c.relative_attention_num_buckets * c.num_heads;
  const enc = c.num_layers * (attn + ffn + 2 * c.d_model) + bias + c.d_model;
  const dec = c.num_decoder_layers * (2 * attn + ffn + 3 * c.d_model) + bias + c.d_model;
  return c.vocab_size * c.d_model * (c.tie_word_embeddings ? 1 : 2) + enc + dec;
}

/** Every parameter of the model, by its Hugging Face name, with its PyTorch shape ([out, in] for linears). */
export function t5ParameterShapes(c: T5Config): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const inner = c.num_heads * c.d_kv;
  shapes.set("shared.weight", [c.vocab_size, c.d_model]);
  const attention = (prefix: string, withBias: boolean) => {
    shapes.set(`${prefix}.q.weight`, [inner, c.d_model]);
    shapes.set(`${prefix}.k.weight`, [inner, c.d_model]);
    shapes.set(`${prefix}.v.weight`, [inner, c.d_model]);
    shapes.set(`${prefix}.o.weight`, [c.d_model, inner]);
    if (withBias) shapes.set(`${prefix}.relative_attention_bias.weight`, [c.relative_attention_num_buckets, c.num_heads]);
  };
  const ffn = (prefix: string) => {
    if (c.feed_forward_proj === "gated-gelu") {
      shapes.set(`${prefix}.DenseReluDense.wi_0.weight`, [c.d_ff, c.d_model]);
      shapes.set(`${prefix}.DenseReluDense.wi_1.weight`, [c.d_ff, c.d_model]);
    } else {
      shapes.set(`${prefix}.DenseReluDense.wi.weight`, [c.d_ff, c.d_model]);
    }
    shapes.set(`${prefix}.DenseReluDense.wo.weight`, [c.d_model, c.d_ff]);
    shapes.set(`${prefix}.layer_norm.weight`, [c.d_model]);
  };
  for (let i = 0; i < c.num_layers; i++) {
    const p = `encoder.block.${i}`;
    attention(`${p}.layer.0.SelfAttention`, i === 0);
    shapes.set(`${p}.layer.0.layer_norm.weight`, [c.d_model]);
    ffn(`${p}.layer.1`);
  }
  shapes.set("encoder.final_layer_norm.weight", [c.d_model]);
  for (let i = 0; i < c.num_decoder_layers; i++) {
    const p = `decoder.block.${i}`;
    attention(`${p}.layer.0.SelfAttention`, i === 0);
    shapes.set(`${p}.layer.0.layer_norm.weight`, [c.d_model]);
    attention(`${p}.layer.1.EncDecAttention`, false);
    shapes.set(`${p}.layer.1.layer_norm.weight`, [c.d_model]);
    ffn(`${p}.layer.2`);
  }
  shapes.set("decoder.final_layer_norm.weight", [c.d_model]);
  if (!c.tie_word_embeddings) shapes.set("lm_head.weight", [c.vocab_size, c.d_model]);
  return shapes;
}

/**
 * Names a checkpoint may carry that are aliases of `shared.weight` (transformers saves the tied copies in
 * some versions); the loader accepts and drops them.
 */
export const TIED_ALIASES = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"] as const;
