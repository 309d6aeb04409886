/**
 * LoRA on T5's linear layers, in the two forms TAGI needs.
 *
 * - "peft": one adapter for the whole batch, PEFT's layout (lora_A.weight [r, in], lora_B.weight [out, r]):
 *   the instance-trained teacher adapters, trainable as variables, saved as PEFT files.
 * - "perExample": one adapter per example, A [batch, in, r] and B [batch, r, out], applied as x·A·B without
 *   merging: how generated adapters are used. A and B are ordinary tensors, so gradients flow back into
 *   whatever produced them (the hypernetwork).
 * Either way the output is W0·x + scaling · B(A(dropout(x))), scaling = alpha / r, as PEFT computes it.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Config } from "./config";
import { t5ParameterShapes } from "./config";

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  /** Module names matched as PEFT does: the full path or its last component (default q and v). */
  targetModules: string[];
}

export const DEFAULT_LORA: LoraConfig = { r: 32, alpha: 32, dropout: 0, targetModules: ["q", "v"] };

export interface LoraAdapter {
  layout: "peft" | "perExample";
  scaling: number;
  dropout: number;
  /** Keyed by module path, e.g. "decoder.block.1.layer.1.EncDecAttention.v". */
  modules: Map<string, { A: tf.Tensor; B: tf.Tensor }>;
}

/** Linear modules (weight names without ".weight") that a target list selects, in checkpoint order. */
export function loraTargets(config: T5Config, targetModules: string[]): string[] {
  const linear = [...t5ParameterShapes(config).entries()]
    .filter(([name, shape]) => shape.length === 2 && name.endsWith(".weight") && !name.includes("relative_attention_bias") && name !== "shared.weight")
    .map(([name]) => name.slice(0, -".weight".length));
  const selected = linear.filter((m) => targetModules.some((t) => m === t || m.endsWith(`.${t}`)));
  if (selected.length === 0) throw new Error(`LoRA: target modules [${targetModules.join(", ")}] match no linear layer of this T5`);
  return selected;
}

export function validateLoraConfig(c: LoraConfig): void {
  const problems: string[] = [];
  if (!Number.isInteger(c.r) || c.r < 1) problems.push(`r must be a positive integer, got ${c.r}`);
  if (!(c.alpha > 0)) problems.push(`alpha must be > 0, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${c.dropout}`);
  if (c.targetModules.length === 0) problems.push("targetModules is empty");
  if (problems.length) throw new Error(`invalid LoRA config: ${problems.join("; ")}`);
}

/**
 * Trainable teacher adapters (PEFT layout and init: A ~ U(-1/sqrt(in), 1/sqrt(in)) as kaiming_uniform(a=√5),
 * B = 0, so training starts from the base model's function).
 */
export function createLoraVariables(config: T5Config, lora: LoraConfig, seed = 0): LoraAdapter {
  validateLoraConfig(lora);
  const shapes = t5ParameterShapes(config);
  const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  loraTargets(config, lora.targetModules).forEach((m, i) => {
    const [out, inn] = shapes.get(`${m}.weight`)!;
    const bound = 1 / Math.sqrt(inn!);
    modules.set(m, {
      A: tf.tidy(() => tf.variable(tf.randomUniform([lora.r, inn!], -bound, bound, "float32", seed * 1000 + i), true)),
      B: tf.tidy(() => tf.variable(tf.zeros([out!, lora.r]), true)),
    });
  });
  return { layout: "peft", scaling: lora.alpha / lora.r, dropout: lora.dropout, modules };
}

/**
 * The LoRA term for a linear layer applied to x [batch*time, in], or null when the module has no adapter.
 * `dropout` is the caller's dropout function (identity at inference).
 */
export function loraDelta(
  adapter: LoraAdapter | undefined,
  module: string,
  x: tf.Tensor2D,
  batch: number,
  dropout: (t: tf.Tensor) => tf.Tensor,
): tf.Tensor2D | null {
  const m = adapter?.modules.get(module);
  if (!adapter || !m) return null;
  const xd = adapter.dropout > 0 ? (dropout(x) as tf.Tensor2D) : x;
  if (adapter.layout === "peft") {
    return tf.mul(tf.matMul(tf.matMul(xd, m.A as tf.Tensor2D, false, true), m.B as tf.Tensor2D, false, true), adapter.scaling) as tf.Tensor2D;
  }
  const [n, inn] = x.shape;
  const x3 = tf.reshape(xd, [batch, n / batch, inn]) as tf.Tensor3D;
  const y = tf.matMul(tf.matMul(x3, m.A as tf.Tensor3D), m.B as tf.Tensor3D);
  return tf.reshape(tf.mul(y, adapter.scaling), [n, y.shape[2]!]) as tf.Tensor2D;
}

/**
 * The same adapter repeated for each of `batch` examples, in the per-example layout (A [B,in,r], B [B,r,out]):
 * what a hypernetwork produces, built from a shared PEFT-layout adapter (for comparisons and baselines such as
 * the mean teacher adapter). New tensors; the caller disposes them.
 */
export function toPerExample(adapter: LoraAdapter, batch: number): LoraAdapter {
  if (adapter.layout !== "peft") throw new Error("toPerExample: the adapter is already per-example");
  const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  for (const [m, { A, B }] of adapter.modules) {
    modules.set(m, {
      A: tf.tidy(() => tf.tile(tf.expandDims(tf.transpose(A), 0), [batch, 1, 1])),
      B: tf.tidy(() => tf.tile(tf.expandDims(tf.transpose(B), 0), [batch, 1, 1])),
    });
  }
  return { ...adapter, layout: "perExample", modules };
}

/**
 * W + scaling·B·A for every adapted module (PEFT's merge), as a new parameter map sharing the untouched
 * tensors; `sign = -1` unmerges. Only the "peft" layout can be merged (per-example adapters differ by row).
 */
export function mergeLora(params: Map<string, tf.Tensor>, adapter: LoraAdapter, sign: 1 | -1 = 1): Map<string, tf.Tensor> {
  if (adapter.layout !== "peft") throw new Error("mergeLora: per-example adapters cannot be merged into shared weights");
  const merged = new Map(params);
  for (const [m, { A, B }] of adapter.modules) {
    const w = params.get(`${m}.weight`);
    if (!w) throw new Error(`mergeLora: the model has no module ${m}`);
    merged.set(`${m}.weight`, tf.tidy(() => tf.add(w, tf.mul(tf.matMul(B, A), sign * adapter.scaling))));
  }
  return merged;
}
