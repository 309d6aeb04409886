/**
 * Continuous batching (src/model/stream-decode.ts): rows that join a running batch, left-padded in the
 * self-attention cache and padded in memory, decode as each would alone; references are scored as alone;
 * nothing leaks.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { disposeSlicedRunOptions, greedyDecode, newGenerationTiming, scoreTargets, sliceRunOptions } from "../src/model/generate";
import { createLoraVariables, toPerExample, type LoraAdapter } from "../src/model/lora";
import { streamGreedy } from "../src/model/stream-decode";
import type { InstructionFusion, RunOptions, T5Model } from "../src/model/t5";
import { randomTinyT5 } from "../src/model/tiny";
import { initFusionParams } from "../src/tagi/fusion";

/** One rank-4 adapter with non-zero B, repeated for `rows` examples (one task's generated adapter). */
function sharedPerExampleLora(model: T5Model, rows: number, seed: number): LoraAdapter {
  const peft = createLoraVariables(model.config, { r: 4, alpha: 8, dropout: 0, targetModules: ["q", "v"] }, seed);
  for (const m of peft.modules.values()) {
    const B = m.B;
    m.B = tf.randomNormal(B.shape, 0, 0.5, "float32", seed * 2);
    B.dispose();
  }
  const lora = toPerExample(peft, rows);
  for (const m of peft.modules.values()) tf.dispose([m.A, m.B]);
  return lora;
}

/** One instruction encoding repeated for `rows` examples, fused by cross-attention and concatenation. */
function sharedFusion(model: T5Model, rows: number): InstructionFusion {
  const d = model.config.d_model;
  return {
    instruction: tf.tidy(() => tf.tile(tf.randomNormal([1, 3, d], 0, 1, "float32", 7), [rows, 1, 1])) as tf.Tensor3D,
    instructionMask: tf.tensor2d(Array.from({ length: rows }, () => [1, 1, 0]), [rows, 3], "int32"),
    crossAttention: true,
    concatenate: true,
    params: initFusionParams(model.config, 3),
  };
}

function inputsOf(n: number, seed: number): number[][] {
  // lengths 2..12 in no order, so rows join with longer and shorter memories than the batch's
  return Array.from({ length: n }, (_, i) => Array.from({ length: 2 + ((i * 5 + seed) % 11) }, (_, j) => (j === 1 + ((i * 5 + seed) % 11) ? 1 : 3 + ((i * 131 + j * 17 + seed) % 500))));
}

/** Each input decoded alone (batch of one, no padding), with row 0 of the options. */
function alone(model: T5Model, inputs: number[][], maxNewTokens: number, ro: RunOptions): number[][] {
  return inputs.map((ids) => {
    const t = tf.tensor2d([ids], undefined, "int32");
    const one = sliceRunOptions(ro, 0, 1);
    try {
      const [row] = greedyDecode(model, t, undefined, { maxNewTokens, ...one });
      return row!;
    } finally {
      t.dispose();
      disposeSlicedRunOptions(one, ro);
    }
  });
}

/** An EOS id that rows reach at the most different steps (or never), in a run that ignores EOS. */
function eosReachedSometimes(model: T5Model, inputs: number[][], ro: RunOptions): number {
  const free = alone({ ...model, config: { ...model.config, eos_token_id: -1 } }, inputs, 10, ro);
  const spread = (t: number) => new Set(free.map((r) => r.indexOf(t, 1))).size;
  return [...new Set(free.flatMap((r) => r.slice(1)))].sort((x, y) => spread(y) - spread(x) || x - y)[0]!;
}

