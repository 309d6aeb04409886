/**
 * src/backend/memory.ts: recompute() (per-layer activation recomputation via tf.customGrad) and
 * assertNoLeak().
 *
 * recompute must give the plain layer's values and gradients (relative error
 * max|x - y| / max(1, max|y|) <= 1e-6), on the default backend (wasm here) and on cpu, also inside an outer
 * tf.variableGrads / optimizer.minimize (the nested tf.grads in its gradient would otherwise clear the
 * outer backward pass's tape), and must hold less memory than the plain layers.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { assertNoLeak, initBackend, liveTensors, recompute, type BackendInfo } from "../src/backend";
import { relError, Rng, sizeOf } from "./helpers/crosscheck";

const TOL = 1e-6;

type Layer = (inputs: tf.Tensor[], params: tf.Tensor[]) => tf.Tensor;

/** Two-layer MLP with a residual: x + relu(x·W1 + b1)·W2 + b2. x: [N, D]. */
const mlp: Layer = (inputs, params) => {
  const [x] = inputs as [tf.Tensor];
  const [w1, b1, w2, b2] = params as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const h = tf.relu(tf.add(tf.matMul(x, w1), b1));
  return tf.add(x, tf.add(tf.matMul(h, w2), b2));
};

/** Small self-attention block with a residual. x: [B, T, D], 2 heads; params Wq, Wk, Wv, Wo: [D, D]. */
const attention: Layer = (inputs, params) => {
  const [x] = inputs as [tf.Tensor];
  const [wq, wk, wv, wo] = params as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const [b, t, d] = x.shape as [number, number, number];
  const heads = 2;
  const dh = d / heads;
  const x2 = tf.reshape(x, [b * t, d]);
  const split = (w: tf.Tensor) => tf.transpose(tf.reshape(tf.matMul(x2, w), [b, t, heads, dh]), [0, 2, 1, 3]);
  const q = split(wq);
  const k = split(wk);
  const v = split(wv);
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)); // [B, H, T, T]
  const o = tf.matMul(tf.softmax(scores), v); // [B, H, T, dh]
  const merged = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b * t, d]);
  return tf.add(x, tf.reshape(tf.matMul(merged, wo), [b, t, d]));
};

interface LayerSpec {
  name: string;
  layer: Layer;
  xShape: number[];
  paramShapes: number[][];
}

const LAYERS: LayerSpec[] = [
  { name: "2-layer MLP", layer: mlp, xShape: [12, 16], paramShapes: [[16, 40], [40], [40, 16], [16]] },
  { name: "attention block", layer: attention, xShape: [2, 6, 8], paramShapes: [[8, 8], [8, 8], [8, 8], [8, 8]] },
];

function randomArrays(rng: Rng, shapes: number[][], scale = 0.3): Float32Array[] {
  return shapes.map((s) => rng.normals(sizeOf(s), scale));
}

/** A variable from an array (the initial tensor is disposed: tf.variable keeps its own reference). */
function mkVar(values: Float32Array, shape: number[] | undefined, name?: string): tf.Variable {
  const t = tf.tensor(values, shape);
  const v = tf.variable(t, true, name);
  t.dispose();
  return v;
}

function read(ts: tf.Tensor[]): number[][] {
  return ts.map((t) => Array.from(t.dataSync()));
}

