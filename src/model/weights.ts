/**
 * Hugging Face checkpoints and PEFT LoRA adapters on disk, with the exact Hugging Face / PEFT names.
 *
 * - `loadT5Checkpoint(dir)` reads a local checkpoint folder (config.json + model.safetensors, or a sharded
 *   model.safetensors.index.json), checks every key and shape against the config before reading any tensor
 *   data, and returns float32 tensors (fp16 / bf16 / fp64 checkpoints are converted) under their HF names
 *   (`encoder.block.0.layer.0.SelfAttention.q.weight`, ...) in PyTorch layout ([out, in] for linears).
 * - `saveT5Checkpoint(dir, config, params)` writes a folder that `T5ForConditionalGeneration.from_pretrained`
 *   loads (verified with transformers 5.23, see test/weights.test.ts).
 * - `loadPeftAdapter` / `savePeftAdapter` read and write PEFT's adapter_config.json +
 *   adapter_model.safetensors (LoRA only), with A = lora_A.weight [r, in] and B = lora_B.weight [out, r].
 *
 * Every validation collects all problems first and throws one error listing them, naming the folder.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { parseT5Config, t5ParameterShapes, TIED_ALIASES, type T5Config } from "./config";
import { readSafetensors, readSafetensorsHeader, writeJsonAtomic, writeSafetensors, type SafetensorsEntry } from "./safetensors";
import type { LoraAdapter } from "./lora";

const CONVERT_HINT =
  `python -c "from transformers import T5ForConditionalGeneration as M; ` +
  `D='<folder>'; M.from_pretrained(D).save_pretrained(D, safe_serialization=True)"`;

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16", "F64"]);

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmtShape(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf-8");
  } catch (e) {
    throw new Error(`${file}: cannot read ${what} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: ${what} is not valid JSON (${(e as Error).message})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function listFolder(dir: string): string {
  try {
    const names = fs.readdirSync(dir).sort();
    return names.length ? names.join(", ") : "(empty)";
  } catch {
    return "(unreadable)";
  }
}

function requireFolder(dir: string, expected: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new Error(`${dir}: folder not found (expected ${expected})`);
  }
  if (!st.isDirectory()) {
    throw new Error(`${dir}: is a file, not a folder (pass the folder that holds ${expected})`);
  }
}

function describeConfig(c: T5Config): string {
  return (
    `vocab_size ${c.vocab_size}, d_model ${c.d_model}, d_kv ${c.d_kv}, num_heads ${c.num_heads}, d_ff ${c.d_ff}, ` +
    `${c.num_layers} encoder / ${c.num_decoder_layers} decoder layers, feed_forward_proj ${c.feed_forward_proj}, ` +
    `relative_attention_num_buckets ${c.relative_attention_num_buckets}, tie_word_embeddings ${c.tie_word_embeddings}`
  );
}

// ------------------------------------------------------------------------------------------- key check

interface KeyReport {
  missing: string[];
  unexpected: string[];
  misshaped: string[];
  /** Names present in the checkpoint that alias shared.weight and may be dropped (values still to compare). */
  aliases: string[];
  /** When shared.weight is absent but an alias carries it: the alias to use as shared.weight. */
  sharedFrom: string | null;
}

/**
 * Compares what a checkpoint holds (name -> shape, and dtype where known) with the parameters the config
 * implies. Tied aliases (encoder/decoder.embed_tokens, and lm_head when tied) are accepted when shaped like
 * shared.weight; their values are compared by the caller.
 */
