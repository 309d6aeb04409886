/**
 * TAGI's two training stages on the shared loop (src/train/loop.ts).
 *
 * Stage 1, hypernetwork pretraining (`pretrainHyper`, following HINT): each text segment of the project's
 * pretraining corpus (SNI train tasks only) is cut at random into a | b | c; a is the "instruction" the
 * generator and fusion read, b goes to the base model, c is predicted (cross-entropy only).
 *
 * Stage 2, finetuning (`finetuneTagi`): SNI train instances; the student reads the instance only, the
 * instruction (Def or Def + 2 Pos) reaching it through the generated adapter and fusion; the loss is
 *   L = w_ce·L_ce + λ1·L_kl + λ2·L_ins
 * with the meta-trained model reading instruction + instance as logit teacher and the category's LoRA teacher
 * as parameter teacher (src/tagi/losses.ts). Each term is logged; weight 0 switches a term (and its teacher)
 * off. The same stage trains the Hypter-style (fusion "none") and HINT-style (fusion "concatenate", CE only)
 * baselines.
 *
 * Trainable in both stages: the generator and the fusion layers (the base model stays frozen), plus whatever
 * `trainBase` names (layer norms, FFNs: the official code's options).
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { arraySource, type PaddedBatch, type Seq2SeqExample } from "../data/batching";
import { loadTrainTasks, sampleInstances, seededRandom, taskCategory, type SniTrainTask } from "../data/sni";
import { buildPretrainCorpus, segmentsWithinTasks } from "../data/pretraining";
import { truncateIds } from "../data/instances";
import { buildPrompt, truncatePrompt, type PromptFormat } from "../text/prompts";
import { T5Tokenizer } from "../text/tokenizer";
import { crossEntropyLoss, forward } from "../model/t5";
import type { LoraAdapter } from "../model/lora";
import { ADAMW_DEFAULTS, ADAFACTOR_DEFAULTS } from "../train/optimizer";
import { train, type TrainConfig } from "../train/loop";
import { loadStageConfig, trainDefaults } from "../train/run-config";
import { checkVocab, type StageOptions, type StageResult } from "../train/base-model";
import { DEV_DEFAULTS, trainAndDevTasks, type DevConfig } from "../train/metatrain";
import { devLossHook } from "../train/dev-loss";
import { disposeModel, liftToVariables, loadBaseModel, modelFolderFingerprint, modelSummary, recordStage, loopOptions } from "../train/seq2seq";
import { checkLogitTeacherFormat, checkTeacherPlacement, loadParameterTeachers } from "./parameter-teachers";
import { instructionCacheFor } from "./instruction-cache";
import { cachedDistillationKl, exampleKey, TeacherLogitCache } from "./teacher-logit-cache";

export { checkLogitTeacherFormat, checkTeacherPlacement, loadParameterTeachers } from "./parameter-teachers";
import { writeJsonAtomic } from "../train/checkpoint";
import { initFusionParams } from "./fusion";
import { createTagiModel, usesCrossAttention, encodeInstructions, loadTagiParams, readTagiConfig, saveTagi, studentForward, TAGI_DEFAULTS, validateTagiConfig, type TagiConfig, type TagiModel } from "./model";
import { ALIGNMENT_MODES, distillationKl, officialAlignmentLoss, parameterAlignmentLoss, stackTeacherAdapters, type AlignmentMode } from "./losses";

export interface TrainBaseParts {
  /** Also train the base model's layer norms (official code). */
  layerNorms: boolean;
  /** Also train the base model's feed-forward weights (official code, every run). */
  feedForward: boolean;
}

function baseSelector(t: TrainBaseParts): ((name: string) => boolean) | null {
  if (!t.layerNorms && !t.feedForward) return null;
  return (n) => (t.layerNorms && n.includes("layer_norm")) || (t.feedForward && n.includes("DenseReluDense"));
}

/** Turns the generator, fusion and selected base parameters into variables; returns them by name. */
function makeTagiTrainable(m: TagiModel, parts: TrainBaseParts): Map<string, tf.Variable> {
  const sel = baseSelector(parts);
  const base = sel ? liftToVariables(m.base.params, sel, "base.") : new Map<string, tf.Variable>();
  // saveTagi writes these beside the generator (a stage-1 model's trained base carries into stage 2).
  m.trainedBase = [...new Set([...(m.trainedBase ?? []), ...[...base.keys()].map((k) => k.slice("base.".length))])];
  return new Map([...liftToVariables(m.hyper, () => true), ...liftToVariables(m.fusion, () => true), ...base]);
}

