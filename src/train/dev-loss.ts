/**
 * The dev-split curve: every `dev.every` optimizer steps (and after the last), the teacher-forced token
 * cross-entropy of the held-out dev tasks' references, without dropout, logged as `eval.devLoss` in
 * log.jsonl and printed with the progress lines. Steps and learning rates are chosen on this curve (a stage
 * is long enough when it has flattened), never on the test tasks.
 *
 * The dev examples are fixed for the run (the first `dev.instancesPerTask` sampled instances of each dev task,
 * a function of dev.seed only), batched in file order, and averaged per target token over all of them, so
 * two points of one curve, and the curves of two runs on one split, compare the same tokens.
 */
import * as tf from "@tensorflow/tfjs-core";
import { padSeq2Seq, type PaddedBatch, type Seq2SeqExample } from "../data/batching";
import type { TrainRun } from "./loop";

/** The run's `evaluate` hook for a dev loss; undefined when `every` is 0 or there are no dev examples. */
export function devLossHook(
  examples: readonly Seq2SeqExample[],
  opts: { every: number; batchSize: number },
  /** The mean token cross-entropy of one padded batch, in evaluation mode (no dropout). */
  lossOf: (batch: PaddedBatch) => tf.Scalar,
): TrainRun["evaluate"] {
  if (opts.every <= 0 || examples.length === 0) return undefined;
  const batches: PaddedBatch[] = [];
  for (let i = 0; i < examples.length; i += opts.batchSize) batches.push(padSeq2Seq(examples.slice(i, i + opts.batchSize)));
  return {
    every: opts.every,
    fn: () => ({ devLoss: meanDevLoss(batches, lossOf), devTokens: batches.reduce((a, b) => a + b.targetTokens, 0) }),
  };
}

/** Mean over target tokens of the per-batch mean losses (each weighted by its batch's target tokens). */
export function meanDevLoss(batches: readonly PaddedBatch[], lossOf: (batch: PaddedBatch) => tf.Scalar): number {
  let sum = 0;
  let tokens = 0;
  for (const b of batches) {
    const loss = tf.tidy(() => lossOf(b));
    const v = loss.dataSync()[0]!;
    loss.dispose();
    if (!Number.isFinite(v)) return v;
    sum += v * b.targetTokens;
    tokens += b.targetTokens;
  }
  return tokens > 0 ? sum / tokens : NaN;
}

/** The first and last dev-loss points of a training log (log.jsonl records); null when none was logged. */
export function devLossEnds(log: readonly { step: number; eval?: Record<string, number> }[]): { first: { step: number; loss: number }; last: { step: number; loss: number } } | null {
  const pts = log.filter((r) => r.eval?.["devLoss"] !== undefined).map((r) => ({ step: r.step, loss: r.eval!["devLoss"]! }));
  return pts.length ? { first: pts[0]!, last: pts.at(-1)! } : null;
}
