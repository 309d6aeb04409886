/**
 * Stage 0: the project's own base model, a T5 pretrained from scratch on the SNI *train* tasks' text with
 * T5's span-corruption objective (optionally followed by a prefix-LM phase, as T5-LM-adapt: set `init` to the
 * span-corruption model and `objective` to "prefix-lm"). Writes `<out>/model/` (a Hugging Face T5 folder that
 * transformers loads), `<out>/log.jsonl`, `<out>/checkpoint/` and `<out>/run.json`.
 */
import { DEV_DEFAULTS, trainAndDevTasks, type DevConfig } from "./metatrain";
import * as fs from "node:fs";
import * as path from "node:path";
import { MODEL_PRESETS } from "../model/presets";
import { loadTrainTasks, type SniTrainTask } from "../data/sni";
import type { Seq2SeqExample } from "../data/batching";
import { devLossHook } from "./dev-loss";
import { buildPretrainCorpus, pretrainSource } from "../data/pretraining";
import { saveT5Checkpoint } from "../model/weights";
import { T5Tokenizer } from "../text/tokenizer";
import { ADAFACTOR_DEFAULTS } from "./optimizer";
import { train, type LogRecord, type TrainConfig, type TrainResult } from "./loop";
import { loadStageConfig, trainDefaults } from "./run-config";
import { disposeModel, loadOrInitModel, loopOptions, makeTrainable, modelSummary, recordStage, seq2seqLoss, type StageOptions, type StageResult } from "./seq2seq";
import type { T5Model } from "../model/t5";

export interface PretrainBaseConfig {
  /** A preset ("tiny", "small"), T5 config fields, or (with `init`) ignored. */
  model: string | Record<string, unknown>;
  /** Continue from this Hugging Face T5 folder instead of a random init (e.g. for a prefix-LM phase). */
  init: string | null;
  initSeed: number;
  /** Only the first N train tasks (file order, after the dev split) feed the corpus; null: all. For quick runs (tokenizing all takes ~25 s). */
  maxTasks: number | null;
  /** The dev split held out of the corpus (the same split as every SNI stage's, by default). */
  dev: DevConfig;
  objective: "span-corruption" | "prefix-lm";
  /** Raw tokens per example before corruption (T5: 568 for 512-token inputs; 114 gives ~104 input tokens). */
  segmentLength: number;
  noiseDensity: number;
  meanNoiseSpanLength: number;
  /** Dropout while pretraining (T5 v1.1 pretrained without); the saved config keeps the model's own rate for finetuning. */
  dropout: number;
  /** Folder holding sni/ (default ../shared/data). */
  dataDir: string | null;
  tokenizer: string | null;
  train: TrainConfig;
}

export const PRETRAIN_BASE_DEFAULTS: PretrainBaseConfig = {
  model: "tiny",
  init: null,
  initSeed: 0,
  maxTasks: null,
  dev: DEV_DEFAULTS,
  objective: "span-corruption",
  segmentLength: 114,
  noiseDensity: 0.15,
  meanNoiseSpanLength: 3,
  dropout: 0,
  dataDir: null,
  tokenizer: null,
  // T5's pretraining optimizer: Adafactor without momentum, inverse-square-root schedule after warmup.
  train: trainDefaults({ steps: 200, batchSize: 16, optimizer: ADAFACTOR_DEFAULTS, schedule: { kind: "inverse-sqrt", lr: 0.01, warmupSteps: 20 } }),
};

export function parsePretrainBaseConfig(source: string | Record<string, unknown> | undefined): PretrainBaseConfig {
  return loadStageConfig(source, PRETRAIN_BASE_DEFAULTS, "pretrain-base", ["config.model"], (c) => {
    const p: string[] = [];
    if (!["span-corruption", "prefix-lm"].includes(c.objective)) p.push(`config.objective must be "span-corruption" or "prefix-lm", got ${JSON.stringify(c.objective)}`);
    if (!Number.isInteger(c.segmentLength) || c.segmentLength < 4) p.push(`config.segmentLength must be an integer >= 4, got ${c.segmentLength}`);
    if (!(c.noiseDensity > 0 && c.noiseDensity < 1)) p.push(`config.noiseDensity must be in (0, 1), got ${c.noiseDensity}`);
    if (typeof c.model === "string" && c.init === null && !(c.model in MODEL_PRESETS) && !fs.existsSync(c.model)) {
      p.push(`config.model: '${c.model}' is neither a preset (${Object.keys(MODEL_PRESETS).join(", ")}) nor a checkpoint folder`);
    }
    if (!(c.dropout >= 0 && c.dropout < 1)) p.push(`config.dropout must be in [0, 1), got ${c.dropout}`);
    if (!(c.meanNoiseSpanLength >= 1)) p.push(`config.meanNoiseSpanLength must be >= 1, got ${c.meanNoiseSpanLength}`);
    return p;
  });
}