function checkT5Keys(config: T5Config, found: Map<string, { shape: number[]; dtype?: string }>): KeyReport {
  const expected = t5ParameterShapes(config);
  const report: KeyReport = { missing: [], unexpected: [], misshaped: [], aliases: [], sharedFrom: null };
  const aliasNames = new Set<string>(TIED_ALIASES);
  if (config.tie_word_embeddings) aliasNames.add("lm_head.weight");
  const sharedShape = expected.get("shared.weight")!;
  if (!found.has("shared.weight")) {
    for (const a of TIED_ALIASES) {
      const f = found.get(a);
      if (f && sameShape(f.shape, sharedShape)) {
        report.sharedFrom = a;
        break;
      }
    }
  }
  const dtypeProblem = (name: string, dtype: string | undefined) => {
    if (dtype !== undefined && !FLOAT_DTYPES.has(dtype)) report.misshaped.push(`${name}: dtype ${dtype}, expected a floating type (F32, F16, BF16, F64)`);
  };
  for (const [name, shape] of expected) {
    const f = name === "shared.weight" && report.sharedFrom ? found.get(report.sharedFrom) : found.get(name);
    if (!f) {
      report.missing.push(`${name} ${fmtShape(shape)}`);
      continue;
    }
    if (!sameShape(f.shape, shape)) report.misshaped.push(`${name}: checkpoint ${fmtShape(f.shape)}, config expects ${fmtShape(shape)}`);
    dtypeProblem(name, f.dtype);
  }
  for (const [name, f] of found) {
    if (expected.has(name) || name === report.sharedFrom) continue;
    if (aliasNames.has(name)) {
      if (!sameShape(f.shape, sharedShape)) {
        report.misshaped.push(`${name} (an alias of shared.weight): checkpoint ${fmtShape(f.shape)}, config expects ${fmtShape(sharedShape)}`);
      } else {
        dtypeProblem(name, f.dtype);
        report.aliases.push(name);
      }
      continue;
    }
    report.unexpected.push(`${name} ${fmtShape(f.shape)}`);
  }
  return report;
}

function keyError(where: string, config: T5Config, r: KeyReport, extra: string[] = []): Error | null {
  const n = r.missing.length + r.unexpected.length + r.misshaped.length + extra.length;
  if (n === 0) return null;
  const lines: string[] = [`${where}: the weights do not match the config (${describeConfig(config)}):`];
  const section = (title: string, items: string[]) => {
    if (items.length) lines.push(`  ${title} (${items.length}):`, ...items.map((s) => `    - ${s}`));
  };
  section("missing keys", r.missing);
  section("unexpected keys", r.unexpected);
  section("mis-shaped keys", r.misshaped);
  section("other problems", extra);
  const hints: string[] = [];
  if (!config.tie_word_embeddings && r.missing.some((m) => m.startsWith("lm_head.weight"))) {
    hints.push(
      "tie_word_embeddings is false but there is no lm_head.weight: a checkpoint written with a tied config " +
        "(e.g. transformers 5 writes tie_word_embeddings: true for every T5) has its lm_head in shared.weight",
    );
  }
  const ffnOther = config.feed_forward_proj === "relu" ? "DenseReluDense.wi_0" : "DenseReluDense.wi.weight";
  if (r.unexpected.some((u) => u.includes(ffnOther))) {
    hints.push(`the checkpoint's feed-forward layers do not match feed_forward_proj "${config.feed_forward_proj}"`);
  }
  if (hints.length) lines.push("  hint: " + hints.join("; "));
  return new Error(lines.join("\n"));
}

function equalValues(a: tf.Tensor, b: tf.Tensor): boolean {
  if (!sameShape(a.shape, b.shape)) return false;
  const x = a.dataSync();
  const y = b.dataSync();
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return false;
  return true;
}

// -------------------------------------------------------------------------------------- T5 checkpoints

/** Architectures (config.json `architectures`) whose weights are T5ForConditionalGeneration's. */
const T5_ARCHITECTURES = new Set(["T5ForConditionalGeneration", "T5WithLMHeadModel", "T5Model"]);

function checkArchitecture(raw: Record<string, unknown>, file: string): void {
  const modelType = raw.model_type;
  const archs = Array.isArray(raw.architectures) ? raw.architectures.map(String) : [];
  const archText = archs.length ? ` (architectures: ${archs.join(", ")})` : "";
  if (modelType !== undefined && modelType !== "t5") {
    throw new Error(`${file}: model_type ${JSON.stringify(modelType)}${archText} is not a T5 checkpoint (expected model_type "t5")`);
  }
  const foreign = archs.filter((a) => !T5_ARCHITECTURES.has(a));
  if (foreign.length) {
    const why = foreign.some((a) => a.startsWith("T5"))
      ? "only the encoder-decoder T5 with its language-model head is supported"
      : "not a T5 encoder-decoder";
    throw new Error(`${file}: architectures ${foreign.join(", ")}: ${why} (expected T5ForConditionalGeneration)`);
  }
  if (modelType === undefined && !archs.length) {
    // Neither field: let parseT5Config judge the fields (old hand-written configs).
  }
}

/** Where each tensor of a checkpoint lives: file and header entry. */
type Located = Map<string, { file: string; entry: SafetensorsEntry }>;

