/**
 * src/tagi/teacher-logit-cache.ts and `tagi teacher-logits`: the cached KL equals the live KL (values and
 * gradients) when the whole vocabulary is kept and is a lower bound otherwise; the cache files round-trip and
 * refuse another teacher, temperature, missing examples and truncated files; and a stage-2 run reading the
 * cache matches a run with the live teacher step for step (tiny scale).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { distillationKl } from "../src/tagi/losses";
import { cachedDistillationKl, exampleKey, TeacherLogitCache, TeacherLogitCacheWriter, topKLogProbs } from "../src/tagi/teacher-logit-cache";
import { buildTeacherLogits } from "../src/tagi/teacher-logits-stage";
import { finetuneTagi, parseFinetuneConfig } from "../src/tagi/train";
import { ensurePrepared, loadScale, PROJECT_ROOT } from "../src/experiments/runner";
import { modelFolderFingerprint } from "../src/train/seq2seq";
import { relError } from "./helpers/crosscheck";

const B = 2;
const T = 3;
const V = 40;

function fakeCache(student: tf.Tensor3D, teacher: tf.Tensor3D, k: number, temperature: number) {
  const top = topKLogProbs(tf.reshape(teacher, [B * T, V]) as tf.Tensor2D, temperature, k);
  return {
    ids: tf.tensor3d(top.ids, [B, T, k], "int32"),
    logp: tf.tensor3d(top.logp, [B, T, k]),
    logRest: tf.tensor2d(top.logRest, [B, T]),
  };
}

describe("teacher logit cache", function () {
  this.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-tlc-"));
  before(async () => {
    await initBackend({ log: false });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("the cached KL equals the live KL, value and gradient, when every token is kept; with fewer it is a lower bound", () => {
    const student = tf.randomNormal([B, T, V], 0, 2, "float32", 1) as tf.Tensor3D;
    const teacher = tf.randomNormal([B, T, V], 0, 3, "float32", 2) as tf.Tensor3D;
    const labels = tf.tensor2d([[3, 4, -100], [5, 6, 7]], undefined, "int32");
    for (const temperature of [1, 2]) {
      const full = fakeCache(student, teacher, V, temperature);
      const live = (s: tf.Tensor3D) => distillationKl(s, teacher, labels, { temperature });
      const cached = (s: tf.Tensor3D) => cachedDistillationKl(s, full, labels, { temperature });
      const [lv, cv] = [live(student).dataSync()[0]!, cached(student).dataSync()[0]!];
      assert.ok(Math.abs(lv - cv) <= 1e-5 * Math.max(1, lv), `T=${temperature}: live ${lv} vs cached ${cv}`);
      const gl = tf.grad((s) => live(s as tf.Tensor3D))(student);
      const gc = tf.grad((s) => cached(s as tf.Tensor3D))(student);
      assert.ok(relError(gl.dataSync(), gc.dataSync()) < 1e-4, `T=${temperature}: gradients differ by ${relError(gl.dataSync(), gc.dataSync())}`);
      for (const k of [1, 4, 16]) {
        const part = fakeCache(student, teacher, k, temperature);
        const pv = cachedDistillationKl(student, part, labels, { temperature }).dataSync()[0]!;
        assert.ok(pv >= 0 && pv <= lv + 1e-5, `T=${temperature}, k=${k}: coarse KL ${pv} should lie in [0, ${lv}]`);
        tf.dispose([part.ids, part.logp, part.logRest]);
      }
      tf.dispose([full.ids, full.logp, full.logRest, gl, gc]);
    }
    tf.dispose([student, teacher, labels]);
  });

  it("the written-out gradient equals autodiff of the same forward (top-k, padding, -100 labels, clamped remainder) and leaks nothing", () => {
    // The forward as it was before the gradient was written out: autodiff through log-softmax and the gather.
    const autodiffKl = (z: tf.Tensor3D, c: { ids: tf.Tensor3D; logp: tf.Tensor3D; logRest: tf.Tensor2D }, lab: tf.Tensor2D, temperature: number) => {
      const [b, t, v] = z.shape;
      const k = c.ids.shape[2];
      const logq = tf.reshape(tf.logSoftmax(tf.div(z, temperature)), [b * t * v]);
      const rows = tf.mul(tf.reshape(tf.range(0, b * t, 1, "int32"), [b * t, 1]), tf.scalar(v, "int32"));
      const logqTop = tf.reshape(tf.gather(logq, tf.reshape(tf.add(rows, tf.reshape(c.ids, [b * t, k])), [b * t * k])), [b * t, k]);
      const logpTop = tf.reshape(c.logp, [b * t, k]);
      const logpRest = tf.reshape(c.logRest, [b * t]);
      const qRest = tf.maximum(tf.sub(1, tf.sum(tf.exp(logqTop), -1)), 1e-30);
      const per = tf.add(tf.sum(tf.mul(tf.exp(logpTop), tf.sub(logpTop, logqTop)), -1), tf.mul(tf.exp(logpRest), tf.sub(logpRest, tf.log(qRest))));
      const w = tf.cast(tf.notEqual(tf.reshape(lab, [b * t]), -100), "float32");
      return tf.mul(tf.div(tf.sum(tf.mul(per, w)), tf.maximum(tf.sum(w), 1)), temperature * temperature) as tf.Scalar;
    };
    const student = tf.randomNormal([B, T, V], 0, 3, "float32", 5) as tf.Tensor3D;
    const teacher = tf.randomNormal([B, T, V], 0, 3, "float32", 6) as tf.Tensor3D;
    const labels = tf.tensor2d([[3, -100, -100], [5, 6, 7]], undefined, "int32");
    // A student that puts all its mass (to float32) on the teacher's top token: q_rest = 1 - q_top is 0 and
    // clamps at 1e-30, where max's gradient is 0 while the teacher's remainder mass is not.
    const peaked = tf.tidy(() => tf.add(student, tf.mul(tf.oneHot(tf.argMax(teacher, -1), V), 30))) as tf.Tensor3D;
    for (const [temperature, k, z] of [[1, 1, student], [1, 7, student], [1, V, student], [2.5, 1, student], [2.5, 7, student], [2.5, V, student], [1, 1, peaked]] as const) {
      {
        const student = z;
        const c = fakeCache(student, teacher, k, temperature);
        // The cache's padding: position (0, 2) has no teacher entry (ids 0, no mass), as TeacherLogitCache.batch pads.
        const pad = tf.tensor3d([...Array(B * T * k)].map((_, i) => (Math.floor(i / k) === 2 ? 1 : 0)), [B, T, k]);
        const padded = {
          ids: tf.where(tf.cast(pad, "bool"), tf.zerosLike(c.ids), c.ids) as tf.Tensor3D,
          logp: tf.where(tf.cast(pad, "bool"), tf.fill([B, T, k], -1e9), c.logp) as tf.Tensor3D,
          logRest: tf.where(tf.tensor2d([[0, 0, 1], [0, 0, 0]], undefined, "bool"), tf.fill([B, T], -1e9), c.logRest) as tf.Tensor2D,
        };
        const ours = (z: tf.Tensor) => cachedDistillationKl(z as tf.Tensor3D, padded, labels, { temperature });
        const ref = (z: tf.Tensor) => autodiffKl(z as tf.Tensor3D, padded, labels, temperature);
        const [vo, vr] = [ours(student).dataSync()[0]!, ref(student).dataSync()[0]!];
        assert.ok(Math.abs(vo - vr) <= 1e-6 * Math.max(1, Math.abs(vr)), `T=${temperature}, k=${k}: value ${vo} vs ${vr}`);
        const before = tf.memory().numTensors;
        const go = tf.grad(ours)(student); // outside tidy: a leaked intermediate would stay counted
        assert.equal(tf.memory().numTensors, before + 1, "the gradient leaves only its result");
        const gr = tf.grad(ref)(student);
        const err = relError(gr.dataSync(), go.dataSync());
        assert.ok(err <= 1e-4, `T=${temperature}, k=${k}: gradients differ by ${err}`);
        assert.ok(go.dataSync().every(Number.isFinite), "finite gradient");
        tf.dispose([c.ids, c.logp, c.logRest, pad, padded.ids, padded.logp, padded.logRest, go, gr]);
      }
    }
    tf.dispose([student, teacher, labels, peaked]);
  });

  it("files round-trip; another teacher or temperature, a missing example and a truncated file are refused by name", () => {
    const teacher = tf.randomNormal([5, V], 0, 2, "float32", 3) as tf.Tensor2D;
    const top = topKLogProbs(teacher, 2, 4);
    const w = new TeacherLogitCacheWriter({ teacher: "abc", temperature: 2, k: 4, vocab: V });
    const key1 = exampleKey([5, 6, 1], [7, 8, 1]);
    const key2 = exampleKey([5, 6, 1], [9, 1]);
    w.add(key1, 3, top.ids, top.logp, top.logRest, 0);
    w.add(key2, 2, top.ids, top.logp, top.logRest, 3);
    const dir = path.join(tmp, "cache");
    w.save(dir, { command: "test" });
    const c = TeacherLogitCache.load(dir);
    assert.equal(c.size, 2);
    const got = c.batch([key2, key1], 3);
    assert.deepEqual(got.ids.arraySync()[1], [[...top.ids.slice(0, 4)], [...top.ids.slice(4, 8)], [...top.ids.slice(8, 12)]]);
    assert.deepEqual((got.logp.arraySync()[0]![0] as number[]).map((x) => Math.fround(x)), [...top.logp.slice(12, 16)]);
    assert.equal(got.logRest.arraySync()[0]![2], -1e9, "padding holds no mass");
    assert.equal(c.mismatch("abc", 2, V), null);
    assert.match(c.mismatch("xyz", 1, V)!, /another teacher .*temperature 2, the run distils at 1/);
    assert.deepEqual(c.missing([key1, "nope"]), ["nope"]);
    assert.throws(() => c.batch(["nope"], 3), /no entry for an example of this batch \(key nope\)/);
    fs.truncateSync(path.join(dir, "values.bin"), 10);
    assert.throws(() => TeacherLogitCache.load(dir), /values\.bin: entry .* runs past the end of the file/);
    tf.dispose([teacher, got.ids, got.logp, got.logRest]);
  });

  it("stage 2 reading the cache (whole vocabulary kept) matches stage 2 with the live teacher, step for step; every training seed reads the same cache (sampleSeed); the cache is refused for another teacher or another sample", async () => {
    await ensurePrepared(loadScale("tiny"), () => {});
    const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", "tiny", "finetune.json"), "utf8")) as Record<string, unknown>;
    const base = { ...raw, maxTasks: 6, instancesPerTask: 3, losses: { ce: 1, kl: 1, ins: 0, temperature: 2, alignment: "factors" }, teachers: null, dev: { fraction: 0.05, seed: 0, every: 0, instancesPerTask: 2 }, train: { ...(raw["train"] as object), steps: 3, batchSize: 4, checkpointEvery: 0, logEvery: 1 } };
    const cwd = process.cwd();
    process.chdir(PROJECT_ROOT); // configs name their inputs relative to the project
    try {
      const c = parseFinetuneConfig(base);
      const cacheDir = path.join(tmp, "teacher-logits");
      const built = await buildTeacherLogits(c, { out: cacheDir, k: 32128, batchSize: 8, log: () => {} });
      assert.ok(built.examples > 0 && built.positions > 0);
      assert.ok(built.restMass.max < 1e-5, `all mass is kept at k = V, got ${built.restMass.max}`);
      const live = await finetuneTagi(c, { out: path.join(tmp, "live"), progress: false });
      const fromCache = await finetuneTagi(parseFinetuneConfig({ ...base, teacherLogits: cacheDir }), { out: path.join(tmp, "cached"), progress: false });
      const run = JSON.parse(fs.readFileSync(path.join(tmp, "cached", "run.json"), "utf8")) as { teachers: { logitCache: { k: number } | null } };
      assert.equal(run.teachers.logitCache?.k, 32128);
      assert.equal(live.result.log.length, fromCache.result.log.length);
      live.result.log.forEach((r, i) => {
        const q = fromCache.result.log[i]!;
        for (const term of ["ce", "kl"]) assert.ok(Math.abs(r.terms[term]! - q.terms[term]!) <= 2e-4 * Math.max(1, Math.abs(r.terms[term]!)), `step ${r.step} ${term}: live ${r.terms[term]} vs cached ${q.terms[term]}`);
      });
      // another training seed trains on the same instance sample (config sampleSeed), so one cache serves every seed ...
      const seed1 = { ...base, teacherLogits: cacheDir, train: { ...base.train, seed: 1 } };
      const other = await finetuneTagi(parseFinetuneConfig(seed1), { out: path.join(tmp, "seed-1"), progress: false });
      assert.equal(other.result.log.length, live.result.log.length);
      // ... while a sample drawn with the training seed (sampleSeed null) is refused by name before training
      await assert.rejects(
        finetuneTagi(parseFinetuneConfig({ ...seed1, sampleSeed: null }), { out: path.join(tmp, "seed-1-own-sample"), progress: false }),
        /training examples are not in the teacher logit cache/,
      );
      assert.throws(() => parseFinetuneConfig({ ...base, sampleSeed: -1 }), /config\.sampleSeed must be an integer >= 0 or null/);
      // a cache of another teacher is refused before training
      await assert.rejects(
        finetuneTagi(parseFinetuneConfig({ ...base, teacherLogits: cacheDir, teacher: c.base }), { out: path.join(tmp, "wrong"), progress: false }),
        new RegExp(`made from another teacher \\(content ${modelFolderFingerprint(c.teacher!).slice(0, 12)}`),
      );
    } finally {
      process.chdir(cwd);
    }
  });
});
