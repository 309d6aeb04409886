#!/usr/bin/env node
/**
 * `tagi`: the project's command line. `tagi --help`, `tagi evaluate --help`.
 *
 *   tagi evaluate --random-tiny --benchmark sni --max-instances-per-task 5
 *   tagi evaluate --model /path/to/t5-base-lm-adapt --benchmark sni --format def+2pos --out results/eval/tk-base
 *
 * From a checkout: `npm run tagi -- evaluate ...` (runs src/cli.ts under tsx) or, after `npm run build`,
 * `node dist/cli.js evaluate ...`.
 */
import { projectRelative } from "./project-paths";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { SingleBar } from "cli-progress";
import { describeBackend, initBackend } from "./backend";
import { environmentReport } from "./environment";
import { checkAdapterShapes, loadPeftAdapter, loadT5Checkpoint, peftToLoraAdapter } from "./model/weights";
import type { LoraAdapter } from "./model/lora";
import { parsePretrainBaseConfig, pretrainBase, type StageOptions } from "./train/base-model";
import { metatrain, parseMetatrainConfig } from "./train/metatrain";
import { parseTeachersConfig, readTeachersManifest, trainTeachers } from "./train/teachers";
import { trainingReport } from "./experiments/training-report";
import { loadTagiParams, readTagiConfig, type TagiModel } from "./tagi/model";
import { evaluateTagiSni } from "./tagi/evaluate";
import { defaultScale, listExperiments, parseEvaluationParts, runExperiment, STAGE_PARSERS } from "./experiments/runner";
import { writeResultsReport } from "./experiments/results-report";
import { adapterSimilarity, formatPrecondition, similarityPrecondition, generationVersusTeacherTime, taskInstruction, INSTRUCTION_PROBES, meanTeacherDeltas, mergeDeltas, probeInstructions, type InstructionProbe } from "./tagi/probes";
import { finetuneTagi, parseFinetuneConfig, parsePretrainHyperConfig, pretrainHyper, disposeTagi } from "./tagi/train";
import { writeGeneratedAdapter } from "./tagi/generate-adapter";
import { loadBaseModel, modelFolderFingerprint, trainedFormat } from "./train/seq2seq";
import { sniComputeSummary } from "./experiments/compute-summary";
import type { Method } from "./compute/method-flops";
import { groupByCategory, loadSniSplit } from "./data/sni";
import { writeJsonAtomic } from "./train/checkpoint";
import { readUtf8File } from "./data/utf8";
import { freshRunFolder, lockFolder, withFolderLock } from "./train/folder-lock";
import { randomTinyT5 } from "./model/tiny";
import type { T5Model } from "./model/t5";
import { T5Tokenizer } from "./text/tokenizer";
import { evaluateSni, type SniProgress, type SniResult } from "./eval/sni-eval";
import { applySets } from "./train/config-sets";
export { applySets } from "./train/config-sets";

function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/**
 * --out, or a new folder results/eval/<benchmark>-<time to the ms>-<pid>, created exclusively: two evaluations
 * started in the same second (or millisecond) never share a folder.
 */
function evaluationOutDir(o: { out?: string; benchmark: string }, started: Date): string {
  return o.out ? resolve(o.out) : freshRunFolder(resolve("results", "eval"), o.benchmark, started);
}

