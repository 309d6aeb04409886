/**
 * The tiny training pipeline end to end, as the CLI and notebooks run it: stage 0 (span-corruption
 * pretraining from scratch), Tk-Instruct-style meta-training (full and LoRA), per-category LoRA teachers;
 * a real kill (SIGKILL) of `tagi pretrain-base` mid-run and `--resume` giving the uninterrupted loss curve;
 * and the bad inputs the training issue lists, each a clear error.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { parsePretrainBaseConfig, pretrainBase } from "../src/train/base-model";
import { metatrain, parseMetatrainConfig } from "../src/train/metatrain";
import { parseTeachersConfig, teacherSeed, teacherSteps, trainTeachers, type TeachersManifest } from "../src/train/teachers";
import { createLoraVariables } from "../src/model/lora";
import { parseT5Config } from "../src/model/config";
import { applySets } from "../src/cli";
import { trainingReport } from "../src/experiments/training-report";
import { checkLogitTeacherFormat, finetuneTagi, parseFinetuneConfig, parsePretrainHyperConfig, pretrainHyper, disposeTagi } from "../src/tagi/train";
import { loadTagiParams, readTagiConfig } from "../src/tagi/model";
import { writeGeneratedAdapter } from "../src/tagi/generate-adapter";
import { evaluateTagiSni } from "../src/tagi/evaluate";
import { disposeModel, loadBaseModel, modelFolderFingerprint, seq2seqLoss } from "../src/train/seq2seq";
import { readSafetensors } from "../src/model/safetensors";
import { relError } from "./helpers/crosscheck";
import { meanDevLoss } from "../src/train/dev-loss";
import { instanceExamples } from "../src/data/instances";
import { padSeq2Seq } from "../src/data/batching";
import { loadSniSplit } from "../src/data/sni";
import { T5Tokenizer } from "../src/text/tokenizer";
import { checkAdapterShapes, loadPeftAdapter, loadT5Checkpoint } from "../src/model/weights";

const ROOT = path.join(__dirname, "..");
const CLI = path.join(ROOT, "src", "cli.ts");

function config(file: string, sets: string[] = []): Record<string, unknown> {
  return applySets(JSON.parse(fs.readFileSync(path.join(ROOT, "configs", "tiny", file), "utf8")) as Record<string, unknown>, sets);
}
function lossesOf(dir: string): number[] {
  return fs
    .readFileSync(path.join(dir, "log.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { loss: number }).loss);
}
function disposeAll(m: Map<string, tf.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

describe("training stages (tiny pipeline)", function () {
  this.timeout(600_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-stages-"));
  const base = path.join(work, "base");
  const meta = path.join(work, "metatrain");

  before(async () => {
    await initBackend({ log: false });
  });

  it("pretrain-base: a T5 trained from scratch on SNI train text, saved as a Hugging Face folder, loss falling", async () => {
    const r = await pretrainBase(parsePretrainBaseConfig(config("pretrain-base.json", ["train.steps=30"])), { out: base, progress: false });
    const log = r.result.log;
    assert.equal(log.length, 30);
    const head = log.slice(0, 5).reduce((s, x) => s + x.loss, 0) / 5;
    const tail = log.slice(-5).reduce((s, x) => s + x.loss, 0) / 5;
    assert.ok(tail < head - 1, `loss ${head.toFixed(3)} -> ${tail.toFixed(3)}`);
    const { config: cfg, params } = loadT5Checkpoint(path.join(base, "model"));
    assert.equal(cfg.d_model, 64);
    assert.equal(cfg.dropout_rate, 0.1, "the saved config keeps the model's finetuning dropout");
    disposeAll(params);
    const run = JSON.parse(fs.readFileSync(path.join(base, "run.json"), "utf8"));
    for (const k of ["command", "config", "commit", "backend", "seed", "wallSeconds", "training", "data", "model"]) assert.ok(k in run, `run.json lacks ${k}`);
    assert.equal(run.data.tasks, 40);
    assert.equal(run.training.steps, 30);
    // the dev split is held out of the base model's text
    const state = JSON.parse(fs.readFileSync(path.join(base, "checkpoint", "trainer_state.json"), "utf8")) as { dataFingerprint: { tasks: string[] } };
    assert.ok(run.devTasks.length > 0);
    assert.deepEqual(state.dataFingerprint.tasks.filter((t: string) => run.devTasks.includes(t)), []);
  });

  it("stage 0's LM-adapt phase: prefix LM continued from the span-corruption model (pretrain-base-lmadapt.json)", async () => {
    const out = path.join(work, "base-lmadapt");
    const r = await pretrainBase(parsePretrainBaseConfig(config("pretrain-base-lmadapt.json", [`init=${JSON.stringify(path.join(base, "model"))}`, "train.steps=3"])), { out, progress: false });
    assert.equal(r.result.log.length, 3);
    const run = JSON.parse(fs.readFileSync(path.join(out, "run.json"), "utf8"));
    assert.equal(run.config.objective, "prefix-lm");
    assert.deepEqual(run.model.source, { kind: "checkpoint", path: path.join(base, "model") });
    assert.ok(run.devTasks.length > 0, "the dev split is held out here too");
    // its dev curve: the prefix-LM loss of the dev tasks' text, after the last step
    assert.deepEqual(r.result.log.filter((x) => x.eval).map((x) => x.step), [3]);
    assert.ok(r.result.log.at(-1)!.eval!["devLoss"]! > 0 && r.result.log.at(-1)!.eval!["devTokens"]! > 0);
  });

  it("metatrain (full): Def+2Pos prompts of train tasks only, dev tasks held out and recorded", async () => {
    const r = await metatrain(parseMetatrainConfig(config("metatrain.json", [`base=${JSON.stringify(path.join(base, "model"))}`])), { out: meta, progress: false });
    assert.equal(r.result.log.length, 20);
    const run = JSON.parse(fs.readFileSync(path.join(meta, "run.json"), "utf8"));
    assert.equal(run.data.trainTasks, 30);
    assert.ok(run.devTasks.length >= 30, `${run.devTasks.length} dev tasks`);
    assert.equal(run.data.examples, 300);
    // The dev curve (dev.every 10): at steps 10 and 20, and the last point is the saved model's loss on a
    // fixed sample of the dev tasks' prompts, recomputed here from the saved weights without dropout.
    const points = r.result.log.filter((x) => x.eval).map((x) => [x.step, x.eval!["devLoss"]!]);
    assert.deepEqual(points.map((x) => x[0]), [10, 20]);
    const c = parseMetatrainConfig(config("metatrain.json"));
    const tok = T5Tokenizer.fromFile();
    const dev = (await loadSniSplit("train", undefined, { warn: false })).tasks.filter((t) => run.devTasks.includes(t.name));
    const devEx = instanceExamples(dev, tok, { format: c.format, input: "full", maxInputTokens: c.maxInputTokens, maxTargetTokens: c.maxTargetTokens, instancesPerTask: c.dev.instancesPerTask, seed: c.dev.seed }).examples;
    assert.equal(r.result.log.at(-1)!.eval!["devTokens"], devEx.reduce((a, e) => a + e.target.length, 0));
    const saved = loadBaseModel(path.join(meta, "model"));
    const batches = [0, 1, 2].map((i) => devEx.slice(i * 8, i * 8 + 8)).filter((b) => b.length);
    // the first 24 examples, batched differently: the per-token mean does not depend on the batching
    const sub = meanDevLoss(batches.map((b) => padSeq2Seq(b)), (b) => seq2seqLoss(saved, b, { training: false }).loss);
    const byOne = meanDevLoss(devEx.slice(0, 24).map((e) => padSeq2Seq([e])), (b) => seq2seqLoss(saved, b, { training: false }).loss);
    assert.ok(Math.abs(sub - byOne) < 1e-4, `${sub} vs ${byOne}`);
    const all = meanDevLoss(devEx.map((e) => padSeq2Seq([e])), (b) => seq2seqLoss(saved, b, { training: false }).loss);
    assert.ok(Math.abs(all - points.at(-1)![1]!) < 1e-4, `logged ${points.at(-1)![1]} vs recomputed ${all}`);
    disposeModel(saved);
    assert.throws(() => parseMetatrainConfig(config("metatrain.json", ["dev.every=-1", "dev.instancesPerTask=0"])), (e: Error) => /dev\.every must be an integer >= 0/.test(e.message) && /dev\.instancesPerTask must be a positive integer/.test(e.message));
    assert.throws(() => parseMetatrainConfig(config("metatrain.json", ["dev.fraction=null"])), /dev\.every is 10 but dev\.fraction is null/);
  });

  it("metatrain (lora): a PEFT adapter on the frozen base", async () => {
    const out = path.join(work, "metatrain-lora");
    const r = await metatrain(
      parseMetatrainConfig(config("metatrain.json", [`base=${JSON.stringify(path.join(base, "model"))}`, `mode="lora"`, "train.steps=4", 'lora={"r":4,"alpha":8,"dropout":0,"targetModules":["q","v"]}'])),
      { out, progress: false },
    );
    assert.equal(r.model, path.join(out, "adapter"));
    const peft = loadPeftAdapter(r.model);
    const { config: cfg, params } = loadT5Checkpoint(path.join(base, "model"));
    checkAdapterShapes(peft, cfg);
    assert.equal(peft.config.r, 4);
    assert.equal(peft.weights.size, 2 * 2 + 2 * 2 + 2 * 2); // q, v of enc self, dec self, dec cross, 2 layers each
    disposeAll(params);
    for (const { A, B } of peft.weights.values()) (A.dispose(), B.dispose());
  });

  it("teachers: one PEFT LoRA per category on the student's base reading instances, each its own init; a manifest; resume skips finished ones", async () => {
    const out = path.join(work, "teachers");
    const c = parseTeachersConfig(config("teachers.json", [`base=${JSON.stringify(path.join(base, "model"))}`]));
    assert.equal(c.input, "instance");
    const r = await trainTeachers(c, { out, progress: false });
    assert.equal(r.manifest.teachers.length, 2);
    // where they sit: the base's content hash, the input; each teacher its own seed, and its first/last loss
    assert.equal(r.manifest.baseFingerprint, modelFolderFingerprint(path.join(base, "model")));
    assert.equal(r.manifest.input, "instance");
    const seeds = r.manifest.teachers.map((t) => t.seed!);
    assert.equal(new Set(seeds).size, 2);
    assert.deepEqual(seeds, r.manifest.teachers.map((t) => teacherSeed(c.train.seed, t.group)));
    for (const t of r.manifest.teachers) assert.ok(Number.isFinite(t.meanLossFirst10) && Number.isFinite(t.meanLossLast10));
    // each teacher's dev curve on its category's dev tasks (dev.every 15 of 30 steps), or null where the category has none
    for (const t of r.manifest.teachers) assert.ok(t.devLoss === null || (t.devLoss!.lastStep === c.train.steps && Number.isFinite(t.devLoss!.last)), JSON.stringify(t.devLoss));
    assert.ok(r.manifest.teachers.some((t) => t.devLoss), "at least one category has dev tasks");
    // distinct inits: the two teachers' LoRA A matrices at step 0 differ
    const t5 = parseT5Config(JSON.parse(fs.readFileSync(path.join(base, "model", "config.json"), "utf8")) as Record<string, unknown>);
    const [a0, a1] = seeds.map((sd) => createLoraVariables(t5, c.lora, sd));
    const m0 = [...a0!.modules.keys()][0]!;
    const [x0, x1] = [a0!.modules.get(m0)!.A.dataSync(), a1!.modules.get(m0)!.A.dataSync()];
    assert.ok(x0.filter((v, i) => v === x1[i]).length === 0 && relError(x0, x1) > 1e-2, "teachers share their init");
    for (const l of [a0!, a1!]) for (const { A, B } of l.modules.values()) (A.dispose(), B.dispose());
    for (const t of r.manifest.teachers) {
      assert.equal(t.steps, c.train.steps);
      assert.ok(Number.isFinite(t.finalLoss) && t.tasks.length > 0 && t.examples > 0, JSON.stringify(t));
      const peft = loadPeftAdapter(path.join(out, t.adapter));
      assert.equal(peft.config.r, 8);
      for (const { A, B } of peft.weights.values()) (A.dispose(), B.dispose());
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8")) as TeachersManifest;
    assert.deepEqual(manifest.teachers.map((t) => t.group), r.manifest.teachers.map((t) => t.group));
    const again = await trainTeachers(c, { out, resume: true, progress: false });
    assert.deepEqual(again.manifest.teachers, r.manifest.teachers);
    await assert.rejects(trainTeachers(c, { out, progress: false }), /already holds teachers .* --resume/);
  });

  it("teachers: epochs sets each teacher's steps from its group's size, never below train.steps; a bad value is an error", () => {
    const c = parseTeachersConfig({ base: "b", epochs: 2, train: { steps: 16, batchSize: 8, gradAccumulation: 2 } });
    assert.equal(teacherSteps(c, 1000), 125); // ceil(2 x 1000 / (8 x 2))
    assert.equal(teacherSteps(c, 40), 16);
    assert.equal(teacherSteps({ ...c, epochs: null }, 1000), 16);
    assert.throws(() => parseTeachersConfig({ base: "b", epochs: 0 }), /config\.epochs must be a number > 0 or null, got 0/);
  });

  it("TAGI stage 1 (pretrain-hyper) and stage 2 (finetune with L_ce, L_kl, L_ins logged separately), generate, eval", async () => {
    const hyper = path.join(work, "pretrain-hyper");
    const p = await pretrainHyper(parsePretrainHyperConfig(config("pretrain-hyper.json", [`base=${JSON.stringify(path.join(base, "model"))}`, "train.steps=4", "dev.every=2"])), { out: hyper, progress: false });
    assert.equal(p.result.log.length, 4);
    // the dev curve: held-out tasks' a|b|c segments, at every dev.every steps and after the last
    const dev = p.result.log.filter((r) => r.eval?.["devLoss"] !== undefined);
    assert.deepEqual(dev.map((r) => r.step), [2, 4]);
    assert.ok(dev.every((r) => Number.isFinite(r.eval!["devLoss"]) && r.eval!["devTokens"]! > 0));
    assert.ok(fs.existsSync(path.join(hyper, "model", "tagi.safetensors")));
    const ft = path.join(work, "finetune");
    const sets = [
      `base=${JSON.stringify(path.join(base, "model"))}`,
      `init=${JSON.stringify(path.join(hyper, "model"))}`,
      `teacher=${JSON.stringify(path.join(meta, "model"))}`,
      `teachers=${JSON.stringify(path.join(work, "teachers"))}`,
      "train.steps=4",
    ];
    const f = await finetuneTagi(parseFinetuneConfig(config("finetune.json", sets)), { out: ft, progress: false });
    for (const r of f.result.log) {
      assert.deepEqual(Object.keys(r.terms).sort(), ["ce", "ins", "kl"]);
      assert.ok(Object.values(r.terms).every((x) => Number.isFinite(x) && x >= 0), JSON.stringify(r.terms));
      assert.ok(Math.abs(r.loss - (r.terms["ce"]! + r.terms["kl"]! + r.terms["ins"]!)) < 1e-4);
    }
    // the dev curve: the student's L_ce on the dev tasks, at the last step (every 10 > 4 steps)
    assert.deepEqual(f.result.log.filter((x) => x.eval).map((x) => x.step), [4]);
    assert.ok(f.result.log.at(-1)!.eval!["devLoss"]! > 0 && f.result.log.at(-1)!.eval!["devTokens"]! > 0);
    // A teacher of another rank is refused with a clear message.
    const rank4 = [...sets.filter((s) => !s.startsWith("init=")), "init=null", 'tagi.hypernetwork={"rank":4,"alpha":4,"hidden":16,"idDim":8}'];
    await assert.rejects(
      finetuneTagi(parseFinetuneConfig(config("finetune.json", rank4)), { out: path.join(work, "ft-rank"), progress: false }),
      /the parameter teachers have rank 8, the generator 4; L_ins \(losses.alignment "factors"\) compares them factor by factor .*losses.alignment = "product"/,
    );
    // Compared on the update s·A·B, another rank trains against the same teachers (the rank sensitivity rows).
    const r4 = await finetuneTagi(parseFinetuneConfig(config("finetune.json", [...rank4, 'losses.alignment="product"', "train.steps=2"])), { out: path.join(work, "ft-rank-product"), progress: false });
    assert.ok(r4.result.log[0]!.terms["ins"]! > 0 && Number.isFinite(r4.result.log[0]!.loss), JSON.stringify(r4.result.log[0]));
    // generate: a PEFT adapter folder for one instruction.
    const { base: baseDir } = readTagiConfig(path.join(ft, "model"));
    const m = loadTagiParams(path.join(ft, "model"), loadBaseModel(baseDir));
    const r = writeGeneratedAdapter(m, T5Tokenizer.fromFile(), "Definition: Translate the sentence into French.", path.join(work, "generated"), baseDir);
    assert.equal(r.modules, 12);
    const peft = loadPeftAdapter(path.join(work, "generated"));
    assert.equal(peft.config.r, 8);
    for (const { A, B } of peft.weights.values()) (A.dispose(), B.dispose());
    assert.throws(() => writeGeneratedAdapter(m, T5Tokenizer.fromFile(), "  ", path.join(work, "g2"), baseDir), /instruction 0 is empty or whitespace/);
    // eval: instances only, one adapter per task.
    const res = await evaluateTagiSni(m, T5Tokenizer.fromFile(), { format: "def+2pos", maxInputTokens: 128, maxNewTokens: 4, maxInstancesPerTask: 2, tasks: ["task893_gap_fill_the_blank_coreference_resolution", "task641_esnli_classification"] });
    assert.equal(res.options.input, "instance");
    assert.equal(res.overall.instances, 4);
    disposeTagi(m);
    assert.throws(() => loadTagiParams(path.join(meta, "model"), loadBaseModel(baseDir)), /not a TAGI checkpoint: tagi_config.json is missing/);
  });

  it("stage 2 refuses parameter teachers that do not sit where the generated adapter sits, unless teacherPlacement is official", async () => {
    // teachers on the meta-trained model reading the full prompt: the official code's arrangement
    const official = path.join(work, "teachers-official");
    await trainTeachers(parseTeachersConfig(config("teachers.json", [`base=${JSON.stringify(path.join(meta, "model"))}`, 'input="full"', "train.steps=2", "maxGroups=2"])), { out: official, progress: false });
    const sets = [`base=${JSON.stringify(path.join(base, "model"))}`, "init=null", `teacher=${JSON.stringify(path.join(meta, "model"))}`, `teachers=${JSON.stringify(official)}`, "train.steps=2"];
    await assert.rejects(
      finetuneTagi(parseFinetuneConfig(config("finetune.json", sets)), { out: path.join(work, "ft-placement"), progress: false }),
      (e: Error) => /do not sit where the generated adapter sits: they sit on .*metatrain.*; they read the full prompt/.test(e.message) && /teacherPlacement: "official"/.test(e.message),
    );
    assert.ok(!fs.existsSync(path.join(work, "ft-placement", "log.jsonl")), "refused before training");
    const ok = await finetuneTagi(parseFinetuneConfig(config("finetune.json", [...sets, 'teacherPlacement="official"'])), { out: path.join(work, "ft-placement-official"), progress: false });
    const run = JSON.parse(fs.readFileSync(path.join(ok.out, "run.json"), "utf8")) as { teachers: { placement: { placement: string; sameBaseAsStudent: boolean } } };
    assert.deepEqual([run.teachers.placement.placement, run.teachers.placement.sameBaseAsStudent], ["official", false]);
    // a logit teacher meta-trained on another format is refused
    assert.throws(() => checkLogitTeacherFormat({ teacher: path.join(meta, "model"), format: "def" }), /meta-trained on def\+2pos prompts .* this run trains on def/);
  });

  it("evaluating a model on a format it was not trained on is refused unless --cross-format, which is recorded", () => {
    const model = path.join(meta, "model"); // meta-trained on def+2pos
    const cli = (extra: string[]) =>
      spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", "evaluate", "--model", model, "--benchmark", "sni", "--format", "def", "--tasks", "task641_esnli_classification", "--max-instances-per-task", "1", "--max-new-tokens", "2", "--max-input-tokens", "64", "--no-progress", "--out", path.join(work, "xf"), ...extra], { cwd: path.join(__dirname, ".."), encoding: "utf8" });
    const refused = cli([]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /was trained on def\+2pos prompts .*run\.json\), not def; pass --cross-format/);
    const ok = cli(["--cross-format"]);
    assert.equal(ok.status, 0, ok.stderr);
    const summary = JSON.parse(fs.readFileSync(path.join(work, "xf", "summary.json"), "utf8")) as { config: { trainedFormat: string; crossFormat: boolean } };
    assert.deepEqual([summary.config.trainedFormat, summary.config.crossFormat], ["def+2pos", true]);
  });

  it("trainBase (the official code's trainable FFN and layer norms): the trained base weights are saved and put back on load", async () => {
    const out = path.join(work, "ft-trainbase");
    const baseDir = path.join(base, "model");
    const sets = [`base=${JSON.stringify(baseDir)}`, "init=null", "teacher=null", "teachers=null", "losses.kl=0", "losses.ins=0", 'trainBase={"layerNorms":true,"feedForward":true}', "train.steps=2"];
    await finetuneTagi(parseFinetuneConfig(config("finetune.json", sets)), { out, progress: false });
    const { trainedBase } = readTagiConfig(path.join(out, "model"));
    assert.ok(trainedBase.length > 0 && trainedBase.every((n) => n.includes("layer_norm") || n.includes("DenseReluDense")), trainedBase.join());
    // The loop's own checkpoint holds the trained values (base.<name>): the saved model must carry exactly those.
    const ck = readSafetensors(path.join(out, "checkpoint", "trainable.safetensors")).tensors;
    const original = loadBaseModel(baseDir);
    const m = loadTagiParams(path.join(out, "model"), loadBaseModel(baseDir));
    try {
      for (const n of trainedBase) {
        const trained = ck.get(`base.${n}`)!;
        assert.equal(relError(m.base.params.get(n)!.dataSync(), trained.dataSync()), 0, n);
      }
      const changed = trainedBase.filter((n) => relError(original.params.get(n)!.dataSync(), m.base.params.get(n)!.dataSync()) > 0);
      assert.ok(changed.length > 0, "training changed no base weight");
    } finally {
      disposeTagi(m);
      disposeModel(original);
      for (const t of ck.values()) t.dispose();
    }
  });

  it("training-report: copies run records and logs (no weights), draws curves, writes a README from them", async () => {
    const out = path.join(work, "report");
    const readme = await trainingReport({ runs: work, out });
    const text = fs.readFileSync(readme, "utf8");
    assert.match(text, /\| base \| 4\.3M \(4\.1M\) \| 30 x 16 \|/);
    assert.match(text, /\| metatrain \|/);
    assert.match(text, /## Parameter teachers \(2, one LoRA per category\)/);
    for (const f of ["curve-base.png", "curve-base.svg", "curve-metatrain.png", "teachers-loss.png", "base/log.jsonl", "base/run.json", "teachers/manifest.json"]) {
      assert.ok(fs.existsSync(path.join(out, f)), f);
    }
    const png = fs.readFileSync(path.join(out, "curve-base.png"));
    assert.equal(png.subarray(1, 4).toString(), "PNG");
    assert.ok(!fs.readdirSync(out, { recursive: true }).some((f) => String(f).endsWith(".safetensors")), "no weights in the report");
  });

  it("tagi pretrain-base killed with SIGKILL mid-run, then --resume: the same loss curve as an uninterrupted run", async () => {
    const sets = ["train.steps=16", "train.checkpointEvery=3", "maxTasks=10"];
    const whole = path.join(work, "whole");
    await pretrainBase(parsePretrainBaseConfig(config("pretrain-base.json", sets)), { out: whole, progress: false });
    const out = path.join(work, "killed");
    const args = ["--import", "tsx", CLI, "pretrain-base", "--config", path.join(ROOT, "configs", "tiny", "pretrain-base.json"), "--out", out, "--no-progress", ...sets.flatMap((s) => ["--set", s])];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: "ignore" });
    const logFile = path.join(out, "log.jsonl");
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const n = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n").length - 1 : 0;
        if (n >= 7) {
          clearInterval(timer);
          child.kill("SIGKILL");
          resolve();
        }
      }, 50);
      child.on("exit", () => {
        clearInterval(timer);
        reject(new Error("the training process ended before it could be killed"));
      });
    });
    await new Promise((r) => child.once("exit", r));
    const killedAt = lossesOf(out).length;
    assert.ok(killedAt < 16, `killed after ${killedAt} steps`);
    const resumed = spawnSync(process.execPath, args.concat("--resume"), { cwd: ROOT, encoding: "utf8" });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.deepEqual(lossesOf(out), lossesOf(whole));
    const state = JSON.parse(fs.readFileSync(path.join(out, "checkpoint", "trainer_state.json"), "utf8"));
    assert.equal(state.step, 16);
  });

  describe("bad input: a clear error, nothing written", () => {
    it("unknown keys, rank 0, negative lr, impossible values: every problem listed", () => {
      assert.throws(
        () => parseMetatrainConfig({ base: "x", lr: 1, train: { steps: 10, stepz: 3 } }),
        (e: unknown) => /unknown key 'config.lr'/.test(String(e)) && /unknown key 'config.train.stepz' \(valid keys of config.train: .*steps/.test(String(e)),
      );
      assert.throws(() => parseTeachersConfig({ base: "x", lora: { r: 0 } }), /config.lora: invalid LoRA config: r must be a positive integer, got 0/);
      assert.throws(() => parseMetatrainConfig({ base: "x", train: { schedule: { lr: -1 } } }), /config.train.schedule.lr must be a finite number > 0, got -1/);
      assert.throws(() => parseMetatrainConfig({ base: "x", mode: "half", train: { steps: "ten" } }), (e: unknown) => /config.train.steps must be a number/.test(String(e)));
      assert.throws(() => parseMetatrainConfig({}), /config.base is required/);
      assert.throws(() => parsePretrainBaseConfig({ objective: "mlm" }), /config.objective must be "span-corruption" or "prefix-lm"/);
      assert.throws(() => parsePretrainBaseConfig(path.join(work, "nope.json")), /config file not found/);
      assert.throws(() => parsePretrainBaseConfig({ model: "huge" }), /config.model: 'huge' is neither a preset \(tiny, small\) nor a checkpoint folder/);
    });

    it("a batch larger than the data", async () => {
      const c = parseTeachersConfig(config("teachers.json", [`base=${JSON.stringify(path.join(meta, "model"))}`, "instancesPerTask=2", "train.batchSize=64", "maxGroups=1"]));
      await assert.rejects(trainTeachers(c, { out: path.join(work, "t-big"), progress: false }), /batch size 64 is larger than the data \(\d+ examples of .*instances of category/);
    });

    it("a missing base model folder, and a checkpoint of another architecture", async () => {
      const c = parseMetatrainConfig(config("metatrain.json", [`base=${JSON.stringify(path.join(work, "missing"))}`]));
      await assert.rejects(metatrain(c, { out: path.join(work, "m-missing"), progress: false }), /base model folder not found: .*missing/);
      const bert = path.join(work, "bert");
      fs.mkdirSync(bert);
      fs.writeFileSync(path.join(bert, "config.json"), JSON.stringify({ model_type: "bert", architectures: ["BertModel"], hidden_size: 64 }));
      const c2 = parseMetatrainConfig(config("metatrain.json", [`base=${JSON.stringify(bert)}`]));
      await assert.rejects(metatrain(c2, { out: path.join(work, "m-bert"), progress: false }), /bert/i);
      assert.ok(!fs.existsSync(path.join(work, "m-bert", "checkpoint")));
    });

    it("the CLI prints the error and exits 1 (unknown key through --set)", () => {
      const r = spawnSync(process.execPath, ["--import", "tsx", CLI, "metatrain", "--out", path.join(work, "cli-bad"), "--set", "base=x", "--set", "train.lr=1"], { cwd: ROOT, encoding: "utf8" });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /tagi: metatrain: invalid config .*\n.*unknown key 'config.train.lr'/);
    });
  });
});
