/**
 * One bench configuration in its own process (backend, threads and kernels are fixed per process):
 * configured by the TAGI_* environment variables, prints one line `BENCH_RESULT {json}`.
 */
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { makeParams, step } from "./block";
import { peakRssBytes } from "../src/environment";
import { CAMPAIGN_BENCH, CAMPAIGN_SHAPE, makeT5Bench, makeTagiBench, t5BaseTrainStep } from "./t5";
import { BATCH, D_MODEL, SEQ, blockFlops, gemmCases } from "./shapes";
import { makeTagiStepBench } from "./tagi-step";

interface Timing {
  seconds: number;
  reps: number;
}

/** Median time of `fn` after one warm-up, repeated until `minSeconds` or `maxReps`. */
function time(fn: () => void, minSeconds: number, maxReps: number): Timing {
  fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxReps && (times.length === 0 || (performance.now() - start) / 1000 < minSeconds)) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return { seconds: times[Math.floor(times.length / 2)]!, reps: times.length };
}

async function main() {
  const info = await initBackend({ log: false });
  const layers = Number(process.env.TAGI_BENCH_LAYERS ?? 2);
  const runBlock = process.env.TAGI_BENCH_BLOCK !== "0";
  const quick = process.env.TAGI_BENCH_QUICK === "1";
  const gemm: Record<string, { gflops: number; seconds: number; reps: number }> = {};
  for (const c of process.env.TAGI_BENCH_GEMM === "0" ? [] : gemmCases()) {
    const a = tf.randomNormal(c.a, 0, 1, "float32", 1);
    const b = tf.randomNormal(c.b, 0, 1, "float32", 2);
    const t = time(
      () => {
        // wasm, cpu and tfjs-node kernels are synchronous: the product is done when matMul returns (no read-back,
        // like PyTorch's side, which does not copy its result either).
        tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, c.transposeA, c.transposeB).dispose();
      },
      quick ? 0.3 : 1,
      quick ? 3 : 10,
    );
    gemm[c.name] = { gflops: c.flops / t.seconds / 1e9, seconds: t.seconds, reps: t.reps };
    tf.dispose([a, b]);
  }
  let block: { seconds: number; gflops: number; layers: number; reps: number; peakBytes: number } | null = null;
  if (runBlock) {
    const params = makeParams(layers);
    const x = tf.randomNormal([BATCH * SEQ, D_MODEL], 0, 1, "float32", 3) as tf.Tensor2D;
    const profile = await tf.profile(() => {
      step(x, params);
    });
    const t = time(() => step(x, params), quick ? 2 : 8, quick ? 2 : 5);
    block = { seconds: t.seconds, gflops: blockFlops(layers) / t.seconds / 1e9, layers, reps: t.reps, peakBytes: profile.peakBytes };
    tf.dispose([x, ...params]);
  }
  type StepTiming = { seconds: number; gflops: number; reps: number; activationBytes: number };
  let t5: {
    t5SmallStep: StepTiming;
    t5SmallStepRecompute: StepTiming;
    decode: { tokensPerSecond: number; seconds: number };
    generateAdapter: { seconds: number; parameters: number };
    teacherLoraStep: { seconds: number };
  } | null = null;
  if (process.env.TAGI_BENCH_T5 === "1") {
    const bench = makeT5Bench(0);
    // Memory: the tensors held when the forward pass ends (the activations kept for backprop), which is
    // what recomputation reduces; tf.profile's peakBytes does not see inside customGrad's forward.
    const t = time(() => bench.trainStep(), quick ? 2 : 6, quick ? 2 : 4);
    const heldPlain = bench.activationBytes();
    const tr = time(() => bench.trainStep(true), quick ? 2 : 6, quick ? 2 : 4);
    const heldRecompute = bench.activationBytes();
    let tokens = 0;
    const d = time(() => (tokens = bench.decode()), quick ? 1 : 3, quick ? 2 : 3);
    bench.dispose();
    const tagi = makeTagiBench(0);
    let generated = 0;
    const g = time(() => (generated = tagi.generate()), quick ? 1 : 3, quick ? 3 : 10);
    const ts = time(() => tagi.teacherStep(), quick ? 2 : 4, quick ? 2 : 4);
    tagi.dispose();
    t5 = {
      t5SmallStep: { seconds: t.seconds, gflops: bench.flops / t.seconds / 1e9, reps: t.reps, activationBytes: heldPlain },
      // matMul FLOPs of the step itself (the recomputed forward is overhead, not counted)
      t5SmallStepRecompute: { seconds: tr.seconds, gflops: bench.flops / tr.seconds / 1e9, reps: tr.reps, activationBytes: heldRecompute },
      decode: { tokensPerSecond: tokens / d.seconds, seconds: d.seconds },
      generateAdapter: { seconds: g.seconds, parameters: generated },
      teacherLoraStep: { seconds: ts.seconds },
    };
  }
  // The campaign's own step: the small preset at the meta-training lengths (batch 16, 512 / 64 tokens).
  let campaignStep: StepTiming | null = null;
  if (process.env.TAGI_BENCH_CAMPAIGN === "1") {
    const cb = makeT5Bench(0, CAMPAIGN_SHAPE, CAMPAIGN_BENCH);
    const t = time(() => cb.trainStep(), quick ? 3 : 10, quick ? 2 : 4);
    campaignStep = { seconds: t.seconds, gflops: cb.flops / t.seconds / 1e9, reps: t.reps, activationBytes: cb.activationBytes() };
    cb.dispose();
  }
  // TAGI's stage-2 step on the small preset (bench/tagi-step.ts).
  let tagiStep: { seconds: number; reps: number; activationBytes: number; trainableParameters: number } | null = null;
  if (process.env.TAGI_BENCH_TAGI === "1") {
    const tb = makeTagiStepBench(0);
    const t = time(() => tb.trainStep(), quick ? 3 : 10, quick ? 2 : 4);
    tagiStep = { seconds: t.seconds, reps: t.reps, activationBytes: tb.activationBytes(), trainableParameters: tb.trainableParameters };
    tb.dispose();
  }
  // T5-Base-shaped training step (only asked of backends without wasm's 4 GiB heap cap)
  const t5Base = process.env.TAGI_BENCH_T5BASE === "1" ? t5BaseTrainStep(0) : null;
  const result = {
    t5Base,
    backend: info.backend,
    variant: info.variant,
    threads: info.threads,
    overrides: info.overrides,
    nativeGemm: info.nativeGemm.inUse,
    gemm,
    blockStep: block,
    t5,
    campaignStep,
    tagiStep,
    precision: info.precision.inUse,
    // this process's peak resident memory (each workload group runs in its own process)
    peakRssBytes: peakRssBytes(),
    liveTensorsAfter: tf.memory().numTensors,
  };
  console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