export type { StageOptions, StageResult } from "./seq2seq";

/** The stage's objective (span corruption or prefix LM) over a corpus; `seed` fixes segments and noise. */
function objectiveSource(corpus: ReturnType<typeof buildPretrainCorpus>, tokenizer: T5Tokenizer, c: PretrainBaseConfig, seed: number) {
  return pretrainSource(corpus, tokenizer, {
    objective: c.objective,
    segmentLength: c.segmentLength,
    seed,
    spanCorruption: { noiseDensity: c.noiseDensity, meanNoiseSpanLength: c.meanNoiseSpanLength },
  });
}

/**
 * Dev examples of stage 0: the objective's examples of the dev tasks' text (dev.seed fixes the segments and
 * the noise), dev.instancesPerTask per dev task, spread evenly over the dev corpus.
 */
function baseDevExamples(dev: readonly SniTrainTask[], tokenizer: T5Tokenizer, c: PretrainBaseConfig): Seq2SeqExample[] {
  if (!dev.length) return [];
  const source = objectiveSource(buildPretrainCorpus(dev, tokenizer), tokenizer, c, c.dev.seed);
  const n = Math.min(source.size, c.dev.instancesPerTask * dev.length);
  return Array.from({ length: n }, (_, i) => source.example(Math.floor((i * source.size) / n), 0));
}

export async function pretrainBase(config: PretrainBaseConfig, opts: StageOptions): Promise<StageResult> {
  const started = new Date();
  const c = config;
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all, skipped, file: dataFile } = await loadTrainTasks(c.dataDir, "pretrain-base");
  // The dev split (the same as every SNI stage's by default) is held out of the base model's text too, so that
  // model selection on the dev tasks measures text no stage has read.
  const { train: tasks, dev } = trainAndDevTasks(all, c.dev, c.maxTasks);
  const corpus = buildPretrainCorpus(tasks, tokenizer);
  const source = objectiveSource(corpus, tokenizer, c, c.train.seed);
  const { model, source: modelSource } = loadOrInitModel(c.init ?? c.model, c.initSeed);
  checkVocab(model, tokenizer);
  try {
    const trainable = makeTrainable(model);
    const trainingView: T5Model = { config: { ...model.config, dropout_rate: c.dropout }, params: model.params };
    const result = await train({
      label: "pretrain-base",
      out: opts.out,
      config: c.train,
      trainable,
      source,
      lossFn: (batch, ctx) => seq2seqLoss(trainingView, batch, { training: true, seed: ctx.seed, recompute: ctx.recompute }),
      // The dev curve: the same objective on the dev tasks' text (held out of the corpus), fixed noise.
      evaluate: devLossHook(c.dev.every > 0 ? baseDevExamples(dev, tokenizer, c) : [], { every: c.dev.every, batchSize: c.train.batchSize }, (b) => seq2seqLoss(model, b, { training: false }).loss),
      saveModel: (dir) => saveT5Checkpoint(dir, model.config, model.params),
      ...loopOptions(opts),
      fingerprint: { stage: c, model: model.config },
      data: { files: [dataFile], tasks: tasks.map((t) => t.name) },
    });
    const modelDir = path.join(opts.out, "model");
    saveT5Checkpoint(modelDir, model.config, model.params);
    recordStage("pretrain-base", opts, c, started, result, {
        model: { source: modelSource, ...modelSummary(model.config) },
        data: {
          corpus: "SNI train tasks: definitions, positive examples, instances (input + first output)",
          tasks: corpus.tasks,
          texts: corpus.texts,
          emptyTextsSkipped: corpus.emptyTexts,
          tokens: corpus.tokens.length,
          examples: source.size,
          tasksSkippedByLoader: skipped.length,
          epochsSeen: result.state.data.epoch + result.state.data.batch / Math.max(1, Math.ceil(source.size / c.train.batchSize)),
        },
        devTasks: dev.map((t) => t.name),
        outputs: { model: "model/", log: "log.jsonl", checkpoint: "checkpoint/" },
    });
    return { out: opts.out, model: modelDir, result };
  } finally {
    disposeModel(model);
  }
}

export function checkVocab(model: T5Model, tokenizer: T5Tokenizer): void {
  if (model.config.vocab_size < tokenizer.vocabSize) {
    throw new Error(`the model's vocab_size (${model.config.vocab_size}) is smaller than the tokenizer's ${tokenizer.vocabSize} ids (${tokenizer.path})`);
  }
}