function batchTensorsOf(b: PaddedBatch) {
  if (!b.instructionIds || !b.instructionOfExample) throw new Error("TAGI batch without instructions");
  return {
    inputIds: tf.tensor2d(b.inputIds, undefined, "int32"),
    attentionMask: tf.tensor2d(b.attentionMask, undefined, "int32"),
    decoderInputIds: tf.tensor2d(b.decoderInputIds, undefined, "int32"),
    labels: tf.tensor2d(b.labels, undefined, "int32"),
    instructionOfExample: tf.tensor1d(b.instructionOfExample, "int32"),
  };
}

// ---------------------------------------------------------------------------------------------- stage 1

export interface PretrainHyperConfig {
  base: string | null;
  tagi: TagiConfig;
  /** Raw tokens per example, cut into a | b | c. */
  segmentLength: number;
  trainBase: TrainBaseParts;
  maxTasks: number | null;
  /** The dev split held out of stage 1's text (the same split as every SNI stage's, by default). */
  dev: DevConfig;
  initSeed: number;
  dataDir: string | null;
  tokenizer: string | null;
  train: TrainConfig;
}

export const PRETRAIN_HYPER_DEFAULTS: PretrainHyperConfig = {
  base: null,
  tagi: TAGI_DEFAULTS,
  segmentLength: 256,
  trainBase: { layerNorms: false, feedForward: false },
  maxTasks: null,
  dev: DEV_DEFAULTS,
  initSeed: 0,
  dataDir: null,
  tokenizer: null,
  // The paper: Adafactor, lr 1e-3.
  train: trainDefaults({ steps: 200, batchSize: 8, optimizer: ADAFACTOR_DEFAULTS, schedule: { kind: "constant", lr: 1e-3, warmupSteps: 10 } }),
};

export function parsePretrainHyperConfig(source: string | Record<string, unknown> | undefined): PretrainHyperConfig {
  return loadStageConfig(source, PRETRAIN_HYPER_DEFAULTS, "pretrain-hyper", [], (c) => {
    const p = validateTagiConfig(c.tagi, "config.tagi");
    if (!c.base) p.push("config.base is required: the base model folder (Hugging Face T5)");
    if (!Number.isInteger(c.segmentLength) || c.segmentLength < 12) p.push(`config.segmentLength must be an integer >= 12, got ${c.segmentLength}`);
    return p;
  });
}

/** a | b | c cut of a segment: a 25-50% of it, c 20-50% of the rest (at least 2 tokens each). */
export function splitSegment(tokens: ArrayLike<number>, rand: () => number, eosId: number): Seq2SeqExample {
  const L = tokens.length;
  const lenA = Math.max(2, Math.floor(L * (0.25 + 0.25 * rand())));
  const rest = L - lenA;
  const lenC = Math.max(2, Math.floor(rest * (0.2 + 0.3 * rand())));
  const arr = Array.from(tokens);
  return {
    instruction: [...arr.slice(0, lenA), eosId],
    input: [...arr.slice(lenA, L - lenC), eosId],
    target: [...arr.slice(L - lenC), eosId],
  };
}