function locateTensors(dir: string): Located {
  const single = path.join(dir, "model.safetensors");
  const index = path.join(dir, "model.safetensors.index.json");
  const located: Located = new Map();
  // Same preference as transformers: model.safetensors first, then the sharded index.
  if (fs.existsSync(single)) {
    for (const [name, entry] of readSafetensorsHeader(single).tensors) located.set(name, { file: single, entry });
    return located;
  }
  if (fs.existsSync(index)) {
    const raw = readJson(index, "the sharded checkpoint index");
    if (!isObject(raw) || !isObject(raw.weight_map)) throw new Error(`${index}: expected {"weight_map": {"<tensor name>": "<file>"}}`);
    const byFile = new Map<string, string[]>();
    const bad: string[] = [];
    for (const [name, f] of Object.entries(raw.weight_map)) {
      if (typeof f !== "string" || !f.length) {
        bad.push(`${name}: file must be a string, got ${JSON.stringify(f)}`);
        continue;
      }
      if (path.isAbsolute(f) || f.split(/[\\/]/).includes("..")) {
        bad.push(`${name}: file ${JSON.stringify(f)} must be inside the folder`);
        continue;
      }
      const list = byFile.get(f) ?? [];
      list.push(name);
      byFile.set(f, list);
    }
    const missingFiles = [...byFile.keys()].filter((f) => !fs.existsSync(path.join(dir, f)));
    for (const f of missingFiles) bad.push(`shard ${f} (${byFile.get(f)!.length} tensors) is missing from the folder`);
    if (bad.length) throw new Error(`${index}: invalid sharded checkpoint index:\n  - ${bad.join("\n  - ")}`);
    for (const [f, names] of byFile) {
      const file = path.join(dir, f);
      const header = readSafetensorsHeader(file);
      for (const name of names) {
        if (!header.tensors.has(name)) bad.push(`${name}: the index places it in ${f}, which does not hold it`);
      }
      for (const [name, entry] of header.tensors) {
        const prev = located.get(name);
        if (prev) bad.push(`${name}: in both ${path.basename(prev.file)} and ${f}`);
        else located.set(name, { file, entry });
      }
    }
    if (bad.length) throw new Error(`${index}: the shards do not match the index:\n  - ${bad.join("\n  - ")}`);
    return located;
  }
  const others: string[] = [];
  for (const f of ["pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack"]) {
    if (fs.existsSync(path.join(dir, f))) others.push(f);
  }
  const adapter = fs.existsSync(path.join(dir, "adapter_config.json"))
    ? " This folder holds a PEFT adapter (adapter_config.json): load it with loadPeftAdapter."
    : "";
  throw new Error(
    `${dir}: no model.safetensors or model.safetensors.index.json` +
      (others.length ? ` (found ${others.join(", ")})` : ` (folder holds: ${listFolder(dir)})`) +
      `. pytorch_model.bin (and other non-safetensors formats) is not supported; convert the folder once with:\n  ` +
      CONVERT_HINT.replace("<folder>", dir.replace(/'/g, "\\'")) +
      adapter,
  );
}

/**
 * Reads `dir/config.json`: architecture checked, HF defaults filled in. `lmHeadFromShared` is true for a
 * config written by transformers 5, which records a T5 v1.1 / LM-adapt model as `tie_word_embeddings: true`
 * with `scale_decoder_outputs: false` (lm_head shares shared.weight, no d_model^-0.5 rescale): that is
 * returned as the equivalent untied config, and the loader copies shared.weight into lm_head.weight.
 */
function readT5Config(dir: string): { config: T5Config; lmHeadFromShared: boolean } {
  requireFolder(dir, "a Hugging Face T5 checkpoint folder: config.json + model.safetensors (or model.safetensors.index.json)");
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) {
    throw new Error(`${dir}: no config.json (a Hugging Face checkpoint folder has config.json next to model.safetensors; folder holds: ${listFolder(dir)})`);
  }
  const raw = readJson(file, "config.json");
  if (!isObject(raw)) throw new Error(`${file}: config.json must hold a JSON object`);
  checkArchitecture(raw, file);
  const config = parseT5Config(raw, file);
  const scale = raw.scale_decoder_outputs;
  if (scale === undefined || scale === null || scale === config.tie_word_embeddings) return { config, lmHeadFromShared: false };
  if (typeof scale !== "boolean") throw new Error(`${file}: scale_decoder_outputs must be a boolean, got ${JSON.stringify(scale)}`);
  if (scale) {
    throw new Error(
      `${file}: scale_decoder_outputs true with tie_word_embeddings false (a separate lm_head after the d_model^-0.5 rescale) is not supported`,
    );
  }
  return { config: { ...config, tie_word_embeddings: false }, lmHeadFromShared: true };
}

/**
 * Reads and parses `dir/config.json` (architecture checked, HF defaults filled in; a transformers-5 v1.1
 * config, tied without rescale, is returned untied as loadT5Checkpoint does).
 */
export function loadT5Config(dir: string): T5Config {
  return readT5Config(dir).config;
}

/**
 * Loads a local Hugging Face T5 checkpoint folder: `config.json` plus `model.safetensors` or a sharded
 * `model.safetensors.index.json`. Keys and shapes are checked against `t5ParameterShapes(config)` from the
 * headers alone, before any data is read: one error lists every missing, unexpected and mis-shaped key.
 * Aliases of `shared.weight` (encoder/decoder.embed_tokens.weight, and lm_head.weight when tied) are accepted
 * and dropped when tie_word_embeddings or when equal to shared.weight. Tensors are float32, PyTorch layout;
 * the caller owns them. A transformers-5 config for T5 v1.1 (tie_word_embeddings true, scale_decoder_outputs
 * false) comes back as the equivalent untied model, lm_head.weight a copy of shared.weight.
 */
export function loadT5Checkpoint(dir: string): { config: T5Config; params: Map<string, tf.Tensor> } {
  const { config: loaded, lmHeadFromShared } = readT5Config(dir);
  // Keys are checked as the file stores them (tied); the result is the equivalent untied model.
  const config = lmHeadFromShared ? { ...loaded, tie_word_embeddings: true } : loaded;
  const located = locateTensors(dir);
  const found = new Map<string, { shape: number[]; dtype: string }>();
  for (const [name, { entry }] of located) found.set(name, { shape: entry.shape, dtype: entry.dtype });
  const report = checkT5Keys(config, found);
  const err = keyError(dir, config, report);
  if (err) throw err;

  // Aliases of the embedding: with tied embeddings they are dropped unread; otherwise read and compared.
  const compare = new Set(config.tie_word_embeddings ? report.aliases.filter((a) => a === "lm_head.weight") : report.aliases);
  const wanted = new Set<string>([...t5ParameterShapes(config).keys()].map((n) => (n === "shared.weight" && report.sharedFrom ? report.sharedFrom : n)));
  for (const a of compare) wanted.add(a);
  const files = new Set<string>();
  for (const name of wanted) files.add(located.get(name)!.file);

  const params = new Map<string, tf.Tensor>();
  const extras = new Map<string, tf.Tensor>();
  try {
    for (const file of files) {
      const { tensors } = readSafetensors(file, { filter: (name) => wanted.has(name) && located.get(name)!.file === file });
      for (const [name, t] of tensors) {
        if (compare.has(name)) extras.set(name, t);
        else params.set(name === report.sharedFrom ? "shared.weight" : name, t);
      }
    }
    const shared = params.get("shared.weight")!;
    const differ = [...extras].filter(([, t]) => !equalValues(t, shared)).map(([n]) => n);
    if (differ.length) {
      const why = (n: string) =>
        n === "lm_head.weight"
          ? "lm_head.weight differs from shared.weight, but tie_word_embeddings is true (set it to false in config.json if the head is separate)"
          : `${n} differs from shared.weight (T5 shares one embedding between encoder, decoder and shared)`;
      throw new Error(`${dir}: tied weights disagree:\n  - ${differ.map(why).join("\n  - ")}`);
    }
    if (lmHeadFromShared) params.set("lm_head.weight", shared.clone());
    return { config: loaded, params };
  } catch (e) {
    for (const t of params.values()) t.dispose();
    throw e;
  } finally {
    for (const t of extras.values()) t.dispose();
  }
}

/**
 * Writes a Hugging Face T5 checkpoint folder: `config.json` (model_type "t5", architectures
 * ["T5ForConditionalGeneration"], the config's fields) and `model.safetensors` (float32, HF names, metadata
 * {"format": "pt"}), each atomically. `params` must hold exactly the config's parameters (one error lists any
 * problem); aliases of shared.weight, and lm_head.weight when tied, are accepted and not written.
 * `extraConfig` adds fields to config.json (e.g. the original checkpoint's task_specific_params).
 */
export function saveT5Checkpoint(
  dir: string,
  config: T5Config,
  params: Map<string, tf.Tensor>,
  options: { extraConfig?: Record<string, unknown> } = {},
): void {
  const found = new Map<string, { shape: number[]; dtype?: string }>();
  const notFloat: string[] = [];
  for (const [name, t] of params) {
    found.set(name, { shape: t.shape });
    if (t.dtype !== "float32") notFloat.push(`${name}: dtype ${t.dtype}, expected float32`);
  }
  const report = checkT5Keys(config, found);
  const err = keyError(`saveT5Checkpoint(${dir})`, config, report, notFloat);
  if (err) throw err;
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of params) {
    if (report.aliases.includes(name)) continue;
    out.set(name === report.sharedFrom ? "shared.weight" : name, t);
  }
  const gated = config.feed_forward_proj === "gated-gelu";
  const json: Record<string, unknown> = {
    ...(options.extraConfig ?? {}),
    architectures: ["T5ForConditionalGeneration"],
    model_type: "t5",
    ...config,
    is_encoder_decoder: true,
    dense_act_fn: gated ? "gelu_new" : "relu",
    is_gated_act: gated,
  };
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, "model.safetensors"), out, { format: "pt" });
  writeJsonAtomic(path.join(dir, "config.json"), Object.fromEntries(Object.entries(json).sort(([a], [b]) => (a < b ? -1 : 1))));
}

