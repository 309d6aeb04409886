/**
 * bf16 matrix products (src/backend/bf16-matmul.ts). On the native TensorFlow backend, on a CPU with bf16
 * instructions: every product equals, within one bf16 rounding of the largest output, the float64 product
 * of the bf16-rounded inputs rounded to bf16 (so the inputs really are bf16 and the accumulation float32);
 * gradients agree with the cpu backend's float32 gradients to bf16 precision; no tfjs tensor and no
 * TensorFlow handle leaks; a micro training run in bf16 ends within seed noise of float32 and may resume in
 * the other precision. Elsewhere (wasm, cpu, a CPU without bf16): float32 stays in use and the reason says
 * why.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { cpuBf16Flags, envPrecision, initBackend, matMulPrecision, setMatMulPrecision } from "../src/backend";
import { validateTrainConfig } from "../src/train/loop";
import { onBackend, readAll, relError, Rng, sizeOf } from "./helpers/crosscheck";
import { cfg, examples, run, tmp } from "./helpers/micro-train";

/** float32 -> bfloat16 -> float32, round to nearest even (as TensorFlow's Cast and torch do). */
function toBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const bits = u[0]!;
  u[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f[0]!;
}

/** The bf16 product of [m,k] x [k,n] (row-major, already transposed as needed), float64 accumulation. */
function bf16Product(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const a16 = a.map(toBf16);
  const b16 = b.map(toBf16);
  const out: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a16[i * k + p]! * b16[p * n + j]!;
      out.push(toBf16(s));
    }
  }
  return out;
}

