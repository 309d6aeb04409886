/**
 * The TAGI student: a frozen base T5, an adapter generator (hypernetwork, Eq. 2) and instruction fusion
 * (Eq. 1). For a batch it encodes each distinct instruction once with the base encoder, generates one
 * adapter per instruction, and runs the base model on the instances with that adapter and the fused
 * instruction — the instruction itself is never prepended to the instances.
 *
 * The same code gives the neighbouring methods by configuration: Hypter-style (generator, no fusion), HINT-
 * style (generator + concatenation), TAGI (generator + cross-attention fusion + concatenation).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { resolveProjectPath } from "../project-paths";
import { forward, type T5Model } from "../model/t5";
import type { LoraAdapter } from "../model/lora";
import { readSafetensors, writeJsonAtomic, writeSafetensors } from "../model/safetensors";
import { encodeInstruction, type InstructionEncoding, type Pooling } from "./instruction-encoder";
import { fusionParameterShapes, initFusionParams, instructionFusion, type FusionMode } from "./fusion";
import { generateAdapter, hypernetworkParameterShapes, initHypernetwork, validateHypernetworkConfig, HYPERNETWORK_DEFAULTS, type HypernetworkConfig } from "./hypernetwork";

export interface TagiConfig {
  hypernetwork: HypernetworkConfig;
  /** "cross-attention+concatenate": TAGI (paper); "concatenate": HINT; "none": Hypter; "cross-attention": Eq. 1 only. */
  fusion: FusionMode;
  pooling: Pooling;
  /** Instruction length limit (tokens, `</s>` included); longer instructions are cut with a warning. */
  maxInstructionTokens: number;
}

export const TAGI_DEFAULTS: TagiConfig = {
  hypernetwork: HYPERNETWORK_DEFAULTS,
  fusion: "cross-attention+concatenate",
  pooling: "mean",
  maxInstructionTokens: 512,
};

export function validateTagiConfig(c: TagiConfig, where = "tagi"): string[] {
  const p = validateHypernetworkConfig(c.hypernetwork, `${where}.hypernetwork`);
  if (!["cross-attention+concatenate", "cross-attention", "concatenate", "none"].includes(c.fusion)) {
    p.push(`${where}.fusion must be one of cross-attention+concatenate, cross-attention, concatenate, none; got ${JSON.stringify(c.fusion)}`);
  }
  if (c.pooling !== "mean" && c.pooling !== "first-last") p.push(`${where}.pooling must be "mean" or "first-last", got ${JSON.stringify(c.pooling)}`);
  if (!Number.isInteger(c.maxInstructionTokens) || c.maxInstructionTokens < 2) p.push(`${where}.maxInstructionTokens must be an integer >= 2, got ${c.maxInstructionTokens}`);
  return p;
}

export interface TagiModel {
  base: T5Model;
  config: TagiConfig;
  /** Generator parameters (`hyper.*`). */
  hyper: Map<string, tf.Tensor>;
  /** Fusion parameters (`encoder.block.{l}.fusion.*`; empty without cross-attention fusion). */
  fusion: Map<string, tf.Tensor>;
  /**
   * Names of base-model parameters this model trained (the official code's trainable FFN and layer norms,
   * `trainBase`); saved beside the generator (`base_trained.safetensors`) and put back on load, so that an
   * evaluation or a later stage never runs the untrained base. Empty or absent: the base is frozen.
   */
  trainedBase?: string[];
}

export function usesCrossAttention(c: TagiConfig): boolean {
  return c.fusion === "cross-attention" || c.fusion === "cross-attention+concatenate";
}

/** A fresh generator (and fusion layers) on a base model. */
export function createTagiModel(base: T5Model, config: TagiConfig, seed: number): TagiModel {
  const problems = validateTagiConfig(config);
  if (problems.length) throw new Error(`invalid TAGI config: ${problems.join("; ")}`);
  return {
    base,
    config,
    hyper: initHypernetwork(base.config, config.hypernetwork, seed),
    fusion: usesCrossAttention(config) ? initFusionParams(base.config, seed) : new Map(),
  };
}

