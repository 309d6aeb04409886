/**
 * Instruction fusion (paper Eq. 1): the parameters of the cross-attention sublayer added to every encoder
 * layer, and the RunOptions that switch fusion on (see InstructionFusion in src/model/t5.ts for the
 * computation). The output projection starts at zero, so at initialisation the fused model computes exactly
 * what the base model computes and training moves away from it.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Config } from "../model/config";
import type { InstructionFusion } from "../model/t5";
import type { InstructionEncoding } from "./instruction-encoder";

export type FusionMode = "cross-attention" | "concatenate" | "cross-attention+concatenate" | "none";

/** Names and shapes of the fusion parameters ([out, in] for linear layers, as T5's). */
export function fusionParameterShapes(c: T5Config): Map<string, number[]> {
  const inner = c.num_heads * c.d_kv;
  const shapes = new Map<string, number[]>();
  for (let l = 0; l < c.num_layers; l++) {
    const p = `encoder.block.${l}.fusion`;
    shapes.set(`${p}.layer_norm.weight`, [c.d_model]);
    shapes.set(`${p}.CrossAttention.q.weight`, [inner, c.d_model]);
    shapes.set(`${p}.CrossAttention.k.weight`, [inner, c.d_model]);
    shapes.set(`${p}.CrossAttention.v.weight`, [inner, c.d_model]);
    shapes.set(`${p}.CrossAttention.o.weight`, [c.d_model, inner]);
  }
  return shapes;
}

/** Fresh fusion parameters: T5's attention init for q, k, v; o = 0 (identity at start); norm weights 1. */
export function initFusionParams(c: T5Config, seed: number): Map<string, tf.Tensor> {
  const params = new Map<string, tf.Tensor>();
  let i = 0;
  for (const [name, shape] of fusionParameterShapes(c)) {
    const s = seed * 7_919 + ++i; // never 0 (tfjs's randomNormal ignores a seed of 0)
    if (name.endsWith("layer_norm.weight")) params.set(name, tf.ones(shape));
    else if (name.endsWith(".o.weight")) params.set(name, tf.zeros(shape));
    else if (name.endsWith(".q.weight")) params.set(name, tf.randomNormal(shape, 0, (c.d_model * c.d_kv) ** -0.5, "float32", s));
    else params.set(name, tf.randomNormal(shape, 0, c.d_model ** -0.5, "float32", s));
  }
  return params;
}

/** The RunOptions.fusion value for a mode (undefined for "none"). */
export function instructionFusion(mode: FusionMode, encoding: InstructionEncoding, params: Map<string, tf.Tensor>): InstructionFusion | undefined {
  if (mode === "none") return undefined;
  const crossAttention = mode === "cross-attention" || mode === "cross-attention+concatenate";
  const concatenate = mode === "concatenate" || mode === "cross-attention+concatenate";
  if (crossAttention && params.size === 0) throw new Error(`instruction fusion "${mode}" needs the fusion parameters (initFusionParams)`);
  return { instruction: encoding.states, instructionMask: encoding.mask, crossAttention, concatenate, params };
}