// ---------------------------------------------------------------------------------------- PEFT adapters

/** A PEFT LoRA adapter's configuration (adapter_config.json), restricted to what this project supports. */
export interface LoraAdapterConfig {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names (PEFT matches `name == t` or `name.endsWith("." + t)`). */
  target_modules: string[];
  bias: "none";
  task_type: string | null;
  /** Scaling lora_alpha / sqrt(r) instead of lora_alpha / r. */
  use_rslora?: boolean;
  base_model_name_or_path?: string | null;
  layers_to_transform?: number[] | number | null;
  layers_pattern?: string | string[] | null;
  /**
   * When adapter_config.json gives target_modules as one string (a regular expression PEFT matches with
   * re.fullmatch, or "all-linear"): that string. target_modules then lists the module names the adapter's
   * weights actually cover.
   */
  target_modules_regex?: string;
  /** The file's other fields, all without effect on the computation, kept so load -> save preserves them. */
  extra?: Record<string, unknown>;
}

/** A loaded adapter: module path (`encoder.block.0.layer.0.SelfAttention.q`) -> A [r, in], B [out, r]. */
export interface PeftAdapter {
  config: LoraAdapterConfig;
  weights: Map<string, { A: tf.Tensor; B: tf.Tensor }>;
}

/** LoRA's output scale: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
export function scaling(config: Pick<LoraAdapterConfig, "r" | "lora_alpha" | "use_rslora">): number {
  return config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
}

const EXPLICIT_FIELDS = new Set([
  "r",
  "lora_alpha",
  "lora_dropout",
  "target_modules",
  "bias",
  "task_type",
  "use_rslora",
  "base_model_name_or_path",
  "layers_to_transform",
  "layers_pattern",
  "peft_type",
]);

/** adapter_config.json fields that never change the computation of a loaded adapter (any value accepted). */
const INERT_FIELDS = new Set([
  "inference_mode",
  "init_lora_weights",
  "revision",
  "peft_version",
  "auto_mapping",
  "exclude_modules",
  "ensure_weight_tying",
  "megatron_config",
  "megatron_core",
  "loftq_config",
  "eva_config",
  "corda_config",
  "lora_ga_config",
  "qalora_group_size",
]);