describe("continuous batching (streamGreedy)", () => {
  before(async () => {
    await initBackend({ log: false });
  });

  for (const variant of ["plain", "per-example LoRA + fusion"] as const) {
    it(`${variant}: rows joining a running batch decode as each would alone, references score as alone, nothing leaks`, async () => {
      const base = randomTinyT5(11);
      const n = 13;
      const batchSize = 4;
      const inputs = inputsOf(n, 4);
      const ro: RunOptions = variant === "plain" ? {} : { lora: sharedPerExampleLora(base, 8, 2), fusion: sharedFusion(base, 8) };
      const model = { ...base, config: { ...base.config, eos_token_id: eosReachedSometimes(base, inputs, ro) } };
      const expected = alone(model, inputs, 10, ro);
      const stops = expected.map((r) => r.length);
      assert.ok(new Set(stops).size >= 3, `rows should finish at different steps: ${stops}`);
      const labels = inputs.map((_, i) => [3 + i, 5 + ((i * 3) % 11), 1].slice(i % 2));
      const before = tf.memory().numTensors;
      const timing = newGenerationTiming();
      const progress: number[] = [];
      const got = await streamGreedy(model, inputs, { maxNewTokens: 10, batchSize, admitRows: 2, runOptions: ro, labels, timing, onProgress: (k) => progress.push(k) });
      // a wider batch admitted all at once: finished rows linger (ignored) until a quarter of it has finished
      const wide = await streamGreedy(model, inputs, { maxNewTokens: 10, batchSize: 8, admitRows: 8, runOptions: ro });
      assert.deepEqual(wide.ids, got.ids);
      assert.equal(tf.memory().numTensors, before, "streamGreedy leaked tensors");
      // greedyDecode pads a finished row with pad ids; the stream's rows end at EOS
      assert.deepEqual(got.ids, expected.map((r) => r.slice(0, r.includes(model.config.eos_token_id) ? r.indexOf(model.config.eos_token_id) + 1 : r.length)));
      assert.equal(progress.at(-1), n);
      assert.ok(timing.rowSteps / timing.steps > 2.5, `the batch stays near full: ${timing.rowSteps / timing.steps} rows per step`);
      for (let i = 0; i < n; i++) {
        const t = tf.tensor2d([inputs[i]!], undefined, "int32");
        const one = sliceRunOptions(ro, 0, 1);
        const s = scoreTargets(model, t, undefined, [labels[i]!], one);
        disposeSlicedRunOptions(one, ro);
        t.dispose();
        s.tokenLogProbs[0]!.forEach((v, j) => assert.ok(Math.abs(v - got.scores!.tokenLogProbs[i]![j]!) < 1e-4, `row ${i} token ${j}: ${v} vs ${got.scores!.tokenLogProbs[i]![j]}`));
      }
      if (ro.lora) for (const m of ro.lora.modules.values()) tf.dispose([m.A, m.B]);
      if (ro.fusion) tf.dispose([ro.fusion.instruction, ro.fusion.instructionMask, ...ro.fusion.params.values()]);
      tf.dispose([...base.params.values()]);
    });
  }

  it("maxNewTokens 0 scores without decoding; bad options are errors naming the value", async () => {
    const model = randomTinyT5(12);
    const inputs = inputsOf(5, 1);
    const r = await streamGreedy(model, inputs, { maxNewTokens: 0, batchSize: 2, labels: inputs.map(() => [4, 1]) });
    assert.deepEqual(r.ids, inputs.map(() => [model.config.decoder_start_token_id]));
    assert.equal(r.scores!.mean.length, 5);
    await assert.rejects(streamGreedy(model, inputs, { maxNewTokens: 4, batchSize: 0 }), /batchSize must be a positive integer, got 0/);
    await assert.rejects(streamGreedy(model, [[5, 1], []], { maxNewTokens: 4, batchSize: 2 }), /input 1 is empty/);
    await assert.rejects(streamGreedy(model, inputs, { maxNewTokens: 4, batchSize: 2, labels: [[1]] }), /1 label rows for 5 inputs/);
    const lora = sharedPerExampleLora(model, 2, 1);
    await assert.rejects(streamGreedy(model, inputs, { maxNewTokens: 4, batchSize: 3, runOptions: { lora } }), /run options hold 2 rows .* batchSize 3/);
    for (const m of lora.modules.values()) tf.dispose([m.A, m.B]);
    tf.dispose([...model.params.values()]);
  });
});