export async function pretrainHyper(config: PretrainHyperConfig, opts: StageOptions): Promise<StageResult> {
  const started = new Date();
  const c = config;
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all, file: dataFile } = await loadTrainTasks(c.dataDir, "pretrain-hyper");
  // The dev split's tasks are held out here too, so that model selection on them sees unread text.
  const { train: tasks, dev } = trainAndDevTasks(all, c.dev, c.maxTasks);
  const corpus = buildPretrainCorpus(tasks, tokenizer);
  const L = c.segmentLength;
  const offsets = segmentsWithinTasks(corpus, L);
  if (offsets.length === 0) throw new Error(`pretrain-hyper: no task has ${L} tokens of text (config.segmentLength); lower it`);
  const examples: Seq2SeqExample[] = offsets.map((o, i) => splitSegment(corpus.tokens.subarray(o, o + L), seededRandom(c.train.seed, `abc:${i}`), tokenizer.eosId));
  const base = loadBaseModel(c.base!);
  checkVocab(base, tokenizer);
  const m = createTagiModel(base, c.tagi, c.initSeed);
  try {
    const trainable = makeTagiTrainable(m, c.trainBase);
    const result = await train({
      label: "pretrain-hyper",
      out: opts.out,
      config: c.train,
      trainable,
      source: arraySource(examples, `${examples.length} a|b|c segments of ${L} tokens from ${corpus.tasks} SNI train tasks`),
      constants: (b) => {
        const e = encodeInstructions(m, b.instructionIds!, b.instructionMask!); // every segment's "instruction" is new
        return new Map<string, tf.Tensor>([
          ["states", e.states],
          ["mask", e.mask],
          ["pooled", e.pooled],
        ]);
      },
      lossFn: (b, ctx) => {
        const t = batchTensorsOf(b);
        const enc = { states: ctx.constants.get("states") as tf.Tensor3D, mask: ctx.constants.get("mask") as tf.Tensor2D, pooled: ctx.constants.get("pooled") as tf.Tensor2D };
        const { logits } = studentForward(m, enc, t, { training: true, seed: ctx.seed, recompute: ctx.recompute });
        const ce = crossEntropyLoss(logits, t.labels);
        return { loss: ce, terms: { ce } };
      },
      saveModel: (dir) => saveTagi(dir, m, c.base!),
      ...loopOptions(opts),
      fingerprint: { stage: c, model: base.config },
      data: { files: [dataFile], tasks: tasks.map((t) => t.name) },
    });
    const modelDir = path.join(opts.out, "model");
    saveTagi(modelDir, m, c.base!);
    recordStage("pretrain-hyper", opts, c, started, result, {
        model: { base: path.resolve(c.base!), ...modelSummary(base.config), trainableParameters: countOf(trainable) },
        data: { tasks: corpus.tasks, tokens: corpus.tokens.length, examples: examples.length, segmentsWithinOneTask: true },
        devTasks: dev.map((t) => t.name),
        outputs: { model: "model/", log: "log.jsonl", checkpoint: "checkpoint/" },
    });
    return { out: opts.out, model: modelDir, result };
  } finally {
    disposeTagi(m);
  }
}

function countOf(vars: Map<string, tf.Variable>): number {
  let n = 0;
  for (const v of vars.values()) n += v.size;
  return n;
}

export function disposeTagi(m: TagiModel): void {
  for (const t of [...m.hyper.values(), ...m.fusion.values()]) t.dispose();
  disposeModel(m.base);
}

// ---------------------------------------------------------------------------------------------- stage 2

export interface LossWeights {
  /** Weight of L_ce (1 in the paper; 0 for "w/o L_ce"). */
  ce: number;
  /** λ1, weight of L_kl. */
  kl: number;
  /** λ2, weight of L_ins. */
  ins: number;
  /** KL temperature T. */
  temperature: number;
  alignment: AlignmentMode;
  /**
   * "paper" (default): T²·KL with padding masked, L_ins as `alignment` says. "official": the released code's
   * forms, for comparison: KL without T² and without the padding mask, and L_ins as 1000·MSE of swapped
   * factors gated by sigmoid (officialAlignmentLoss). Its weights were ce 0.6, kl 0.4, T 3: set them too.
   * Absent: "paper".
   */
  variant?: LossVariant;
}

export type LossVariant = "paper" | "official";

/**
 * Defaults (the paper does not state λ1, λ2 or T): T = 2, a common distillation temperature, with the T²
 * factor keeping L_kl's gradients on the scale of L_ce's, so λ1 = 1 weighs labels and teacher equally;
 * λ2 = 1 with L_ins on the factors, whose MSE is O(1e-3) at a LoRA init (A ~ U(±1/√d)), so parameter
 * alignment acts as a gentle regulariser rather than the dominant term (the official 1000·MSE makes it
 * dominant). Change them in the config or in notebook 04.
 */
export const LOSS_DEFAULTS: LossWeights = { ce: 1, kl: 1, ins: 1, temperature: 2, alignment: "factors", variant: "paper" };

