/**
 * The TAGI stage-2 step of the bench (`tagi finetune` at configs/small/finetune.json's shapes): the frozen
 * `small` base with the generator and the instruction fusion trained, one step's loss
 *   L_ce + L_kl (T = 2, against a top-64 teacher logit cache with its remainder) + L_ins ("factors")
 * and its gradients for every generator and fusion parameter (no optimizer update, as the other bench steps).
 *
 * As in the real run, the instruction encodings are computed before the step: the base encoder is frozen, so
 * `finetune` encodes each task's instruction once per run (src/tagi/instruction-cache.ts) and a step only reads
 * them. Every example has its own instruction (16 distinct tasks per batch, the worst case for the generator).
 * reference/bench_torch.py's `tagi_step_bench` runs the same model, data shapes and losses in PyTorch.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { LoraAdapter } from "../src/model/lora";
import { initT5Params } from "../src/model/init";
import { shiftRight, type T5Model } from "../src/model/t5";
import { parameterAlignmentLoss } from "../src/tagi/losses";
import { HYPERNETWORK_DEFAULTS } from "../src/tagi/hypernetwork";
import { createTagiModel, encodeInstructions, studentForward, type TagiConfig, type TagiModel } from "../src/tagi/model";
import { ceAndCachedKl } from "../src/tagi/teacher-logit-cache";
import { CAMPAIGN_SHAPE } from "./t5";

/** configs/small/finetune.json: batch 16, instances cut at 128 tokens, 64 target tokens, instructions at 384. */
export const TAGI_STEP_BENCH = { batch: 16, inputLength: 128, targetLength: 64, instructionLength: 384, topK: 64, temperature: 2 };

/** configs/small/finetune.json's generator: rank 32 on q and v of every attention, per-layer MLPs, fusion on. */
export const TAGI_STEP_CONFIG: TagiConfig = {
  hypernetwork: { ...HYPERNETWORK_DEFAULTS, rank: 32, alpha: 32, hidden: 64, idDim: 16, sharing: "per-layer" },
  fusion: "cross-attention+concatenate",
  pooling: "mean",
  maxInstructionTokens: 384,
};

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const ids = (rows: number, cols: number, vocab: number, next: () => number): number[][] =>
  Array.from({ length: rows }, () => Array.from({ length: cols }, () => 2 + Math.floor(next() * (vocab - 2))));

export function makeTagiStepBench(seed = 0) {
  const config = CAMPAIGN_SHAPE;
  const { batch, inputLength, targetLength, instructionLength, topK, temperature } = TAGI_STEP_BENCH;
  const base: T5Model = { config, params: initT5Params(config, seed) };
  const m = createTagiModel(base, TAGI_STEP_CONFIG, seed + 1);
  const next = lcg(seed + 7);
  const instructionIds = ids(batch, instructionLength, config.vocab_size, next);
  const encoding = encodeInstructions(m, instructionIds, instructionIds.map((r) => r.map(() => 1)));
  const labelsArr = ids(batch, targetLength, config.vocab_size, next);
  const inputIds = tf.tensor2d(ids(batch, inputLength, config.vocab_size, next), undefined, "int32");
  const t = {
    inputIds,
    attentionMask: tf.onesLike(inputIds) as tf.Tensor2D,
    decoderInputIds: tf.tensor2d(shiftRight(labelsArr, 0, 0), undefined, "int32"),
    instructionOfExample: tf.range(0, batch, 1, "int32") as tf.Tensor1D,
  };
  const labels = tf.tensor2d(labelsArr, undefined, "int32");
  // The cache's content for one batch: the teacher's top-k token ids, their log-probabilities at T and the
  // log of the mass left over (a softmax over k + 1 random scores, so the k and the rest sum to 1).
  const cachedIds = tf.tensor3d(ids(batch * targetLength, topK, config.vocab_size, next).flat(), [batch, targetLength, topK], "int32");
  const scores = tf.logSoftmax(tf.randomNormal([batch, targetLength, topK + 1], 0, 2, "float32", seed + 11));
  const [logp, logRest] = tf.split(scores, [topK, 1], 2);
  const cached = { ids: cachedIds, logp: logp as tf.Tensor3D, logRest: tf.squeeze(logRest!, [2]) as tf.Tensor2D };
  tf.dispose([scores, logRest!]);
  // The parameter teachers: one rank-32 LoRA per example (the example's category), every adapted module.
  const teacher: LoraAdapter = { layout: "perExample", scaling: 1, dropout: 0, modules: new Map() };
  // (the generated adapter's module names and shapes; tidy frees its tensors, a Map is not kept)
  const shapes: [string, number[], number[]][] = [];
  tf.tidy(() => {
    for (const [k, { A, B }] of studentForward(m, encoding, t, { training: false }).adapter.modules) shapes.push([k, A.shape, B.shape]);
  });
  for (const [k, a, b] of shapes) teacher.modules.set(k, { A: tf.randomNormal(a, 0, 0.02, "float32", seed + 13), B: tf.randomNormal(b, 0, 0.02, "float32", seed + 17) });
  const hyperNames = [...m.hyper.keys()];
  const fusionNames = [...m.fusion.keys()];
  const trainable = [...hyperNames.map((n) => m.hyper.get(n)!), ...fusionNames.map((n) => m.fusion.get(n)!)];

  let activationBytes = 0;
  /** The step's loss and its gradients for the generator and fusion (freed once computed). */
  const trainStep = (recompute = false): number =>
    tf.tidy(() => {
      const before = tf.memory().numBytes;
      const f = (...ps: tf.Tensor[]) => {
        const mm: TagiModel = {
          ...m,
          hyper: new Map(hyperNames.map((n, i) => [n, ps[i]!])),
          fusion: new Map(fusionNames.map((n, i) => [n, ps[hyperNames.length + i]!])),
        };
        const { logits, adapter } = studentForward(mm, encoding, t, { training: true, seed: 1, recompute });
        // as finetune's loss: the fused L_ce + L_kl ops where they run (TAGI_FUSED_LOSS=0: the composed forms)
        const { ce, kl } = ceAndCachedKl(logits, cached, labels, { temperature });
        const ins = parameterAlignmentLoss(adapter, teacher, "factors");
        const loss = tf.add(tf.add(ce, kl), ins) as tf.Scalar;
        activationBytes = tf.memory().numBytes - before;
        return loss;
      };
      const { value } = tf.valueAndGrads(f)(trainable);
      return value.dataSync()[0]!;
    });
  const dispose = () => {
    tf.dispose([...base.params.values(), ...m.hyper.values(), ...m.fusion.values(), encoding.states, encoding.mask, encoding.pooled]);
    tf.dispose([inputIds, t.attentionMask, t.decoderInputIds, t.instructionOfExample, labels, cached.ids, cached.logp, cached.logRest]);
    tf.dispose([...teacher.modules.values()].flatMap((x) => [x.A, x.B]));
  };
  return {
    trainStep,
    dispose,
    activationBytes: () => activationBytes,
    trainableParameters: trainable.reduce((a, x) => a + x.size, 0),
  };
}
