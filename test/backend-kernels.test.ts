/**
 * The project's wasm kernel overrides (BatchMatMul, _FusedMatMul, Slice, UnsortedSegmentSum, and the
 * zero-copy Identity/Cast) against tfjs's pure-JS cpu backend: values and gradients on seeded random shapes,
 * relative error max|wasm - cpu| / max(1, max|cpu|) <= 1e-4 (see helpers/crosscheck.ts; Slice, Identity
 * and Cast must match exactly).
 *
 * Everything runs twice: with matMul routed to the native OpenBLAS add-on (skipped, with the reason printed,
 * where the add-on does not load) and with it off, so the pure-wasm path (materialised transposes, batch
 * folding, XNNPACK per batch slice on aliased heap tensors) is tested too.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import {
  assertNoLeak,
  initBackend,
  loadNativeGemm,
  nativeGemmInUse,
  setNativeGemm,
  wasmOverridesInstalled,
  type BackendInfo,
  type NativeGemm,
} from "../src/backend";
import { castConfig, identityConfig } from "../src/backend/kernels/identity";
import { batchMatMulConfig, fusedMatMulConfig } from "../src/backend/kernels/matmul";
import { sliceConfig } from "../src/backend/kernels/slice";
import { unsortedSegmentSumConfig } from "../src/backend/kernels/unsorted-segment-sum";
import { aliasTensor, internals, releaseAlias, tensorData } from "../src/backend/wasm-internals";
import { crossCheck, onBackend, relError, Rng, sizeOf } from "./helpers/crosscheck";

const ODD = [1, 7, 33, 65, 129] as const;
const TRANSPOSES: ReadonlyArray<readonly [boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

let sgemmCalls = 0;
function countingGemm(g: NativeGemm): NativeGemm {
  return {
    sgemm: (...args: Parameters<NativeGemm["sgemm"]>) => {
      sgemmCalls++;
      g.sgemm(...args);
    },
    setThreads: (n) => g.setThreads(n),
    getThreads: () => g.getThreads(),
    config: () => g.config(),
    peakGflops: (n, reps) => g.peakGflops(n, reps),
  };
}

function broadcastBatch(a: number[], b: number[]): number[] {
  return tf.broadcast_util.assertAndGetBroadcastShape(a, b);
}


/**
 * A matMul case: value and gradients of tf.matMul(a, b, ta, tb) with a random upstream gradient, through
 * the project's BatchMatMul gradient (src/backend/gradients.ts), which also reduces broadcast batch dims.
 */
function matMulCase(rng: Rng, aBatch: number[], bBatch: number[], m: number, k: number, n: number, ta: boolean, tb: boolean) {
  const aShape = [...aBatch, ...(ta ? [k, m] : [m, k])];
  const bShape = [...bBatch, ...(tb ? [n, k] : [k, n])];
  const outShape = [...broadcastBatch(aBatch, bBatch), m, n];
  const av = rng.normals(sizeOf(aShape));
  const bv = rng.normals(sizeOf(bShape));
  const dyv = rng.normals(sizeOf(outShape));
  const broadcasts = aBatch.length !== bBatch.length || aBatch.some((d, i) => d !== bBatch[i]);
  const fullA = [...outShape.slice(0, -2), ...aShape.slice(-2)];
  const fullB = [...outShape.slice(0, -2), ...bShape.slice(-2)];
  const label = `matMul a[${aShape}]${ta ? "ᵀ" : ""} · b[${bShape}]${tb ? "ᵀ" : ""} -> [${outShape}]`;
  const fn = () => {
    const a = tf.tensor(av, aShape);
    const b = tf.tensor(bv, bShape);
    const dy = tf.tensor(dyv, outShape);
    let f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb);
    if (broadcasts && tf.getBackend() === "cpu") {
      // The reference: tfjs's cpu BatchMatMul gets some broadcasts wrong (batch [2,1] with [3] returns 12
      // of 24 values; batch [0] with an unbatched B returns NaNs), so on cpu the operands are broadcast
      // explicitly (adding zeros of the full shape: exact, and its gradient sums back; tf.broadcastTo
      // mishandles a 0 batch) and the product has equal batches.
      f = (x, y) => tf.matMul(tf.add(x, tf.zeros(fullA)), tf.add(y, tf.zeros(fullB)), ta, tb);
    }
    const grads = tf.grads(f)([a, b], dy);
    return [f(a, b), ...grads];
  };
  return { fn, label, outShape, aShape, bShape };
}

