/**
 * src/model/safetensors-convert.ts and src/artifacts/publish.ts: float32 -> bfloat16 bits equal to torch's
 * (test/fixtures/bf16 from reference/make_bf16_fixture.py), file conversion, publishing a finished stage
 * (weights as bf16, project-relative paths, artifact.json), verification catching changed, missing, extra and
 * Git LFS pointer files, the size budget, and every artifact committed under artifacts/ matching its manifest.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { float32ToBfloat16, convertSafetensorsToBf16 } from "../src/model/safetensors-convert";
import { bfloat16ToFloat32, readSafetensors, readSafetensorsHeader, writeSafetensors } from "../src/model/safetensors";
import { loadT5Checkpoint, saveT5Checkpoint } from "../src/model/weights";
import { randomTinyT5 } from "../src/model/tiny";
import { artifactsIndex, listArtifacts, publishArtifact, verifyArtifacts, ARTIFACT_FILE } from "../src/artifacts/publish";
import { readTeachersManifest } from "../src/train/teachers";
import { PROJECT_DIR } from "../src/project-paths";
import { ensurePrepared, parseScaleSettings } from "../src/experiments/runner";

const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "bf16", "bf16.json"), "utf8")) as { float32Bits: number[]; bfloat16Bits: number[] };

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "tagi-artifacts-"));
}

/** A finished pretrain-base-like run folder: model/, run.json, log.jsonl with two dev points. */
function fakeRun(dir: string): void {
  const m = randomTinyT5(3);
  saveT5Checkpoint(path.join(dir, "model"), m.config, m.params);
  for (const t of m.params.values()) t.dispose();
  fs.writeFileSync(path.join(dir, "run.json"), JSON.stringify({ stage: "pretrain-base", command: "tagi pretrain-base --config c.json --out x", commit: "abc1234", backend: { backend: "cpu" }, seed: 0, startedAt: "2026-01-01T00:00:00Z", wallSeconds: 60, training: { steps: 20 } }));
  const log = [
    { step: 10, loss: 9, eval: { devLoss: 8.5 } },
    { step: 20, loss: 7, eval: { devLoss: 7.25 } },
  ];
  fs.writeFileSync(path.join(dir, "log.jsonl"), log.map((r) => JSON.stringify(r)).join("\n") + "\n");
}

