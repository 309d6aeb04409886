/**
 * TAGI's distillation losses against hand-computed values: L_kl (T²·KL with padding masked, and the
 * official code's variant), L_ins (factors and product, one scaling convention), the teachers' per-example
 * stacking, the gradient of each into its inputs, and the errors for mismatched adapters.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { distillationKl, officialAlignmentLoss, parameterAlignmentLoss, stackTeacherAdapters } from "../src/tagi/losses";
import type { LoraAdapter } from "../src/model/lora";

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
const softmax = (xs: number[]) => {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b);
  return e.map((x) => x / s);
};
const kl = (p: number[], q: number[]) => p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]!), 0);

describe("TAGI losses", () => {
  before(async () => {
    await initBackend({ log: false });
  });

  it("L_kl = T²·KL(teacher‖student) over valid target positions; the padding position is ignored", () => {
    const student = [[0, 0, 1], [1, 0, 0], [5, -3, 2]];
    const teacher = [[Math.log(3), 0, 0.5], [0, 0, 0], [0, 9, 0]];
    const s = tf.tensor3d([student]);
    const t = tf.tensor3d([teacher]);
    const labels = tf.tensor2d([[4, 7, -100]], undefined, "int32");
    for (const T of [1, 2, 3]) {
      const expected = ((kl(softmax(teacher[0]!.map((x) => x / T)), softmax(student[0]!.map((x) => x / T))) + kl(softmax(teacher[1]!.map((x) => x / T)), softmax(student[1]!.map((x) => x / T)))) / 2) * T * T;
      close(distillationKl(s, t, labels, { temperature: T }).dataSync()[0]!, expected, 1e-5);
    }
    // The official code's variant: no T², every position averaged (padding included).
    const all = [0, 1, 2].map((i) => kl(softmax(teacher[i]!.map((x) => x / 3)), softmax(student[i]!.map((x) => x / 3))));
    close(distillationKl(s, t, labels, { temperature: 3, scaleByTemperatureSquared: false, maskPadding: false }).dataSync()[0]!, (all[0]! + all[1]! + all[2]!) / 3, 1e-5);
    assert.throws(() => distillationKl(s, t, labels, { temperature: 0 }), /temperature must be a finite number > 0, got 0/);
    assert.throws(() => distillationKl(s, tf.zeros([1, 2, 3]) as tf.Tensor3D, labels, { temperature: 1 }), /differ in shape/);
  });

  it("L_kl's gradient on the student logits is T·(p_s - p_t)/count on valid positions, 0 on padding", () => {
    const T = 2;
    const student = tf.tensor3d([[[0.3, -1, 2], [1, 1, 0]]]);
    const teacher = tf.tensor3d([[[1, 0, 0], [0, 3, 0]]]);
    const labels = tf.tensor2d([[1, -100]], undefined, "int32");
    const g = tf.grad((x: tf.Tensor) => distillationKl(x as tf.Tensor3D, teacher, labels, { temperature: T }))(student).arraySync() as number[][][];
    const ps = softmax([0.3, -1, 2].map((x) => x / T));
    const pt = softmax([1, 0, 0].map((x) => x / T));
    ps.forEach((p, i) => close(g[0]![0]![i]!, T * (p - pt[i]!), 1e-5));
    assert.ok(g[0]![1]!.every((x) => x === 0), `padding gradient ${g[0]![1]}`);
  });

  function adapter(A: number[][][], B: number[][][], scaling: number): LoraAdapter {
    return { layout: "perExample", scaling, dropout: 0, modules: new Map([["encoder.block.0.layer.0.SelfAttention.q", { A: tf.tensor3d(A), B: tf.tensor3d(B) }]]) };
  }

  it("L_ins: A with A and s·B with s·B (factors), or s·A·B (product), hand-computed", () => {
    const g = adapter([[[1], [2]]], [[[3, 4]]], 2);
    const t = adapter([[[0], [2]]], [[[1, 1]]], 1);
    // factors: MSE(A) = (1 + 0)/2 = 0.5; MSE(sB) = ((6-1)^2 + (8-1)^2)/2 = 37
    close(parameterAlignmentLoss(g, t, "factors").dataSync()[0]!, 37.5);
    // product: 2·[[3,4],[6,8]] - [[0,0],[2,2]] -> (36 + 64 + 100 + 196)/4 = 99
    close(parameterAlignmentLoss(g, t, "product").dataSync()[0]!, 99);
    // Its gradient reaches the generated factors: d/dA of MSE(A_g, A_t) = 2(A_g - A_t)/n.
    const A = tf.tensor3d([[[1], [2]]]);
    const dA = tf.grad((a: tf.Tensor) => parameterAlignmentLoss({ ...g, modules: new Map([["encoder.block.0.layer.0.SelfAttention.q", { A: a, B: g.modules.get("encoder.block.0.layer.0.SelfAttention.q")!.B }]]) }, t))(A);
    assert.deepEqual([...dA.dataSync()], [1, 0]);
  });

  it("L_ins official variant: 1000·[MSE(A_g, B_t^PEFT) + MSE(B_g, A_t^PEFT)], unscaled, gated by sigmoid; square projections only", () => {
    // in = out = 2, r = 1. Generated A [2,1] = [1;2], B [1,2] = [3 4]; teacher A [2,1] = [0;2], B [1,2] = [1 1].
    const g = adapter([[[1], [2]]], [[[3, 4]]], 2);
    const t = adapter([[[0], [2]]], [[[1, 1]]], 1);
    // teacher PEFT B = [out, r] = [1;1] against A_g = [1;2]: ((1-1)^2 + (2-1)^2)/2 = 0.5;
    // teacher PEFT A = [r, in] = [0 2] against B_g = [3 4]: (9 + 4)/2 = 6.5. L = 1000·7 = 7000, gated: sigmoid(7000)·7000.
    close(officialAlignmentLoss(g, t).dataSync()[0]!, 7000, 1e-6);
    const small = adapter([[[0.01], [0.02]]], [[[0.01, 0.0]]], 2);
    const tz = adapter([[[0], [0]]], [[[0, 0]]], 1);
    const l = 1000 * ((0.0001 + 0.0004) / 2 + 0.0001 / 2);
    close(officialAlignmentLoss(small, tz).dataSync()[0]!, l / (1 + Math.exp(-l)), 1e-5);
    const rect = adapter([[[1], [2]]], [[[3, 4, 5]]], 1);
    assert.throws(() => officialAlignmentLoss(rect, rect), /maps 2 to 3 features; the official swapped comparison needs a square projection/);
  });

  it("L_ins relative-product: ‖ΔW_g − ΔW_t‖²/‖ΔW_t‖² per example, scale-free, 1 for a zero adapter; a zero teacher is refused", () => {
    const g = adapter([[[1], [2]], [[0], [0]]], [[[3, 4]], [[1, 1]]], 2);
    const t = adapter([[[0], [2]], [[1], [1]]], [[[1, 1]], [[1, 2]]], 1);
    // example 0: ΔW_g = 2·[[3,4],[6,8]], ΔW_t = [[0,0],[2,2]]: err 396, ‖ΔW_t‖² = 8 -> 49.5
    // example 1: ΔW_g = 0, ΔW_t = [[1,2],[1,2]]: err 10, norm 10 -> 1
    close(parameterAlignmentLoss(g, t, "relative-product").dataSync()[0]!, (49.5 + 1) / 2, 1e-4);
    // Scaling both sides by 10 leaves it unchanged (the plain product MSE grows 100x).
    const g10 = adapter([[[1], [2]], [[0], [0]]], [[[30, 40]], [[10, 10]]], 2);
    const t10 = adapter([[[0], [2]], [[1], [1]]], [[[10, 10]], [[10, 20]]], 1);
    close(parameterAlignmentLoss(g10, t10, "relative-product").dataSync()[0]!, 25.25, 1e-4);
    close(parameterAlignmentLoss(g10, t10, "product").dataSync()[0]! / parameterAlignmentLoss(g, t, "product").dataSync()[0]!, 100, 1e-4);
    // The gradient with respect to B_g against central differences; at example 1 (A_g = 0) it is 0.
    const B = tf.tensor3d([[[3, 4]], [[1, 1]]]);
    const f = (b: tf.Tensor) => parameterAlignmentLoss({ ...g, modules: new Map([["encoder.block.0.layer.0.SelfAttention.q", { A: g.modules.get("encoder.block.0.layer.0.SelfAttention.q")!.A, B: b }]]) }, t, "relative-product");
    const dB = tf.grad(f)(B).arraySync() as number[][][];
    const eps = 1e-2;
    const base = B.arraySync() as number[][][];
    for (const [e, j] of [[0, 0], [0, 1], [1, 0]] as const) {
      const plus = base.map((x) => x.map((r) => [...r]));
      const minus = base.map((x) => x.map((r) => [...r]));
      plus[e]![0]![j]! += eps;
      minus[e]![0]![j]! -= eps;
      const num = (f(tf.tensor3d(plus)).dataSync()[0]! - f(tf.tensor3d(minus)).dataSync()[0]!) / (2 * eps);
      close(dB[e]![0]![j]!, num, 1e-2);
    }
    // 0 or -0: the sign of a zero gradient depends on the CPU's kernels (-0 on an AMD EPYC without AVX-512)
    assert.equal(Math.abs(dB[1]![0]![0]!), 0);
    const zero = adapter([[[1], [2]], [[0], [0]]], [[[1, 1]], [[1, 2]]], 1);
    const before = tf.memory().numTensors;
    assert.throws(() => parameterAlignmentLoss(g, zero, "relative-product"), /teacher's s·A·B is zero for encoder\.block\.0\.layer\.0\.SelfAttention\.q, example 1/);
    parameterAlignmentLoss(g, t, "relative-product").dispose();
    parameterAlignmentLoss(g, t, "cosine").dispose();
    assert.equal(tf.memory().numTensors, before, "no tensor left behind, thrown or not");
    assert.throws(() => parameterAlignmentLoss(g, t, "l1" as never), /unknown alignment mode "l1" \(valid: factors, product, relative-product, cosine\)/);
  });

  it("L_ins cosine: 1 − cos(ΔW_g, ΔW_t) per example, blind to either side's scale; finite for a zero generated update", () => {
    const g = adapter([[[1], [2]], [[0], [0]]], [[[3, 4]], [[1, 1]]], 2);
    const t = adapter([[[0], [2]], [[1], [1]]], [[[1, 1]], [[1, 2]]], 1);
    // example 0: ⟨2·[[3,4],[6,8]], [[0,0],[2,2]]⟩ = 56, ‖ΔW_g‖ = 2·√125, ‖ΔW_t‖ = √8 -> cos = 56/(2·√1000);
    // example 1: ΔW_g = 0 -> cos 0, term 1.
    const cos0 = 56 / (2 * Math.sqrt(1000));
    close(parameterAlignmentLoss(g, t, "cosine").dataSync()[0]!, (1 - cos0 + 1) / 2, 1e-5);
    const g10 = adapter([[[1], [2]], [[0], [0]]], [[[30, 40]], [[10, 10]]], 2);
    const t01 = adapter([[[0], [2]], [[1], [1]]], [[[0.1, 0.1]], [[0.1, 0.2]]], 1);
    close(parameterAlignmentLoss(g10, t01, "cosine").dataSync()[0]!, (1 - cos0 + 1) / 2, 1e-5);
    const same = adapter([[[1], [2]]], [[[3, 4]]], 2);
    close(parameterAlignmentLoss(same, adapter([[[1], [2]]], [[[6, 8]]], 1), "cosine").dataSync()[0]!, 0, 1e-5);
    const B = tf.tensor3d([[[3, 4]], [[1, 1]]]);
    const dB = tf.grad((b: tf.Tensor) => parameterAlignmentLoss({ ...g, modules: new Map([["encoder.block.0.layer.0.SelfAttention.q", { A: g.modules.get("encoder.block.0.layer.0.SelfAttention.q")!.A, B: b }]]) }, t, "cosine"))(B);
    assert.ok([...dB.dataSync()].every(Number.isFinite));
    const zero = adapter([[[1], [2]]], [[[0, 0]]], 1);
    assert.throws(() => parameterAlignmentLoss(same, zero, "cosine"), /\("cosine"\): the teacher's s·A·B is zero/);
  });

  it("L_ins refuses adapters of another rank (factors only) or module set, naming them", () => {
    const g = adapter([[[1], [2]]], [[[3, 4]]], 1);
    const r2 = adapter([[[1, 1], [2, 2]]], [[[3, 4], [3, 4]]], 1);
    assert.throws(() => parameterAlignmentLoss(g, r2), /SelfAttention\.q: generated A \[1,2,1\] B \[1,1,2\], teacher A \[1,2,2\] B \[1,2,2\] \(rank, batch or features differ\)/);
    // On the update s·A·B the ranks may differ (rank sensitivity against rank-32 teachers): rank 1 against
    // rank 2, ΔW_g = [[3,4],[6,8]], ΔW_t = [[1,1],[2,2]]·[[3,4],[3,4]] = [[6,8],[12,16]] -> (9+16+36+64)/4.
    close(parameterAlignmentLoss(g, r2, "product").dataSync()[0]!, 31.25);
    close(parameterAlignmentLoss(g, r2, "relative-product").dataSync()[0]!, 125 / (36 + 64 + 144 + 256));
    close(parameterAlignmentLoss(g, r2, "cosine").dataSync()[0]!, 0, 1e-6); // the same direction
    // ...but not the features: a teacher for another input width is refused in every mode.
    const wide = adapter([[[1], [2], [3]]], [[[3, 4]]], 1);
    assert.throws(() => parameterAlignmentLoss(g, wide, "product"), /generated A \[1,2,1\] B \[1,1,2\], teacher A \[1,3,1\] B \[1,1,2\] \(batch or features differ\)/);
    const other: LoraAdapter = { ...g, modules: new Map([["decoder.block.0.layer.0.SelfAttention.v", g.modules.get("encoder.block.0.layer.0.SelfAttention.q")!]]) };
    assert.throws(() => parameterAlignmentLoss(g, other), /the teacher has no adapter for encoder\.block\.0\.layer\.0\.SelfAttention\.q/);
  });

  it("stackTeacherAdapters: example i gets its group's teacher, transposed to the per-example layout", () => {
    const peft = (a: number, b: number): LoraAdapter => ({
      layout: "peft",
      scaling: 1,
      dropout: 0,
      modules: new Map([["m", { A: tf.tensor2d([[a, a + 1, a + 2]]), B: tf.tensor2d([[b], [b + 1]]) }]]), // A [r=1, in=3], B [out=2, r=1]
    });
    const stacked = stackTeacherAdapters([peft(0, 10), peft(100, 200)], [1, 0, 1]);
    const m = stacked.modules.get("m")!;
    assert.deepEqual(m.A.shape, [3, 3, 1]);
    assert.deepEqual(m.B.shape, [3, 1, 2]);
    assert.deepEqual(m.A.arraySync(), [[[100], [101], [102]], [[0], [1], [2]], [[100], [101], [102]]]);
    assert.deepEqual(m.B.arraySync(), [[[200, 201]], [[10, 11]], [[200, 201]]]);
    assert.throws(() => stackTeacherAdapters([peft(0, 1)], [1]), /index 1 is out of range \[0, 1\)/);
  });
});