/** "[lo, hi]" of a 95% interval. */
function ci(i: { lo: number; hi: number }): string {
  return `[${i.lo.toFixed(2)}, ${i.hi.toFixed(2)}]`;
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60)}s` : `${s.toFixed(1)}s`;
}

interface EvaluateOpts {
  model?: string;
  tagi?: string;
  adapter?: string;
  meanAdapter?: string;
  instructions: InstructionProbe;
  randomTiny?: boolean;
  seed: number;
  benchmark: "sni" | "p3";
  format: "def" | "def+2pos";
  input: "full" | "instance";
  maxInputTokens: number;
  maxNewTokens: number;
  batchSize: number;
  maxInstancesPerTask?: number;
  tasks?: string[];
  dataDir?: string;
  tokenizer?: string;
  out?: string;
  backend?: string;
  progress: boolean;
  maxExamplesPerTemplate?: number;
  /** set by the action when --max-input-tokens was given on the command line */
  maxInputTokensGiven?: boolean;
  batchSizeGiven?: boolean;
  inputGiven?: boolean;
  crossFormat?: boolean;
}

/** A progress reporter: a cli-progress bar on a terminal, a line every ~10% otherwise. */
function makeProgress(enabled: boolean): { update: (p: SniProgress) => void; stop: () => void } {
  if (!enabled) return { update: () => {}, stop: () => {} };
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      format: "  {bar} {percentage}% | {value}/{total} instances | {speed} inst/s | elapsed {elapsed} | ETA {eta_formatted}",
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    });
    let started = false;
    return {
      update: (p) => {
        if (!started) {
          bar.start(p.total, 0, { speed: "?", elapsed: "0s" });
          started = true;
        }
        bar.update(p.done, { speed: p.instancesPerSec.toFixed(2), elapsed: fmtSeconds(p.elapsedMs / 1000) });
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
  let next = 0;
  return {
    update: (p) => {
      if (p.done / p.total >= next || p.done === p.total) {
        process.stderr.write(
          `[tagi] ${p.done}/${p.total} instances, ${p.instancesPerSec.toFixed(2)} inst/s, elapsed ${fmtSeconds(p.elapsedMs / 1000)}, ` +
            `ETA ${p.etaMs === undefined ? "?" : fmtSeconds(p.etaMs / 1000)}\n`,
        );
        next = Math.floor((p.done / p.total) * 10 + 1) / 10;
      }
    },
    stop: () => {},
  };
}

async function loadModel(o: EvaluateOpts): Promise<{ model: T5Model; description: Record<string, unknown> }> {
  if (o.randomTiny) {
    return { model: randomTinyT5(o.seed), description: { kind: "random-tiny", seed: o.seed } };
  }
  if (o.meanAdapter) {
    // The mean-teacher-adapter baseline: one fixed update, mean_i(s·B_i·A_i), merged for every task into the
    // model the teachers were trained on (their manifest's base; --model must be that model if given).
    const teachers = resolve(o.meanAdapter);
    const manifest = readTeachersManifest(teachers);
    const dir = o.model ? resolve(o.model) : manifest.base;
    if (o.model && manifest.baseFingerprint && modelFolderFingerprint(dir) !== manifest.baseFingerprint) {
      throw new Error(`--mean-adapter: the teachers in ${teachers} were trained on ${manifest.base}, not on --model ${dir}: their mean update means nothing on another model (omit --model to use theirs)`);
    }
    const { config, params } = loadT5Checkpoint(dir);
    const { deltas, teachers: n } = meanTeacherDeltas(teachers, config);
    const merged = mergeDeltas(params, deltas);
    for (const [m, d] of deltas) {
      params.get(`${m}.weight`)!.dispose();
      d.dispose();
    }
    return { model: { config, params: merged }, description: { kind: "checkpoint+mean-teacher-adapter", path: dir, teachers, teachersAveraged: n, teachersInput: manifest.input } };
  }
  const dir = resolve(o.model as string);
  const { config, params } = loadT5Checkpoint(dir);
  return { model: { config, params }, description: { kind: "checkpoint", path: dir } };
}

/** A PEFT adapter from --adapter as run options (checked against the model's shapes), or undefined. */
function adapterOptions(o: EvaluateOpts, model: T5Model): { lora: LoraAdapter } | undefined {
  if (!o.adapter) return undefined;
  const peft = loadPeftAdapter(resolve(o.adapter));
  checkAdapterShapes(peft, model.config);
  return { lora: peftToLoraAdapter(peft) };
}

/** A TAGI checkpoint for evaluation: its base model (from tagi_config.json, or --model) with generator and fusion. */
function loadTagiForEval(o: EvaluateOpts): { model: T5Model; description: Record<string, unknown>; tagi: TagiModel } {
  const dir = resolve(o.tagi!);
  const { base } = readTagiConfig(dir);
  const baseDir = o.model ? resolve(o.model) : base;
  const model = loadBaseModel(baseDir);
  return { model, description: { kind: "tagi", path: dir, base: baseDir }, tagi: loadTagiParams(dir, model) };
}

function tokenizerPath(o: EvaluateOpts): string | undefined {
  if (o.tokenizer) return resolve(o.tokenizer);
  if (o.model && existsSync(join(o.model, "tokenizer.json"))) return resolve(o.model, "tokenizer.json");
  return undefined; // the shared T5 vocabulary
}

/** What every summary.json records about the model and the run (command, commit, backend, seed, time). */
function provenance(o: EvaluateOpts, description: Record<string, unknown>, model: T5Model, tokenizer: { path: string }, started: Date, finished: Date) {
  const env = environmentReport();
  return {
    modelFields: {
      model: description,
      modelConfig: model.config,
      tokenizer: tokenizer.path,
      dataDir: o.dataDir ? resolve(o.dataDir) : "../shared/data (default)",
    },
    run: {
      seed: o.seed,
      commit: env.commit,
      backend: env.backend,
      environment: { node: env.node, tfjs: env.tfjs, cpu: env.cpu, cores: env.cores, memoryGiB: env.memoryGiB },
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      wallSeconds: (finished.getTime() - started.getTime()) / 1000,
    },
  };
}

async function evaluateCommand(o: EvaluateOpts, cmd: Command): Promise<void> {
  const started = new Date();
  if (o.tagi) {
    if (o.randomTiny) cmd.error("error: --tagi takes its base model from the checkpoint (or --model), not --random-tiny", { exitCode: 2 });
    if (o.benchmark !== "sni") cmd.error("error: --tagi is evaluated on --benchmark sni", { exitCode: 2 });
  } else if (o.instructions !== "own") cmd.error("error: --instructions (a probe) applies to --tagi models", { exitCode: 2 });
  else if (o.randomTiny ? Boolean(o.model || o.meanAdapter) : !o.model && !o.meanAdapter) {
    cmd.error("error: give exactly one of --model <dir> and --random-tiny (or --tagi <dir>, or --mean-adapter <teachers> alone)", { exitCode: 2 });
  }
  // A model trained on one prompt format is evaluated on another only when asked for (the paper trains one
  // model per format); the run record beside the model folder says what it was trained on.
  const modelDir = o.tagi ?? o.model;
  const trained = modelDir ? trainedFormat(resolve(modelDir)) : null;
  if (trained && o.benchmark === "sni" && trained.format !== o.format && !o.crossFormat) {
    throw new Error(`evaluate: ${modelDir} was trained on ${trained.format} prompts (${trained.record}), not ${o.format}; pass --cross-format to evaluate it on ${o.format} anyway (recorded in summary.json)`);
  }
  // The mean-teacher adapter reads what its teachers read unless --input says otherwise.
  if (o.meanAdapter && !o.inputGiven) o = { ...o, input: readTeachersManifest(resolve(o.meanAdapter)).input };

  if (o.benchmark === "p3") {
    await evaluateP3Command(o, started);
    return;
  }

  const backend = await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
  console.error(describeBackend(backend));
  const tokPath = tokenizerPath(o);
  const tokenizer = T5Tokenizer.fromFile(tokPath);
  const loaded = o.tagi ? loadTagiForEval(o) : { ...(await loadModel(o)), tagi: null };
  const { model, description, tagi } = loaded;
  if (tokenizer.vocabSize > model.config.vocab_size) {
    throw new Error(`the tokenizer has ${tokenizer.vocabSize} ids but the model's vocab_size is ${model.config.vocab_size}`);
  }
  const outDir = evaluationOutDir(o, started);
  const lock = lockFolder(outDir, { what: "evaluate" });
  console.error(
    `[tagi] evaluate ${description.kind === "random-tiny" ? `random tiny T5 (seed ${o.seed})` : `${tagi ? "TAGI " : ""}${String(description.path)}`} on SNI test, ` +
      `format ${o.format}, input ${tagi ? "instance (instruction through the generated adapter and fusion)" : o.input}, batch ${o.batchSize}; writing to ${outDir}`,
  );

  const testTasks = (await loadSniSplit("test", o.dataDir ? resolve(o.dataDir) : undefined, { warn: false })).tasks;
  const progress = makeProgress(o.progress);
  let result: SniResult;
  try {
    const common = {
      format: o.format,
      maxInputTokens: o.maxInputTokens,
      maxNewTokens: o.maxNewTokens,
      batchSize: o.batchSize,
      seed: o.seed,
      ...(o.maxInstancesPerTask !== undefined ? { maxInstancesPerTask: o.maxInstancesPerTask } : {}),
      ...(o.tasks ? { tasks: o.tasks } : {}),
      ...(o.dataDir ? { dataDir: resolve(o.dataDir) } : {}),
      onProgress: progress.update,
    };
    result = tagi
      ? await evaluateTagiSni(tagi, tokenizer, {
          ...common,
          testTasks,
          ...(o.instructions !== "own" ? { instructions: probeInstructions(testTasks, o.format, o.instructions, o.seed) } : {}),
        })
      : await evaluateSni(model, tokenizer, { ...common, input: o.input, runOptions: adapterOptions(o, model) });
  } finally {
    progress.stop();
  }
  const finished = new Date();

  // Reports (danfojs is loaded only here: ~1.5 s).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { taskTable, categoryTable, writeCsv, writeFileAtomic } = require("./eval/report") as typeof import("./eval/report");
  const perTask = taskTable(result.rows);
  const perCategory = categoryTable(result.rows, { metrics: ["rougeL", "exactMatch"] });
  writeCsv(perTask, join(outDir, "per_task.csv"));
  writeCsv(perCategory, join(outDir, "per_category.csv"));
  writeFileAtomic(join(outDir, "predictions.jsonl"), result.predictions.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const { modelFields, run } = provenance(o, description, model, tokenizer, started, finished);
  const method: Method = tagi
    ? tagi.config.fusion === "none"
      ? "hypter"
      : tagi.config.fusion === "concatenate"
        ? "hint"
        : "tagi"
    : o.input === "full"
      ? "tk-instruct"
      : "no-ft";
  const compute = sniComputeSummary(result, testTasks, tokenizer, o.format, method, model.config, o.maxNewTokens, tagi?.config.hypernetwork, tagi?.config.maxInstructionTokens);
  const summary = {
    benchmark: result.benchmark,
    command: ["tagi", ...process.argv.slice(2)].join(" "),
    argv: process.argv,
    cwd: process.cwd(),
    config: { ...result.options, ...modelFields, instructions: tagi ? o.instructions : null, trainedFormat: trained?.format ?? null, crossFormat: Boolean(trained && trained.format !== o.format) },
    ...run,
    timing: { ...result.timing },
    counts: result.counts,
    metrics: result.metrics,
    overall: result.overall,
    intervals: result.intervals,
    floors: result.floors.map(({ perInstance: _, ...f }) => f),
    referenceNll: result.referenceNll,
    compute,
    perCategory: Object.fromEntries(result.aggregate.perCategory),
    skips: result.skips,
    files: ["per_task.csv", "per_category.csv", "predictions.jsonl", "summary.json"],
  };
  writeFileAtomic(join(outDir, "summary.json"), JSON.stringify(projectRelative(summary), null, 2) + "\n");

  const c = result.counts;
  console.log(
    [
      `${result.benchmark}: ROUGE-L ${result.overall.rougeL.toFixed(2)} ${ci(result.intervals.rougeL)}, exact match ${result.overall.exactMatch.toFixed(2)} ${ci(result.intervals.exactMatch)} ` +
        `(task means: ${result.overall.rougeLTaskMean.toFixed(2)}, ${result.overall.exactMatchTaskMean.toFixed(2)})` +
        (result.referenceNll ? `; reference NLL ${result.referenceNll.overall.toFixed(3)} nats/token` : ""),
      `  sanity floors on the same instances (ROUGE-L): ${result.floors.map((f) => `${f.name} ${f.rougeL.toFixed(2)} ${ci(f.rougeLCi)}`).join("; ")}`,
      `  ${c.tasks} tasks in ${c.categories} categories, ${c.instances} instances; truncated ${c.truncated} ` +
        `(examples dropped ${c.examplesDropped}, definition shortened ${c.definitionTruncated}, instance cut ${c.instanceTruncated}); skipped ${c.skipped}`,
      `  ${fmtSeconds(summary.wallSeconds)} wall, ${result.timing.instancesPerSec.toFixed(2)} instances/s while generating`,
      `  compute (${compute.method}, ${compute.format}, lengths as run): ${(compute.flops / 1e12).toFixed(3)} TFLOP, x${compute.relativeToTkInstruct.toFixed(2)} of Tk-Instruct's on these tasks`,
      `  wrote ${outDir}/{per_task.csv, per_category.csv, predictions.jsonl, summary.json}`,
    ].join("\n"),
  );  lock.release();
}