describe("published artifacts", function () {
  this.timeout(60_000);
  before(async () => {
    await initBackend({ log: false });
  });

  it("rounds float32 to bfloat16 exactly as torch (nearest, ties to even; inf, subnormals; NaN stays NaN)", () => {
    const f32 = new Float32Array(new Uint32Array(fixture.float32Bits).buffer);
    const got = float32ToBfloat16(f32);
    let nans = 0;
    for (let i = 0; i < f32.length; i++) {
      if (Number.isNaN(f32[i]!)) {
        nans++;
        assert.ok(Number.isNaN(bfloat16ToFloat32(new Uint16Array([got[i]!]))[0]!), `value ${i}: NaN must stay NaN`);
        assert.equal(got[i]! & 0x8000, (fixture.float32Bits[i]! >>> 16) & 0x8000, `value ${i}: NaN keeps its sign`);
      } else assert.equal(got[i], fixture.bfloat16Bits[i], `value ${i} (bits 0x${fixture.float32Bits[i]!.toString(16)}): 0x${got[i]!.toString(16)} vs torch 0x${fixture.bfloat16Bits[i]!.toString(16)}`);
    }
    assert.equal(nans, 4);
  });

  it("converts a safetensors file: F32 tensors to BF16 (or kept by name), other dtypes and metadata unchanged", () => {
    const dir = tmp();
    const src = path.join(dir, "a.safetensors");
    const w = tf.tensor2d([[1.00390625, -3.3], [1e-3, 65504]]);
    const keep = tf.tensor1d([0.1, 0.2]);
    const ids = tf.tensor1d([7, -2], "int32");
    writeSafetensors(src, { w, keep, ids }, { format: "pt" });
    const dst = path.join(dir, "b.safetensors");
    const r = convertSafetensorsToBf16(src, dst, (n) => n === "keep");
    assert.deepEqual(r, { converted: 1, kept: 2, elements: { BF16: 4, F32: 2, I32: 2 } });
    const h = readSafetensorsHeader(dst);
    assert.equal(h.tensors.get("w")!.dtype, "BF16");
    assert.equal(h.tensors.get("keep")!.dtype, "F32");
    assert.deepEqual(h.metadata, { format: "pt" });
    const back = readSafetensors(dst).tensors;
    const want = bfloat16ToFloat32(float32ToBfloat16(w.dataSync() as Float32Array));
    assert.deepEqual([...(back.get("w")!.dataSync() as Float32Array)], [...want]);
    assert.deepEqual([...back.get("keep")!.dataSync()], [...keep.dataSync()]);
    assert.deepEqual([...back.get("ids")!.dataSync()], [7, -2]);
    for (const t of [w, keep, ids, ...back.values()]) t.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("publishes a finished stage: bf16 weights that load as the rounded model, artifact.json with sha256, dev curve and provenance; verify passes", () => {
    const root = tmp();
    const run = path.join(root, "run");
    fakeRun(run);
    const out = path.join(root, "artifacts", "tiny", "base");
    const span = path.join(root, "span");
    fakeRun(span); // the phase this one continued
    const m = publishArtifact({ run, out, dtype: "bf16", command: ["tagi", "publish"], earlier: [{ name: "span", run: span }] });
    assert.equal(m.kind, "t5");
    assert.deepEqual(m.files.map((f) => f.path).sort(), ["log.jsonl", "model/config.json", "model/model.safetensors", "run.json", "span/log.jsonl", "span/run.json"]);
    assert.deepEqual(m.earlier?.["span"]?.devCurve, [{ step: 10, loss: 8.5 }, { step: 20, loss: 7.25 }]);
    assert.equal(m.earlier?.["span"]?.steps, 20);
    assert.deepEqual(m.devCurve, [{ step: 10, loss: 8.5 }, { step: 20, loss: 7.25 }]);
    assert.equal(m.trainedBy.commit, "abc1234");
    assert.equal(m.trainedBy.backend, "cpu");
    assert.equal(m.trainedBy.steps, 20);
    const original = loadT5Checkpoint(path.join(run, "model"));
    const published = loadT5Checkpoint(path.join(out, "model"));
    assert.equal(m.parameters, [...original.params.values()].reduce((a, t) => a + t.size, 0));
    for (const [name, t] of original.params) {
      const want = bfloat16ToFloat32(float32ToBfloat16(t.dataSync() as Float32Array));
      assert.deepEqual([...(published.params.get(name)!.dataSync() as Float32Array)], [...want], name);
    }
    for (const t of [...original.params.values(), ...published.params.values()]) t.dispose();
    const size = (f: string) => fs.statSync(path.join(out, f)).size;
    assert.ok(size("model/model.safetensors") < 0.51 * fs.statSync(path.join(run, "model", "model.safetensors")).size);
    const r = verifyArtifacts(path.join(root, "artifacts"));
    assert.deepEqual(r.problems, []);
    assert.equal(r.artifacts, 1);
    assert.match(artifactsIndex(path.join(root, "artifacts")), /\| `tiny\/base` \| t5 \| .* \| bf16 \|.*8\.500 \(step 10\) -> 7\.250 \(step 20\)/);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("verification names a changed, a missing, an unlisted and a Git LFS pointer file", () => {
    const root = tmp();
    fakeRun(path.join(root, "run"));
    const out = path.join(root, "artifacts", "tiny", "base");
    publishArtifact({ run: path.join(root, "run"), out, dtype: "f32" });
    const st = path.join(out, "model", "model.safetensors");
    const bytes = fs.readFileSync(st);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    fs.writeFileSync(st, bytes);
    fs.writeFileSync(path.join(out, "model", "extra.bin"), "x");
    fs.writeFileSync(path.join(out, "log.jsonl"), "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 12\n");
    fs.rmSync(path.join(out, "run.json"));
    const problems = verifyArtifacts(path.join(root, "artifacts")).problems.join("\n");
    assert.match(problems, /tiny\/base\/model\/model\.safetensors: sha256 differs/);
    assert.match(problems, /tiny\/base\/model\/extra\.bin: not listed in artifact\.json/);
    assert.match(problems, /tiny\/base\/log\.jsonl: a Git LFS pointer, not the file \(run `git lfs pull`\)/);
    assert.match(problems, /tiny\/base\/run\.json: missing/);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("records the artifacts a run read; republishing one of them makes the reader stale, and verification says so", () => {
    const root = tmp();
    fakeRun(path.join(root, "base-run"));
    const base = path.join(root, "artifacts", "tiny", "base");
    publishArtifact({ run: path.join(root, "base-run"), out: base, dtype: "bf16" });
    // a later stage whose config names the published base (as configs/<scale>/*.json do)
    const run = path.join(root, "meta-run");
    fakeRun(run);
    const rec = JSON.parse(fs.readFileSync(path.join(run, "run.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(run, "run.json"), JSON.stringify({ ...rec, stage: "metatrain", config: { base: path.join(base, "model"), train: { steps: 20 } } }));
    const meta = path.join(root, "artifacts", "tiny", "meta");
    const m = publishArtifact({ run, out: meta, dtype: "bf16" });
    assert.deepEqual(m.reads?.map((r) => path.resolve(r.artifact)), [base]);
    assert.deepEqual(verifyArtifacts(path.join(root, "artifacts")).problems, []);
    // the base retrained and published again: its artifact.json changes
    const log = path.join(root, "base-run", "log.jsonl");
    fs.appendFileSync(log, JSON.stringify({ step: 30, loss: 6, eval: { devLoss: 7 } }) + "\n");
    publishArtifact({ run: path.join(root, "base-run"), out: base, dtype: "bf16" });
    const problems = verifyArtifacts(path.join(root, "artifacts")).problems;
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0]!, /tiny\/meta: trained on .*tiny\/base, which was republished since \(its artifact.json changed\): .*tiny\/meta is stale; retrain it \(tagi prepare\)/);
    fs.rmSync(base, { recursive: true, force: true });
    assert.match(verifyArtifacts(path.join(root, "artifacts")).problems[0]!, /trained on .*tiny\/base, which is not there any more/);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("refuses to publish past the artifacts budget, leaving nothing half-published", () => {
    const root = tmp();
    fakeRun(path.join(root, "run"));
    const out = path.join(root, "artifacts", "tiny", "base");
    assert.throws(() => publishArtifact({ run: path.join(root, "run"), out, dtype: "bf16", budgetBytes: 1000 }), /would hold .* MB with .*tiny\/base .* over the 0 MB budget/);
    assert.ok(!fs.existsSync(out));
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("publishes parameter teachers with their base made project-relative, which readTeachersManifest resolves", () => {
    const root = tmp();
    const run = path.join(root, "teachers");
    const adapter = path.join(run, "translation", "adapter");
    fs.mkdirSync(adapter, { recursive: true });
    const a = tf.ones([4, 2]);
    writeSafetensors(path.join(adapter, "adapter_model.safetensors"), { "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight": a });
    a.dispose();
    fs.writeFileSync(path.join(adapter, "adapter_config.json"), JSON.stringify({ r: 2 }));
    const base = path.join(PROJECT_DIR, "artifacts", "tiny", "base", "model");
    const dev = { first: 3, last: 2, firstStep: 4, lastStep: 8 };
    fs.writeFileSync(path.join(run, "manifest.json"), JSON.stringify({ base, baseFingerprint: "f", teachers: [{ group: "Translation", dir: "translation", adapter: "translation/adapter", devLoss: dev }] }));
    fs.writeFileSync(path.join(run, "run.json"), JSON.stringify({ stage: "teachers", commit: "c" }));
    const out = path.join(root, "artifacts", "tiny", "teachers");
    const m = publishArtifact({ run, out, dtype: "bf16" });
    assert.equal(m.kind, "teachers");
    assert.deepEqual(m.devCurve, { Translation: dev });
    const written = JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8")) as { base: string };
    assert.equal(written.base, "artifacts/tiny/base/model");
    assert.equal(readTeachersManifest(out).base, base);
    assert.equal(readSafetensorsHeader(path.join(out, "translation", "adapter", "adapter_model.safetensors")).tensors.values().next().value!.dtype, "BF16");
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("every artifact committed under artifacts/ matches its artifact.json", function () {
    const all = listArtifacts();
    if (!all.length) this.skip(); // nothing published yet in this checkout
    const r = verifyArtifacts();
    assert.deepEqual(r.problems, []);
    for (const { manifest } of all) assert.ok(fs.existsSync(path.join(PROJECT_DIR, manifest.artifact, ARTIFACT_FILE)));
  });
});

describe("the runner's published prepare stages", function () {
  this.timeout(300_000);
  const rel = path.join("scratch", `test-publish-${process.pid}`);
  const abs = path.join(PROJECT_DIR, rel);
  after(() => fs.rmSync(abs, { recursive: true, force: true }));

  /**
   * A span-corruption phase (unpublished), a stage nothing here reads (unpublished, like a teacher logit
   * cache), and the LM-adapt phase that continues the first (published).
   */
  function scale(steps: number, asideSteps = steps) {
    const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "configs", "tiny", "experiments.json"), "utf8")) as Record<string, unknown>;
    const quick = { maxTasks: 4, "train.steps": steps, "train.schedule.warmupSteps": 1, "dev.every": 0 };
    raw["prepare"] = [
      { command: "pretrain-base", config: "pretrain-base.json", out: path.join(rel, "runs", "span"), done: path.join(rel, "runs", "span", "model", "config.json"), set: quick },
      { command: "pretrain-base", config: "pretrain-base.json", out: path.join(rel, "runs", "aside"), done: path.join(rel, "runs", "aside", "model", "config.json"), set: { ...quick, "train.steps": asideSteps } },
      {
        command: "pretrain-base",
        config: "pretrain-base-lmadapt.json",
        out: path.join(rel, "runs", "base"),
        done: path.join(rel, "artifacts", "tiny", "base", ARTIFACT_FILE),
        set: { ...quick, init: path.join(rel, "runs", "span", "model") },
        publish: { to: path.join(rel, "artifacts", "tiny", "base"), dtype: "bf16", earlier: { span: path.join(rel, "runs", "span") } },
      },
    ];
    return parseScaleSettings(raw, "tiny");
  }

  it("trains missing stages and publishes the marked one, then reads the artifact without training, even without the unpublished phase it continued; a changed config is refused, not retrained", async () => {
    const lines: string[] = [];
    await ensurePrepared(scale(2), (l) => lines.push(l));
    assert.equal(lines.filter((l) => /preparing the tiny scale: tagi pretrain-base/.test(l)).length, 3, lines.join("\n"));
    assert.ok(lines.some((l) => /published .*artifacts\/tiny\/base .*bf16/.test(l)), lines.join("\n"));
    assert.deepEqual(verifyArtifacts(path.join(abs, "artifacts")).problems, []);
    assert.ok(listArtifacts(path.join(abs, "artifacts"))[0]!.manifest.earlier?.["span"], "the artifact carries the span phase's record");
    assert.match(fs.readFileSync(path.join(abs, "artifacts", "README.md"), "utf8"), /\| `tiny\/base` \| t5 \|/);
    lines.length = 0;
    await ensurePrepared(scale(2), (l) => lines.push(l));
    assert.deepEqual(lines, []);
    // a fresh checkout has the artifact but no run folders: the span phase is not needed; the stage aside is
    // rebuilt, and that does not make the artifact (which does not read it) stale
    fs.rmSync(path.join(abs, "runs"), { recursive: true, force: true });
    const fresh: string[] = [];
    await ensurePrepared(scale(2), (l) => fresh.push(l));
    assert.match(fresh[0]!, /runs\/span: not here, and not needed \(.*artifacts\/tiny\/base is done from it\)/);
    assert.equal(fresh.filter((l) => /preparing the tiny scale/.test(l)).length, 1, fresh.join("\n"));
    assert.match(fresh.find((l) => /preparing/.test(l))!, /--out \S*runs\/aside/);
    // an unpublished stage whose config changed is rebuilt, alone (the artifact does not read it)
    const changed: string[] = [];
    await ensurePrepared(scale(2, 3), (l) => changed.push(l));
    assert.ok(changed.some((l) => /runs\/aside was made with another config \(train\.steps: 2 -> 3\): rebuilding it/.test(l)), changed.join("\n"));
    assert.equal(changed.filter((l) => /preparing/.test(l)).length, 1, changed.join("\n"));
    // a damaged artifact is an error naming the file, not a model silently read
    const weights = path.join(abs, "artifacts", "tiny", "base", "model", "model.safetensors");
    const good = fs.readFileSync(weights);
    const bad = Buffer.from(good);
    bad[bad.length - 2] = bad[bad.length - 2]! ^ 0xff;
    fs.writeFileSync(weights, bad);
    await assert.rejects(ensurePrepared(scale(2), () => {}), /the published artifact .*artifacts\/tiny\/base does not match its artifact\.json:\n {2}- .*model\/model\.safetensors: sha256 differs/);
    fs.writeFileSync(weights, good);
    // refused before anything trains (the span phase is not rebuilt first)
    const refused: string[] = [];
    await assert.rejects(ensurePrepared(scale(3), (l) => refused.push(l)), /artifacts\/tiny\/base \(a published artifact\) was made with another config .*train\.steps: 2 -> 3/);
    assert.deepEqual(refused, []);
    await assert.rejects(ensurePrepared(scale(2), () => {}, { through: "runs/nowhere" }), /prepare --through runs\/nowhere: no stage of the tiny scale writes it/);
  });
});