/** Fields that do change the computation, with the only values supported here. */
const MUST_BE_OFF: Record<string, string> = {
  use_dora: "DoRA (use_dora) is not supported",
  fan_in_fan_out: "fan_in_fan_out (Conv1D-style [in, out] weights) is not supported; T5's linears are [out, in]",
  rank_pattern: "per-module ranks (rank_pattern) are not supported",
  alpha_pattern: "per-module alphas (alpha_pattern) are not supported",
  modules_to_save: "modules_to_save (fully trained extra modules) is not supported",
  lora_bias: "LoRA biases (lora_bias) are not supported",
  layer_replication: "layer_replication is not supported",
  target_parameters: "target_parameters (LoRA on raw parameters) is not supported",
  trainable_token_indices: "trainable_token_indices is not supported",
  use_qalora: "QA-LoRA (use_qalora) is not supported",
  use_bdlora: "use_bdlora is not supported",
  alora_invocation_tokens: "activated LoRA (alora_invocation_tokens) is not supported",
  arrow_config: "arrow_config is not supported",
};

function isOff(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    v === false ||
    (Array.isArray(v) && v.length === 0) ||
    (isObject(v) && Object.keys(v).length === 0)
  );
}

/**
 * Validates and normalises an adapter_config.json object. One error lists everything unsupported or invalid.
 */
