/**
 * The experiment runner, the results report and the probes, at the tiny scale (its shared stages are trained
 * on first use, about a minute). Results go to a temporary folder ($TAGI_RESULTS_DIR), runs to runs/tiny/.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { analysisFormat, ensurePrepared, experimentFormats, listExperiments, loadExperiment, loadScale, parseEvaluationParts, parseScaleSettings, readsLogitCache, runExperiment, setStrings, stageSets, PROJECT_ROOT, type ExperimentRecord } from "../src/experiments/runner";
import { applySets } from "../src/train/config-sets";
import { parseFinetuneConfig } from "../src/tagi/train";
import { collectRecords, stat, writeResultsReport, type SupersededRecord } from "../src/experiments/results-report";
import { missingCells } from "../src/experiments/records";
import { isConsoleLine } from "../src/experiments/prepare";
import { checkDemoModels, parseDemoSettings, runDemo } from "../src/experiments/demo";
import { runGridLocal } from "../src/experiments/grid";
import { onlyEvaluationDiffers, protocolDifferences, recordProtocol, scaleProtocol } from "../src/experiments/protocol";
import { checkLossWeights } from "../src/experiments/notebook";
import { meanTeacherDeltas, mergeDeltas, probeInstructions, taskInstruction } from "../src/tagi/probes";
import { loadSniSplit } from "../src/data/sni";
import { loadPeftAdapter, loadT5Config, scaling } from "../src/model/weights";
import type { TeachersManifest } from "../src/train/teachers";

describe("experiments: runner, results report, probes (tiny scale)", function () {
  this.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-exp-"));
  const prevResults = process.env.TAGI_RESULTS_DIR;
  const prevRuns = process.env.TAGI_RUNS_DIR;
  const quiet = () => {};

  before(async () => {
    process.env.TAGI_RESULTS_DIR = tmp;
    // the experiments' own run folders too: each test run trains afresh (the shared stages stay in runs/tiny)
    process.env.TAGI_RUNS_DIR = path.join(tmp, "runs");
    await initBackend({ log: false });
    await ensurePrepared(loadScale("tiny"), quiet);
  });
  after(() => {
    if (prevResults === undefined) delete process.env.TAGI_RESULTS_DIR;
    else process.env.TAGI_RESULTS_DIR = prevResults;
    if (prevRuns === undefined) delete process.env.TAGI_RUNS_DIR;
    else process.env.TAGI_RUNS_DIR = prevRuns;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("every committed experiment and scale parses; an unknown name or key is a clear error", () => {
    const names = listExperiments();
    for (const n of ["no-ft", "tk-instruct", "tk-instruct-lora", "hypter", "hint", "tagi", "tagi-no-pretrain", "tagi-no-fusion", "tagi-no-ce", "tagi-no-kl", "tagi-no-ins"]) {
      assert.ok(names.includes(n), `experiments/${n}.json is missing`);
    }
    for (const n of names) loadExperiment(n);
    for (const s of ["tiny", "small"]) assert.deepEqual(loadScale(s).seeds, [0, 1, 2]);
    assert.throws(() => loadExperiment("no-such-experiment"), /unknown experiment 'no-such-experiment'.*Known experiments: .*tagi/s);
    assert.throws(() => loadScale("huge"), /unknown scale 'huge'.*tiny/s);
    const bad = path.join(PROJECT_ROOT, "experiments", "zz-test-bad.json");
    fs.writeFileSync(bad, JSON.stringify({ method: "tagi", table: "main", evaluate: { formats: ["def"], extra: 1 }, lambda: 2 }));
    try {
      assert.throws(() => loadExperiment("zz-test-bad"), (e: Error) => /unknown key 'lambda'/.test(e.message) && /evaluate: unknown key 'extra'/.test(e.message) && /needs a stage, 'uses' \(a trained experiment\) or 'model'/.test(e.message));
    } finally {
      fs.rmSync(bad);
    }
  });

  it("loss weights: negative weights, T <= 0 and all-zero weights are refused, each named", () => {
    assert.throws(() => checkLossWeights({ ce: 1, kl: -1, ins: 1, temperature: 0, alignment: "factors" }), (e: Error) => /losses\.kl must be/.test(e.message) && /losses\.temperature must be/.test(e.message));
    assert.throws(() => checkLossWeights({ ce: 0, kl: 0, ins: 0, temperature: 2, alignment: "factors" }), /every weight is 0/);
    assert.deepEqual(checkLossWeights({ ce: 1, kl: 0.5, ins: 0, temperature: 1, alignment: "product" }).kl, 0.5);
    // the official code's loss forms are one key; its own L_ins excludes the alignment choice
    assert.equal(checkLossWeights({ ce: 0.6, kl: 0.4, ins: 1, temperature: 3, alignment: "factors", variant: "official" }).variant, "official");
    assert.throws(() => checkLossWeights({ ce: 1, kl: 1, ins: 1, temperature: 2, alignment: "cosine", variant: "official" }), /alignment applies to the paper variant/);
    assert.throws(() => checkLossWeights({ ce: 1, kl: 1, ins: 1, temperature: 2, alignment: "factors", variant: "released" as never }), /losses\.variant must be "paper" or "official", got "released"/);
  });

  it("the same seed reproduces the metrics and the loss curve; the record says how it was made", async () => {
    const a = await runExperiment("hint", { scale: "tiny", seed: 1, log: quiet });
    const curveA = fs.readFileSync(path.join(tmp, "hint", "tiny", "seed-1", "log-def.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { loss: number }).loss);
    const b = await runExperiment("hint", { scale: "tiny", seed: 1, log: quiet, force: true });
    const curveB = fs.readFileSync(path.join(tmp, "hint", "tiny", "seed-1", "log-def.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { loss: number }).loss);
    assert.deepEqual(curveB, curveA);
    assert.deepEqual(b.metrics, a.metrics);
    assert.equal(curveA.length, loadScale("tiny").steps);
    assert.equal(a.seed, 1);
    assert.equal(a.command, "npm run experiment -- hint --seed 1 --scale tiny");
    assert.ok(a.backend && a.wallSeconds > 0 && a.trainSeconds! > 0 && a.startedAt);
    assert.match(a.steps[0]!.command, /finetune .*--set format=def --set train\.seed=1 --set initSeed=1 --set train\.steps=10/);
    assert.ok(a.metrics["def"]!.instances === 206 && a.metrics["def"]!.tasks === 103, JSON.stringify(a.metrics["def"]));
    assert.equal(a.compute["def"]!.method, "hint");
    assert.ok(a.compute["def"]!.relativeAt100Instances > 0 && a.compute["def"]!.relativeAt100Instances < 1);
    for (const f of ["experiment.json", "log-def.jsonl", "train-run-def.json", "eval-def"]) assert.ok(a.files.includes(f), `${f} in ${a.files}`);
    assert.deepEqual(Object.keys(a.training!), ["def"]);
    assert.equal(a.training!.def!.shared, false);
    assert.ok(a.training!.def!.devLoss!.step === 10 && a.training!.def!.devLoss!.loss > 0, "the last dev-loss point is in the record");
    const again = await runExperiment("hint", { scale: "tiny", seed: 1, log: quiet });
    assert.equal(again.startedAt, b.startedAt, "an existing result is read, not rerun");
  });

  it("one model per format: each format's stage trains on it and distils from that format's meta-trained model", () => {
    const small = loadScale("small");
    assert.deepEqual(Object.keys(small.logitTeachers).sort(), ["def", "def+2pos"]);
    const tagi = loadExperiment("tagi");
    const def2pos = stageSets(tagi, small, "def+2pos", 2);
    assert.equal(def2pos["format"], "def+2pos");
    assert.equal(def2pos["teacher"], small.logitTeachers["def+2pos"]);
    assert.equal(def2pos["train.seed"], 2);
    assert.equal(stageSets(tagi, small, "def", 0)["teacher"], small.logitTeachers.def);
    // the def+2pos teacher is a prepare stage trained on def+2pos (at the small scale, published under artifacts/)
    const prep = small.prepare.find((p) => `${p.publish?.to ?? p.out}/model` === small.logitTeachers["def+2pos"]);
    assert.deepEqual(prep?.set, { format: "def+2pos" });
    // a stage without a logit teacher (HINT-style: no L_kl) does not get one
    assert.ok(!("teacher" in stageSets(loadExperiment("hint"), small, "def+2pos", 0)));
    // with the scale's teacher logit caches, a distilling stage reads its format's cache; others get none
    const cached = { ...small, teacherLogitCaches: { def: "runs/x/tl-def", "def+2pos": "runs/x/tl-def2pos" } };
    assert.equal(stageSets(tagi, cached, "def+2pos", 0)["teacherLogits"], "runs/x/tl-def2pos");
    assert.ok(!("teacherLogits" in stageSets(loadExperiment("hint"), cached, "def", 0)));
    const { teacherLogitCaches: _, ...live } = small; // a scale without caches: the teacher runs live
    assert.ok(!("teacherLogits" in stageSets(tagi, live, "def", 0)));
    assert.equal(stageSets(tagi, small, "def", 0)["teacherLogits"], small.teacherLogitCaches?.def);
    // the official losses' row runs its teacher live (its KL counts padded positions, which no cache holds)
    const official = stageSets(loadExperiment("tagi-official-losses"), small, "def+2pos", 0);
    assert.equal(official["teacherLogits"], null);
    assert.equal(official["teacher"], small.logitTeachers["def+2pos"]);
    assert.doesNotThrow(() => parseFinetuneConfig(applySets(JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", "small", "finetune.json"), "utf8")) as Record<string, unknown>, setStrings(official))));
    assert.equal(stageSets(loadExperiment("tk-instruct-lora"), small, "def+2pos", 0)["format"], "def+2pos");
    // a scale that evaluates a format without its meta-trained model is refused
    const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", "small", "experiments.json"), "utf8")) as Record<string, unknown>;
    assert.throws(() => parseScaleSettings({ ...raw, logitTeachers: { def: "runs/small/metatrain/model" } }, "small"), /logitTeachers has no model for def\+2pos/);
    assert.throws(() => parseScaleSettings({ ...raw, logitTeachers: { def: "m", def3pos: "m", "def+2pos": "n" } }, "small"), /logitTeachers: unknown format 'def3pos'/);
    assert.throws(() => parseScaleSettings({ ...raw, prepare: [{ command: "metatrain", config: "c", out: "o", done: "d", set: 3 }] }, "small"), /prepare must be a list of \{command, config, out, done, set\?/);
  });

  it("the Tk-Instruct row is the shared logit teacher, evaluated as is, its training recorded once", async () => {
    const r = await runExperiment("tk-instruct", { scale: "tiny", seed: 1, log: quiet });
    const scale = loadScale("tiny");
    assert.equal(r.training!.def!.shared, true);
    assert.match(r.training!.def!.command, /tagi metatrain --config configs\/tiny\/metatrain\.json --out runs\/tiny\/metatrain/);
    assert.ok(r.steps.every((s) => !s.label.startsWith("train")), "nothing trained");
    assert.ok(r.steps.find((s) => s.label === "eval-def")!.command.includes(`--model ${scale.logitTeachers.def}`));
    assert.ok(r.files.includes("log-def.jsonl"), "the shared model's curve is copied beside the record");
  });

  it("the results report tabulates mean ± std over seeds beside the paper and draws the figures", async () => {
    await runExperiment("hint", { scale: "tiny", seed: 2, log: quiet });
    await runExperiment("no-ft", { scale: "tiny", seed: 0, log: quiet });
    const recs = collectRecords(tmp).get("tiny")!;
    assert.deepEqual(recs.get("hint")!.map((r) => r.seed).sort(), [1, 2]);
    const out = path.join(tmp, "README.md");
    await writeResultsReport({ out, resultsDir: tmp });
    const md = fs.readFileSync(out, "utf8");
    const hint = recs.get("hint")!.map((r) => r.metrics["def"]!.rougeL);
    const s = stat(hint);
    assert.match(md, new RegExp(`\\| HINT-style \\| 1, 2 / – \\| ${s.mean.toFixed(2)} ± ${s.std!.toFixed(2)} \\|`));
    // sanity floors as rows of the SNI table, with their CI; the paper's HINT number is not beside HINT-style
    assert.match(md, /\| \*floor: copy instance input\* \| – \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \|/);
    assert.match(md, /\| \*floor: copy first demonstration output\* \|/);
    assert.doesNotMatch(md, /33\.3/);
    assert.match(md, /\| No FT \| 0 \/ – \| [0-9.]+ \(1 seed\) \| .* \| 8\.8 \|/);
    assert.match(md, /P3 held-out/);
    const png = path.join(tmp, "figures", "tiny", "rouge-vs-flops.png");
    assert.ok(fs.statSync(png).size > 5000, "figure written");
    assert.equal(s.std, Math.sqrt(hint.reduce((acc, v) => acc + (v - s.mean) ** 2, 0) / (hint.length - 1)));
  });

  it("the ablation table: each variant's Δ against TAGI paired by seed and by instance, the paper's Δ beside it, the delta figure, the seed-by-seed table; rank rows against their own reference", async () => {
    await runExperiment("tagi", { scale: "tiny", seed: 1, log: quiet });
    const noKl = await runExperiment("tagi-no-kl", { scale: "tiny", seed: 1, log: quiet });
    assert.ok(!noKl.steps[0]!.command.includes("losses.kl=1"));
    const out = path.join(tmp, "README.md");
    await writeResultsReport({ out, resultsDir: tmp });
    const md = fs.readFileSync(out, "utf8");
    const section = md.slice(md.indexOf("### Ablations (SNI-103)"));
    assert.match(section, /\| TAGI \(all terms\) \| 1 \/ – \| [0-9.]+ \(1 seed\) \|/);
    // Δ (seeds) with one pair, then the paired-over-instances cell with its CI and p; the paper's Δ for w/o L_kl is 45.7 - 48.4
    assert.match(section, /\| w\/o L_kl \| 1 \/ – \| [0-9.]+ \(1 seed\) \| [+-][0-9.]+ \(1 paired\) \| [+-][0-9.]+ \[-?[0-9.]+, -?[0-9.]+\], p = [0-9.e-]+ \|.*\| 45\.7 \(-2\.7\) \| 53\.9 \(-2\.4\) \|/);
    assert.ok(fs.statSync(path.join(tmp, "figures", "tiny", "ablation-deltas.png")).size > 5000, "the delta figure is drawn");
    // Seed by seed: the trained variant minus TAGI at its seed.
    assert.match(md.slice(md.indexOf("### Seed by seed (SNI-103, Def)")), /\| Comparison \| seed 1 \|\n\|---\|---\|\n(\|.*\|\n)*\| w\/o L_kl minus TAGI \| [+-][0-9.]+ \[-?[0-9.]+, -?[0-9.]+\], p = [0-9.e-]+ \|/);
    assert.doesNotMatch(md, /### Sensitivity/, "no sensitivity rows, no table");
    // A category-scaling point is paired with its method's 60-category run (w/o L_kl for TAGI) at the same seed.
    // The tiny data lacks the 6 categories, so the point is w/o L_kl's record with every instance scored 1 lower.
    const full = path.join(tmp, "tagi-no-kl", "tiny", "seed-1");
    const six = path.join(tmp, "tagi-categories-6", "tiny", "seed-1");
    fs.cpSync(full, six, { recursive: true });
    const sixRec = JSON.parse(fs.readFileSync(path.join(six, "experiment.json"), "utf8")) as ExperimentRecord;
    sixRec.experiment = loadExperiment("tagi-categories-6");
    fs.writeFileSync(path.join(six, "experiment.json"), JSON.stringify(sixRec));
    const preds = path.join(six, "eval-def", "predictions.jsonl");
    const lower = fs.readFileSync(preds, "utf8").trim().split("\n").map((l) => {
      const x = JSON.parse(l) as { rougeL: number };
      return JSON.stringify({ ...x, rougeL: x.rougeL - 1 });
    });
    fs.writeFileSync(preds, lower.join("\n") + "\n");
    await writeResultsReport({ out, resultsDir: tmp });
    const withScaling = fs.readFileSync(out, "utf8");
    assert.ok(withScaling.includes("### Scaling with the number of meta-training categories"), "the scaling table is there");
    const scaling = withScaling.slice(withScaling.indexOf("### Scaling with the number of meta-training categories"));
    assert.match(scaling, /\| TAGI \(w\/o L_kl\) \| 6 \| `tagi-categories-6` \| 1 \/ – \| [0-9.]+ \(1 seed\) \| -1\.00 \[-1\.00, -1\.00\], p = [0-9.e+-]+ \| – \| – \| 40\.2 \|/);
    assert.match(scaling, /\| TAGI \(w\/o L_kl\) \| 60 \| `tagi-no-kl` \| 1 \/ – \| [0-9.]+ \(1 seed\) \| – \| – \| – \| 42\.5 \|/);
    assert.ok(fs.statSync(path.join(tmp, "figures", "tiny", "category-scaling.png")).size > 5000, "the scaling figure is drawn");
    // The rank rows are compared with their own reference (rank 32 with the same settings), not with TAGI.
    await runExperiment("tagi-rank-32", { scale: "tiny", seed: 1, log: quiet });
    const r16 = await runExperiment("tagi-rank-16", { scale: "tiny", seed: 1, log: quiet });
    assert.match(r16.steps[0]!.command, /tagi\.hypernetwork\.rank=16 .*losses\.alignment=product/);
    await writeResultsReport({ out, resultsDir: tmp });
    const withRank = fs.readFileSync(out, "utf8");
    assert.doesNotMatch(withRank, /### Sensitivity: learning rate/);
    const rank = withRank.slice(withRank.indexOf("### Sensitivity: LoRA rank (SNI-103)"));
    assert.match(rank, /the variant minus the reference row \(LoRA rank 32\)/);
    assert.match(rank, /\| LoRA rank 32 \(reference\) \| 1 \/ – \| [0-9.]+ \(1 seed\) \| – \| – \|.*\| – \| 42\.5 \|/);
    assert.match(rank, /\| LoRA rank 16 \| 1 \/ – \| [0-9.]+ \(1 seed\) \| [+-][0-9.]+ \(1 paired\) \| [+-][0-9.]+ \[-?[0-9.]+, -?[0-9.]+\], p = [0-9.e-]+ \|.*\| – \| 41\.8 \(-0\.7\) \|/);
    assert.ok(fs.statSync(path.join(tmp, "figures", "tiny", "sensitivity.png")).size > 5000, "the sensitivity figure is drawn");
  });

  it("re-evaluating one part (P3) redoes it with the seeded row sample and carries the SNI metrics over", async () => {
    assert.deepEqual(parseEvaluationParts(true), ["sni", "p3", "adapters"]);
    assert.deepEqual(parseEvaluationParts("p3, sni"), ["p3", "sni"]);
    assert.throws(() => parseEvaluationParts("p3,rouge"), /unknown part\(s\) \["rouge"\].*valid: sni, p3, adapters/);
    const first = await runExperiment("no-ft", { scale: "tiny", seed: 0, log: quiet });
    const again = await runExperiment("no-ft", { scale: "tiny", seed: 0, log: quiet, reevaluate: ["p3"] });
    assert.deepEqual(again.metrics, first.metrics);
    assert.deepEqual(again.compute, first.compute);
    assert.deepEqual(again.steps.map((x) => x.label), ["eval-p3"], "only P3 ran");
    assert.match(again.steps[0]!.command, /--max-examples-per-template 2 --seed 0/);
    assert.deepEqual(again.p3!.sample, { kind: "seeded", seed: 0, perTemplate: 2 });
    assert.ok(again.p3!.majorityAccuracy! >= 100 / 4 && again.p3!.majorityAccuracy! <= 100);
    assert.ok(again.p3!.chanceAccuracy! >= 100 / 4 && again.p3!.chanceAccuracy! <= 50 && again.p3!.chanceAccuracy! <= again.p3!.majorityAccuracy!);
    assert.deepEqual(Object.keys(again.p3!.majorityPerTask!).sort(), Object.keys(again.p3!.perTask).sort());
    assert.deepEqual(again.p3!.perTask, first.p3!.perTask, "the same model and sample give the same accuracies");
    await assert.rejects(runExperiment("hypter", { scale: "tiny", seed: 7, log: quiet, reevaluate: ["sni"] }), /nothing to re-evaluate/);
    await writeResultsReport({ out: path.join(tmp, "README.md"), resultsDir: tmp });
    assert.match(fs.readFileSync(path.join(tmp, "README.md"), "utf8"), /\| No FT \| 0 \| [0-9.]+ \(1 seed\) \| [0-9.]+ \| [0-9.]+ \| seeded sample \(seed 0\), 2 per template \|/);
  });

  it("records made under another protocol are listed as superseded, kept out of the tables, and never re-evaluated into them", async () => {
    const first = await runExperiment("no-ft", { scale: "tiny", seed: 0, log: quiet });
    assert.deepEqual(first.protocol, scaleProtocol(loadScale("tiny")), "a new record stores the protocol it was made under");
    // An older grid's record: another instance sample (evaluation only) and another training budget.
    const older = (seed: number, change: (r: ExperimentRecord) => void) => {
      const dir = path.join(tmp, "no-ft", "tiny", `seed-${seed}`);
      fs.mkdirSync(dir, { recursive: true });
      const rec = JSON.parse(JSON.stringify(first)) as ExperimentRecord;
      rec.seed = seed;
      delete rec.protocol; // as records made before protocols were stored
      change(rec);
      fs.writeFileSync(path.join(dir, "experiment.json"), JSON.stringify(rec));
    };
    older(5, (r) => (r.scale.eval.maxInstancesPerTask = 99));
    older(6, (r) => (r.scale.steps = 12345));
    const superseded: SupersededRecord[] = [];
    const recs = collectRecords(tmp, superseded).get("tiny")!;
    assert.deepEqual(recs.get("no-ft")!.map((r) => r.seed), [0], "only the current protocol's record is in the tables");
    assert.deepEqual(superseded.map((x) => [x.seed, x.differences]).sort(), [
      [5, [`eval.maxInstancesPerTask: 99 -> ${loadScale("tiny").eval.maxInstancesPerTask}`]],
      [6, [`steps: 12345 -> ${loadScale("tiny").steps}`]],
    ]);
    assert.match(superseded[0]!.file, /no-ft\/tiny\/seed-[56]\/experiment\.json$/);
    await writeResultsReport({ out: path.join(tmp, "README.md"), resultsDir: tmp });
    const md = fs.readFileSync(path.join(tmp, "README.md"), "utf8");
    assert.match(md, /## Superseded records/);
    assert.match(md, /Experiments \(seeds\): no-ft \(6\)\.\n\nWhat differs from the current protocol:\n\n- steps: 12345 ->/);
    // Its model was trained under another budget: re-evaluating it would mix protocols.
    await assert.rejects(runExperiment("no-ft", { scale: "tiny", seed: 6, log: quiet, reevaluate: ["p3"] }), /seed-6\/experiment\.json was made under another protocol \(steps: 12345 -> .*run it again without --reevaluate/);
    // Artifacts count when both sides name them and their artifact.json differs.
    const base = recordProtocol(first);
    assert.deepEqual(protocolDifferences({ ...base, artifacts: { "artifacts/x/base": "a".repeat(64) } }, { ...base, artifacts: { "artifacts/x/base": "b".repeat(64) } }), ["artifacts/x/base was published again (artifact.json sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)"]);
    assert.deepEqual(protocolDifferences({ ...base, artifacts: {} }, { ...base, artifacts: { "artifacts/x/base": "b".repeat(64) } }), [], "published after the record: the same model");
    assert.ok(onlyEvaluationDiffers(["eval.maxNewTokens: 32 -> 64"]) && !onlyEvaluationDiffers(["eval.maxNewTokens: 32 -> 64", "base: a -> b"]));
    for (const seed of [5, 6]) fs.rmSync(path.join(tmp, "no-ft", "tiny", `seed-${seed}`), { recursive: true });
  });

  it("the demo: a TAGI checkpoint beside the meta-trained model and No FT on one sample, with CIs, floors, paired differences and the figure", async () => {
    // The plumbing at the tiny scale: a HINT-style run (a TAGI checkpoint) stands in for the published generator.
    const tagi = path.join(tmp, "runs", "tiny", "experiments", "hint", "seed-1", "def", "model");
    assert.ok(fs.existsSync(path.join(tagi, "tagi_config.json")), "the HINT run of an earlier test");
    const settings = parseDemoSettings({
      format: "def",
      instancesPerTask: 2,
      rows: [
        { name: "no-ft", row: "No FT", model: "runs/tiny/base/model" },
        { name: "tk-instruct", row: "Tk-Instruct (full)", model: "runs/tiny/metatrain-def/model" },
        { name: "tagi", row: "TAGI", model: tagi },
      ],
    });
    const out = path.join(tmp, "demo");
    const r = await runDemo({ scale: "tiny", settings, out, log: quiet });
    assert.deepEqual(r.rows.map((x) => x.name), ["no-ft", "tk-instruct", "tagi"]);
    for (const x of r.rows) {
      assert.equal(x.instances, 2 * x.tasks);
      assert.ok(x.ci && x.ci[0] <= x.rougeL && x.rougeL <= x.ci[1], `${x.row}: ${x.rougeL} in ${x.ci}`);
    }
    assert.ok(r.rows.find((x) => x.name === "tagi")!.flopsAt100 < 1 && r.rows.find((x) => x.name === "tk-instruct")!.flopsAt100 === 1);
    assert.ok(r.floors.some((f) => f.name === "copy instance input"));
    assert.deepEqual(r.paired.map((p) => [p.versus, p.units]), [["No FT", r.rows[0]!.instances], ["Tk-Instruct (full)", r.rows[0]!.instances]]);
    const tk = r.rows[1]!.rougeL, mine = r.rows[2]!.rougeL;
    assert.ok(Math.abs(r.paired[1]!.comparison.diff.mean - (mine - tk)) < 1e-9, "paired mean = difference of the means on the same instances");
    const md = fs.readFileSync(path.join(out, "README.md"), "utf8");
    assert.match(md, /\| TAGI \| `.*` \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \|/);
    assert.match(md, /\| \*floor: copy instance input\* \|/);
    assert.ok(fs.statSync(path.join(out, "rouge-vs-flops.png")).size > 5000);
    const saved = JSON.parse(fs.readFileSync(path.join(out, "demo.json"), "utf8")) as { command: string; commit: string | null; backend: string | null; wallSeconds: number };
    assert.ok(saved.command.includes("--scale tiny") && saved.backend && saved.wallSeconds > 0);
    // Bad input: a model that is not there names its path and what makes it; a bad settings file names its keys.
    assert.throws(() => checkDemoModels({ ...settings, rows: [...settings.rows.slice(0, 2), { name: "tagi", row: "TAGI", model: "artifacts/tiny/nothing/model" }] }, "tiny"), /TAGI: artifacts\/tiny\/nothing\/model is not here .*scripts\/train-tiny\.sh/);
    assert.throws(() => parseDemoSettings({ format: "def3", instancesPerTask: 0, rows: [{ name: "no-ft", row: "No FT", model: "m" }], extra: 1 }, "x/demo.json"), (e: Error) => /^x\/demo\.json:/.test(e.message) && /unknown key 'extra'/.test(e.message) && /format must be/.test(e.message) && /instancesPerTask must be/.test(e.message) && /must include the TAGI row/.test(e.message));
  });

  it("--formats: only those formats' shared stages are prepared, and a record made with fewer formats is completed, not redone", async () => {
    const small = loadScale("small");
    const tagi = loadExperiment("tagi");
    assert.deepEqual(experimentFormats(tagi, small, null), ["def", "def+2pos"]);
    assert.deepEqual(experimentFormats(tagi, small, ["def+2pos"]), ["def+2pos"]);
    assert.deepEqual(experimentFormats(loadExperiment("tagi-no-kl"), small, null), ["def", "def+2pos"], "ablations have both columns");
    assert.deepEqual(experimentFormats(tagi, loadScale("tiny"), ["def+2pos"]), [], "the scale's own limit still applies");
    const similarity = loadExperiment("adapter-similarity");
    assert.equal(analysisFormat(similarity, experimentFormats(similarity, small, ["def+2pos"])), "def+2pos", "the adapters analysis reads the generator of the format asked for");
    assert.equal(analysisFormat(similarity, experimentFormats(similarity, small, null)), "def");
    // A stage of another format is not run (its command does not exist: running it fails at once).
    const tiny = loadScale("tiny");
    const absent = { command: "no-such-command", config: "metatrain.json", out: "runs/tiny/zz-absent", done: "runs/tiny/zz-absent/model/config.json", set: { format: "def+2pos" } };
    const lines: string[] = [];
    await ensurePrepared({ ...tiny, prepare: [...tiny.prepare, absent] }, (l) => lines.push(l), { formats: ["def"] });
    assert.ok(lines.some((l) => l.includes("runs/tiny/zz-absent: not prepared now (a def+2pos stage; this run evaluates def)")), lines.join("\n"));
    await assert.rejects(ensurePrepared({ ...tiny, prepare: [...tiny.prepare, absent] }, quiet, { formats: ["def+2pos"] }), /zz-absent/);
    // A logit cache is built only for a run that reads it (L_kl > 0 from the cache): not for L_kl off, a
    // baseline without a logit teacher, or the official losses' live teacher.
    for (const name of ["tagi", "tagi-no-ce", "tagi-no-ins", "tagi-rank-16"]) assert.ok(readsLogitCache(loadExperiment(name), small, "def+2pos"), name);
    for (const name of ["tagi-no-kl", "tagi-categories-6", "hint", "hypter", "tagi-official-losses", "tk-instruct", "no-ft"]) assert.ok(!readsLogitCache(loadExperiment(name), small, "def+2pos"), name);
    const cacheStage = { command: "teacher-logits", config: "metatrain.json", out: "runs/tiny/zz-cache", done: "runs/tiny/zz-cache/info.json", set: { format: "def" } };
    const skipped: string[] = [];
    await ensurePrepared({ ...tiny, prepare: [...tiny.prepare, cacheStage] }, (l) => skipped.push(l), { formats: ["def"], logitCaches: [] });
    assert.ok(skipped.some((l) => l.includes("runs/tiny/zz-cache: not prepared now (no training here reads the def logit cache")), skipped.join("\n"));
    await assert.rejects(ensurePrepared({ ...tiny, prepare: [...tiny.prepare, cacheStage] }, quiet, { formats: ["def"], logitCaches: ["def"] }), /zz-cache/);
    // A record holding another format only (as a --formats def+2pos run leaves it): the missing format is added.
    const first = await runExperiment("no-ft", { scale: "tiny", seed: 3, log: quiet });
    const file = path.join(tmp, "no-ft", "tiny", "seed-3", "experiment.json");
    const partial = JSON.parse(fs.readFileSync(file, "utf8")) as ExperimentRecord;
    partial.metrics = { "def+2pos": { ...first.metrics.def!, rougeL: 12.5 } };
    partial.compute = { "def+2pos": first.compute.def! };
    partial.steps = [{ label: "eval-def2pos", command: "tagi evaluate (kept)", seconds: 1, log: "eval-def2pos.log" }];
    partial.startedAt = "2026-01-01T00:00:00.000Z";
    fs.writeFileSync(file, JSON.stringify(partial));
    // the report lists what such a record lacks
    const lacking = missingCells("tiny", new Map([["no-ft", [{ ...partial, seed: 0 }]]])).filter((m) => m.name === "no-ft");
    assert.deepEqual(lacking, [{ name: "no-ft", seeds: [0], formats: ["def"] }]);
    const lines2: string[] = [];
    const done = await runExperiment("no-ft", { scale: "tiny", seed: 3, log: (l) => lines2.push(l) });
    assert.ok(lines2.some((l) => /has def\+2pos; adding def/.test(l)), lines2.join("\n"));
    assert.deepEqual(Object.keys(done.metrics).sort(), ["def", "def+2pos"]);
    assert.equal(done.metrics["def+2pos"]!.rougeL, 12.5, "the format it had is kept, not re-evaluated");
    assert.equal(done.metrics.def!.rougeL, first.metrics.def!.rougeL, "the added format is evaluated as before");
    assert.deepEqual(done.steps.map((x) => x.label), ["eval-def2pos", "eval-def"], "only the missing format ran (P3 too is kept)");
    assert.equal(done.startedAt, partial.startedAt);
    assert.deepEqual(done.p3, first.p3, "the parts it had are kept");
    const again = await runExperiment("no-ft", { scale: "tiny", seed: 3, log: quiet });
    assert.equal(again.wallSeconds, done.wallSeconds, "complete now: read, not rerun");
    // nothing left to evaluate is an error, not an empty record
    await assert.rejects(runExperiment("no-ft", { scale: "tiny", seed: 5, log: quiet, formats: ["def+2pos"] }), /experiment no-ft: no format to evaluate: it names def, def\+2pos, the tiny scale evaluates def, --formats asks for def\+2pos/);
  });

  it("a local grid runs cells two at a time with a thread each, and restores the thread setting", async () => {
    const before = process.env.TAGI_THREADS;
    const lines: string[] = [];
    const r = await runGridLocal({ scale: "tiny", names: ["no-ft", "tk-instruct"], seeds: [4], parallel: 2, log: (l) => lines.push(l) });
    assert.deepEqual(r.failed, []);
    assert.deepEqual(r.done.map((x) => x.experiment.name).sort(), ["no-ft", "tk-instruct"]);
    assert.ok(lines.some((l) => /\[grid\] 2 cells, 2 at a time, \d+ threads? each/.test(l)), lines.join("\n"));
    assert.equal(process.env.TAGI_THREADS, before);
    for (const x of r.done) assert.ok(fs.existsSync(path.join(tmp, x.experiment.name, "tiny", "seed-4", "experiment.json")));
    await assert.rejects(runGridLocal({ scale: "tiny", names: ["no-ft"], seeds: [4], parallel: 0, log: quiet }), /--parallel must be an integer >= 1/);
  });

  it("instruction probes: 'other-task' is a derangement, 'shuffled-words' keeps the words", async () => {
    const tasks = (await loadSniSplit("test", undefined, { warn: false })).tasks;
    const own = probeInstructions(tasks, "def", "own");
    const other = probeInstructions(tasks, "def", "other-task", 3);
    const words = probeInstructions(tasks, "def", "shuffled-words", 3);
    const used = new Set<string>();
    for (const t of tasks) {
      assert.notEqual(other.get(t.name), own.get(t.name), `${t.name} kept its own instruction`);
      used.add(other.get(t.name)!);
      assert.deepEqual(words.get(t.name)!.split(/\s+/).sort(), taskInstruction(t, "def").split(/\s+/).filter(Boolean).sort());
    }
    assert.equal(used.size, new Set(own.values()).size, "a permutation of the instructions");
    assert.deepEqual(probeInstructions(tasks, "def", "other-task", 3), other, "seeded");
  });

  it("the mean teacher adapter is the mean of the teachers' s·B·A, merged into W", () => {
    const dir = path.join(PROJECT_ROOT, "runs", "tiny", "teachers");
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as TeachersManifest;
    const config = loadT5Config(path.join(PROJECT_ROOT, "runs", "tiny", "base", "model"));
    const { deltas, teachers } = meanTeacherDeltas(dir, config);
    assert.equal(teachers, manifest.teachers.length);
    const module = [...deltas.keys()][0]!;
    const manual = tf.tidy(() => {
      const parts = manifest.teachers.map((t) => {
        const p = loadPeftAdapter(path.join(dir, t.adapter));
        const { A, B } = p.weights.get(module)!;
        return tf.mul(tf.matMul(B as tf.Tensor2D, A as tf.Tensor2D), scaling(p.config));
      });
      return tf.div(tf.addN(parts), parts.length);
    });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(manual, deltas.get(module)!))).dataSync()[0]!);
    assert.ok(diff < 1e-6, `max |Δ| ${diff}`);
    const w = tf.ones(deltas.get(module)!.shape);
    const merged = mergeDeltas(new Map([[`${module}.weight`, w]]), new Map([[module, deltas.get(module)!]]));
    const d2 = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.sub(merged.get(`${module}.weight`)!, w), manual))).dataSync()[0]!);
    assert.ok(d2 < 1e-6);
    assert.throws(() => mergeDeltas(new Map(), new Map([[module, deltas.get(module)!]])), /has no module/);
    for (const t of [manual, w, merged.get(`${module}.weight`)!, ...deltas.values()]) t.dispose();
  });
});

describe("experiments: what the runner repeats on its console", () => {
  it("progress, results, problems, the backend and each stage's matrix-product precision (a bf16 fallback is seen); other lines stay in the stage log", () => {
    const shown = [
      "  finetune step 20/1000 loss 3.7837 ce 3.7787 ins 0.0050 lr 5.00e-4 |g| 2.030 231 tok/s elapsed 2m00s ETA 1h38m",
      "evaluate: 1021/10210 instances",
      "ROUGE-L 8.70",
      "[tagi] backend: tensorflow (tfjs-node, 1 thread); why: native TensorFlow is installed (@tensorflow/tfjs-node): fastest; fused L_ce/L_kl: on",
      "[tagi] finetune: matrix products in fp32 (this CPU has neither AVX512_BF16 nor AMX-BF16 (/proc/cpuinfo): bf16 products would be emulated, slower than float32; float32 products are used)",
      "[tagi] teacher 3: Sentiment Analysis: matrix products in bf16 (bf16 inputs and products, float32 accumulation)",
      "Error: runs/x/model.safetensors: sha256 mismatch",
    ];
    for (const l of shown) assert.ok(isConsoleLine(l), l);
    for (const l of ["[tagi] loading the tokenizer", "tokens: 123456", "the matrix products in this log are fp32"]) assert.ok(!isConsoleLine(l), l);
  });
});