// ---- P3 held-out (T0's MTest) ----------------------------------------------------------------------------
// evaluateP3 lives in src/eval/p3-eval.ts (another work item). It is loaded at run time so that this file
// builds without it; the types below are the part of its P3Result this command reads.
interface P3ResultLike {
  perTemplate: { task: string; template: string; n: number; accuracy: number; majorityAccuracy: number; chanceAccuracy: number }[];
  perTask: { task: string; templates: number; meanAccuracy: number; medianAccuracy: number; majorityAccuracy: number; chanceAccuracy: number }[];
  average: { name: string; accuracy: number };
  coverage: { totals: { templates: number; renderedOk: number; failed: number; skippedExamples: number } };
  skippedTasks: { task: string; reason: string }[];
  sample: { kind: "all" } | { kind: "seeded"; seed: number; perTemplate: number };
}
type EvaluateP3 = (
  model: T5Model,
  tokenizer: T5Tokenizer,
  opts: { tasks?: string[]; maxExamplesPerTemplate?: number; sampleSeed?: number; batchSize?: number; maxInputTokens?: number; dataDir?: string; onProgress?: (done: number, total: number) => void },
) => Promise<P3ResultLike>;

// Compile-time check that src/eval/p3-eval.ts's evaluateP3 fits the calls below (a type-only import: nothing is loaded).
export type P3ContractHolds = typeof import("./eval/p3-eval").evaluateP3 extends EvaluateP3 ? true : never;
const p3ContractHolds: P3ContractHolds = true;
void p3ContractHolds;