export function parseLoraAdapterConfig(raw: Record<string, unknown>, source = "adapter_config.json"): LoraAdapterConfig {
  const problems: string[] = [];
  if (raw.peft_type !== undefined && raw.peft_type !== "LORA") problems.push(`peft_type ${JSON.stringify(raw.peft_type)}: only "LORA" adapters are supported`);
  const r = raw.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) problems.push(`r: expected a positive integer, got ${JSON.stringify(r)}`);
  const alpha = raw.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) problems.push(`lora_alpha: expected a number, got ${JSON.stringify(alpha)}`);
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) problems.push(`lora_dropout: expected a number in [0, 1), got ${JSON.stringify(dropout)}`);
  const bias = raw.bias ?? "none";
  if (bias !== "none") problems.push(`bias ${JSON.stringify(bias)}: only "none" is supported (trained biases are not)`);
  let targets: string[] = [];
  let regex: string | undefined;
  const tm = raw.target_modules;
  if (typeof tm === "string") regex = tm;
  else if (Array.isArray(tm) && tm.length && tm.every((t) => typeof t === "string")) targets = [...(tm as string[])];
  else problems.push(`target_modules: expected a non-empty list of module names or a regular expression, got ${JSON.stringify(tm)}`);
  const taskType = raw.task_type ?? null;
  if (taskType !== null && typeof taskType !== "string") problems.push(`task_type: expected a string or null, got ${JSON.stringify(taskType)}`);
  const rslora = raw.use_rslora ?? false;
  if (typeof rslora !== "boolean") problems.push(`use_rslora: expected a boolean, got ${JSON.stringify(rslora)}`);
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (EXPLICIT_FIELDS.has(key)) continue;
    const msg = MUST_BE_OFF[key];
    if (msg !== undefined) {
      if (!isOff(value)) problems.push(`${key} = ${JSON.stringify(value)}: ${msg}`);
    } else if (!INERT_FIELDS.has(key) && !isOff(value)) {
      problems.push(`${key} = ${JSON.stringify(value)}: unknown adapter_config.json field, not supported`);
    }
    extra[key] = value;
  }
  if (problems.length) throw new Error(`${source}: unsupported or invalid LoRA adapter config:\n  - ${problems.join("\n  - ")}`);
  const cfg: LoraAdapterConfig = {
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout as number,
    target_modules: targets,
    bias: "none",
    task_type: taskType as string | null,
    use_rslora: rslora as boolean,
  };
  if (raw.base_model_name_or_path !== undefined) cfg.base_model_name_or_path = raw.base_model_name_or_path as string | null;
  if (raw.layers_to_transform !== undefined) cfg.layers_to_transform = raw.layers_to_transform as number[] | number | null;
  if (raw.layers_pattern !== undefined) cfg.layers_pattern = raw.layers_pattern as string | string[] | null;
  if (regex !== undefined) cfg.target_modules_regex = regex;
  if (Object.keys(extra).length) cfg.extra = extra;
  return cfg;
}

/** PEFT's matching of a module path against target_modules (list: exact or dotted suffix; string: fullmatch). */
function targeted(config: LoraAdapterConfig, module: string): boolean {
  if (config.target_modules_regex !== undefined) {
    if (config.target_modules_regex === "all-linear") return true;
    try {
      return new RegExp(`^(?:${config.target_modules_regex})$`).test(module);
    } catch {
      return true; // a Python-only regex construct: cannot check here
    }
  }
  return config.target_modules.some((t) => module === t || module.endsWith(`.${t}`));
}