export interface FinetuneConfig {
  base: string | null;
  /** Stage-1 checkpoint (a TAGI model folder) to start from; null: a fresh generator ("w/o pretraining"). */
  init: string | null;
  /** The logit teacher: the meta-trained model folder (needed when losses.kl > 0). */
  teacher: string | null;
  /** The teachers' folder (manifest.json) of the parameter teachers (needed when losses.ins > 0). */
  teachers: string | null;
  /**
   * A teacher logit cache of this run's logit teacher (`tagi teacher-logits`; src/tagi/teacher-logit-cache.ts):
   * L_kl from the teacher's cached top-k instead of running it every step. null: the teacher runs live.
   */
  teacherLogits: string | null;
  /**
   * Where the parameter teachers must sit. "student-base" (default): on this run's base model (same content)
   * and reading the instance only, as the generated adapter does, so that L_ins compares like with like.
   * "official": accept teachers on another model or reading the full prompt (the released code's
   * arrangement), on purpose and recorded in run.json.
   */
  teacherPlacement: "student-base" | "official";
  tagi: TagiConfig;
  losses: LossWeights;
  format: PromptFormat;
  /** Instance length limit for the student. */
  maxInputTokens: number;
  /** Full-prompt length limit for the logit teacher. */
  maxTeacherInputTokens: number;
  maxTargetTokens: number;
  instancesPerTask: number | null;
  maxTasks: number | null;
  /** Only tasks of these categories (e.g. those with parameter teachers); null: all. */
  categories: string[] | null;
  dev: DevConfig;
  trainBase: TrainBaseParts;
  initSeed: number;
  dataDir: string | null;
  tokenizer: string | null;
  train: TrainConfig;
}

export const FINETUNE_DEFAULTS: FinetuneConfig = {
  base: null,
  init: null,
  teacher: null,
  teachers: null,
  teacherLogits: null,
  teacherPlacement: "student-base",
  tagi: TAGI_DEFAULTS,
  losses: LOSS_DEFAULTS,
  format: "def+2pos",
  maxInputTokens: 256,
  maxTeacherInputTokens: 512,
  maxTargetTokens: 64,
  instancesPerTask: 100,
  maxTasks: null,
  categories: null,
  dev: DEV_DEFAULTS,
  trainBase: { layerNorms: false, feedForward: false },
  initSeed: 0,
  dataDir: null,
  tokenizer: null,
  // The paper: AdamW, warmup 2%, then constant, lr 1e-4 (Base).
  train: trainDefaults({ steps: 200, batchSize: 8, optimizer: ADAMW_DEFAULTS, schedule: { kind: "constant", lr: 1e-4, warmupSteps: 4 } }),
};

/**
 * The smallest KL temperature accepted: at T, a token Δ nats below the top gets exp(-Δ/T) of the mass, zero in
 * float32 once Δ/T > 103 (the smallest subnormal), so the KL can only compare the top tokens' shares of logit
 * gaps under 103·T nats. At T = 0.05 that is gaps under ~5 nats; below it the KL is zero for nearly every
 * position where teacher and student agree on the top token, and there is nothing to distil.
 */
export const MIN_KL_TEMPERATURE = 0.05;

/** Problems with a set of loss weights (empty when valid): negative or non-finite weights, T <= 0, all zero. */
export function validateLossWeights(l: LossWeights, where = "losses"): string[] {
  const p: string[] = [];
  for (const k of ["ce", "kl", "ins"] as const) {
    if (typeof l[k] !== "number" || !(l[k] >= 0) || !Number.isFinite(l[k])) p.push(`${where}.${k} must be a finite number >= 0, got ${JSON.stringify(l[k])}`);
  }
  if (typeof l.temperature !== "number" || !(l.temperature > 0) || !Number.isFinite(l.temperature)) p.push(`${where}.temperature must be a finite number > 0, got ${JSON.stringify(l.temperature)}`);
  else if (l.kl > 0 && l.temperature < MIN_KL_TEMPERATURE) {
    p.push(
      `${where}.temperature ${l.temperature} is below ${MIN_KL_TEMPERATURE}: softmax(z/T) gives a token Δ nats below the top exp(-Δ/T), which is 0 in float32 once Δ/T > 103, ` +
        `so at this T the KL and its gradient vanish for any gap above ${(103 * l.temperature).toPrecision(2)} nats (and T² scaling underflows below T = 1.1e-19)`,
    );
  }
  if (l.variant !== undefined && l.variant !== "paper" && l.variant !== "official") p.push(`${where}.variant must be "paper" or "official", got ${JSON.stringify(l.variant)}`);
  if (l.variant === "official" && l.alignment !== "factors") p.push(`${where}.alignment applies to the paper variant; the official variant has its own L_ins (swapped factors), got ${JSON.stringify(l.alignment)}`);
  if (!ALIGNMENT_MODES.includes(l.alignment)) p.push(`${where}.alignment must be one of ${ALIGNMENT_MODES.map((m) => `"${m}"`).join(", ")}, got ${JSON.stringify(l.alignment)}`);
  if (p.length === 0 && l.ce + l.kl + l.ins === 0) p.push(`${where}: every weight is 0; nothing to train on`);
  return p;
}

