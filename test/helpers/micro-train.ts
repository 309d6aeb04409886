/**
 * A micro T5 (vocab 64, d_model 16) and synthetic copy-reversed data for tests of the training loop:
 * `run(out, config, opts)` trains it with `train()` and returns the result and the final parameters.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { parseT5Config } from "../../src/model/config";
import { initT5Params } from "../../src/model/init";
import type { T5Model } from "../../src/model/t5";
import { arraySource, type Seq2SeqExample } from "../../src/data/batching";
import { train, type TrainConfig, type TrainRun } from "../../src/train/loop";
import { ADAMW_DEFAULTS } from "../../src/train/optimizer";
import { makeTrainable, seq2seqLoss } from "../../src/train/seq2seq";
import { saveT5Checkpoint } from "../../src/model/weights";
import { Rng } from "./crosscheck";

export const CONFIG = parseT5Config(
  { vocab_size: 64, d_model: 16, d_kv: 4, d_ff: 32, num_layers: 1, num_decoder_layers: 1, num_heads: 2, feed_forward_proj: "gated-gelu", tie_word_embeddings: false, dropout_rate: 0.1 },
  "micro",
);

export function microModel(seed = 0, dropout = CONFIG.dropout_rate): T5Model {
  return { config: { ...CONFIG, dropout_rate: dropout }, params: initT5Params(CONFIG, seed) };
}

/** Copy-the-input-reversed examples of varying length (ids 3..63). */
export function examples(n: number, seed = 1, fixedLength?: number): Seq2SeqExample[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = fixedLength ?? r.int(3, 9);
    const input = Array.from({ length: len }, () => r.int(3, 63));
    return { input: [...input, 1], target: [...input].reverse().concat([1]) };
  });
}

export function cfg(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    steps: 6,
    batchSize: 4,
    gradAccumulation: 1,
    maxGradNorm: 1,
    optimizer: ADAMW_DEFAULTS,
    schedule: { kind: "linear", lr: 3e-3, warmupSteps: 2 },
    seed: 3,
    checkpointEvery: 2,
    logEvery: 1,
    bucketWindow: 2,
    recompute: false,
    precision: null,
    ...over,
  };
}

export function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "tagi-loop-"));
}

export function disposeModel(m: T5Model): void {
  for (const t of m.params.values()) t.dispose();
}

export async function run(
  out: string,
  c: TrainConfig,
  opts: { resume?: boolean; stopAtStep?: number; data?: Seq2SeqExample[]; poison?: number; noDropout?: boolean; run?: Partial<Pick<TrainRun, "data" | "allowChanges" | "fingerprint">> } = {},
) {
  const model = microModel(0, opts.noDropout ? 0 : CONFIG.dropout_rate);
  const trainable = makeTrainable(model);
  try {
    const result = await train({
      label: "test",
      out,
      config: c,
      trainable,
      source: arraySource(opts.data ?? examples(24), "synthetic"),
      lossFn: (batch, ctx) => {
        const r = seq2seqLoss(model, batch, { training: true, seed: ctx.seed, recompute: ctx.recompute });
        return ctx.step === opts.poison ? { loss: tf.mul(r.loss, NaN) as tf.Scalar } : r;
      },
      saveModel: (dir) => saveT5Checkpoint(dir, model.config, model.params),
      resume: opts.resume,
      stopAtStep: opts.stopAtStep,
      progress: false,
      ...opts.run,
    });
    return { result, final: new Map([...model.params].map(([k, v]) => [k, [...v.dataSync()]])) };
  } finally {
    disposeModel(model);
  }
}