/** Problems with A/B shapes that need no base model: 2-D, rank r, module targeted. */
function adapterProblems(config: LoraAdapterConfig, weights: Map<string, { A?: tf.Tensor | undefined; B?: tf.Tensor | undefined }>): string[] {
  const problems: string[] = [];
  for (const [module, { A, B }] of weights) {
    if (!A || !B) {
      problems.push(`${module}: has ${A ? "lora_A" : "lora_B"} but no ${A ? "lora_B" : "lora_A"}`);
      continue;
    }
    if (A.rank !== 2 || B.rank !== 2) {
      problems.push(`${module}: lora_A ${fmtShape(A.shape)} and lora_B ${fmtShape(B.shape)} must both be 2-D`);
      continue;
    }
    if (A.shape[0] !== config.r) problems.push(`${module}: lora_A ${fmtShape(A.shape)} should be [r = ${config.r}, in]`);
    if (B.shape[1] !== config.r) problems.push(`${module}: lora_B ${fmtShape(B.shape)} should be [out, r = ${config.r}]`);
    if (A.dtype !== "float32" || B.dtype !== "float32") problems.push(`${module}: lora_A / lora_B must be float32 (got ${A.dtype} / ${B.dtype})`);
    if (!targeted(config, module)) {
      problems.push(
        `${module}: not matched by target_modules ${config.target_modules_regex ?? JSON.stringify(config.target_modules)} (PEFT would ignore it)`,
      );
    }
  }
  return problems;
}

const LORA_KEY = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.([^.]+))?\.weight$/;

/**
 * Loads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors). Keys
 * `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (or `.lora_A.<adapter name>.weight`, as in a
 * PEFT state dict in memory) become `<module>` -> {A: [r, in], B: [out, r]}, float32. Unsupported
 * configurations (bias, DoRA, fan_in_fan_out, rank/alpha patterns, ...) and malformed weights give one error
 * listing every problem. The caller owns the tensors.
 */
export function loadPeftAdapter(dir: string): PeftAdapter {
  requireFolder(dir, "a PEFT adapter folder: adapter_config.json + adapter_model.safetensors");
  const cfgFile = path.join(dir, "adapter_config.json");
  const weightsFile = path.join(dir, "adapter_model.safetensors");
  if (!fs.existsSync(cfgFile)) throw new Error(`${dir}: no adapter_config.json (folder holds: ${listFolder(dir)})`);
  const raw = readJson(cfgFile, "adapter_config.json");
  if (!isObject(raw)) throw new Error(`${cfgFile}: must hold a JSON object`);
  const config = parseLoraAdapterConfig(raw, cfgFile);
  if (!fs.existsSync(weightsFile)) {
    const bin = fs.existsSync(path.join(dir, "adapter_model.bin"));
    throw new Error(
      `${dir}: no adapter_model.safetensors` +
        (bin
          ? " (found adapter_model.bin, which is not supported: re-save it with PEFT's save_pretrained(dir, safe_serialization=True))"
          : ` (folder holds: ${listFolder(dir)})`),
    );
  }
  const { tensors } = readSafetensors(weightsFile);
  const problems: string[] = [];
  const pairs = new Map<string, { A?: tf.Tensor; B?: tf.Tensor }>();
  const adapterNames = new Set<string>();
  for (const [key, t] of tensors) {
    const m = LORA_KEY.exec(key);
    if (!m) {
      if (/lora_embedding_[AB]/.test(key)) problems.push(`${key}: LoRA on embeddings (lora_embedding_A/B) is not supported`);
      else if (/lora_magnitude_vector/.test(key)) problems.push(`${key}: DoRA magnitudes are not supported`);
      else problems.push(`${key}: not a LoRA weight (expected base_model.model.<module>.lora_A.weight / .lora_B.weight)`);
      continue;
    }
    const [, module, which, adapterName] = m as unknown as [string, string, "A" | "B", string | undefined];
    adapterNames.add(adapterName ?? "");
    const entry = pairs.get(module) ?? {};
    if (entry[which]) problems.push(`${module}: lora_${which} appears twice (${key})`);
    else entry[which] = t;
    pairs.set(module, entry);
  }
  if (adapterNames.size > 1) {
    problems.push(`the file mixes several adapter names (${[...adapterNames].map((n) => (n ? n : "(none)")).join(", ")}); one adapter per folder`);
  }
  if (!pairs.size && !problems.length) problems.push("the file holds no LoRA weights");
  problems.push(...adapterProblems(config, pairs));
  if (problems.length) {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`${weightsFile}: invalid LoRA adapter weights:\n  - ${problems.join("\n  - ")}`);
  }
  if (config.target_modules_regex !== undefined) {
    config.target_modules = [...new Set([...pairs.keys()].map((m) => m.slice(m.lastIndexOf(".") + 1)))].sort();
  }
  const weights = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  for (const module of [...pairs.keys()].sort()) {
    const { A, B } = pairs.get(module)!;
    weights.set(module, { A: A!, B: B! });
  }
  return { config, weights };
}