export function parseFinetuneConfig(source: string | Record<string, unknown> | undefined): FinetuneConfig {
  return loadStageConfig(source, FINETUNE_DEFAULTS, "finetune", [], (c) => {
    const p = validateTagiConfig(c.tagi, "config.tagi");
    if (!c.base) p.push("config.base is required: the base model folder (Hugging Face T5)");
    const l = c.losses;
    p.push(...validateLossWeights(l, "config.losses"));
    if (l.kl > 0 && !c.teacher) p.push("config.teacher is required when losses.kl > 0 (the meta-trained model folder)");
    if (c.teacherLogits !== null && l.variant === "official") p.push("config.teacherLogits: the official KL variant also counts padded positions, which the cache does not hold; use the live teacher (teacherLogits null)");
    if (l.ins > 0 && !c.teachers) p.push("config.teachers is required when losses.ins > 0 (the parameter teachers' folder with manifest.json)");
    if (c.format !== "def" && c.format !== "def+2pos") p.push(`config.format must be "def" or "def+2pos", got ${JSON.stringify(c.format)}`);
    if (c.teacherPlacement !== "student-base" && c.teacherPlacement !== "official") p.push(`config.teacherPlacement must be "student-base" or "official", got ${JSON.stringify(c.teacherPlacement)}`);
    for (const [k, min] of [["maxInputTokens", 2], ["maxTeacherInputTokens", 8], ["maxTargetTokens", 2]] as const) {
      if (!Number.isInteger(c[k]) || c[k] < min) p.push(`config.${k} must be an integer >= ${min}, got ${JSON.stringify(c[k])}`);
    }
    return p;
  });
}

export interface TagiExampleCounts {
  tasks: number;
  examples: number;
  instructionsTruncated: number;
  instancesCut: number;
  teacherPromptsTruncated: number;
  emptyTargets: number;
}

/** Stage-2 examples: instruction (the prompt's instruction part), instance, target, teacher prompt, group. */
export function tagiExamples(
  tasks: readonly SniTrainTask[],
  tokenizer: T5Tokenizer,
  c: Pick<FinetuneConfig, "format" | "maxInputTokens" | "maxTeacherInputTokens" | "maxTargetTokens" | "instancesPerTask" | "tagi">,
  seed: number,
  groupOf: (task: SniTrainTask) => number | undefined,
  withTeacherInput: boolean,
): { examples: Seq2SeqExample[]; counts: TagiExampleCounts } {
  const counts: TagiExampleCounts = { tasks: tasks.length, examples: 0, instructionsTruncated: 0, instancesCut: 0, teacherPromptsTruncated: 0, emptyTargets: 0 };
  const examples: Seq2SeqExample[] = [];
  const cut = (ids: number[], max: number) => truncateIds(ids, max, tokenizer.eosId);
  for (const task of tasks) {
    const group = groupOf(task);
    const first = task.instances[0];
    if (!first) continue;
    const instr = tokenizer.encode(buildPrompt(task, first, { format: c.format }).instruction);
    if (instr.length > c.tagi.maxInstructionTokens) counts.instructionsTruncated++;
    const instruction = cut(instr, c.tagi.maxInstructionTokens);
    // The same instance sample as meta-training and the teachers (sampleInstances with the run's seed).
    const chosen = c.instancesPerTask === null ? task.instances : sampleInstances(task, c.instancesPerTask, seed);
    for (const inst of chosen) {
      const ref = inst.outputs[0] ?? "";
      if (!ref.trim()) {
        counts.emptyTargets++;
        continue;
      }
      const parts = buildPrompt(task, inst, { format: c.format });
      const full = tokenizer.encode(parts.instance);
      if (full.length > c.maxInputTokens) counts.instancesCut++;
      const ex: Seq2SeqExample = { instruction, input: cut(full, c.maxInputTokens), target: cut(tokenizer.encode(ref), c.maxTargetTokens) };
      if (withTeacherInput) {
        let t = tokenizer.encode(parts.full);
        if (t.length > c.maxTeacherInputTokens - 4) {
          const tp = truncatePrompt(parts, tokenizer, c.maxTeacherInputTokens);
          if (tp.truncated) counts.teacherPromptsTruncated++;
          t = tokenizer.encode(tp.full);
        }
        ex.teacherInput = cut(t, c.maxTeacherInputTokens);
      }
      if (group !== undefined) ex.group = group;
      examples.push(ex);
    }
  }
  counts.examples = examples.length;
  return { examples, counts };
}