function assertClose(actual: number[][], expected: number[][], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: count`);
  for (let i = 0; i < expected.length; i++) {
    const err = relError(actual[i]!, expected[i]!);
    assert.ok(err <= TOL, `${what} ${i}: relative error ${err} > ${TOL}`);
  }
}

/** A copy of recompute() without the tape save/restore, to show that the outer-gradient test needs it. */
function naiveRecompute(layer: Layer): Layer {
  return (inputs, params) => {
    const nIn = inputs.length;
    const split = (xs: tf.Tensor[]) => layer(xs.slice(0, nIn), xs.slice(nIn));
    const wrapped = tf.customGrad((...args: unknown[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const xs = args.slice(0, -1) as tf.Tensor[];
      const value = tf.tidy(() => split(xs));
      save(xs);
      return { value, gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => tf.grads((...ys: tf.Tensor[]) => split(ys))(saved, dy as tf.Tensor) };
    });
    return (wrapped as (...xs: tf.Tensor[]) => tf.Tensor)(...inputs, ...params);
  };
}

let info: BackendInfo;

describe("memory utilities (memory.ts)", () => {
  before(async () => {
    info = await initBackend({ log: false });
  });

  for (const which of ["default", "cpu"] as const) {
    describe(`recompute() on the ${which === "default" ? "default backend (wasm here)" : "cpu backend"}`, () => {
      before(async function () {
        const name = which === "default" ? info.backend : "cpu";
        if (which === "cpu" && info.backend === "cpu") this.skip(); // already covered
        assert.ok(await tf.setBackend(name));
      });
      after(async () => {
        assert.ok(await tf.setBackend(info.backend));
      });

      LAYERS.forEach((spec, li) => {
        it(`${spec.name}: same value and gradients (inputs and params) as the plain layer`, () => {
          const rng = new Rng(1000 + li);
          const xv = rng.normals(sizeOf(spec.xShape));
          const pv = randomArrays(rng, spec.paramShapes);
          const dyv = rng.normals(sizeOf(spec.xShape));
          const run = (layer: Layer) =>
            tf.tidy(() => {
              const x = tf.tensor(xv, spec.xShape);
              const ps = pv.map((v, i) => tf.tensor(v, spec.paramShapes[i]));
              const f = (...all: tf.Tensor[]) => layer(all.slice(0, 1), all.slice(1));
              const { value, grads } = tf.valueAndGrads(f)([x, ...ps], tf.tensor(dyv, spec.xShape));
              return read([value, ...grads]);
            });
          const before = tf.memory().numTensors;
          const plain = run(spec.layer);
          const rc = run(recompute(spec.layer));
          assert.equal(tf.memory().numTensors, before, "tensors left behind");
          assertClose(rc.slice(0, 1), plain.slice(0, 1), "value");
          assertClose(rc.slice(1), plain.slice(1), "gradient");
          assert.equal(rc.length, 1 + 1 + spec.paramShapes.length);
        });
      });

      it("inside an outer tf.variableGrads: two stacked recomputed layers plus plain ops give the plain gradients", () => {
        const rng = new Rng(1100);
        const mlpShapes = LAYERS[0]!.paramShapes;
        const attShapes = LAYERS[1]!.paramShapes;
        const init = {
          mlp1: randomArrays(rng, mlpShapes),
          mlp2: randomArrays(rng, mlpShapes),
          att1: randomArrays(rng, attShapes),
          att2: randomArrays(rng, attShapes),
          wOut: rng.normals(16 * 5, 0.3),
          wOutAtt: rng.normals(8 * 3, 0.3),
        };
        const x = tf.tensor2d(rng.normals(12 * 16), [12, 16]);
        const target = tf.tensor2d(rng.normals(12 * 5), [12, 5]);
        const xa = tf.tensor3d(rng.normals(2 * 6 * 8), [2, 6, 8]);
        const vars = (prefix: string) => ({
          mlp1: init.mlp1.map((v, i) => mkVar(v, mlpShapes[i], `${prefix}/mlp1/${i}`)),
          mlp2: init.mlp2.map((v, i) => mkVar(v, mlpShapes[i], `${prefix}/mlp2/${i}`)),
          att1: init.att1.map((v, i) => mkVar(v, attShapes[i], `${prefix}/att1/${i}`)),
          att2: init.att2.map((v, i) => mkVar(v, attShapes[i], `${prefix}/att2/${i}`)),
          wOut: mkVar(init.wOut, [16, 5], `${prefix}/wOut`),
          wOutAtt: mkVar(init.wOutAtt, [8, 3], `${prefix}/wOutAtt`),
        });
        const loss = (v: ReturnType<typeof vars>, wrap: (l: Layer) => Layer) => () => {
          const m = wrap(mlp);
          const a = wrap(attention);
          const h = m([m([x], v.mlp1)], v.mlp2); // two stacked recomputed layers
          const mlpLoss = tf.mean(tf.square(tf.sub(tf.matMul(tf.tanh(h), v.wOut), target))); // plain ops
          const g = a([a([xa], v.att1)], v.att2);
          const attLoss = tf.mean(tf.square(tf.matMul(tf.reshape(g, [12, 8]), v.wOutAtt)));
          return tf.add(mlpLoss, attLoss) as tf.Scalar;
        };
        const plainVars = vars("plain");
        const rcVars = vars("rc");
        const tensors0 = tf.memory().numTensors;
        const plain = tf.variableGrads(loss(plainVars, (l) => l));
        const rc = tf.variableGrads(loss(rcVars, recompute));
        assertClose(read([rc.value]), read([plain.value]), "loss");
        const names = Object.keys(plain.grads).map((n) => n.slice("plain/".length));
        assert.equal(names.length, 4 * 4 + 2);
        assert.deepEqual(Object.keys(rc.grads).map((n) => n.slice("rc/".length)).sort(), [...names].sort());
        for (const n of names) assertClose(read([rc.grads[`rc/${n}`]!]), read([plain.grads[`plain/${n}`]!]), `gradient of ${n}`);
        tf.dispose([plain.value, rc.value, ...Object.values(plain.grads), ...Object.values(rc.grads)]);
        // The outer tape was cleaned up normally: nothing but the results (now disposed) survived.
        assert.equal(tf.memory().numTensors, tensors0, "tensors left behind by the outer gradient");
        tf.dispose([x, target, xa, ...Object.values(plainVars).flat(), ...Object.values(rcVars).flat()]);
      });

      it("the same outer gradient with a recompute lacking the tape workaround fails (so the test above has teeth)", () => {
        const rng = new Rng(1150);
        const shapes = LAYERS[0]!.paramShapes;
        const ps1 = randomArrays(rng, shapes).map((v, i) => mkVar(v, shapes[i]));
        const ps2 = randomArrays(rng, shapes).map((v, i) => mkVar(v, shapes[i]));
        const x = tf.tensor2d(rng.normals(12 * 16), [12, 16]);
        const naive = naiveRecompute(mlp);
        let result: { value: tf.Scalar; grads: tf.NamedTensorMap } | null = null;
        try {
          result = tf.tidy(() => tf.variableGrads(() => tf.sum(tf.square(naive([naive([x], ps1)], ps2))) as tf.Scalar));
        } catch (e) {
          // tfjs's outer gradient finds its tape cleared by the nested one ("Cannot read properties of null").
          assert.match((e as Error).message, /null/);
        }
        if (result) {
          tf.dispose([result.value, ...Object.values(result.grads)]);
          assert.fail("the naive recompute ran through an outer variableGrads: the tape issue was not exercised");
        }
        tf.dispose([x, ...ps1, ...ps2]);
        // The engine is usable afterwards.
        const w = mkVar(new Float32Array([1, 1]), [2]);
        const g = tf.variableGrads(() => tf.sum(tf.square(w)) as tf.Scalar, [w]);
        assert.deepEqual(Array.from(g.grads[w.name]!.dataSync()), [2, 2]);
        tf.dispose([w, g.value, ...Object.values(g.grads)]);
      });

      it("under optimizer.minimize: three SGD steps give the same parameters with and without recompute", () => {
        const rng = new Rng(1200);
        const shapes = LAYERS[0]!.paramShapes;
        const init1 = randomArrays(rng, shapes);
        const init2 = randomArrays(rng, shapes);
        const x = tf.tensor2d(rng.normals(12 * 16), [12, 16]);
        const target = tf.tensor2d(rng.normals(12 * 16), [12, 16]);
        const train = (wrap: (l: Layer) => Layer) => {
          const p1 = init1.map((v, i) => mkVar(v, shapes[i]));
          const p2 = init2.map((v, i) => mkVar(v, shapes[i]));
          const opt = tf.train.sgd(0.05);
          const m = wrap(mlp);
          const losses: number[] = [];
          for (let step = 0; step < 3; step++) {
            const l = opt.minimize(() => tf.mean(tf.square(tf.sub(m([m([x], p1)], p2), target))) as tf.Scalar, true);
            losses.push(l!.dataSync()[0]!);
            l!.dispose();
          }
          const out = read([...p1, ...p2]);
          opt.dispose();
          tf.dispose([...p1, ...p2]);
          return { losses, out };
        };
        const tensors0 = tf.memory().numTensors;
        const plain = train((l) => l);
        const rc = train(recompute);
        assert.equal(tf.memory().numTensors, tensors0, "tensors left behind");
        assertClose([rc.losses], [plain.losses], "losses");
        assert.ok(plain.losses[2]! < plain.losses[0]!, "the loss went down");
        assertClose(rc.out, plain.out, "parameter after 3 steps");
        tf.dispose([x, target]);
      });

      it("holds less memory than the plain layers in a stack of 6 (after forward, and at the peak of the step)", async () => {
        const rng = new Rng(1300);
        const [n, d, hidden, depth] = [256, 32, 256, 6];
        const shapes = [[d, hidden], [hidden], [hidden, d], [d]];
        const params = Array.from({ length: depth }, () => randomArrays(rng, shapes, 0.1).map((v, i) => mkVar(v, shapes[i])));
        const x = tf.tensor2d(rng.normals(n * d), [n, d]);
        const measure = async (wrap: (l: Layer) => Layer) => {
          const layer = wrap(mlp);
          let heldAfterForward = 0;
          const base = tf.memory().numBytes;
          const profile = await tf.profile(() => {
            const { value, grads } = tf.variableGrads(() => {
              let h: tf.Tensor = x;
              for (const p of params) h = layer([h], p);
              const loss = tf.mean(tf.square(h)) as tf.Scalar;
              heldAfterForward = tf.memory().numBytes - base; // everything kept for the backward pass
              return loss;
            });
            tf.dispose([value, ...Object.values(grads)]);
          });
          return { heldAfterForward, peak: profile.peakBytes - base };
        };
        const tensors0 = tf.memory().numTensors;
        const plain = await measure((l) => l);
        const rc = await measure(recompute);
        assert.equal(tf.memory().numTensors, tensors0, "tensors left behind");
        const activationBytesPerLayer = 4 * n * hidden; // one [n, hidden] float32 intermediate
        // Plain keeps every layer's intermediates (several [n, hidden] tensors each); recompute keeps only
        // the [n, d] layer outputs.
        assert.ok(
          plain.heldAfterForward >= depth * 2 * activationBytesPerLayer,
          `plain held ${plain.heldAfterForward} bytes after forward; expected at least ${depth * 2 * activationBytesPerLayer}`,
        );
        assert.ok(
          rc.heldAfterForward * 4 < plain.heldAfterForward,
          `recompute held ${rc.heldAfterForward} bytes after forward vs plain ${plain.heldAfterForward}: expected < 1/4`,
        );
        assert.ok(rc.peak < 0.6 * plain.peak, `peak during the step: recompute ${rc.peak} vs plain ${plain.peak} bytes: expected < 60%`);
        tf.dispose([x, ...params.flat()]);
      });

      it("a recompute training step leaks nothing (assertNoLeak)", async () => {
        const rng = new Rng(1400);
        const shapes = LAYERS[1]!.paramShapes;
        const ps = randomArrays(rng, shapes).map((v, i) => mkVar(v, shapes[i]));
        const x = tf.tensor3d(rng.normals(2 * 6 * 8), [2, 6, 8]);
        const opt = tf.train.adam(0.01);
        const layer = recompute(attention);
        await assertNoLeak(() => opt.minimize(() => tf.mean(tf.square(layer([layer([x], ps)], ps))) as tf.Scalar), {
          repeats: 3,
          label: "recompute attention step",
        });
        opt.dispose();
        tf.dispose([x, ...ps]);
      });
    });
  }

  describe("assertNoLeak", () => {
    it("passes for a clean step and fails, with the count, for a leaky one", async () => {
      const w = mkVar(new Float32Array(16).fill(1), [4, 4]);
      await assertNoLeak(() => tf.tidy(() => tf.matMul(w, w).dataSync()), { label: "clean step" });
      const kept: tf.Tensor[] = [];
      await assert.rejects(
        assertNoLeak(() => void kept.push(tf.matMul(w, w)), { repeats: 3, warmup: 1, label: "leaky step" }),
        /tensor leak in leaky step: 3 tensors left alive after 3 repeats/,
      );
      assert.equal(kept.length, 4);
      // Async steps are awaited.
      const kept2: tf.Tensor[] = [];
      await assert.rejects(
        assertNoLeak(async () => {
          await Promise.resolve();
          kept2.push(tf.add(w, 1));
        }),
        /tensor leak in step: 3 tensors/,
      );
      tf.dispose([w, ...kept, ...kept2]);
      assert.equal(liveTensors().numTensors, tf.memory().numTensors);
    });
  });
});