function loadEvaluateP3(): EvaluateP3 | string {
  let mod: { evaluateP3?: unknown };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require("./eval/p3-eval") as { evaluateP3?: unknown };
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === "MODULE_NOT_FOUND" && /p3-eval/.test(err.message)) return "src/eval/p3-eval.ts is not in this checkout";
    throw e;
  }
  return typeof mod.evaluateP3 === "function" ? (mod.evaluateP3 as EvaluateP3) : "src/eval/p3-eval.ts does not export evaluateP3";
}

async function evaluateP3Command(o: EvaluateOpts, started: Date): Promise<void> {
  const evaluateP3 = loadEvaluateP3();
  if (typeof evaluateP3 === "string") {
    throw new Error(`--benchmark p3 is not available yet: ${evaluateP3} (the P3 held-out evaluation). Use --benchmark sni.`);
  }
  const backend = await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
  console.error(describeBackend(backend));
  const tokenizer = T5Tokenizer.fromFile(tokenizerPath(o));
  const { model, description } = await loadModel(o);
  const outDir = evaluationOutDir(o, started);
  lockFolder(outDir, { what: "evaluate" }); // released when the process exits
  console.error(`[tagi] evaluate on P3 held-out sets (rank classification); writing to ${outDir}`);
  const progress = makeProgress(o.progress);
  const t0 = Date.now();
  let result: P3ResultLike;
  try {
    result = await evaluateP3(model, tokenizer, {
      ...(o.batchSizeGiven ? { batchSize: o.batchSize } : {}),
      ...(o.maxInputTokensGiven ? { maxInputTokens: o.maxInputTokens } : {}),
      ...(o.maxExamplesPerTemplate !== undefined ? { maxExamplesPerTemplate: o.maxExamplesPerTemplate, sampleSeed: o.seed } : {}),
      ...(o.tasks ? { tasks: o.tasks } : {}),
      ...(o.dataDir ? { dataDir: resolve(o.dataDir) } : {}),
      onProgress: (done, total) => {
        if (total === 0) return;
        const elapsedMs = Date.now() - t0;
        const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
        progress.update({ done, total, elapsedMs, instancesPerSec: rate, etaMs: rate > 0 ? ((total - done) / rate) * 1000 : undefined });
      },
    });
  } finally {
    progress.stop();
  }
  const finished = new Date();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { recordsTable, writeCsv, writeFileAtomic } = require("./eval/report") as typeof import("./eval/report");
  writeCsv(recordsTable(result.perTemplate, ["task", "template", "n", "accuracy", "majorityAccuracy", "chanceAccuracy"]), join(outDir, "per_template.csv"));
  writeCsv(recordsTable(result.perTask, ["task", "templates", "meanAccuracy", "medianAccuracy", "majorityAccuracy", "chanceAccuracy"]), join(outDir, "per_task.csv"));
  const { modelFields, run } = provenance(o, description, model, tokenizer, started, finished);
  const examples = result.perTemplate.reduce((s, r) => s + r.n, 0);
  const summary = {
    benchmark: result.average.name,
    command: ["tagi", ...process.argv.slice(2)].join(" "),
    argv: process.argv,
    cwd: process.cwd(),
    config: {
      batchSize: o.batchSizeGiven ? o.batchSize : "evaluateP3 default",
      maxInputTokens: o.maxInputTokensGiven ? o.maxInputTokens : "evaluateP3 default",
      maxExamplesPerTemplate: o.maxExamplesPerTemplate ?? null,
      sample: result.sample,
      tasks: o.tasks ?? null,
      ...modelFields,
    },
    ...run,
    counts: {
      tasks: result.perTask.length,
      templatesEvaluated: result.perTemplate.length,
      examples,
      skippedTasks: result.skippedTasks.length,
      templates: result.coverage.totals.templates,
      templatesRendered: result.coverage.totals.renderedOk,
      templatesFailed: result.coverage.totals.failed,
      skippedExamples: result.coverage.totals.skippedExamples,
    },
    metrics: [
      { name: "accuracy", description: "rank classification (highest token-averaged log-likelihood), mean over templates, then tasks" },
      { name: "majorityAccuracy", description: "always answering the most frequent gold choice of the same examples (an upper bound for a model giving one fixed answer)" },
      { name: "chanceAccuracy", description: "a uniform guess over the answer choices of the same examples" },
    ],
    overall: {
      ...result.average,
      majorityAccuracy: result.perTask.reduce((a, p) => a + p.majorityAccuracy, 0) / result.perTask.length,
      chanceAccuracy: result.perTask.reduce((a, p) => a + p.chanceAccuracy, 0) / result.perTask.length,
    },
    skippedTasks: result.skippedTasks,
    coverage: result.coverage,
    files: ["per_template.csv", "per_task.csv", "summary.json"],
  };
  writeFileAtomic(join(outDir, "summary.json"), JSON.stringify(projectRelative(summary), null, 2) + "\n");
  console.log(
    [
      `${result.average.name}: accuracy ${(100 * result.average.accuracy).toFixed(2)}`,
      `  ${result.perTask.length} tasks, ${result.perTemplate.length} templates, ${examples} examples; templates rendered ` +
        `${result.coverage.totals.renderedOk}/${result.coverage.totals.templates}; skipped tasks ${result.skippedTasks.length}`,
      `  on the same examples: chance ${(100 * summary.overall.chanceAccuracy).toFixed(2)}, majority class ${(100 * summary.overall.majorityAccuracy).toFixed(2)}` +
        (result.sample.kind === "seeded" ? ` (a seeded sample: seed ${result.sample.seed}, at most ${result.sample.perTemplate} rows per template)` : " (every usable row)"),
      `  ${fmtSeconds(summary.wallSeconds)} wall`,
      `  wrote ${outDir}/{per_template.csv, per_task.csv, summary.json}`,
    ].join("\n"),
  );
}