/** The instruction rows of a batch, encoded once each (constants: the base encoder is frozen). */
export function encodeInstructions(m: TagiModel, instructionIds: number[][], instructionMask: number[][]): InstructionEncoding {
  const ids = tf.tensor2d(instructionIds, undefined, "int32");
  const mask = tf.tensor2d(instructionMask, undefined, "int32");
  try {
    return encodeInstruction(m.base, ids, mask, m.config.pooling);
  } finally {
    tf.dispose([ids, mask]);
  }
}

/** Rows of a per-instruction adapter picked per example (A [I, in, r] -> [B, in, r]). */
export function adapterPerExample(a: LoraAdapter, rows: tf.Tensor1D): LoraAdapter {
  const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  for (const [k, { A, B }] of a.modules) modules.set(k, { A: tf.gather(A, rows), B: tf.gather(B, rows) });
  return { ...a, modules };
}

export interface StudentBatch {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  decoderInputIds: tf.Tensor2D;
  /** Row of `encoding` (one per distinct instruction) for each example. */
  instructionOfExample: tf.Tensor1D;
}

/**
 * Student logits [B, T, vocab] and the generated adapter (per example, for L_ins): generator and fusion read
 * the instruction encoding; the instances go through the base model with the adapter and fusion.
 */
export function studentForward(
  m: TagiModel,
  encoding: InstructionEncoding,
  batch: StudentBatch,
  opts: { training?: boolean; seed?: number; recompute?: boolean } = {},
): { logits: tf.Tensor3D; adapter: LoraAdapter } {
  const perInstruction = generateAdapter(m.hyper, m.base.config, m.config.hypernetwork, encoding.pooled);
  const adapter = adapterPerExample(perInstruction, batch.instructionOfExample);
  const rows = batch.instructionOfExample;
  const perExample: InstructionEncoding = {
    states: tf.gather(encoding.states, rows) as tf.Tensor3D,
    mask: tf.gather(encoding.mask, rows) as tf.Tensor2D,
    pooled: tf.gather(encoding.pooled, rows) as tf.Tensor2D,
  };
  const logits = forward(
    m.base,
    { inputIds: batch.inputIds, attentionMask: batch.attentionMask, decoderInputIds: batch.decoderInputIds },
    { ...opts, lora: adapter, fusion: instructionFusion(m.config.fusion, perExample, m.fusion) },
  );
  return { logits, adapter };
}

// ------------------------------------------------------------------------------------------- checkpoints

/**
 * A TAGI checkpoint folder: `tagi_config.json` (the config and the base model's folder) and
 * `tagi.safetensors` (generator and fusion parameters). The base model is referenced, not copied (it is
 * frozen); `saveTagi` refuses nothing else.
 */
export function saveTagi(dir: string, m: TagiModel, baseDir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, "tagi.safetensors"), new Map([...m.hyper, ...m.fusion]), { format: "tagi" });
  const trained = m.trainedBase ?? [];
  const trainedFile = path.join(dir, BASE_TRAINED_FILE);
  if (trained.length) {
    const missing = trained.filter((n) => !m.base.params.has(n));
    if (missing.length) throw new Error(`saveTagi: the base model has no parameter ${missing[0]} (trainedBase)`);
    writeSafetensors(trainedFile, new Map(trained.map((n) => [n, m.base.params.get(n)!])), { format: "tagi-base-trained" });
  } else fs.rmSync(trainedFile, { force: true });
  writeJsonAtomic(path.join(dir, "tagi_config.json"), { base: path.resolve(baseDir), baseConfig: m.base.config, tagi: m.config, trainedBase: trained });
}

/** Base-model parameters a TAGI model trained (trainBase), in a checkpoint folder. */
export const BASE_TRAINED_FILE = "base_trained.safetensors";

