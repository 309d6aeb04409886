/**
 * The wasm Sum override (leading-axes row accumulation) against tfjs's cpu backend: values, keepDims,
 * negative axes, gradients of the broadcasts that produce such sums, and the fall-through to stock wasm.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { crossCheck, Rng, sizeOf } from "./helpers/crosscheck";

describe("wasm Sum override vs cpu", () => {
  before(async () => {
    await initBackend({ backend: "wasm", overrides: true, log: false });
  });

  const cases: Array<{ shape: number[]; axis: number | number[]; keepDims: boolean }> = [
    { shape: [1024, 512], axis: 0, keepDims: false },
    { shape: [7, 33], axis: [0], keepDims: true },
    { shape: [3, 5, 65], axis: [0, 1], keepDims: false },
    { shape: [3, 5, 65], axis: [1, 0], keepDims: true },
    { shape: [2, 3, 4, 5], axis: [-4, -3, -2], keepDims: false },
    { shape: [4, 6], axis: 1, keepDims: false }, // not leading: stock kernel
    { shape: [4, 6, 3], axis: [0, 2], keepDims: false }, // not leading: stock kernel
    { shape: [4, 6], axis: [0, 1], keepDims: false }, // all axes: stock kernel
    { shape: [5000, 3], axis: 0, keepDims: false }, // long columns
  ];
  cases.forEach(({ shape, axis, keepDims }, i) => {
    it(`sum of [${shape}] over ${JSON.stringify(axis)}${keepDims ? " (keepDims)" : ""}`, async () => {
      const v = new Rng(900 + i).normals(sizeOf(shape));
      await crossCheck(() => [tf.sum(tf.tensor(v, shape), axis, keepDims)], { label: `sum ${shape}`, kernels: ["Sum"], tol: 1e-5 });
    });
  });

  it("a sum over an empty axis is zeros even where the heap held garbage; empty outputs stay empty", async () => {
    for (const [shape, axis, keepDims, want] of [
      [[0, 3], 0, false, [3]],
      [[2, 0, 3], [0, 1], true, [1, 1, 3]],
      [[3, 0], 1, false, [3]],
      [[0, 3], 1, false, [0]],
      [[4, 0, 2], 0, false, [0, 2]],
    ] as const) {
      // fill the heap with non-zeros, free it, then reduce: the output must not be that memory
      tf.dispose(Array.from({ length: 8 }, () => tf.fill([4096], 7.5)));
      const got = tf.tidy(() => {
        const y = tf.sum(tf.zeros([...shape]), axis as number | number[], keepDims);
        return { shape: y.shape, values: Array.from(y.dataSync()) };
      });
      assert.deepEqual(got.shape, want, `sum of [${shape}] over ${JSON.stringify(axis)}`);
      assert.ok(got.values.every((v) => v === 0), `sum of [${shape}] over ${JSON.stringify(axis)}: ${got.values}`);
      await crossCheck(() => [tf.sum(tf.zeros([...shape]), axis as number | number[], keepDims)], { label: `empty sum ${shape}`, tol: 0 });
    }
  });

  it("int32 input goes to the stock kernel and stays int32", async () => {
    const v = Int32Array.from({ length: 24 }, (_, i) => i - 7);
    await crossCheck(() => [tf.sum(tf.tensor(v, [4, 6], "int32"), 0)], { label: "int32 sum", tol: 0 });
  });

  it("gradients of broadcast scale and bias (which reduce over leading axes)", async () => {
    const rng = new Rng(950);
    const xv = rng.normals(64 * 32);
    const wv = rng.normals(32);
    const bv = rng.normals(32);
    await crossCheck(
      () => {
        const x = tf.tensor(xv, [8, 8, 32]);
        const w = tf.tensor(wv, [32]);
        const b = tf.tensor(bv, [32]);
        const { value, grads } = tf.valueAndGrads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(tf.add(tf.mul(xx, ww), bb))))([x, w, b]);
        return [value, ...grads];
      },
      { label: "broadcast grads", kernels: ["Sum"], tol: 1e-5 },
    );
  });

  it("the stock fallback stays bound to the live wasm module after a backend switch and a re-created module", async () => {
    const check = (label: string) => {
      const out = tf.tidy(() => Array.from(tf.sum(tf.ones([4, 6]), 1).dataSync()));
      assert.deepEqual(out, [6, 6, 6, 6], label);
    };
    check("fresh");
    await tf.setBackend("cpu");
    await tf.setBackend("wasm");
    check("after switching to cpu and back");
    await initBackend({ backend: "wasm", overrides: true, threads: 1, log: false }); // other options: new module
    check("after initBackend re-created the wasm module");
    await initBackend({ backend: "wasm", overrides: true, log: false });
    check("after re-creating it again");
  });
});
