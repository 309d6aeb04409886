/**
 * Meta-training, Tk-Instruct style (the "training with instance" baseline and TAGI's logit teacher): the base
 * model trained on SNI train tasks with the instruction (Def, or Def + 2 Pos) prepended to every input.
 * `mode: "full"` finetunes every parameter (Tk-Instruct); `mode: "lora"` trains one shared LoRA on the frozen
 * base (the "Tk-Instruct LoRA" row). A held-out dev split of train tasks (stratified by category) is left out
 * of training so later stages can select on tasks no model has seen; its task names go into run.json.
 *
 * Writes `<out>/model/` (full: a Hugging Face T5 folder) or `<out>/adapter/` (lora: a PEFT adapter whose base
 * is `config.base`), `<out>/log.jsonl`, `<out>/checkpoint/`, `<out>/run.json`.
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { arraySource } from "../data/batching";
import { loadTrainTasks, taskCategory, type SniTrainTask } from "../data/sni";
import { DEV_DEFAULTS, trainAndDevTasks, type DevConfig } from "./dev-split";
import { instanceExamples } from "../data/instances";
import { createLoraVariables, validateLoraConfig, type LoraAdapter, type LoraConfig } from "../model/lora";
import { savePeftAdapter, saveT5Checkpoint } from "../model/weights";
import type { PromptFormat } from "../text/prompts";
import { T5Tokenizer } from "../text/tokenizer";
import { ADAMW_DEFAULTS } from "./optimizer";
import { train, type TrainConfig } from "./loop";
import { devLossHook } from "./dev-loss";
import { loadStageConfig, trainDefaults } from "./run-config";
import { checkVocab, type StageOptions, type StageResult } from "./base-model";
import { disposeModel, loadBaseModel, makeTrainable, modelSummary, seq2seqLoss, recordStage, loopOptions } from "./seq2seq";

export { DEV_DEFAULTS, trainAndDevTasks, type DevConfig } from "./dev-split";

/** What every stage that trains on SNI train-task instances is configured with. */
export interface SniStageFields {
  /** The model trained on: a Hugging Face T5 folder (e.g. <pretrain-base out>/model, or google/t5-base-lm-adapt). */
  base: string | null;
  format: PromptFormat;
  lora: LoraConfig;
  maxInputTokens: number;
  maxTargetTokens: number;
  /** Only the first N training tasks (file order, after the dev split); null: all. For quick runs. */
  maxTasks: number | null;
  instancesPerTask: number | null;
  /** Train tasks held out for model selection (the same split in every stage keeps them unseen). */
  dev: DevConfig;
  dataDir: string | null;
  tokenizer: string | null;
  train: TrainConfig;
}

export interface MetatrainConfig extends SniStageFields {
  mode: "full" | "lora";
  /**
   * Only the training tasks of these categories (the scaling experiment: meta-training on 6, 15, 30 of the 60
   * categories); null: all. The dev split is made first, so it stays the same tasks.
   */
  categories: string[] | null;
}

/** Defaults shared by the SNI stages: Def + 2 Pos, rank-32 LoRA on q and v (the paper's), 512 / 64 tokens, a 5% dev split. */
export const SNI_STAGE_DEFAULTS: Omit<SniStageFields, "train"> = {
  base: null,
  format: "def+2pos",
  lora: { r: 32, alpha: 32, dropout: 0.05, targetModules: ["q", "v"] },
  maxInputTokens: 512,
  maxTargetTokens: 64,
  instancesPerTask: 100,
  maxTasks: null,
  dev: DEV_DEFAULTS,
  dataDir: null,
  tokenizer: null,
};

export const METATRAIN_DEFAULTS: MetatrainConfig = {
  ...SNI_STAGE_DEFAULTS,
  mode: "full",
  categories: null,
  train: trainDefaults({ steps: 200, batchSize: 8, optimizer: ADAMW_DEFAULTS, schedule: { kind: "constant", lr: 5e-4, warmupSteps: 10 } }),
};

export function checkSniStageFields(c: SniStageFields): string[] {
  const p: string[] = [];
  if (!c.base) p.push("config.base is required: the base model folder (Hugging Face T5: config.json + model.safetensors)");
  if (c.format !== "def" && c.format !== "def+2pos") p.push(`config.format must be "def" or "def+2pos", got ${JSON.stringify(c.format)}`);
  if (!Number.isInteger(c.maxInputTokens) || c.maxInputTokens < 8) p.push(`config.maxInputTokens must be an integer >= 8, got ${c.maxInputTokens}`);
  if (!Number.isInteger(c.maxTargetTokens) || c.maxTargetTokens < 2) p.push(`config.maxTargetTokens must be an integer >= 2, got ${c.maxTargetTokens}`);
  try {
    validateLoraConfig(c.lora);
  } catch (e) {
    p.push(`config.lora: ${(e as Error).message}`);
  }
  return p;
}