const PACKAGE_VERSION = (JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8")) as { version: string }).version;
const TFJS_VERSION = (JSON.parse(readFileSync(require.resolve("@tensorflow/tfjs-core/package.json"), "utf8")) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("tagi")
    .version(`tagi ${PACKAGE_VERSION} (@tensorflow/tfjs ${TFJS_VERSION})`, "-V, --version", "print the version")
    .description("TAGI in TypeScript: training stages and evaluation from the command line")
    .showHelpAfterError("(add --help for usage)");

  program
    .command("evaluate")
    .alias("eval")
    .description("evaluate a T5 checkpoint (or an untrained tiny T5) on a benchmark and write tables and a summary")
    .addOption(new Option("--model <dir>", "Hugging Face T5 checkpoint folder (config.json + model.safetensors)").conflicts("randomTiny"))
    .addOption(new Option("--random-tiny", "an untrained tiny T5 with the real vocabulary (smoke tests)").conflicts("model"))
    .option("--adapter <dir>", "a PEFT LoRA adapter folder applied to the model (e.g. a LoRA metatrain run's adapter/)")
    .option("--mean-adapter <teachers>", "the mean-adapter baseline: merge the mean update of all LoRA teachers in this folder (manifest.json) into the model they were trained on (their base; --model must be it if given), reading what they read (--input overrides)")
    .addOption(
      new Option("--instructions <probe>", "TAGI: each task's own instruction, another test task's (a derangement), or its own words shuffled").choices([...INSTRUCTION_PROBES]).default("own"),
    )
    .option("--tagi <dir>", "a TAGI checkpoint (tagi_config.json + tagi.safetensors): instances only, the instruction through the generated adapter and fusion")
    .option("--seed <n>", "seed for --random-tiny's parameters and the instance sample (SNI instances per task; P3 rows per template)", intArg(0), 0)
    .addOption(new Option("--benchmark <name>", "benchmark").choices(["sni", "p3"]).makeOptionMandatory())
    .addOption(new Option("--format <format>", "SNI prompt format").choices(["def", "def+2pos"]).default("def+2pos"))
    .addOption(new Option("--input <part>", "what the model reads: the full prompt or the instance part only").choices(["full", "instance"]).default("full"))
    .option("--max-input-tokens <n>", "source length limit, </s> included (P3: evaluateP3's default unless given)", intArg(1), 1024)
    .option("--max-new-tokens <n>", "generation length limit", intArg(0), 128)
    .option("--batch-size <n>", "SNI: instances per decoding batch; P3: (example, choice) pairs per pass (evaluateP3's default unless given)", intArg(1), 8)
    .option("--max-instances-per-task <n>", "evaluate a seeded sample of at most n instances per task", intArg(1))
    .option("--tasks <names>", "comma-separated test task names (default: all)", (v: string) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    )
    .option("--max-examples-per-template <n>", "P3: at most n examples per template", intArg(1))
    .option("--data-dir <dir>", "data folder holding sni/ and p3/ (default: $TAGI_DATA_DIR, else ../shared/data)")
    .option("--tokenizer <file>", "tokenizer.json (default: <model>/tokenizer.json if present, else t5/tokenizer.json in the data folder)")
    .option("--out <dir>", "output folder (default results/eval/<benchmark>-<timestamp>/)")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .option("--no-progress", "no progress bar")
    .option("--cross-format", "evaluate a model trained on one prompt format (its run.json says which) on the other; refused without it")
    .action(async (opts: EvaluateOpts, cmd: Command) =>
      evaluateCommand(
        {
          ...opts,
          maxInputTokensGiven: cmd.getOptionValueSource("maxInputTokens") === "cli",
          batchSizeGiven: cmd.getOptionValueSource("batchSize") === "cli",
          inputGiven: cmd.getOptionValueSource("input") === "cli",
        },
        cmd,
      ),
    );
  addTrainingCommand(program, "pretrain-base", "stage 0: pretrain a T5 base model from scratch on SNI train-task text (span corruption / prefix LM)", async (raw, so) => {
    const r = await pretrainBase(parsePretrainBaseConfig(raw), so);
    console.error(`[tagi] base model: ${r.model}`);
  });
  addTrainingCommand(program, "metatrain", "meta-train (Tk-Instruct style) a base model on SNI train tasks with the instruction in every input (full or LoRA)", async (raw, so) => {
    const r = await metatrain(parseMetatrainConfig(raw), so);
    console.error(`[tagi] meta-trained ${r.model.endsWith("adapter") ? "adapter" : "model"}: ${r.model}`);
  });
  addTrainingCommand(program, "teachers", "train the parameter teachers: one LoRA per task category (or task) on the meta-trained model", async (raw, so) => {
    const r = await trainTeachers(parseTeachersConfig(raw), {
      ...so,
      onTeacher: (e, i, n) => console.error(`[tagi] teacher ${i}/${n} ${e.group}: ${e.steps} steps, final loss ${e.finalLoss.toFixed(4)} (${e.seconds.toFixed(0)} s) -> ${e.adapter}`),
    });
    console.error(`[tagi] ${r.manifest.teachers.length} teachers: ${join(r.out, "manifest.json")}`);
  });
  addTrainingCommand(program, "pretrain-hyper", "TAGI stage 1: pretrain the adapter generator and fusion on a|b|c splits of SNI train-task text", async (raw, so) => {
    const r = await pretrainHyper(parsePretrainHyperConfig(raw), so);
    console.error(`[tagi] TAGI checkpoint: ${r.model}`);
  });
  addTrainingCommand(program, "finetune", "TAGI stage 2: finetune on SNI train tasks with L_ce + lambda1 L_kl + lambda2 L_ins (or a Hypter/HINT baseline by config)", async (raw, so) => {
    const r = await finetuneTagi(parseFinetuneConfig(raw), so);
    console.error(`[tagi] TAGI checkpoint: ${r.model}`);
  });
  program
    .command("generate")
    .description(
      "write the LoRA adapter a trained generator produces for an instruction, as a PEFT adapter folder. Exact on its own only " +
        "for a model without instruction fusion and with a frozen base; otherwise the folder also holds tagi_fusion.safetensors " +
        "and/or base_trained.safetensors, which loadTagiExport applies (a warning says so)",
    )
    .requiredOption("--checkpoint <dir>", "TAGI checkpoint (tagi_config.json + tagi.safetensors)")
    .addOption(new Option("--instruction <text>", "the task instruction").conflicts("instructionFile"))
    .option("--instruction-file <file>", "read the instruction from a file")
    .requiredOption("--out <dir>", "output folder (adapter_config.json + adapter_model.safetensors)")
    .option("--model <dir>", "base model folder (default: the one in tagi_config.json)")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .action(async (o: { checkpoint: string; instruction?: string; instructionFile?: string; out: string; model?: string; backend?: string }) => {
      await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
      if (!o.instruction && !o.instructionFile) throw new Error("generate: give --instruction TEXT or --instruction-file FILE");
      const instruction = o.instruction ?? readUtf8File(o.instructionFile!); // invalid UTF-8: an error naming the byte offset
      const dir = resolve(o.checkpoint);
      const { base } = readTagiConfig(dir);
      const baseDir = o.model ? resolve(o.model) : base;
      const m = loadTagiParams(dir, loadBaseModel(baseDir));
      try {
        const r = writeGeneratedAdapter(m, T5Tokenizer.fromFile(), instruction, resolve(o.out), baseDir);
        console.error(`[tagi] generated ${r.modules} LoRA modules in ${(r.seconds * 1000).toFixed(0)} ms -> ${resolve(o.out)}`);
        for (const c of r.caveats) console.error(`[tagi] warning: ${c}; the PEFT adapter alone is not the TAGI model (see ${join(resolve(o.out), "README.md")}; loadTagiExport reads all of it)`);
      } finally {
        disposeTagi(m);
      }
    });
  program
    .command("experiment")
    .description("run a named experiment (experiments/NAME.json) at a scale for one or more seeds; writes results/NAME/<scale>/seed-S/")
    .argument("<name>", `experiment name (${listExperiments().join(", ")})`)
    .option("--seed <n>", "training seed", intArg(0), 0)
    .option("--seeds <list>", "several seeds, e.g. 0,1,2 (instead of --seed)", (v: string) => v.split(",").map((x) => Number(x.trim())))
    .option("--scale <scale>", "configs/<scale>/experiments.json (default $TAGI_SCALE, else tiny)")
    .option("--force", "rerun even when the result exists")
    .option("--reevaluate [parts]", "redo the evaluations of a finished run with its trained model: all, or a comma list of sni, p3, adapters")
    .action(async (name: string, o: { seed: number; seeds?: number[]; scale?: string; force?: boolean; reevaluate?: string | true }) => {
      const reevaluate = o.reevaluate === undefined ? false : parseEvaluationParts(o.reevaluate);
      for (const seed of o.seeds ?? [o.seed]) await runExperiment(name, { seed, scale: o.scale ?? defaultScale(), force: o.force ?? false, reevaluate });
    });
  program
    .command("results")
    .description("results/README.md from every results/NAME/<scale>/seed-S/experiment.json: tables (mean ± std over seeds) beside the paper's, and figures")
    .option("--scale <scales>", "comma-separated scales to report (default: every scale with results)", (v: string) => v.split(","))
    .option("--out <file>", "markdown file", "results/README.md")
    .action(async (o: { scale?: string[]; out: string }) => {
      const file = await writeResultsReport({ scales: o.scale, out: resolve(o.out) });
      console.error(`[tagi] results: ${file}`);
    });
  program
    .command("adapters")
    .description("generated-versus-teacher adapter similarity per teacher category, and adapter generation time against teacher training time")
    .requiredOption("--tagi <dir>", "a TAGI checkpoint")
    .requiredOption("--teachers <dir>", "the parameter teachers' folder (manifest.json)")
    .addOption(new Option("--format <format>", "instruction format").choices(["def", "def+2pos"]).default("def"))
    .option("--max-tasks-per-category <n>", "instructions per category", intArg(1), 8)
    .option("--data-dir <dir>", "data folder (default: $TAGI_DATA_DIR, else ../shared/data)")
    .requiredOption("--out <file>", "JSON file to write")
    .action(async (o: { tagi: string; teachers: string; format: "def" | "def+2pos"; maxTasksPerCategory: number; dataDir?: string; out: string }) => {
      const backend = await initBackend({ log: false });
      console.error(describeBackend(backend));
      const dir = resolve(o.tagi);
      const model = loadBaseModel(readTagiConfig(dir).base);
      const m = loadTagiParams(dir, model);
      const tokenizer = T5Tokenizer.fromFile(undefined);
      const train = (await loadSniSplit("train", o.dataDir ? resolve(o.dataDir) : undefined, { warn: false })).tasks;
      const byCategory = groupByCategory(train);
      const similarity = adapterSimilarity(m, tokenizer, resolve(o.teachers), byCategory, { format: o.format, maxTasksPerCategory: o.maxTasksPerCategory });
      const texts = train.slice(0, 20).map((t) => taskInstruction(t, o.format));
      const timing = generationVersusTeacherTime(m, tokenizer, texts, resolve(o.teachers));
      const own = similarity.reduce((s, r) => s + r.cosineOwn, 0) / similarity.length;
      const others = similarity.reduce((s, r) => s + r.cosineOthers, 0) / similarity.length;
      const precondition = similarityPrecondition(similarity);
      writeJsonAtomic(resolve(o.out), { command: ["tagi", ...process.argv.slice(2)].join(" "), similarity, precondition, ...timing });
      console.log(
        `adapters: mean cosine to own teacher ${own.toFixed(4)}, to other teachers ${others.toFixed(4)} (${similarity.length} categories); ${formatPrecondition(precondition)}; ` +
          `generating one adapter ${timing.generateSeconds.toFixed(3)} s, training one teacher ${timing.teacherSeconds.toFixed(1)} s (${timing.teacherSteps} steps)`,
      );
    });
  program
    .command("training-report")
    .description("copy a scale's run records and logs (no weights) to results/, draw the loss curves, write README.md")
    .requiredOption("--runs <dir>", "the runs folder of one scale (holding base/, metatrain/, teachers/)")
    .requiredOption("--out <dir>", "where to write (e.g. results/training/small)")
    .option("--eval <dirs>", "comma-separated SNI evaluation folders (summary.json) to quote", (v: string) => v.split(",").filter(Boolean))
    .action(async (o: { runs: string; out: string; eval?: string[] }) => {
      const readme = await trainingReport({ runs: o.runs, out: o.out, evals: o.eval, command: ["tagi", ...process.argv.slice(2)] });
      console.error(`[tagi] training report: ${readme}`);
    });
  for (const c of program.commands) {
    const ex = COMMAND_EXAMPLES[c.name()];
    if (ex) c.addHelpText("after", `\nExample${ex.length > 1 ? "s" : ""}:\n${ex.map((l) => `  $ ${l}`).join("\n")}`);
  }
  return program;
}

interface TrainingOpts {
  config?: string;
  out?: string;
  printConfig?: boolean;
  resume?: boolean;
  set: string[];
  backend?: string;
  progress: boolean;
  stopAtStep?: number;
  allowChange: string[];
}

/** The examples under each command's --help (every command has some; a test checks). */
export const COMMAND_EXAMPLES: Record<string, string[]> = {
  evaluate: [
    "npm run tagi -- evaluate --model runs/tiny/metatrain/model --benchmark sni --format def+2pos --max-instances-per-task 5",
    "npm run tagi -- evaluate --tagi runs/tiny/finetune/model --benchmark sni --format def+2pos --max-input-tokens 128",
    "npm run tagi -- evaluate --model runs/tiny/metatrain/model --benchmark p3 --max-examples-per-template 10",
  ],
  "pretrain-base": ["npm run tagi -- pretrain-base --config configs/tiny/pretrain-base.json --out runs/tiny/base-span --set train.steps=100"],
  metatrain: ["npm run tagi -- metatrain --config configs/tiny/metatrain.json --out runs/tiny/metatrain-def --set format=def"],
  teachers: ["npm run tagi -- teachers --config configs/tiny/teachers.json --out runs/tiny/teachers --resume"],
  "pretrain-hyper": ["npm run tagi -- pretrain-hyper --config configs/tiny/pretrain-hyper.json --out runs/tiny/pretrain-hyper"],
  finetune: [
    "npm run tagi -- finetune --config configs/tiny/finetune.json --out runs/tiny/finetune",
    "npm run tagi -- finetune --config configs/tiny/finetune.json --set losses.ins=0.5 --print-config   # the merged config, no run",
  ],
  generate: ['npm run tagi -- generate --checkpoint runs/tiny/finetune/model --instruction "Definition: Translate the sentence into French." --out my-adapter'],
  experiment: ["npm run experiment -- tagi --seeds 0,1,2 --scale tiny", "npm run experiment -- no-ft --seed 0 --reevaluate p3"],
  results: ["npm run results"],
  adapters: ["npm run tagi -- adapters --tagi runs/tiny/finetune/model --teachers runs/tiny/teachers --format def+2pos --out adapters.json"],
  "training-report": ["npm run tagi -- training-report --runs runs/tiny --out results/training/tiny"],
};

function addTrainingCommand(
  program: Command,
  name: string,
  description: string,
  run: (raw: Record<string, unknown>, so: StageOptions) => Promise<void>,
): void {
  program
    .command(name)
    .description(description)
    .option("--config <file>", "JSON config (see configs/); omitted keys take the stage's defaults, unknown keys are errors")
    .option("--out <dir>", "output folder (model, log.jsonl, checkpoint/, run.json); required unless --print-config")
    .option("--print-config", "print the config this run would use (the file, --set overrides and the stage's defaults, checked) as JSON, and exit")
    .option("--resume", "continue the run in --out from its last checkpoint (same config required)")
    .option("--set <key=value>", "override a config value, e.g. --set train.steps=50 (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .addOption(new Option("--stop-at-step <n>", "stop with a checkpoint after step n (resume later with --resume)").argParser(intArg(1)))
    .option(
      "--allow-change <key>",
      "with --resume: accept this config key differing from the checkpoint's (train.schedule.lr, e.g. a lower rate after a non-finite loss; train.maxGradNorm, train.steps, ...); recorded in trainer_state.json (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--no-progress", "no progress bar or progress lines")
    .action(async (o: TrainingOpts) => {
      let raw: Record<string, unknown> = {};
      if (o.config) {
        if (!existsSync(o.config)) throw new Error(`${name}: config file not found: ${o.config}`);
        try {
          raw = JSON.parse(readFileSync(o.config, "utf8")) as Record<string, unknown>;
        } catch (e) {
          throw new Error(`${name}: cannot parse ${o.config} as JSON: ${(e as Error).message}`);
        }
        if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${name}: ${o.config} must hold a JSON object ({...}), got ${JSON.stringify(raw)}`);
      }
      raw = applySets(raw, o.set);
      if (o.printConfig) {
        // What the stage would run with: parsed (defaults merged, every check applied) without loading anything.
        console.log(JSON.stringify(STAGE_PARSERS[name]!(raw), null, 2));
        return;
      }
      if (!o.out) throw new Error(`${name}: required option '--out <dir>' not specified`);
      if (o.allowChange.length && !o.resume) throw new Error(`${name}: --allow-change applies to --resume only`);
      const backend = await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
      console.error(describeBackend(backend));
      const out = resolve(o.out);
      console.error(`[tagi] ${name}${o.config ? ` --config ${o.config}` : ""} -> ${out}${o.resume ? " (resume)" : ""}`);
      // One process per output folder: a second run into the same --out is refused, naming the first.
      await withFolderLock(out, { what: name }, () =>
        run(raw, {
          out,
          resume: o.resume ?? false,
          progress: o.progress ? "auto" : false,
          command: ["tagi", ...process.argv.slice(2)],
          stopAtStep: o.stopAtStep,
          allowChanges: o.allowChange,
        }),
      );
    });
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((e: unknown) => {
      console.error(`tagi: ${e instanceof Error ? e.message : String(e)}`);
      if (process.env.TAGI_DEBUG && e instanceof Error) console.error(e.stack);
      process.exit(1);
    });
}