export async function finetuneTagi(config: FinetuneConfig, opts: StageOptions): Promise<StageResult> {
  const started = new Date();
  const c = config;
  // Before any data loads: teachers that cannot be used are refused first.
  const placement = c.losses.ins > 0 ? checkTeacherPlacement(c) : null;
  if (c.losses.kl > 0) checkLogitTeacherFormat(c);
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all, file: dataFile } = await loadTrainTasks(c.dataDir, "finetune");
  const split = trainAndDevTasks(all, c.dev, c.maxTasks);
  if (c.categories) {
    const known = new Set(split.train.map(taskCategory));
    const unknown = c.categories.filter((x) => !known.has(x));
    if (unknown.length) throw new Error(`finetune: config.categories names categories with no training task: ${unknown.join(", ")}`);
    const keep = new Set(c.categories);
    split.train = split.train.filter((t) => keep.has(taskCategory(t)));
  }
  const base = loadBaseModel(c.base!);
  checkVocab(base, tokenizer);
  let m: TagiModel;
  if (c.init) {
    const saved = readTagiConfig(c.init);
    // The generator must match; the fusion may differ (the "w/o fusion" ablation and HINT start from the
    // same stage-1 generator): fusion layers the checkpoint lacks start fresh, ones it has but the run does
    // not use are dropped.
    if (JSON.stringify({ ...saved.tagi, fusion: null }) !== JSON.stringify({ ...c.tagi, fusion: null })) {
      disposeModel(base);
      throw new Error(`finetune: config.tagi differs from the stage-1 checkpoint's (${c.init}/tagi_config.json) beyond the fusion mode; use the same generator settings`);
    }
    const loaded = loadTagiParams(c.init, base);
    if (saved.tagi.fusion === c.tagi.fusion) m = loaded;
    else {
      const keepFusion = usesCrossAttention(c.tagi) && usesCrossAttention(saved.tagi);
      if (!keepFusion) for (const t of loaded.fusion.values()) t.dispose();
      const fusion = keepFusion ? loaded.fusion : usesCrossAttention(c.tagi) ? initFusionParams(base.config, c.initSeed) : new Map<string, tf.Tensor>();
      m = { base, config: c.tagi, hyper: loaded.hyper, fusion, trainedBase: loaded.trainedBase ?? [] };
      console.error(`[tagi] finetune: stage-1 generator from ${c.init}; fusion '${c.tagi.fusion}' (stage 1 used '${saved.tagi.fusion}'): ${keepFusion ? "fusion layers kept" : usesCrossAttention(c.tagi) ? "fresh fusion layers" : "no fusion layers"}`);
    }
  } else m = createTagiModel(base, c.tagi, c.initSeed);
  // The logit teacher: read from its cache when one is given (checked against the teacher's content and T), else run live.
  const logitCache = c.losses.kl > 0 && c.teacherLogits ? TeacherLogitCache.load(c.teacherLogits) : null;
  if (logitCache) {
    const bad = logitCache.mismatch(modelFolderFingerprint(c.teacher!), c.losses.temperature, base.config.vocab_size);
    if (bad) {
      disposeModel(base);
      throw new Error(`finetune: ${bad}`);
    }
  }
  const teacherModel = c.losses.kl > 0 && !logitCache ? loadBaseModel(c.teacher!) : null;
  const teachers = c.losses.ins > 0 ? loadParameterTeachers(c.teachers!, base) : null;
  try {
    if (teachers) {
      const r = c.tagi.hypernetwork.rank;
      const t0 = teachers.adapters[0];
      const tr = t0 ? [...t0.modules.values()][0]!.A.shape[0] : r;
      if (tr !== r) throw new Error(`finetune: the parameter teachers have rank ${tr}, the generator ${r}; L_ins compares them factor by factor (set tagi.hypernetwork.rank = ${tr})`);
      const missing = [...new Set(split.train.map(taskCategory))].filter((cat) => !teachers.byGroup.has(cat));
      if (missing.length) throw new Error(`finetune: no parameter teacher for categor${missing.length > 1 ? "ies" : "y"} ${missing.join(", ")} in ${c.teachers} (train teachers for them, or restrict the tasks)`);
    }
    const { examples, counts } = tagiExamples(split.train, tokenizer, c, c.train.seed, (t) => teachers?.byGroup.get(taskCategory(t)), c.losses.kl > 0);
    if (logitCache) {
      const missing = logitCache.missing(examples.map((e) => exampleKey(e.teacherInput!, e.target)));
      if (missing.length) throw new Error(`finetune: ${missing.length} of ${examples.length} training examples are not in the teacher logit cache ${c.teacherLogits} (made for other examples, lengths or format); rebuild it with \`tagi teacher-logits\` for this config`);
    }
    const trainable = makeTagiTrainable(m, c.trainBase);
    const lw = c.losses;
    // Each task's instruction is encoded once per run while the encoder is frozen (src/tagi/instruction-cache.ts).
    const instructions = instructionCacheFor(m, c.trainBase);
    const encodeBatch = (b: { instructionIds?: number[][]; instructionMask?: number[][] }) =>
      instructions ? instructions.encode(b.instructionIds!, b.instructionMask!) : encodeInstructions(m, b.instructionIds!, b.instructionMask!);
    const result = await train({
      label: "finetune",
      out: opts.out,
      config: c.train,
      trainable,
      source: arraySource(examples, `${examples.length} SNI train instances (${c.format} instructions)`),
      constants: (b) => {
        const e = encodeBatch(b);
        const out = new Map<string, tf.Tensor>([
          ["states", e.states],
          ["mask", e.mask],
          ["pooled", e.pooled],
        ]);
        if (logitCache) {
          const keys = b.teacherInputIds!.map((ids, i) => exampleKey(ids.slice(0, b.teacherMask![i]!.reduce((a, x) => a + x, 0)), b.labels[i]!.filter((x) => x !== -100)));
          const cached = logitCache.batch(keys, b.labels[0]!.length);
          out.set("cachedIds", cached.ids);
          out.set("cachedLogp", cached.logp);
          out.set("cachedLogRest", cached.logRest);
        }
        if (teacherModel) {
          out.set(
            "teacherLogits",
            tf.tidy(() =>
              forward(teacherModel, {
                inputIds: tf.tensor2d(b.teacherInputIds!, undefined, "int32"),
                attentionMask: tf.tensor2d(b.teacherMask!, undefined, "int32"),
                decoderInputIds: tf.tensor2d(b.decoderInputIds, undefined, "int32"),
              }),
            ),
          );
        }
        if (teachers) {
          const stacked = stackTeacherAdapters(teachers.adapters, b.groups!);
          for (const [k, { A, B }] of stacked.modules) {
            out.set(`teacherA:${k}`, A);
            out.set(`teacherB:${k}`, B);
          }
        }
        return out;
      },
      // The dev curve: L_ce of the dev tasks' references with their own generated adapters (the student's
      // reference NLL; no teachers, no dropout), a fixed sample.
      evaluate: devLossHook(
        c.dev.every > 0 ? tagiExamples(split.dev, tokenizer, { ...c, instancesPerTask: c.dev.instancesPerTask }, c.dev.seed, () => undefined, false).examples : [],
        { every: c.dev.every, batchSize: c.train.batchSize },
        (b) => {
          const e = encodeBatch(b);
          const t = batchTensorsOf(b);
          return crossEntropyLoss(studentForward(m, e, t, { training: false }).logits, t.labels);
        },
      ),
      lossFn: (b, ctx) => {
        const t = batchTensorsOf(b);
        const k = ctx.constants;
        const enc = { states: k.get("states") as tf.Tensor3D, mask: k.get("mask") as tf.Tensor2D, pooled: k.get("pooled") as tf.Tensor2D };
        const { logits, adapter } = studentForward(m, enc, t, { training: true, seed: ctx.seed, recompute: ctx.recompute });
        const terms: Record<string, tf.Scalar> = {};
        let total: tf.Scalar = tf.scalar(0);
        const ce = crossEntropyLoss(logits, t.labels);
        terms["ce"] = ce;
        if (lw.ce > 0) total = tf.add(total, tf.mul(ce, lw.ce));
        if (logitCache) {
          const cached = { ids: k.get("cachedIds") as tf.Tensor3D, logp: k.get("cachedLogp") as tf.Tensor3D, logRest: k.get("cachedLogRest") as tf.Tensor2D };
          const kl = cachedDistillationKl(logits, cached, t.labels, { temperature: lw.temperature });
          terms["kl"] = kl;
          total = tf.add(total, tf.mul(kl, lw.kl));
        }
        if (teacherModel) {
          const official = lw.variant === "official";
          const kl = distillationKl(logits, k.get("teacherLogits") as tf.Tensor3D, t.labels, { temperature: lw.temperature, scaleByTemperatureSquared: !official, maskPadding: !official });
          terms["kl"] = kl;
          total = tf.add(total, tf.mul(kl, lw.kl));
        }
        if (teachers) {
          const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
          for (const name of adapter.modules.keys()) {
            const A = k.get(`teacherA:${name}`);
            const B = k.get(`teacherB:${name}`);
            if (!A || !B) throw new Error(`finetune: the parameter teachers do not adapt ${name}, which the generator does (set tagi.hypernetwork.kinds/projections to the teachers' modules)`);
            modules.set(name, { A, B });
          }
          const teacher: LoraAdapter = { layout: "perExample", scaling: teachers.adapters[0]!.scaling, dropout: 0, modules };
          const ins = lw.variant === "official" ? officialAlignmentLoss(adapter, teacher) : parameterAlignmentLoss(adapter, teacher, lw.alignment);
          terms["ins"] = ins;
          total = tf.add(total, tf.mul(ins, lw.ins));
        }
        return { loss: total, terms };
      },
      saveModel: (dir) => saveTagi(dir, m, c.base!),
      ...loopOptions(opts),
      fingerprint: { stage: c, model: base.config },
      data: { files: [dataFile], tasks: split.train.map((t) => t.name) },
    });
    const modelDir = path.join(opts.out, "model");
    saveTagi(modelDir, m, c.base!);
    recordStage("finetune", opts, c, started, result, {
        model: { base: path.resolve(c.base!), init: c.init ? path.resolve(c.init) : null, ...modelSummary(base.config), trainableParameters: countOf(trainable) },
        data: { ...counts, trainTasks: split.train.length },
        devTasks: split.dev.map((t) => t.name),
        teachers: { logit: c.teacher ? path.resolve(c.teacher) : null, logitCache: logitCache ? { dir: path.resolve(c.teacherLogits!), k: logitCache.info.k } : null, parameter: teachers ? teachers.adapters.length : 0, placement },
        // this process's count (a resumed run counts from its restart)
        instructionEncodings: instructions ? { cached: true, encoded: instructions.misses, reused: instructions.hits } : { cached: false },
        outputs: { model: "model/", log: "log.jsonl", checkpoint: "checkpoint/" },
    });
    writeJsonAtomic(path.join(opts.out, "losses.json"), { weights: lw, terms: Object.keys(result.log.at(-1)?.terms ?? {}) });
    return { out: opts.out, model: modelDir, result };
  } finally {
    disposeTagi(m);
    if (teacherModel) disposeModel(teacherModel);
    if (teachers) for (const a of teachers.adapters) for (const { A, B } of a.modules.values()) tf.dispose([A, B]);
  }
}