function transpose(x: number[], rows: number, cols: number): number[] {
  const out = new Array<number>(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}

interface Binding {
  getNumOfTensors(): number;
}
const binding = (): Binding => (tf.backend() as unknown as { binding: Binding }).binding;

describe("bf16 matrix products", function () {
  this.timeout(300_000);
  let usable = false;

  before(async () => {
    await initBackend({ log: false });
    const s = setMatMulPrecision("bf16");
    usable = s.inUse === "bf16";
    if (!usable) console.log(`      (bf16 not in use here: ${s.reason})`);
    setMatMulPrecision("fp32");
  });
  afterEach(() => setMatMulPrecision("fp32"));

  it("is float32 by default; an unknown precision is an error; TAGI_PRECISION is checked; CPU flags are read from cpuinfo", () => {
    assert.equal(matMulPrecision().inUse, "fp32");
    assert.throws(() => setMatMulPrecision("fp16" as "bf16"), /unknown matmul precision 'fp16'; valid: fp32, bf16/);
    const saved = process.env.TAGI_PRECISION;
    try {
      process.env.TAGI_PRECISION = "half";
      assert.throws(() => envPrecision(), /TAGI_PRECISION=half: expected one of fp32, bf16/);
      process.env.TAGI_PRECISION = "bf16";
      assert.equal(envPrecision(), "bf16");
    } finally {
      if (saved === undefined) delete process.env.TAGI_PRECISION;
      else process.env.TAGI_PRECISION = saved;
    }
    assert.deepEqual(cpuBf16Flags("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n"), ["avx512_bf16"]);
    assert.deepEqual(cpuBf16Flags("flags : fpu sse avx2\n"), []);
    assert.deepEqual(
      validateTrainConfig({ ...cfg(), precision: "fp16" as "bf16" }),
      ['train.precision must be "fp32" or "bf16" or null, got "fp16"'],
    );
  });

  it("on another backend float32 stays in use, and the reason names the backend", async () => {
    await onBackend("cpu", () => {
      const s = setMatMulPrecision("bf16");
      assert.equal(s.inUse, "fp32");
      assert.match(s.reason, /bf16 matrix products need the tensorflow backend .*this process runs 'cpu'; float32 products are used/);
      const y = readAll(() => [tf.matMul(tf.tensor2d([1.001, 2], [1, 2]), tf.tensor2d([1, 1], [2, 1]))])[0]!;
      assert.ok(Math.abs(y.values[0]! - 3.001) < 1e-6, "a float32 product");
    });
  });

  it("values: the bf16 product of bf16-rounded inputs, for odd shapes, every transpose, batches and broadcasting", function () {
    if (!usable) this.skip();
    const rng = new Rng(7);
    setMatMulPrecision("bf16");
    const cases: { m: number; k: number; n: number; ta: boolean; tb: boolean }[] = [];
    for (const [m, k, n] of [[1, 7, 33], [65, 129, 7], [33, 65, 129], [129, 1, 65]] as const) {
      for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) cases.push({ m, k, n, ta, tb });
    }
    for (const c of cases) {
      const { m, k, n } = c;
      const a = Array.from({ length: m * k }, () => rng.normal());
      const b = Array.from({ length: k * n }, () => rng.normal());
      // stored transposed where the product says so
      const aStored = c.ta ? transpose(a, m, k) : a;
      const bStored = c.tb ? transpose(b, k, n) : b;
      const [got] = readAll(() => [tf.matMul(tf.tensor2d(aStored, c.ta ? [k, m] : [m, k]), tf.tensor2d(bStored, c.tb ? [n, k] : [k, n]), c.ta, c.tb)]);
      const want = bf16Product(a, b, m, k, n);
      assert.deepEqual(got!.shape, [m, n]);
      const err = relError(got!.values, want);
      assert.ok(err <= 2 ** -8, `[${m},${k}]x[${k},${n}] transposeA ${c.ta} transposeB ${c.tb}: error ${err} against the bf16 product`);
    }
    // A batch with broadcasting: [2,1,m,k] x [3,k,n] -> [2,3,m,n]; each slice is the bf16 product.
    const [m, k, n] = [5, 17, 9];
    const a = Array.from({ length: 2 * m * k }, () => rng.normal());
    const b = Array.from({ length: 3 * k * n }, () => rng.normal());
    const [got] = readAll(() => [tf.matMul(tf.tensor4d(a, [2, 1, m, k]), tf.tensor3d(b, [3, k, n]))]);
    assert.deepEqual(got!.shape, [2, 3, m, n]);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const slice = got!.values.slice((i * 3 + j) * m * n, (i * 3 + j + 1) * m * n);
        const want = bf16Product(a.slice(i * m * k, (i + 1) * m * k), b.slice(j * k * n, (j + 1) * k * n), m, k, n);
        assert.ok(relError(slice, want) <= 2 ** -8, `batch slice (${i}, ${j})`);
      }
    }
    // int32 products stay exact (the stock kernel).
    const [ints] = readAll(() => [tf.matMul(tf.tensor2d([257, 3], [1, 2], "int32"), tf.tensor2d([1, 1], [2, 1], "int32"))]);
    assert.deepEqual(ints!.values, [260]);
    assert.equal(ints!.dtype, "int32");
  });

  it("gradients agree with the cpu backend's float32 gradients to bf16 precision, and nothing leaks", async function () {
    if (!usable) this.skip();
    const rng = new Rng(11);
    for (const [shapeA, shapeB, ta, tb] of [
      [[3, 33, 17], [17, 65], false, false],
      [[4, 9, 31], [4, 7, 31], false, true],
      [[31, 7], [31, 66], true, false],
    ] as const) {
      const a = Array.from({ length: sizeOf(shapeA) }, () => rng.normal());
      const b = Array.from({ length: sizeOf(shapeB) }, () => rng.normal());
      const fn = () => {
        const x = tf.tensor(a, [...shapeA]);
        const y = tf.tensor(b, [...shapeB]);
        // a non-uniform upstream gradient: sum of squares of the product
        const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(p, q, ta, tb))))([x, y]);
        return [tf.matMul(x, y, ta, tb), ...g];
      };
      setMatMulPrecision("bf16");
      const got = readAll(fn);
      const want = await onBackend("cpu", () => readAll(fn));
      got.forEach((g, i) => {
        assert.deepEqual(g.shape, want[i]!.shape);
        const err = relError(g.values, want[i]!.values);
        assert.ok(err <= 2e-2, `[${shapeA}]x[${shapeB}] output ${i}: relative error ${err}`);
        assert.ok(err > 0, `output ${i} differs from float32 (bf16 really ran)`);
      });
    }
    // 50 forward-backward passes leave no tfjs tensor and no TensorFlow handle behind.
    const x = tf.randomNormal([8, 64, 32]);
    const w = tf.variable(tf.randomNormal([32, 48]));
    const pass = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.matMul(x, w))) as tf.Scalar, [w]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    pass(); // x and w get their TensorFlow handles on first use
    const before = { tfjs: tf.memory().numTensors, tf: binding().getNumOfTensors() };
    for (let i = 0; i < 50; i++) pass();
    assert.deepEqual({ tfjs: tf.memory().numTensors, tf: binding().getNumOfTensors() }, before);
    tf.dispose([x, w]);
  });

  it("a training run in bf16 ends within seed noise of float32, says so, and resumes in the other precision", async function () {
    if (!usable) this.skip();
    const data = examples(48, 5);
    const lastLoss = (out: string) => {
      const log = fs.readFileSync(path.join(out, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss: number });
      const tail = log.slice(-20);
      return tail.reduce((s, r) => s + r.loss, 0) / tail.length;
    };
    const c = (seed: number, precision: "fp32" | "bf16") => cfg({ steps: 200, batchSize: 8, seed, checkpointEvery: 0, precision, schedule: { kind: "linear", lr: 1e-2, warmupSteps: 10 } });
    const fp32: number[] = [];
    for (const seed of [1, 2, 3]) {
      const out = tmp();
      await run(out, c(seed, "fp32"), { data, noDropout: true });
      fp32.push(lastLoss(out));
    }
    const out16 = tmp();
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (stderr.push(String(s)), true)) as typeof process.stderr.write;
    try {
      const r = await run(out16, c(1, "bf16"), { data, noDropout: true });
      assert.equal(r.result.precision.inUse, "bf16", "the result (and so run.json) records the precision used");
    } finally {
      process.stderr.write = write;
    }
    assert.ok(stderr.some((l) => /test: matrix products in bf16 \(bf16 inputs and products, float32 accumulation; TensorFlow BatchMatMulV2 on avx512_bf16/.test(l)), stderr.join(""));
    assert.equal(matMulPrecision().inUse, "fp32", "the run's precision ends with the run");
    const bf16 = lastLoss(out16);
    const mean = fp32.reduce((s, x) => s + x, 0) / fp32.length;
    const spread = Math.max(...fp32) - Math.min(...fp32);
    assert.ok(fp32[0]! < 3, `float32 learned the task (mean loss over the last 20 steps ${fp32[0]})`);
    assert.ok(Math.abs(bf16 - fp32[0]!) <= Math.max(spread, 0.05 * mean), `bf16 ${bf16} vs float32 ${fp32.join(", ")} (same seed: seed 1)`);

    // Stopped in float32, resumed in bf16: precision is not part of the resume fingerprint.
    const out = tmp();
    await run(out, c(4, "fp32"), { data, noDropout: true, stopAtStep: 20 });
    const resumed = await run(out, { ...c(4, "bf16"), checkpointEvery: 0 }, { data, noDropout: true, resume: true });
    assert.equal(resumed.result.resumedFrom, 20);
    assert.equal(resumed.result.state.step, 200);
  });
});