/**
 * Checks an adapter against a T5 base model: every module must be a linear of the model, with
 * A [r, in_features] and B [out_features, r]. One error lists every problem.
 */
export function checkAdapterShapes(adapter: PeftAdapter, config: T5Config): void {
  const shapes = t5ParameterShapes(config);
  const problems: string[] = [];
  for (const [module, { A, B }] of adapter.weights) {
    const w = shapes.get(`${module}.weight`);
    if (!w || w.length !== 2 || module === "shared" || module === "lm_head" || module.endsWith("relative_attention_bias")) {
      problems.push(`${module}: not a linear layer of this T5 (no ${module}.weight [out, in])`);
      continue;
    }
    const [out, inF] = w as [number, number];
    if (A.rank !== 2 || A.shape[1] !== inF) problems.push(`${module}: lora_A ${fmtShape(A.shape)}, the layer needs [r, ${inF}]`);
    if (B.rank !== 2 || B.shape[0] !== out) problems.push(`${module}: lora_B ${fmtShape(B.shape)}, the layer needs [${out}, r]`);
    if (A.rank === 2 && B.rank === 2 && A.shape[0] !== B.shape[1]) {
      problems.push(`${module}: ranks differ: lora_A ${fmtShape(A.shape)} vs lora_B ${fmtShape(B.shape)}`);
    }
  }
  if (problems.length) {
    throw new Error(`the LoRA adapter does not fit the T5 model (${describeConfig(config)}):\n  - ${problems.join("\n  - ")}`);
  }
}

/**
 * Writes a PEFT adapter folder that `PeftModel.from_pretrained(base, dir)` loads: adapter_config.json
 * (peft_type "LORA", task_type "SEQ_2_SEQ_LM" unless the config names another, r, lora_alpha, ...) and
 * adapter_model.safetensors with PEFT's key names (`base_model.model.<module>.lora_A.weight`), each atomically.
 */
export function savePeftAdapter(
  dir: string,
  config: LoraAdapterConfig,
  weights: Map<string, { A: tf.Tensor; B: tf.Tensor }>,
  baseModelName?: string,
): void {
  // Re-validate the config through the same parser as loading, so nothing unsupported is written.
  const raw: Record<string, unknown> = {
    // PEFT's defaults for the fields that must stay off; config.extra may carry them (then validated below).
    use_dora: false,
    fan_in_fan_out: false,
    rank_pattern: {},
    alpha_pattern: {},
    modules_to_save: null,
    init_lora_weights: true,
    revision: null,
    ...(config.extra ?? {}),
    peft_type: "LORA",
    task_type: config.task_type ?? "SEQ_2_SEQ_LM",
    base_model_name_or_path: baseModelName ?? config.base_model_name_or_path ?? null,
    r: config.r,
    lora_alpha: config.lora_alpha,
    lora_dropout: config.lora_dropout,
    target_modules: config.target_modules_regex ?? config.target_modules,
    bias: "none",
    use_rslora: config.use_rslora ?? false,
    inference_mode: true,
    layers_to_transform: config.layers_to_transform ?? null,
    layers_pattern: config.layers_pattern ?? null,
  };
  const where = `savePeftAdapter(${dir})`;
  const checked = parseLoraAdapterConfig(raw, where);
  const problems = adapterProblems(checked, weights);
  if (!weights.size) problems.push("no LoRA weights to write");
  if (problems.length) throw new Error(`${where}: invalid LoRA adapter:\n  - ${problems.join("\n  - ")}`);
  const tensors = new Map<string, tf.Tensor>();
  for (const [module, { A, B }] of weights) {
    tensors.set(`base_model.model.${module}.lora_A.weight`, A);
    tensors.set(`base_model.model.${module}.lora_B.weight`, B);
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  writeJsonAtomic(path.join(dir, "adapter_config.json"), Object.fromEntries(Object.entries(raw).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** A loaded PEFT adapter as the model's LoraAdapter (shared "peft" layout; no dropout at inference). */
export function peftToLoraAdapter(peft: PeftAdapter, dropout = 0): LoraAdapter {
  return { layout: "peft", scaling: scaling(peft.config), dropout, modules: peft.weights };
}
