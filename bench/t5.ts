/**
 * The T5-small-shaped workloads of the bench: one full training step (forward + backward for every
 * parameter) and batched greedy decoding, on a randomly initialised model of T5-small's shape.
 */
import * as tf from "@tensorflow/tfjs-core";
import { t5TrainStepFlops } from "../src/compute/flops";
import { peakRssBytes } from "../src/environment";
import { parseT5Config, type T5Config } from "../src/model/config";
import { greedyDecode } from "../src/model/generate";
import { initT5Params } from "../src/model/init";
import { MODEL_PRESETS } from "../src/model/presets";
import { crossEntropyLoss, forward, shiftRight, type T5Model } from "../src/model/t5";
import { createLoraVariables } from "../src/model/lora";
import { encodeInstruction } from "../src/tagi/instruction-encoder";
import { generateAdapter, HYPERNETWORK_DEFAULTS, initHypernetwork } from "../src/tagi/hypernetwork";
import { ADAMW_DEFAULTS, createOptimizer } from "../src/train/optimizer";

/** T5-small's shape with T5 v1.1's gated-GELU FFN at d_ff 1024 (the bench shape named by the issues). */
export const T5_SMALL_SHAPE: T5Config = parseT5Config({
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 1024,
  num_layers: 6,
  num_decoder_layers: 6,
  num_heads: 8,
  feed_forward_proj: "gated-gelu",
  tie_word_embeddings: false,
  dropout_rate: 0,
});

export const T5_BENCH = { batch: 8, inputLength: 128, targetLength: 32, decodeTokens: 32 };

/**
 * The step the campaign trains: the `small` preset (no dropout, as the bench's other shapes) with every
 * parameter trained, at the meta-training lengths of configs/small (batch 16, Def + 2 Pos prompts of 512
 * tokens, 64 target tokens). Real batches are shorter on average (bucketed by length); this is the ceiling.
 */
export const CAMPAIGN_SHAPE: T5Config = parseT5Config({ ...MODEL_PRESETS.small, dropout_rate: 0 });
export const CAMPAIGN_BENCH = { batch: 16, inputLength: 512, targetLength: 64, decodeTokens: 0 };

function randomIds(rows: number, cols: number, vocab: number, seed: number): number[][] {
  let x = seed >>> 0;
  const next = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => 2 + Math.floor(next() * (vocab - 2))));
}

export function makeT5Bench(seed = 0, config: T5Config = T5_SMALL_SHAPE, dims: typeof T5_BENCH = T5_BENCH) {
  const params = initT5Params(config, seed);
  const names = [...params.keys()];
  const { batch, inputLength, targetLength } = dims;
  const labelsArr = randomIds(batch, targetLength, config.vocab_size, seed + 1);
  const inputIds = tf.tensor2d(randomIds(batch, inputLength, config.vocab_size, seed + 2), undefined, "int32");
  const labels = tf.tensor2d(labelsArr, undefined, "int32");
  const decoderInputIds = tf.tensor2d(shiftRight(labelsArr, 0, 0), undefined, "int32");
  const model: T5Model = { config, params };

  /** Bytes of tensors held at the end of the last step's forward pass, beyond those held before it. */
  let activationBytes = 0;
  /** Loss and gradients for every parameter; returns the loss (gradients are computed, then freed). */
  const trainStep = (recompute = false): number =>
    tf.tidy(() => {
      const before = tf.memory().numBytes;
      const f = (...ps: tf.Tensor[]) => {
        const m: T5Model = { config, params: new Map(names.map((n, i) => [n, ps[i]!])) };
        const loss = crossEntropyLoss(forward(m, { inputIds, decoderInputIds }, { recompute }), labels);
        activationBytes = tf.memory().numBytes - before;
        return loss;
      };
      // wasm, cpu and tfjs-node kernels are synchronous: the gradients exist when valueAndGrads returns, so
      // only the loss is read back (reading every gradient would time a 240 MB copy PyTorch does not make).
      const { value } = tf.valueAndGrads(f)(names.map((n) => params.get(n)!));
      return value.dataSync()[0]!;
    });

  const decode = (): number => {
    const out = greedyDecode(model, inputIds, undefined, { maxNewTokens: dims.decodeTokens, ignoreEos: true });
    return out.length * (out[0]!.length - 1);
  };

  const dispose = () => tf.dispose([...params.values(), inputIds, labels, decoderInputIds]);
  return {
    config,
    model,
    inputIds,
    decoderInputIds,
    labels,
    trainStep,
    decode,
    dispose,
    flops: t5TrainStepFlops(config, dims),
    activationBytes: () => activationBytes,
  };
}

/**
 * TAGI's cost against instance training on the same T5-small shape: generating one task's adapter (encode a
 * 256-token instruction, run the generator with the default config, rank 32) versus one optimizer step of a
 * teacher LoRA (rank 32 on q and v, the bench batch); a teacher trains for thousands of such steps.
 */
