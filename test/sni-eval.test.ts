/**
 * evaluateSni on the untrained tiny T5 (real vocabulary) over real SNI test tasks, and `tagi evaluate` run as
 * a child process writing its four files.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { initBackend } from "../src/backend";
import { loadSniSplit, sampleInstances, type SniTestTask } from "../src/data/sni";
import { evaluateSni, type SniResult } from "../src/eval/sni-eval";
import { parseCsv } from "../src/eval/report";
import { randomTinyT5 } from "../src/model/tiny";
import * as tf from "@tensorflow/tfjs-core";
import { createLoraVariables, toPerExample, type LoraAdapter } from "../src/model/lora";
import type { T5Model } from "../src/model/t5";
import { T5Tokenizer } from "../src/text/tokenizer";
import { DEV_DEFAULTS, trainAndDevTasks } from "../src/train/dev-split";

const TASKS = ["task893_gap_fill_the_blank_coreference_resolution", "task641_esnli_classification"];
const root = resolve(__dirname, "..");

describe("evaluateSni (random tiny T5)", function () {
  let model: T5Model;
  let tok: T5Tokenizer;
  let tasks: SniTestTask[];
  let result: SniResult;
  const progress: number[] = [];

  before(async function () {
    await initBackend({ backend: "wasm", log: false });
    tok = T5Tokenizer.fromFile();
    model = randomTinyT5(0);
    tasks = (await loadSniSplit("test", undefined, { warn: false })).tasks;
    result = await evaluateSni(model, tok, {
      format: "def+2pos",
      tasks: TASKS,
      maxInstancesPerTask: 3,
      maxNewTokens: 4,
      batchSize: 4,
      testTasks: tasks,
      onProgress: (p) => progress.push(p.done),
    });
  });
  after(function () {
    for (const t of model.params.values()) t.dispose();
  });

  it("counts tasks, instances, truncations and skips", function () {
    assert.equal(result.counts.tasks, 2);
    assert.equal(result.counts.instances, 6);
    assert.equal(result.counts.categories, 2);
    assert.equal(result.counts.truncated, result.predictions.filter((p) => p.truncated).length);
    assert.equal(result.counts.skipped, 0);
    assert.equal(result.rows.length, 2);
    assert.deepEqual(
      result.rows.map((r) => [r.task, r.instances]),
      TASKS.map((t) => [t, 3]),
    );
    assert.deepEqual(progress, [4, 6]);
    assert.match(result.benchmark, /^SNI subset \(2 test tasks, <= 3 instances each\)$/);
    assert.deepEqual(result.metrics.map((m) => m.name), ["rougeL", "exactMatch"]);
  });

  it("returns finite scores in [0, 100], consistent across instances, tasks and overall", function () {
    const inRange = (x: number) => Number.isFinite(x) && x >= 0 && x <= 100;
    for (const p of result.predictions) assert.ok(inRange(p.rougeL) && (p.exactMatch === 0 || p.exactMatch === 100), JSON.stringify(p));
    for (const r of result.rows) assert.ok(inRange(r.rougeL) && inRange(r.exactMatch));
    assert.ok(inRange(result.overall.rougeL) && inRange(result.overall.exactMatch));
    const mean = result.predictions.reduce((s, p) => s + p.rougeL, 0) / result.predictions.length;
    assert.ok(Math.abs(mean - result.overall.rougeL) < 1e-9);
    for (const r of result.rows) {
      const ps = result.predictions.filter((p) => p.task === r.task);
      assert.ok(Math.abs(ps.reduce((s, p) => s + p.rougeL, 0) / ps.length - r.rougeL) < 1e-9);
    }
  });

  it("scores the first reference under teacher forcing: about ln(vocab) nats per token for a random model, task means consistent", function () {
    const nll = result.referenceNll!;
    assert.ok(nll.overall > Math.log(32128) - 1.5 && nll.overall < Math.log(32128) + 1.5, `NLL ${nll.overall}`);
    const perTask = Object.values(nll.perTask);
    assert.equal(perTask.length, result.rows.length);
    // Equal-sized tasks (3 instances each): the overall mean is the mean of the task means.
    assert.ok(Math.abs(perTask.reduce((a, x) => a + x, 0) / perTask.length - nll.overall) < 1e-9);
  });

  it("keeps the input order (task order, sampled instances) and decodes predictions to text", function () {
    const expected = TASKS.flatMap((name) => sampleInstances(tasks.find((t) => t.name === name)!, 3, 0).map((i) => [name, i.id]));
    assert.deepEqual(
      result.predictions.map((p) => [p.task, p.id]),
      expected,
    );
    for (const p of result.predictions) {
      assert.equal(typeof p.prediction, "string");
      assert.ok(!/<\/s>|<pad>/.test(p.prediction), "special tokens skipped");
      assert.ok(p.references.length > 0);
      assert.ok(p.inputTokens > 0 && p.inputTokens <= 1024);
    }
    // Untrained, 4 new tokens: some text comes out.
    assert.ok(result.predictions.some((p) => p.prediction.length > 0));
  });

  it("continuous decoding (the default) gives batched decoding's predictions and reference NLL, with shared and per-task run options", async function () {
    const common = { format: "def+2pos" as const, tasks: TASKS, maxInstancesPerTask: 5, maxNewTokens: 6, batchSize: 3, testTasks: tasks };
    const peft = createLoraVariables(model.config, { r: 4, alpha: 8, dropout: 0, targetModules: ["q", "v"] }, 5);
    for (const m of peft.modules.values()) {
      const B = m.B;
      m.B = tf.randomNormal(B.shape, 0, 0.5, "float32", 9);
      B.dispose();
    }
    const made: LoraAdapter[] = [];
    // per task: one adapter per task (here the same one scaled by the task's index), repeated per row
    const perTask = (task: string, n: number) => {
      const scaled = { ...peft, modules: new Map([...peft.modules].map(([k, { A, B }]) => [k, { A, B: tf.mul(B, 1 + TASKS.indexOf(task)) }])) };
      const lora = toPerExample(scaled, n);
      for (const { B } of scaled.modules.values()) B.dispose();
      made.push(lora);
      return { lora };
    };
    for (const runOptions of [{ lora: peft }, perTask]) {
      const a = await evaluateSni(model, tok, { ...common, runOptions });
      const b = await evaluateSni(model, tok, { ...common, runOptions, decoding: "batched" });
      assert.equal(a.options.decoding, "continuous");
      assert.equal(b.options.decoding, "batched");
      assert.deepEqual(a.predictions.map((p) => p.prediction), b.predictions.map((p) => p.prediction));
      assert.ok(Math.abs(a.referenceNll!.overall - b.referenceNll!.overall) < 1e-4, `${a.referenceNll!.overall} vs ${b.referenceNll!.overall}`);
      assert.ok(a.timing.meanRowsPerStep <= 3 && a.timing.decoderSteps > 0);
    }
    for (const l of made) for (const { A, B } of l.modules.values()) tf.dispose([A, B]);
    for (const { A, B } of peft.modules.values()) tf.dispose([A, B]);
    await assert.rejects(evaluateSni(model, tok, { ...common, compactDecoding: false, decoding: "continuous" }), /compactDecoding: false needs decoding: "batched"/);
  });

  it("counts truncation with a short source limit; the instance-only input; unknown tasks are errors", async function () {
    const r = await evaluateSni(model, tok, {
      format: "def+2pos",
      tasks: TASKS,
      maxInstancesPerTask: 2,
      maxNewTokens: 1,
      maxInputTokens: 120,
      batchSize: 8,
      testTasks: tasks,
    });
    assert.ok(r.counts.truncated > 0);
    assert.equal(r.counts.truncated, r.predictions.filter((p) => p.truncated).length);
    for (const p of r.predictions) assert.ok(p.inputTokens <= 120);
    assert.equal(r.rows.reduce((s, x) => s + (x.truncated as number), 0), r.counts.truncated);

    const inst = await evaluateSni(model, tok, { format: "def", input: "instance", tasks: TASKS, maxInstancesPerTask: 1, maxNewTokens: 1, testTasks: tasks });
    assert.equal(inst.counts.instances, 2);
    assert.equal(inst.options.input, "instance");

    await assert.rejects(
      evaluateSni(model, tok, { format: "def", tasks: ["task_does_not_exist"], testTasks: tasks }),
      /unknown test task\(s\): task_does_not_exist/,
    );
  });
});

describe("tagi evaluate (CLI)", function () {
  let out: string;
  before(function () {
    out = mkdtempSync(join(tmpdir(), "tagi-cli-"));
  });
  after(function () {
    rmSync(out, { recursive: true, force: true });
  });

  it("--random-tiny --benchmark sni writes per_task.csv, per_category.csv, predictions.jsonl and summary.json", function () {
    const dest = join(out, "run");
    const args = ["--import", "tsx", "src/cli.ts", "evaluate", "--random-tiny", "--benchmark", "sni", "--tasks", TASKS.join(","), "--max-instances-per-task", "2", "--max-new-tokens", "8", "--out", dest];
    const r = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", timeout: 120_000, env: { ...process.env, TAGI_BACKEND: "wasm" } });
    assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stdout, /ROUGE-L \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\], exact match \d+\.\d\d \[/);
    assert.match(r.stdout, /sanity floors on the same instances \(ROUGE-L\): copy instance input \d+\.\d\d \[[^\]]+\]; copy first demonstration output \d+\.\d\d/);
    for (const f of ["per_task.csv", "per_category.csv", "predictions.jsonl", "summary.json"]) assert.ok(existsSync(join(dest, f)), f);

    const perTask = parseCsv(readFileSync(join(dest, "per_task.csv"), "utf8"));
    assert.deepEqual(perTask[0], ["task", "category", "instances", "rougeL", "exactMatch", "truncated"]);
    assert.deepEqual(
      perTask.slice(1).map((r) => [r[0], r[2]]),
      TASKS.map((t) => [t, "2"]),
    );
    const perCat = parseCsv(readFileSync(join(dest, "per_category.csv"), "utf8"));
    assert.deepEqual(perCat[0], ["category", "tasks", "instances", "rougeL", "rougeL_taskMean", "exactMatch", "exactMatch_taskMean"]);
    assert.equal(perCat.length, 3);

    const preds = readFileSync(join(dest, "predictions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(preds.length, 4);
    for (const p of preds) assert.equal(typeof p.prediction, "string");

    const s = JSON.parse(readFileSync(join(dest, "summary.json"), "utf8")) as Record<string, any>;
    assert.match(s.command, /^tagi evaluate --random-tiny --benchmark sni/);
    assert.equal(s.seed, 0);
    assert.equal(s.config.model.kind, "random-tiny");
    assert.equal(s.config.modelConfig.vocab_size, 32128);
    assert.equal(s.config.format, "def+2pos");
    assert.equal(s.config.maxInputTokens, 1024);
    assert.equal(s.config.maxNewTokens, 8);
    assert.equal(s.backend.backend, "wasm");
    assert.ok("commit" in s);
    assert.ok(typeof s.wallSeconds === "number" && s.wallSeconds > 0);
    assert.deepEqual([s.counts.tasks, s.counts.instances, s.counts.skipped], [2, 4, 0]);
    assert.equal(typeof s.counts.truncated, "number");
    assert.deepEqual(s.metrics.map((m: { name: string }) => m.name), ["rougeL", "exactMatch"]);
    assert.ok(Number.isFinite(s.overall.rougeL));
    assert.ok(s.intervals.rougeL.lo <= s.overall.rougeL && s.overall.rougeL <= s.intervals.rougeL.hi);
    assert.equal(s.intervals.rougeL.n, 4);
    assert.deepEqual(s.floors.map((f: { name: string }) => f.name), ["copy instance input", "copy first demonstration output", "most frequent demonstration output"]);
    // where the generation time went: the parts sum to the whole, and the decoder ran at most batch rows a step
    const t = s.timing;
    assert.ok(t.encodeMs > 0 && t.decodeMs > 0 && t.scoreMs > 0 && t.hostMs >= 0, JSON.stringify(t));
    assert.ok(Math.abs(t.encodeMs + t.decodeMs + t.scoreMs + t.hostMs - t.generateMs) < 1 + 0.01 * t.generateMs, JSON.stringify(t));
    assert.ok(t.decoderSteps >= 1 && t.decoderSteps <= 8 * 4 && t.meanRowsPerStep > 0 && t.meanRowsPerStep <= 4, JSON.stringify(t));
  });

  it("--split dev evaluates the stages' dev split (held-out train tasks), never a test task", async function () {
    const dest = join(out, "dev");
    const args = ["--import", "tsx", "src/cli.ts", "evaluate", "--random-tiny", "--benchmark", "sni", "--split", "dev", "--format", "def", "--max-instances-per-task", "1", "--max-new-tokens", "2", "--max-input-tokens", "64", "--batch-size", "32", "--out", dest, "--no-progress"];
    const r = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const dev = trainAndDevTasks((await loadSniSplit("train", undefined, { warn: false })).tasks, DEV_DEFAULTS).dev.map((t) => t.name);
    const test = new Set((await loadSniSplit("test", undefined, { warn: false })).tasks.map((t) => t.name));
    assert.ok(dev.length >= 30, `${dev.length} dev tasks`);
    const s = JSON.parse(readFileSync(join(dest, "summary.json"), "utf8")) as { benchmark: string; counts: { tasks: number } };
    assert.equal(s.benchmark, `SNI dev split (${dev.length} dev tasks, <= 1 instances each)`);
    const perTask = parseCsv(readFileSync(join(dest, "per_task.csv"), "utf8")).slice(1).map((row) => row[0]!);
    assert.deepEqual([...perTask].sort(), [...dev].sort());
    assert.ok(perTask.every((t) => !test.has(t)));
    // a test task is not in the dev split
    const wrong = spawnSync(process.execPath, [...args.slice(0, -3), "--tasks", TASKS[0]!, "--out", join(out, "dev-wrong"), "--no-progress"], { cwd: root, encoding: "utf8", timeout: 300_000 });
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, new RegExp(`unknown dev task\\(s\\): ${TASKS[0]}\\. Dev tasks: ${dev.length}`));
  });

  it("--split seen evaluates the training tasks, with --exclude-train-sample only the instances outside their training sample", async function () {
    const dest = join(out, "seen");
    const all = (await loadSniSplit("train", undefined, { warn: false })).tasks;
    const { train, dev } = trainAndDevTasks(all, DEV_DEFAULTS);
    const task = train.find((t) => t.instances.length >= 6 && t.instances.length <= 200)!;
    const n = task.instances.length - 3; // three instances outside the sample
    const args = ["--import", "tsx", "src/cli.ts", "evaluate", "--random-tiny", "--benchmark", "sni", "--split", "seen", "--tasks", task.name];
    const common = ["--format", "def", "--max-new-tokens", "2", "--max-input-tokens", "64", "--batch-size", "8", "--no-progress"];
    const r = spawnSync(process.execPath, [...args, "--exclude-train-sample", String(n), ...common, "--out", dest], { cwd: root, encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const used = new Set(sampleInstances(task, n, 0).map((i) => i.id));
    const ids = readFileSync(join(dest, "predictions.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { id: string }).id);
    assert.equal(ids.length, 3);
    assert.ok(ids.every((id) => !used.has(id) && task.instances.some((i) => i.id === id)), `ids ${ids.join(", ")}`);
    const s = JSON.parse(readFileSync(join(dest, "summary.json"), "utf8")) as { benchmark: string };
    assert.equal(s.benchmark, "SNI seen tasks (1 seen task)");
    // without the exclusion every instance of the task is evaluated
    const allOut = join(out, "seen-all");
    const every = spawnSync(process.execPath, [...args, ...common, "--out", allOut], { cwd: root, encoding: "utf8", timeout: 300_000 });
    assert.equal(every.status, 0, `exit ${every.status}\n${every.stderr}`);
    assert.equal(readFileSync(join(allOut, "predictions.jsonl"), "utf8").trim().split("\n").length, task.instances.length);
    // the exclusion belongs to --split seen
    const misplaced = spawnSync(process.execPath, [...args.slice(0, 8), "dev", "--exclude-train-sample", "3", ...common, "--out", join(out, "seen-misplaced")], { cwd: root, encoding: "utf8", timeout: 300_000 });
    assert.notEqual(misplaced.status, 0);
    assert.match(misplaced.stderr, /--exclude-train-sample applies to --split seen/);
    // a dev task is not a seen task
    const wrong = spawnSync(process.execPath, [...args.slice(0, -1), dev[0]!.name, ...common, "--out", join(out, "seen-wrong")], { cwd: root, encoding: "utf8", timeout: 300_000 });
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, new RegExp(`unknown seen task\\(s\\): ${dev[0]!.name}\\. Seen tasks: `));
  });

  it("refuses --model with --random-tiny; --benchmark p3 runs the P3 held-out evaluation", function () {
    const both = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", "evaluate", "--random-tiny", "--model", "x", "--benchmark", "sni"], { cwd: root, encoding: "utf8" });
    assert.notEqual(both.status, 0);
    assert.match(both.stderr, /cannot be used with/);
    const p3Out = join(out, "p3");
    const p3 = spawnSync(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", "evaluate", "--random-tiny", "--benchmark", "p3", "--tasks", "rte", "--max-examples-per-template", "2", "--out", p3Out, "--no-progress"],
      { cwd: root, encoding: "utf8", timeout: 120_000 },
    );
    assert.equal(p3.status, 0, `exit ${p3.status}\n${p3.stdout}\n${p3.stderr}`);
    for (const f of ["per_template.csv", "per_task.csv", "summary.json"]) assert.ok(existsSync(join(p3Out, f)), f);
    const s = JSON.parse(readFileSync(join(p3Out, "summary.json"), "utf8")) as Record<string, any>;
    assert.equal(s.counts.tasks, 1);
    assert.ok(Number.isFinite(s.overall.accuracy));
  });
});
