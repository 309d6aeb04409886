/**
 * What both TAGI stages share: which parameters train (generator, fusion, and the base parts `trainBase`
 * names), a batch's tensors, and disposing a model.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { PaddedBatch } from "../data/batching";
import { disposeModel, liftToVariables } from "../train/seq2seq";
import type { TagiModel } from "./model";

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
export function makeTagiTrainable(m: TagiModel, parts: TrainBaseParts): Map<string, tf.Variable> {
  const sel = baseSelector(parts);
  const base = sel ? liftToVariables(m.base.params, sel, "base.") : new Map<string, tf.Variable>();
  // saveTagi writes these beside the generator (a stage-1 model's trained base carries into stage 2).
  m.trainedBase = [...new Set([...(m.trainedBase ?? []), ...[...base.keys()].map((k) => k.slice("base.".length))])];
  return new Map([...liftToVariables(m.hyper, () => true), ...liftToVariables(m.fusion, () => true), ...base]);
}

export function batchTensorsOf(b: PaddedBatch) {
  if (!b.instructionIds || !b.instructionOfExample) throw new Error("TAGI batch without instructions");
  return {
    inputIds: tf.tensor2d(b.inputIds, undefined, "int32"),
    attentionMask: tf.tensor2d(b.attentionMask, undefined, "int32"),
    decoderInputIds: tf.tensor2d(b.decoderInputIds, undefined, "int32"),
    labels: tf.tensor2d(b.labels, undefined, "int32"),
    instructionOfExample: tf.tensor1d(b.instructionOfExample, "int32"),
  };
}

export function countOf(vars: Map<string, tf.Variable>): number {
  let n = 0;
  for (const v of vars.values()) n += v.size;
  return n;
}

export function disposeTagi(m: TagiModel): void {
  for (const t of [...m.hyper.values(), ...m.fusion.values()]) t.dispose();
  disposeModel(m.base);
}

