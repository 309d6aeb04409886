/**
 * Random initialisation of a T5 from its config, as Hugging Face's T5PreTrainedModel._init_weights does
 * (factor 1.0): embeddings N(0, 1), q N(0, (d_model·d_kv)^-0.5), k and v N(0, d_model^-0.5), o N(0, (H·d_kv)^-0.5),
 * wi N(0, d_model^-0.5), wo N(0, d_ff^-0.5), relative position bias N(0, d_model^-0.5), layer norms 1 —
 * with one deliberate difference: an untied lm_head gets N(0, d_model^-0.5), not HF's N(0, 1).
 *
 * Why: with HF's N(0, 1) head the initial logits have a standard deviation of ~√d_model (~23 at d_model 512),
 * so the output softmax underflows to subnormal floats for almost every vocabulary entry. Subnormal
 * arithmetic runs 10-30x slower on x86 (wasm cannot flush them to zero), and the first thousands of steps of
 * a from-scratch pretraining crawl. d_model^-0.5 matches the scale the tied (original T5) head gets from its
 * rescale. Pass { hfLmHead: true } for HF's exact init.
 */
import * as tf from "@tensorflow/tfjs-core";
import { t5ParameterShapes, type T5Config } from "./config";

export function initT5Params(config: T5Config, seed = 0, options: { hfLmHead?: boolean } = {}): Map<string, tf.Tensor> {
  const c = config;
  const params = new Map<string, tf.Tensor>();
  let i = 0;
  for (const [name, shape] of t5ParameterShapes(c)) {
    // +1: tfjs's randomNormal treats a seed of 0 as "no seed" (Math.random), so seed 0 would not repeat.
    const s = seed * 100_003 + i++ + 1;
    let std: number;
    if (name.endsWith("layer_norm.weight")) {
      params.set(name, tf.ones(shape));
      continue;
    } else if (name === "shared.weight") std = 1;
    else if (name === "lm_head.weight") std = options.hfLmHead ? 1 : c.d_model ** -0.5;
    else if (name.endsWith(".q.weight")) std = (c.d_model * c.d_kv) ** -0.5;
    else if (name.endsWith(".k.weight") || name.endsWith(".v.weight")) std = c.d_model ** -0.5;
    else if (name.endsWith(".o.weight")) std = (c.num_heads * c.d_kv) ** -0.5;
    else if (name.endsWith("relative_attention_bias.weight")) std = c.d_model ** -0.5;
    else if (name.includes(".wi")) std = c.d_model ** -0.5;
    else if (name.endsWith(".wo.weight")) std = c.d_ff ** -0.5;
    else throw new Error(`initT5Params: no init rule for ${name}`);
    params.set(name, tf.randomNormal(shape, 0, std, "float32", s));
  }
  return params;
}
