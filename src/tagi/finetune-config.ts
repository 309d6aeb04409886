/**
 * Stage 2's configuration: the loss weights (L = w_ce·L_ce + λ1·L_kl + λ2·L_ins, with the temperature and the
 * L_ins alignment), the teachers, the lengths and the data, with the checks that name every bad value.
 */
import type { PromptFormat } from "../text/prompts";
import { ADAMW_DEFAULTS } from "../train/optimizer";
import type { TrainConfig } from "../train/loop";
import { loadStageConfig, trainDefaults } from "../train/run-config";
import { DEV_DEFAULTS, type DevConfig } from "../train/metatrain";
import { TAGI_DEFAULTS, validateTagiConfig, type TagiConfig } from "./model";
import { ALIGNMENT_MODES, type AlignmentMode } from "./losses";
import type { TrainBaseParts } from "./stage-common";


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
  /**
   * Seed of the per-task instance sample (sampleInstances). null: train.seed. A fixed value keeps the training
   * examples the same across seeds, so that seeds measure training variance (order, dropout, generator init)
   * and one teacher logit cache serves every seed; 0 is the sample the parameter teachers were trained on.
   */
  sampleSeed: number | null;
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
  sampleSeed: null,
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
    if (c.sampleSeed !== null && (!Number.isInteger(c.sampleSeed) || c.sampleSeed < 0)) p.push(`config.sampleSeed must be an integer >= 0 or null (train.seed), got ${JSON.stringify(c.sampleSeed)}`);
    if (c.teacherPlacement !== "student-base" && c.teacherPlacement !== "official") p.push(`config.teacherPlacement must be "student-base" or "official", got ${JSON.stringify(c.teacherPlacement)}`);
    for (const [k, min] of [["maxInputTokens", 2], ["maxTeacherInputTokens", 8], ["maxTargetTokens", 2]] as const) {
      if (!Number.isInteger(c[k]) || c[k] < min) p.push(`config.${k} must be an integer >= ${min}, got ${JSON.stringify(c[k])}`);
    }
    return p;
  });
}

