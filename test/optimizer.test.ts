/**
 * AdamW and Adafactor against torch.optim.AdamW and transformers' Adafactor (fixture from
 * reference/make_optim_fixtures.py: 5 steps, a [4,6] matrix and a [5] vector, gradients of scales 0.1-10,
 * the learning rate changing every step), plus the schedules and state save/restore.
 */
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { createOptimizer, validateOptimizerConfig, type OptimizerConfig } from "../src/train/optimizer";
import { learningRate, validateScheduleConfig } from "../src/train/schedule";

interface Fixture {
  lrs: number[];
  init: Record<string, { shape: number[]; values: number[] }>;
  grads: Record<string, number[]>[];
  cases: Record<string, { config: OptimizerConfig; after: Record<string, number[]>[] }>;
}
const FIX: Fixture = JSON.parse(readFileSync(join(__dirname, "fixtures", "optim", "optim.json"), "utf8"));

function variables(): Map<string, tf.Variable> {
  return new Map(Object.entries(FIX.init).map(([k, v]) => [k, tf.variable(tf.tensor(v.values, v.shape), true)]));
}
function grads(step: number): Map<string, tf.Tensor> {
  return new Map(Object.entries(FIX.grads[step]!).map(([k, v]) => [k, tf.tensor(v, FIX.init[k]!.shape)]));
}
function maxRelDiff(a: ArrayLike<number>, b: readonly number[]): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1e-3, Math.abs(b[i]!)));
  return worst;
}

describe("optimizers against PyTorch / transformers", function () {
  before(async () => {
    await initBackend({ log: false });
  });
  for (const name of Object.keys(FIX.cases)) {
    it(`${name}: parameters after each of 5 steps match`, () => {
      const c = FIX.cases[name]!;
      const vars = variables();
      const opt = createOptimizer(c.config, vars);
      const before = tf.memory().numTensors;
      for (let s = 0; s < FIX.lrs.length; s++) {
        const g = grads(s);
        opt.step(g, FIX.lrs[s]!);
        for (const t of g.values()) t.dispose();
        for (const [k, v] of vars) {
          const d = maxRelDiff(v.dataSync(), c.after[s]![k]!);
          assert.ok(d < 2e-5, `${name} step ${s + 1} '${k}': max relative difference ${d}`);
        }
        // Slots are created on the first step; afterwards a step allocates nothing that outlives it.
        if (s === 0) continue;
        assert.equal(tf.memory().numTensors, before + opt.state().slots.size, `${name}: step ${s + 1} leaked tensors`);
      }
      opt.dispose();
      for (const v of vars.values()) v.dispose();
    });
  }

  it("state() / loadState() continue exactly where the saved optimizer stopped", () => {
    const c = FIX.cases["adamw"]!;
    const a = variables();
    const optA = createOptimizer(c.config, a);
    for (let s = 0; s < 2; s++) optA.step(grads(s), FIX.lrs[s]!);
    // A second optimizer on copies of the parameters, given A's state, must track A exactly.
    const b = new Map([...a].map(([k, v]) => [k, tf.variable(v.clone(), true)]));
    const optB = createOptimizer(c.config, b);
    optB.loadState(optA.state());
    assert.equal(optB.stepCount, 2);
    for (let s = 2; s < 5; s++) {
      optA.step(grads(s), FIX.lrs[s]!);
      optB.step(grads(s), FIX.lrs[s]!);
    }
    for (const k of a.keys()) assert.deepEqual([...b.get(k)!.dataSync()], [...a.get(k)!.dataSync()]);
    const c5 = FIX.cases["adamw"]!.after[4]!;
    assert.ok(maxRelDiff(b.get("w")!.dataSync(), c5["w"]!) < 2e-5);
  });

  it("a parameter without a gradient is left alone; unknown gradients and bad lr are errors", () => {
    const vars = variables();
    const opt = createOptimizer(FIX.cases["adamw"]!.config, vars);
    const b0 = [...vars.get("b")!.dataSync()];
    const g = grads(0);
    opt.step(new Map([["w", g.get("w")!]]), 0.1);
    assert.deepEqual([...vars.get("b")!.dataSync()], b0);
    assert.throws(() => opt.step(new Map([["nope", g.get("b")!]]), 0.1), /'nope', which is not a trainable variable/);
    assert.throws(() => opt.step(g, -1), /learning rate must be a finite number >= 0/);
    assert.throws(() => opt.step(g, NaN), /learning rate/);
  });

  it("impossible optimizer settings are reported together", () => {
    const p = validateOptimizerConfig({ kind: "adamw", beta1: 1.2, beta2: 0.999, eps: 0, weightDecay: -1 });
    assert.equal(p.length, 3, p.join("\n"));
    assert.throws(() => createOptimizer({ kind: "sgd" } as unknown as OptimizerConfig, new Map()), /kind must be "adamw" or "adafactor"/);
  });
});

describe("learning-rate schedules", () => {
  it("linear warmup then constant, linear decay, inverse sqrt", () => {
    const c = { kind: "constant" as const, lr: 1, warmupSteps: 4 };
    assert.deepEqual([1, 2, 4, 5, 100].map((s) => learningRate(c, s, 100)), [0.25, 0.5, 1, 1, 1]);
    const l = { kind: "linear" as const, lr: 1, warmupSteps: 2 };
    assert.deepEqual([1, 2, 3, 6, 7].map((s) => learningRate(l, s, 6)), [0.5, 1, 1, 0.25, 0]);
    const r = { kind: "inverse-sqrt" as const, lr: 0.01, warmupSteps: 100 };
    assert.equal(learningRate(r, 100, 1000), 0.01);
    assert.ok(Math.abs(learningRate(r, 400, 1000) - 0.005) < 1e-12);
    assert.equal(learningRate({ kind: "linear", lr: 1, warmupSteps: 0 }, 1, 4), 1);
  });
  it("rejects a negative lr, fractional warmup, warmup beyond the run", () => {
    assert.equal(validateScheduleConfig({ kind: "constant", lr: -1, warmupSteps: 0 }, 10).length, 1);
    assert.equal(validateScheduleConfig({ kind: "constant", lr: 1, warmupSteps: 0.5 }, 10).length, 1);
    assert.match(validateScheduleConfig({ kind: "constant", lr: 1, warmupSteps: 20 }, 10)[0]!, /exceeds/);
  });
});