export function readTagiConfig(dir: string): { base: string; tagi: TagiConfig; trainedBase: string[] } {
  const file = path.join(dir, "tagi_config.json");
  if (!fs.existsSync(file)) throw new Error(`${dir} is not a TAGI checkpoint: tagi_config.json is missing (a checkpoint without a hypernetwork?)`);
  const raw = JSON.parse(fs.readFileSync(file, "utf8")) as { base: string; tagi: TagiConfig; trainedBase?: string[] };
  const problems = validateTagiConfig(raw.tagi);
  const trainedBase = raw.trainedBase ?? [];
  if (!Array.isArray(trainedBase) || !trainedBase.every((n) => typeof n === "string")) problems.push(`trainedBase must be a list of parameter names, got ${JSON.stringify(raw.trainedBase)}`);
  if (problems.length) throw new Error(`${file}: ${problems.join("; ")}`);
  return { base: resolveProjectPath(raw.base), tagi: raw.tagi, trainedBase };
}

/** Loads generator and fusion parameters saved by saveTagi onto `base`, checking names and shapes. */
export function loadTagiParams(dir: string, base: T5Model): TagiModel {
  const { tagi, trainedBase: trainedNames } = readTagiConfig(dir);
  const file = path.join(dir, "tagi.safetensors");
  if (!fs.existsSync(file)) throw new Error(`${dir}: tagi.safetensors is missing (a checkpoint without a hypernetwork?)`);
  const tensors = readSafetensors(file).tensors;
  const want = new Map([...hypernetworkParameterShapes(base.config, tagi.hypernetwork), ...(usesCrossAttention(tagi) ? fusionParameterShapes(base.config) : [])]);
  const problems: string[] = [];
  for (const [k, shape] of want) {
    const t = tensors.get(k);
    if (!t) problems.push(`missing ${k}`);
    else if (t.shape.join() !== shape.join()) problems.push(`${k}: [${t.shape}] in the file, [${shape}] for this base model`);
  }
  for (const k of tensors.keys()) if (!want.has(k)) problems.push(`unexpected ${k}`);
  if (problems.length) {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`${file} does not fit this base model and config:\n  - ${problems.slice(0, 10).join("\n  - ")}`);
  }
  const hyper = new Map([...tensors].filter(([k]) => k.startsWith("hyper.")));
  const fusion = new Map([...tensors].filter(([k]) => !k.startsWith("hyper.")));
  const trainedBase = loadTrainedBase(dir, base, trainedNames);
  return { base, config: tagi, hyper, fusion, trainedBase };
}

/**
 * Puts the base parameters a TAGI model trained (`base_trained.safetensors`, listed in tagi_config.json) onto
 * `base`, replacing its tensors in place; returns their names. Every listed name must be in the file, with
 * the base model's shape.
 */
function loadTrainedBase(dir: string, base: T5Model, names: readonly string[]): string[] {
  const file = path.join(dir, BASE_TRAINED_FILE);
  if (!names.length) {
    if (fs.existsSync(file)) throw new Error(`${file} exists but ${dir}/tagi_config.json lists no trainedBase parameters`);
    return [];
  }
  if (!fs.existsSync(file)) throw new Error(`${dir}: the model trained ${names.length} base parameters (trainedBase) but ${BASE_TRAINED_FILE} is missing`);
  const tensors = readSafetensors(file).tensors;
  const problems: string[] = [];
  for (const n of names) {
    const t = tensors.get(n);
    const w = base.params.get(n);
    if (!t) problems.push(`missing ${n}`);
    else if (!w) problems.push(`${n} is not a parameter of the base model`);
    else if (t.shape.join() !== w.shape.join()) problems.push(`${n}: [${t.shape}] in the file, [${w.shape}] in the base model`);
  }
  for (const k of tensors.keys()) if (!names.includes(k)) problems.push(`unexpected ${k}`);
  if (problems.length) {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`${file} does not fit the base model:\n  - ${problems.slice(0, 10).join("\n  - ")}`);
  }
  for (const [n, t] of tensors) {
    base.params.get(n)!.dispose();
    base.params.set(n, t);
  }
  return [...names];
}