export function makeTagiBench(seed = 0) {
  const config = T5_SMALL_SHAPE;
  const params = initT5Params(config, seed);
  const model: T5Model = { config, params };
  const hyper = initHypernetwork(config, HYPERNETWORK_DEFAULTS, seed);
  const instruction = tf.tensor2d(randomIds(1, 256, config.vocab_size, seed + 3), undefined, "int32");
  const instructionMask = tf.onesLike(instruction) as tf.Tensor2D;
  const { batch, inputLength, targetLength } = T5_BENCH;
  const labelsArr = randomIds(batch, targetLength, config.vocab_size, seed + 1);
  const inputIds = tf.tensor2d(randomIds(batch, inputLength, config.vocab_size, seed + 2), undefined, "int32");
  const labels = tf.tensor2d(labelsArr, undefined, "int32");
  const decoderInputIds = tf.tensor2d(shiftRight(labelsArr, 0, 0), undefined, "int32");
  const lora = createLoraVariables(config, { r: 32, alpha: 32, dropout: 0, targetModules: ["q", "v"] }, seed);
  const loraVars = [...lora.modules.values()].flatMap((m) => [m.A, m.B]) as tf.Variable[];
  const optimizer = createOptimizer(ADAMW_DEFAULTS, new Map(loraVars.map((v, i) => [String(i), v])));

  /** Encode the instruction and generate its adapter; returns the number of generated parameters. */
  const generate = (): number =>
    tf.tidy(() => {
      const enc = encodeInstruction(model, instruction, instructionMask);
      const a = generateAdapter(hyper, config, HYPERNETWORK_DEFAULTS, enc.pooled);
      let n = 0;
      for (const { A, B } of a.modules.values()) n += A.size + B.size;
      a.modules.values().next().value!.B.dataSync(); // synchronous kernels: this only marks the end
      return n;
    });
  /** One teacher LoRA optimizer step (forward, backward for the LoRA factors, AdamW). */
  const teacherStep = (): number => {
    const { value, grads } = tf.variableGrads(() => crossEntropyLoss(forward(model, { inputIds, decoderInputIds }, { lora }), labels), loraVars);
    const g = new Map(loraVars.map((v, i) => [String(i), grads[v.name]!]));
    optimizer.step(g, 1e-4);
    const loss = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  };
  const dispose = () => {
    optimizer.dispose();
    tf.dispose([...params.values(), ...hyper.values(), instruction, instructionMask, inputIds, labels, decoderInputIds, ...loraVars]);
  };
  return { generate, teacherStep, dispose };
}

/** T5 v1.1 Base's shape (t5-v1_1-base / t5-base-lm-adapt): 248M parameters. */
export const T5_BASE_SHAPE: T5Config = parseT5Config({
  vocab_size: 32128,
  d_model: 768,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 12,
  num_decoder_layers: 12,
  num_heads: 12,
  feed_forward_proj: "gated-gelu",
  tie_word_embeddings: false,
  dropout_rate: 0,
});

/**
 * What the wasm heap cap rules out: one full training step (forward, backward for every parameter, AdamW) of a
 * randomly initialised T5-Base-shaped model at the bench batch. Parameters, gradients and Adam's two moments
 * alone take 16 bytes per parameter, 3.97 GB here, before any activation: more than wasm32's 4 GiB heap holds.
 */
export function t5BaseTrainStep(seed = 0): { parameters: number; seconds: number; reps: number; peakRssBytes: number | null; tensorBytesAfter: number } {
  const config = T5_BASE_SHAPE;
  const params = initT5Params(config, seed);
  const vars = new Map([...params].map(([n, t]) => [n, tf.variable(t, true, `base.${n}`)]));
  tf.dispose([...params.values()]);
  const optimizer = createOptimizer(ADAMW_DEFAULTS, vars);
  const { batch, inputLength, targetLength } = T5_BENCH;
  const labelsArr = randomIds(batch, targetLength, config.vocab_size, seed + 1);
  const inputIds = tf.tensor2d(randomIds(batch, inputLength, config.vocab_size, seed + 2), undefined, "int32");
  const labels = tf.tensor2d(labelsArr, undefined, "int32");
  const decoderInputIds = tf.tensor2d(shiftRight(labelsArr, 0, 0), undefined, "int32");
  const model: T5Model = { config, params: vars as Map<string, tf.Tensor> };
  const list = [...vars.values()];
  const step = () => {
    const { value, grads } = tf.variableGrads(() => crossEntropyLoss(forward(model, { inputIds, decoderInputIds }), labels), list);
    optimizer.step(new Map([...vars.keys()].map((n) => [n, grads[vars.get(n)!.name]!])), 1e-4);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  step(); // warm-up; also creates the optimizer's moments
  const times: number[] = [];
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  const parameters = list.reduce((a, v) => a + v.size, 0);
  const tensorBytesAfter = tf.memory().numBytes;
  optimizer.dispose();
  tf.dispose([...list, inputIds, labels, decoderInputIds]);
  return { parameters, seconds: Math.min(...times), reps: times.length, peakRssBytes: peakRssBytes(), tensorBytesAfter };
}