export function parseMetatrainConfig(source: string | Record<string, unknown> | undefined): MetatrainConfig {
  return loadStageConfig(source, METATRAIN_DEFAULTS, "metatrain", [], (c) => {
    const p = checkSniStageFields(c);
    if (c.mode !== "full" && c.mode !== "lora") p.push(`config.mode must be "full" or "lora", got ${JSON.stringify(c.mode)}`);
    if (c.categories !== null && (!Array.isArray(c.categories) || c.categories.length === 0 || !c.categories.every((x) => typeof x === "string" && x !== ""))) {
      p.push(`config.categories must be null or a non-empty list of category names, got ${JSON.stringify(c.categories)}`);
    }
    return p;
  });
}

/** The tasks of `categories` (by taskCategory); a category no task has is an error naming it. */
export function onlyCategories<T extends Parameters<typeof taskCategory>[0]>(tasks: readonly T[], categories: readonly string[], stage: string): T[] {
  const known = new Set(tasks.map(taskCategory));
  const unknown = categories.filter((x) => !known.has(x));
  if (unknown.length) throw new Error(`${stage}: config.categories names categor${unknown.length > 1 ? "ies" : "y"} with no training task: ${unknown.join(", ")} (known: ${[...known].sort().join(", ")})`);
  const keep = new Set(categories);
  return tasks.filter((t) => keep.has(taskCategory(t)));
}

export async function metatrain(config: MetatrainConfig, opts: StageOptions): Promise<StageResult> {
  const started = new Date();
  const c = config;
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all, skipped, file: dataFile } = await loadTrainTasks(c.dataDir, "metatrain");
  const split = trainAndDevTasks(all, c.dev, c.maxTasks);
  if (c.categories) split.train = onlyCategories(split.train, c.categories, "metatrain");
  const { examples, counts } = instanceExamples(split.train, tokenizer, {
    format: c.format,
    input: "full",
    maxInputTokens: c.maxInputTokens,
    maxTargetTokens: c.maxTargetTokens,
    instancesPerTask: c.instancesPerTask,
    seed: c.train.seed,
  });
  const model = loadBaseModel(c.base!);
  checkVocab(model, tokenizer);
  let lora: LoraAdapter | undefined;
  try {
    let trainable: Map<string, tf.Variable>;
    if (c.mode === "full") trainable = makeTrainable(model);
    else {
      lora = createLoraVariables(model.config, c.lora, c.train.seed);
      trainable = new Map();
      for (const [m, { A, B }] of lora.modules) {
        trainable.set(`${m}.lora_A.weight`, A as tf.Variable);
        trainable.set(`${m}.lora_B.weight`, B as tf.Variable);
      }
    }
    const saveModel = (dir: string) =>
      c.mode === "full"
        ? saveT5Checkpoint(dir, model.config, model.params)
        : savePeftAdapter(
            dir,
            { r: c.lora.r, lora_alpha: c.lora.alpha, lora_dropout: c.lora.dropout, target_modules: c.lora.targetModules, bias: "none", task_type: "SEQ_2_SEQ_LM" },
            lora!.modules,
            path.resolve(c.base!),
          );
    const result = await train({
      label: `metatrain-${c.mode}`,
      out: opts.out,
      config: c.train,
      trainable,
      source: arraySource(examples, `${examples.length} SNI train instances (${c.format})`),
      lossFn: (batch, ctx) => seq2seqLoss(model, batch, { training: true, seed: ctx.seed, recompute: ctx.recompute, lora }),
      // The dev curve: the same prompts (format, limits) on the held-out tasks, a fixed sample.
      evaluate: devLossHook(
        c.dev.every > 0 ? instanceExamples(split.dev, tokenizer, { format: c.format, input: "full", maxInputTokens: c.maxInputTokens, maxTargetTokens: c.maxTargetTokens, instancesPerTask: c.dev.instancesPerTask, seed: c.dev.seed }).examples : [],
        { every: c.dev.every, batchSize: c.train.batchSize },
        (b) => seq2seqLoss(model, b, { training: false, lora }).loss,
      ),
      saveModel,
      ...loopOptions(opts),
      fingerprint: { stage: c, model: model.config },
      data: { files: [dataFile], tasks: split.train.map((t) => t.name) },
    });
    const artifact = path.join(opts.out, c.mode === "full" ? "model" : "adapter");
    saveModel(artifact);
    recordStage("metatrain", opts, c, started, result, {
        model: { base: path.resolve(c.base!), mode: c.mode, ...modelSummary(model.config) },
        data: { ...counts, trainTasks: split.train.length, tasksSkippedByLoader: skipped.length },
        devTasks: split.dev.map((t) => t.name),
        outputs: { [c.mode === "full" ? "model" : "adapter"]: path.basename(artifact) + "/", log: "log.jsonl", checkpoint: "checkpoint/" },
    });
    return { out: opts.out, model: artifact, result };
  } finally {
    disposeModel(model);
    if (lora) for (const { A, B } of lora.modules.values()) (A.dispose(), B.dispose());
  }
}
