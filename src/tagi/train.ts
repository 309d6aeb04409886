/**
 * TAGI's two training stages on the shared loop (src/train/loop.ts). This file holds stage 1 and re-exports
 * stage 2 (./finetune.ts, its config in ./finetune-config.ts) and what both share (./stage-common.ts).
 *
 * Stage 1, hypernetwork pretraining (`pretrainHyper`, following HINT): each text segment of the project's
 * pretraining corpus (SNI train tasks only) is cut at random into a | b | c; a is the "instruction" the
 * generator and fusion read, b goes to the base model, c is predicted (cross-entropy only).
 *
 * Trainable in both stages: the generator and the fusion layers (the base model stays frozen), plus whatever
 * `trainBase` names (layer norms, FFNs: the official code's options).
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { arraySource, type Seq2SeqExample } from "../data/batching";
import { loadTrainTasks, seededRandom } from "../data/sni";
import { buildPretrainCorpus, segmentsWithinTasks } from "../data/pretraining";
import { T5Tokenizer } from "../text/tokenizer";
import { crossEntropyLoss } from "../model/t5";
import { ADAFACTOR_DEFAULTS } from "../train/optimizer";
import { train, type TrainConfig } from "../train/loop";
import { loadStageConfig, trainDefaults } from "../train/run-config";
import { checkVocab, type StageOptions, type StageResult } from "../train/base-model";
import { DEV_DEFAULTS, trainAndDevTasks, type DevConfig } from "../train/metatrain";
import { loadBaseModel, modelSummary, recordStage, loopOptions } from "../train/seq2seq";
import { devLossHook } from "../train/dev-loss";
import { createTagiModel, encodeInstructions, saveTagi, studentForward, TAGI_DEFAULTS, validateTagiConfig, type TagiConfig } from "./model";
import { batchTensorsOf, countOf, disposeTagi, makeTagiTrainable, type TrainBaseParts } from "./stage-common";

export * from "./stage-common";
export * from "./finetune-config";
export * from "./finetune";
export { checkLogitTeacherFormat, checkTeacherPlacement, loadParameterTeachers } from "./parameter-teachers";

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
  // The dev curve: a|b|c segments of the held-out dev tasks' text, split once (dev.seed), at most
  // dev.instancesPerTask per dev task on average, so that every point of the curve reads the same tokens.
  const devExamples: Seq2SeqExample[] = [];
  if (c.dev.every > 0 && dev.length) {
    const devCorpus = buildPretrainCorpus(dev, tokenizer);
    const devOffsets = segmentsWithinTasks(devCorpus, L);
    const keep = Math.min(devOffsets.length, c.dev.instancesPerTask * dev.length);
    for (let i = 0; i < keep; i++) {
      const o = devOffsets[Math.floor((i * devOffsets.length) / keep)]!; // spread over the dev text
      devExamples.push(splitSegment(devCorpus.tokens.subarray(o, o + L), seededRandom(c.dev.seed, `dev-abc:${i}`), tokenizer.eosId));
    }
  }
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
      evaluate: devLossHook(devExamples, { every: c.dev.every, batchSize: c.train.batchSize }, (b) => {
        const e = encodeInstructions(m, b.instructionIds!, b.instructionMask!);
        const t = batchTensorsOf(b);
        return crossEntropyLoss(studentForward(m, e, t, { training: false }).logits, t.labels);
      }),
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
        data: { tasks: corpus.tasks, tokens: corpus.tokens.length, examples: examples.length, devExamples: devExamples.length, segmentsWithinOneTask: true },
        devTasks: dev.map((t) => t.name),
        outputs: { model: "model/", log: "log.jsonl", checkpoint: "checkpoint/" },
    });
    return { out: opts.out, model: modelDir, result };
  } finally {
    disposeTagi(m);
  }
}