let info: BackendInfo;
const addon = loadNativeGemm();

describe("wasm kernel overrides (backend-kernels)", () => {
  before(async function () {
    // Explicit options, so TAGI_* variables in the environment cannot change what this file tests.
    info = await initBackend({ backend: "wasm", overrides: true, nativeGemm: true, log: false });
  });

  describe("backend kernels: setup", () => {
    it("runs on wasm with the project's overrides installed", () => {
      assert.equal(info.backend, "wasm", `expected wasm here, got ${info.backend} (${info.reason})`);
      assert.equal(tf.getBackend(), "wasm");
      assert.ok(wasmOverridesInstalled());
      assert.equal(tf.getKernel(tf.BatchMatMul, "wasm"), batchMatMulConfig);
      assert.equal(tf.getKernel(tf._FusedMatMul, "wasm"), fusedMatMulConfig);
      assert.equal(tf.getKernel(tf.Slice, "wasm"), sliceConfig);
      assert.equal(tf.getKernel(tf.UnsortedSegmentSum, "wasm"), unsortedSegmentSumConfig);
      assert.equal(tf.getKernel(tf.Identity, "wasm"), identityConfig);
      assert.equal(tf.getKernel(tf.Cast, "wasm"), castConfig);
      if (!addon.gemm) console.log(`      (native GEMM add-on not loadable here: ${addon.status.reason})`);
    });
  });

  const MODES = [
    { name: "native GEMM (OpenBLAS add-on)", native: true },
    { name: "pure wasm (native GEMM off)", native: false },
  ] as const;

  for (const mode of MODES) {
    describe(`wasm overrides vs cpu, ${mode.name}`, function () {
      before(function () {
        if (mode.native && !addon.gemm) {
          console.log(`      skipping native-GEMM mode: ${addon.status.reason}`);
          this.skip();
        }
        setNativeGemm(mode.native && addon.gemm ? countingGemm(addon.gemm) : null);
        assert.equal(nativeGemmInUse(), mode.native);
        assert.ok(wasmOverridesInstalled());
      });
      after(() => {
        // Back to what initBackend chose.
        setNativeGemm(info.nativeGemm.inUse ? addon.gemm : null);
      });

      /** Cross-checks a matMul case and, in native mode, that it went through the add-on. */
      async function checkMatMul(c: ReturnType<typeof matMulCase>): Promise<void> {
        const before = sgemmCalls;
        await crossCheck(c.fn, { label: c.label, kernels: [tf.BatchMatMul] });
        const nonEmpty = sizeOf(c.outShape) > 0 && sizeOf(c.aShape) > 0 && sizeOf(c.bShape) > 0;
        if (mode.native && nonEmpty) assert.ok(sgemmCalls > before, `${c.label}: native sgemm was not called`);
        if (!mode.native) assert.equal(sgemmCalls, before, `${c.label}: native sgemm called with native GEMM off`);
      }

      describe("BatchMatMul (tf.matMul), values and gradients", () => {
        it("2-D, all transposes, odd sizes 1/7/33/65/129", async () => {
          const rng = new Rng(101);
          const triples: Array<[number, number, number]> = [
            [1, 1, 1],
            [7, 33, 1],
            [1, 65, 7],
            [129, 7, 33],
            [33, 129, 65],
            [65, 1, 129],
          ];
          for (const [m, k, n] of triples) {
            for (const [ta, tb] of TRANSPOSES) await checkMatMul(matMulCase(rng, [], [], m, k, n, ta, tb));
          }
        });

        const batched: Array<{ name: string; a: number[]; b: number[] }> = [
          { name: "3-D batched [3] x [3]", a: [3], b: [3] },
          { name: "4-D batched [2,3] x [2,3]", a: [2, 3], b: [2, 3] },
          { name: "A [4,M,K] with B rank 2", a: [4], b: [] },
          { name: "A [4,M,K] with B [1,K,N]", a: [4], b: [1] },
          { name: "A rank 2 with B [4,K,N]", a: [], b: [4] },
          { name: "A [1,M,K] with B [4,K,N]", a: [1], b: [4] },
          { name: "4-D A [2,3] with 3-D B [3]", a: [2, 3], b: [3] },
          { name: "4-D A [2,3] with B [1,1]", a: [2, 3], b: [1, 1] },
          { name: "cross broadcast [2,1] x [3]", a: [2, 1], b: [3] },
          { name: "cross broadcast [1,3] x [2,1]", a: [1, 3], b: [2, 1] },
        ];
        batched.forEach((spec, i) => {
          it(`${spec.name}, all transposes, random odd M/K/N`, async () => {
            const rng = new Rng(200 + i);
            for (const [ta, tb] of TRANSPOSES) {
              const [m, k, n] = [rng.pick(ODD), rng.pick(ODD), rng.pick(ODD)];
              await checkMatMul(matMulCase(rng, spec.a, spec.b, m, k, n, ta, tb));
            }
          });
        });

        it("batched with M, K or N = 1 (vector-like slices), all transposes", async () => {
          const rng = new Rng(250);
          const dims: Array<[number, number, number]> = [
            [1, 33, 7],
            [7, 1, 33],
            [33, 7, 1],
          ];
          for (const [m, k, n] of dims) {
            for (const [ta, tb] of TRANSPOSES) {
              await checkMatMul(matMulCase(rng, [3], [3], m, k, n, ta, tb));
              await checkMatMul(matMulCase(rng, [3], [], m, k, n, ta, tb));
            }
          }
        });

        it("zero-size dimensions (M, N, K or batch = 0)", async () => {
          const rng = new Rng(300);
          const cases: Array<[number[], number[], number, number, number]> = [
            [[], [], 0, 5, 4],
            [[], [], 3, 5, 0],
            [[], [], 3, 0, 4], // K = 0: the product is all zeros
            [[2], [2], 3, 0, 4],
            [[2], [], 3, 0, 4],
            [[0], [0], 3, 5, 4],
            [[0], [], 3, 5, 4],
          ];
          for (const [ab, bb, m, k, n] of cases) {
            for (const [ta, tb] of TRANSPOSES) await checkMatMul(matMulCase(rng, ab, bb, m, k, n, ta, tb));
          }
        });

        it("K = 0 output is zeros even where the heap held garbage", async () => {
          // Fill then free heap memory so the output allocation likely reuses non-zero bytes.
          tf.tidy(() => tf.fill([64, 64], 7).dataSync());
          const out = tf.tidy(() => tf.matMul(tf.zeros([64, 0]), tf.zeros([0, 64])));
          assert.deepEqual(Array.from(new Set(out.dataSync())), [0]);
          out.dispose();
        });

        it("broadcast batch dims train: [B,T,D]·[D,F] gradients equal those of the explicitly tiled product (tfjs 4.22's own gradient threw here)", async () => {
          const rng = new Rng(77);
          const av = rng.normals(4 * 5 * 6);
          const bv = rng.normals(6 * 7);
          const run = () =>
            tf.tidy(() => {
              const a = tf.tensor(av, [4, 5, 6]);
              const b = tf.tensor(bv, [6, 7]);
              const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([a, b]);
              const [ta, tb] = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
                tf.sum(tf.square(tf.matMul(x, tf.tile(tf.expandDims(y, 0), [4, 1, 1])))),
              )([a, b]);
              return [da!, db!, ta!, tb!].map((t) => Array.from(t.dataSync()));
            });
          for (const [da, db, ta, tb] of [run(), await onBackend("cpu", run)]) {
            assert.deepEqual([da!.length, db!.length], [4 * 5 * 6, 6 * 7]);
            assert.ok(relError(da!, ta!) < 1e-5 && relError(db!, tb!) < 1e-5, "broadcast gradient differs from tiled");
          }
        });

        it("rejects mismatched inner dimensions like tfjs does", () => {
          const a = tf.zeros([2, 3]);
          const b = tf.zeros([4, 5]);
          assert.throws(() => tf.matMul(a, b), /inner shapes|must match/);
          tf.dispose([a, b]);
        });
      });

      describe("_FusedMatMul (tf.fused.matMul)", () => {
        const ACTIVATIONS: tf.fused.Activation[] = ["linear", "relu", "relu6", "elu", "sigmoid", "leakyrelu", "prelu"];
        ACTIVATIONS.forEach((activation, ai) => {
          it(`${activation} with bias, all transposes, 2-D and batched: values and gradients`, async () => {
            const rng = new Rng(400 + ai);
            for (const [ta, tb] of TRANSPOSES) {
              for (const batch of [[], [3]] as number[][]) {
                const [m, k, n] = [rng.pick(ODD.slice(0, 4)), rng.pick(ODD.slice(0, 4)), rng.pick(ODD.slice(0, 4))];
                const aShape = [...batch, ...(ta ? [k, m] : [m, k])];
                const bShape = [...batch, ...(tb ? [n, k] : [k, n])];
                const outShape = [...batch, m, n];
                const biasShape = batch.length === 0 ? rng.pick([[n], [1, n]]) : rng.pick([[n], [3, 1, n]]);
                const av = rng.normals(sizeOf(aShape));
                const bv = rng.normals(sizeOf(bShape), 0.5);
                const biasv = rng.normals(sizeOf(biasShape));
                const alphav = Float32Array.from({ length: n }, () => 0.05 + 0.5 * rng.next());
                const dyv = rng.normals(sizeOf(outShape));
                const leakyreluAlpha = 0.15;
                const fn = () => {
                  const a = tf.tensor(av, aShape);
                  const b = tf.tensor(bv, bShape);
                  const bias = tf.tensor(biasv, biasShape);
                  const alpha = tf.tensor(alphav, [n]);
                  const dy = tf.tensor(dyv, outShape);
                  const f = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor, w: tf.Tensor) =>
                    tf.fused.matMul({
                      a: x,
                      b: y,
                      transposeA: ta,
                      transposeB: tb,
                      bias: z,
                      activation,
                      preluActivationWeights: activation === "prelu" ? w : undefined,
                      leakyreluAlpha,
                    });
                  // Outside a gradient tfjs always runs the fused kernel; inside one it fuses only "linear"
                  // (other activations are decomposed into plain ops, whose gradients tfjs defines).
                  const value = f(a, b, bias, alpha);
                  const xs = activation === "prelu" ? [a, b, bias, alpha] : [a, b, bias];
                  const grads = tf.grads((...t: tf.Tensor[]) => f(t[0]!, t[1]!, t[2]!, t[3] ?? alpha))(xs, dy);
                  return [value, ...grads];
                };
                const label = `fused ${activation} a[${aShape}]${ta ? "ᵀ" : ""} b[${bShape}]${tb ? "ᵀ" : ""} bias[${biasShape}]`;
                await crossCheck(fn, { label, kernels: [tf._FusedMatMul] });
              }
            }
          });
        });

        it("linear gradient goes through the fused kernel (tfjs's fused customGrad)", async () => {
          const rng = new Rng(480);
          for (const [ta, tb] of TRANSPOSES) {
            const [m, k, n] = [33, 65, 7];
            const aShape = ta ? [k, m] : [m, k];
            const bShape = tb ? [n, k] : [k, n];
            const av = rng.normals(m * k);
            const bv = rng.normals(k * n);
            const biasv = rng.normals(n);
            const dyv = rng.normals(m * n);
            const fn = () => {
              const dy = tf.tensor(dyv, [m, n]);
              return tf.grads((a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
                tf.fused.matMul({ a, b, bias, transposeA: ta, transposeB: tb }),
              )([tf.tensor(av, aShape), tf.tensor(bv, bShape), tf.tensor(biasv, [n])], dy);
            };
            await crossCheck(fn, { label: `fused linear grads ta=${ta} tb=${tb}`, kernels: [tf._FusedMatMul, tf.BatchMatMul] });
          }
        });

        it("no bias, each activation, values", async () => {
          const rng = new Rng(490);
          for (const activation of ["linear", "relu", "elu", "sigmoid"] as const) {
            const av = rng.normals(7 * 33);
            const bv = rng.normals(33 * 65);
            await crossCheck(
              () => [tf.fused.matMul({ a: tf.tensor(av, [33, 7]), b: tf.tensor(bv, [65, 33]), transposeA: true, transposeB: true, activation })],
              { label: `fused ${activation} without bias`, kernels: [tf._FusedMatMul] },
            );
          }
        });
      });

      describe("Slice", () => {
        /** A random box inside a random shape; some dims taken whole (begin 0, size -1 or the full size). */
        function randomSlice(rng: Rng, rank: number, maxDim: number) {
          const shape = Array.from({ length: rank }, () => rng.int(1, maxDim));
          const begin: number[] = [];
          const size: number[] = [];
          for (const d of shape) {
            const r = rng.next();
            if (r < 0.25) {
              begin.push(0);
              size.push(rng.bool() ? -1 : d);
            } else {
              const b = rng.int(0, d - 1);
              begin.push(b);
              size.push(rng.int(1, d - b));
            }
          }
          return { shape, begin, size };
        }

        for (let rank = 1; rank <= 6; rank++) {
          it(`rank ${rank}: random boxes, float32/int32/bool values and the float32 gradient`, async () => {
            const rng = new Rng(500 + rank);
            const maxDim = rank <= 3 ? 9 : rank === 4 ? 7 : 5;
            for (let trial = 0; trial < 8; trial++) {
              const { shape, begin, size } = randomSlice(rng, rank, maxDim);
              const total = sizeOf(shape);
              const fv = rng.normals(total);
              const iv = rng.ints(total, -1000, 1000);
              const bv = Uint8Array.from({ length: total }, () => (rng.bool() ? 1 : 0));
              const outSize = size.map((s, d) => (s === -1 ? shape[d]! - begin[d]! : s));
              const dyv = rng.normals(sizeOf(outSize));
              const fn = () => {
                const x = tf.tensor(fv, shape);
                const dy = tf.tensor(dyv, outSize);
                return [
                  tf.slice(x, begin, size),
                  tf.slice(tf.tensor(iv, shape, "int32"), begin, size),
                  tf.slice(tf.tensor(bv, shape, "bool"), begin, size),
                  ...tf.grads((t: tf.Tensor) => tf.slice(t, begin, size))([x], dy),
                ];
              };
              await crossCheck(fn, { label: `slice [${shape}] begin [${begin}] size [${size}]`, kernels: [tf.Slice], tol: 0 });
            }
          });
        }

        it("rank 5 and 6 attention-shaped tensors (the case stock wasm was slow on)", async () => {
          const rng = new Rng(520);
          const cases: Array<{ shape: number[]; begin: number[]; size: number[] }> = [
            { shape: [2, 4, 8, 16, 8], begin: [0, 1, 0, 3, 0], size: [2, 2, 8, 5, 8] },
            { shape: [2, 4, 8, 16, 8], begin: [1, 0, 2, 0, 4], size: [1, 4, 3, 16, 4] },
            { shape: [2, 3, 4, 5, 6, 7], begin: [0, 1, 1, 0, 2, 0], size: [-1, 2, 3, -1, 4, -1] },
            { shape: [2, 3, 4, 5, 6, 7], begin: [1, 2, 3, 4, 5, 6], size: [1, 1, 1, 1, 1, 1] },
          ];
          for (const { shape, begin, size } of cases) {
            const xv = rng.normals(sizeOf(shape));
            const outSize = size.map((s, d) => (s === -1 ? shape[d]! - begin[d]! : s));
            const dyv = rng.normals(sizeOf(outSize));
            await crossCheck(
              () => {
                const x = tf.tensor(xv, shape);
                return [tf.slice(x, begin, size), ...tf.grads((t: tf.Tensor) => tf.slice(t, begin, size))([x], tf.tensor(dyv, outSize))];
              },
              { label: `slice [${shape}] begin [${begin}] size [${size}]`, kernels: [tf.Slice], tol: 0 },
            );
          }
        });

        it("whole-tensor slices, begin-only slices and empty slices, ranks 1-6", async () => {
          const rng = new Rng(530);
          for (let rank = 1; rank <= 6; rank++) {
            const shape = Array.from({ length: rank }, () => rng.int(1, 4));
            const xv = rng.normals(sizeOf(shape));
            const zeroDim = rng.int(0, rank - 1);
            const empty = shape.map((d, i) => (i === zeroDim ? 0 : d));
            const last = shape.map((d) => d - 1);
            await crossCheck(
              () => {
                const x = tf.tensor(xv, shape);
                return [
                  tf.slice(x, new Array<number>(rank).fill(0), shape),
                  tf.slice(x, new Array<number>(rank).fill(0), new Array<number>(rank).fill(-1)),
                  tf.slice(x, last), // size defaults to the rest
                  tf.slice(x, new Array<number>(rank).fill(0), empty),
                ];
              },
              { label: `whole/begin-only/empty slices of [${shape}]`, kernels: [tf.Slice], tol: 0 },
            );
          }
        });

        it("string tensors fall back to the stock kernel", () => {
          const x = tf.tensor2d(["a", "b", "c", "d", "e", "f"], [2, 3]);
          const y = tf.slice(x, [0, 1], [2, 2]);
          assert.deepEqual(y.arraySync(), [
            ["b", "c"],
            ["e", "f"],
          ]);
          tf.dispose([x, y]);
        });

        it("rejects an out-of-bounds box like tfjs does", () => {
          const x = tf.zeros([3, 4]);
          assert.throws(() => tf.slice(x, [2, 0], [2, 4]));
          x.dispose();
        });
      });

      describe("UnsortedSegmentSum", () => {
        it("1-D segment ids, inner ranks 0-2, out-of-range ids, float32 and int32", async () => {
          const rng = new Rng(600);
          for (const inner of [[], [5], [3, 4]] as number[][]) {
            for (const numSegments of [1, 6, 17]) {
              const n = rng.int(1, 40);
              const shape = [n, ...inner];
              const fv = rng.normals(sizeOf(shape));
              const iv = rng.ints(sizeOf(shape), -50, 50);
              const ids = rng.ints(n, -3, numSegments + 2); // includes negative and >= numSegments
              // tfjs's gradient of unsortedSegmentSum gathers dy at the ids: it handles negative ids but
              // rejects ids >= numSegments (on every backend), so the gradient uses ids below numSegments.
              const gradIds = ids.map((s) => Math.min(s, numSegments - 1));
              const dyv = rng.normals(numSegments * sizeOf(inner));
              const fn = () => {
                const seg = tf.tensor1d(ids, "int32");
                const x = tf.tensor(fv, shape);
                const gseg = tf.tensor1d(gradIds, "int32");
                return [
                  tf.unsortedSegmentSum(x, seg, numSegments),
                  tf.unsortedSegmentSum(tf.tensor(iv, shape, "int32"), seg, numSegments),
                  ...tf.grads((t: tf.Tensor) => tf.unsortedSegmentSum(t, gseg, numSegments))([x], tf.tensor(dyv, [numSegments, ...inner])),
                ];
              };
              // tfjs's cpu kernel returns float32 for int32 data (it multiplies by a float mask); TensorFlow
              // and the wasm kernel keep int32 (checked below).
              const { wasm } = await crossCheck(fn, {
                label: `unsortedSegmentSum x[${shape}] numSegments ${numSegments}`,
                kernels: [tf.UnsortedSegmentSum],
                dtypeMayDiffer: [1],
              });
              assert.equal(wasm[1]!.dtype, "int32");
              assert.equal(wasm[0]!.dtype, "float32");
            }
          }
        });

        it("2-D segment ids (TensorFlow semantics) equal the flattened 1-D computation on cpu", async () => {
          // tfjs's cpu kernel does not implement ids of rank > 1 (it fails to broadcast), so the reference is
          // the same sum with the id dims flattened, which is what TensorFlow defines.
          const rng = new Rng(610);
          for (const dtype of ["float32", "int32"] as const) {
            const [a, b, d, numSegments] = [3, 5, 4, 7];
            const xv = dtype === "float32" ? rng.normals(a * b * d) : rng.ints(a * b * d, -9, 9);
            const ids = rng.ints(a * b, -2, numSegments + 1);
            // (tfjs types segmentIds as Tensor1D; the op passes any rank through to the kernel.)
            const ids2d = tf.tensor2d(ids, [a, b], "int32") as tf.Tensor as tf.Tensor1D;
            const wasmOut = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor(xv, [a, b, d], dtype), ids2d, numSegments));
            ids2d.dispose();
            assert.deepEqual(wasmOut.shape, [numSegments, d]);
            assert.equal(wasmOut.dtype, dtype);
            const wasmValues = Array.from(wasmOut.dataSync());
            wasmOut.dispose();
            const { wasm } = await crossCheck(
              () => [tf.unsortedSegmentSum(tf.tensor(xv, [a * b, d], dtype), tf.tensor1d(ids, "int32"), numSegments)],
              { label: `flattened reference ${dtype}`, dtypeMayDiffer: [0] },
            );
            assert.deepEqual(wasmValues, wasm[0]!.values);
          }
        });

        it("numSegments 0 gives an empty result", () => {
          const out = tf.unsortedSegmentSum(tf.ones([4, 3]), tf.tensor1d([0, 1, 2, 3], "int32"), 0);
          assert.deepEqual(out.shape, [0, 3]);
          out.dispose();
        });

        it("gather gradient (repeated ids) routes through UnsortedSegmentSum, axis 0 and 1", async () => {
          const rng = new Rng(620);
          const [vocab, dim] = [50, 16];
          const ev = rng.normals(vocab * dim);
          const ids = rng.ints(4 * 9, 0, 11); // ids of a small range: many repeats
          ids[0] = ids[1] = ids[2] = 3;
          const dy0 = rng.normals(4 * 9 * dim);
          const ids1 = rng.ints(7, 0, dim - 1);
          const dy1 = rng.normals(vocab * 7);
          const fn = () => {
            const emb = tf.tensor2d(ev, [vocab, dim]);
            const idx = tf.tensor2d(ids, [4, 9], "int32");
            const idx1 = tf.tensor1d(ids1, "int32");
            return [
              tf.gather(emb, idx),
              ...tf.grads((e: tf.Tensor) => tf.gather(e, idx))([emb], tf.tensor(dy0, [4, 9, dim])),
              ...tf.grads((e: tf.Tensor) => tf.gather(e, idx1, 1))([emb], tf.tensor(dy1, [vocab, 7])),
            ];
          };
          await crossCheck(fn, { label: "gather gradients", kernels: [tf.UnsortedSegmentSum, tf.GatherV2] });
        });
      });

      describe("no leaks on wasm with the overrides", () => {
        it("repeated forward+backward of a small model keeps tensors, bytes and data ids constant", async () => {
          const rng = new Rng(700);
          const [vocab, dim, hidden, batch, seq] = [40, 16, 32, 2, 8];
          const mkVar = (t: tf.Tensor, name: string) => {
            const v = tf.variable(t, true, name);
            t.dispose(); // the variable holds its own reference
            return v;
          };
          const emb = mkVar(tf.tensor2d(rng.normals(vocab * dim, 0.1), [vocab, dim]), "leak/emb");
          const w1 = mkVar(tf.tensor2d(rng.normals(hidden * dim, 0.1), [hidden, dim]), "leak/w1");
          const w2 = mkVar(tf.tensor2d(rng.normals(hidden * dim, 0.1), [hidden, dim]), "leak/w2");
          const b1 = mkVar(tf.zeros([hidden]), "leak/b1");
          const ids = tf.tensor2d(rng.ints(batch * seq, 0, vocab - 1), [batch, seq], "int32");
          const opt = tf.train.sgd(0.01);
          const step = () => {
            opt.minimize(() => {
              const x = tf.reshape(tf.gather(emb, ids), [batch * seq, dim]); // gather -> UnsortedSegmentSum in backward
              const h = tf.fused.matMul({ a: x, b: w1, transposeB: true, bias: b1, activation: "linear" }); // [B*T, H]
              const h5 = tf.reshape(tf.relu(h), [batch, seq, 2, 4, hidden / 8]);
              const part = tf.slice(h5, [0, 1, 0, 1, 0], [batch, seq - 1, 2, 3, hidden / 8]); // rank-5 Slice
              const heads = tf.reshape(part, [batch, 2 * (seq - 1), 3 * (hidden / 8)]);
              const att = tf.matMul(heads, heads, false, true); // batched, transposed
              const y = tf.matMul(h, w2); // [B*T, D]
              return tf.add(tf.mean(tf.square(att)), tf.mean(tf.square(y)));
            });
          };
          const backend = tf.backend();
          await assertNoLeak(step, { repeats: 5, warmup: 2, label: `small model (${mode.name})` });
          const tensors = tf.memory().numTensors;
          const bytes = tf.memory().numBytes;
          const ids0 = backend.numDataIds();
          for (let i = 0; i < 5; i++) step();
          assert.equal(tf.memory().numTensors, tensors, "numTensors");
          assert.equal(tf.memory().numBytes, bytes, "numBytes");
          assert.equal(backend.numDataIds(), ids0, "wasm backend data ids");
          opt.dispose();
          tf.dispose([emb, w1, w2, b1, ids]);
        });

        it("batched matMuls do not grow the wasm heap (aliases and their XNNPACK operators are released)", async () => {
          // Each per-slice product packs its B slice (256 KiB here) into an XNNPACK operator cached on the
          // alias id; a leaked alias keeps it: 2 MiB per call. Enough calls to leak more than the whole heap
          // would have to grow it (the heap never shrinks, so free space is below its size).
          const rng = new Rng(710);
          const a = tf.tensor3d(rng.normals(8 * 32 * 256), [8, 32, 256]);
          const b = tf.tensor3d(rng.normals(8 * 256 * 256), [8, 256, 256]);
          const w = internals(tf.backend());
          const heapBytes = () => w.wasm.HEAPU8.buffer.byteLength;
          const run = () => tf.tidy(() => tf.matMul(a, b, false, true).dataSync());
          for (let i = 0; i < 3; i++) run();
          const heap0 = heapBytes();
          const tensors0 = tf.memory().numTensors;
          const repeats = Math.ceil(heap0 / (8 * 256 * 256 * 4)) + 2;
          for (let i = 0; i < repeats; i++) run();
          assert.equal(heapBytes(), heap0, "wasm heap grew across repeated batched matMuls");
          assert.equal(tf.memory().numTensors, tensors0);
          tf.dispose([a, b]);
        });
      });
    });
  }

  describe("Identity and same-dtype Cast (zero-copy overrides) vs cpu", () => {
    it("values for float32/int32/bool, casts between dtypes, and gradients through them", async () => {
      const rng = new Rng(800);
      const shape = [3, 4, 5];
      const fv = rng.normals(60);
      fv.set([0, 0.5, -2, 256, -0.25, NaN]); // exact zero, fractions, values that wrap in a byte, NaN
      const iv = rng.ints(60, -5, 5);
      iv.set([0, 256, -2, 512]);
      const bv = Uint8Array.from({ length: 60 }, () => (rng.bool() ? 1 : 0));
      const dyv = rng.normals(60);
      await crossCheck(
        () => {
          const f = tf.tensor(fv, shape);
          const i = tf.tensor(iv, shape, "int32");
          const b = tf.tensor(bv, shape, "bool");
          return [
            tf.clone(f),
            tf.clone(i),
            tf.clone(b),
            tf.cast(f, "float32"),
            tf.cast(i, "int32"),
            tf.cast(b, "bool"),
            tf.cast(f, "int32"),
            tf.cast(i, "float32"),
            tf.cast(b, "float32"),
            tf.cast(f, "bool"),
            tf.cast(i, "bool"),
            ...tf.grads((x: tf.Tensor) => tf.mul(tf.cast(tf.clone(x), "float32"), x))([f], tf.tensor(dyv, shape)),
          ];
        },
        { label: "identity/cast", kernels: [tf.Identity, tf.Cast], tol: 0 },
      );
    });

    it("outputs share the input's memory and outlive it; nothing leaks", () => {
      const backend = tf.backend();
      const ids0 = backend.numDataIds();
      const mem0 = tf.memory();
      const x = tf.tensor1d([1, 2, 3]);
      const y = tf.clone(x);
      const z = tf.cast(x, "float32");
      assert.equal(y.dataId, x.dataId, "clone shares the data");
      assert.equal(z.dataId, x.dataId, "same-dtype cast shares the data");
      x.dispose();
      assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3]);
      y.dispose();
      assert.deepEqual(Array.from(z.dataSync()), [1, 2, 3]);
      z.dispose();
      assert.equal(backend.numDataIds(), ids0);
      assert.equal(tf.memory().numTensors, mem0.numTensors);
      assert.equal(tf.memory().numBytes, mem0.numBytes);
    });

    it("string tensors fall back to the stock kernels", () => {
      const s = tf.tensor1d(["a", "bc"]);
      const c = tf.clone(s);
      assert.deepEqual(c.arraySync(), ["a", "bc"]);
      tf.dispose([s, c]);
    });
  });

  describe("leak checks can fail", () => {
    it("the heap-growth check sees XNNPACK operators kept by unreleased aliases", function () {
      // The same C entry point the pure-wasm path uses, but aliases are not released: every call caches a
      // new operator with its packed B (256 KiB). This is the leak the previous test rules out.
      const w = internals(tf.backend());
      const a = tf.tensor2d(new Float32Array(32 * 256).fill(1), [32, 256]);
      const b = tf.tensor2d(new Float32Array(256 * 256).fill(1), [256, 256]);
      const c = tf.zeros([32, 256]);
      const call = w.wasm.cwrap("BatchMatMul", null, ["number", "array", "number", "number", "array", "number", "number", "number", "number"]);
      const shape = (s: number[]) => new Uint8Array(new Int32Array(s).buffer);
      const heap0 = w.wasm.HEAPU8.buffer.byteLength;
      const ids: number[] = [];
      const [aOff, bOff, cOff] = [a, b, c].map((t) => tensorData(w, t).memoryOffset) as [number, number, number];
      try {
        for (let i = 0; i < 800 && w.wasm.HEAPU8.buffer.byteLength === heap0; i++) {
          const ia = aliasTensor(w, aOff, 32 * 256);
          const ib = aliasTensor(w, bOff, 256 * 256);
          const ic = aliasTensor(w, cOff, 32 * 256);
          ids.push(ia, ib, ic);
          call(ia, shape([1, 32, 256]), 3, ib, shape([1, 256, 256]), 3, false, false, ic);
        }
        assert.ok(w.wasm.HEAPU8.buffer.byteLength > heap0, "unreleased aliases did not grow the heap: the heap check would be blind");
      } finally {
        for (const id of ids) releaseAlias(w, id);
        tf.dispose([a, b, c]);
      }
    });
  });
});
