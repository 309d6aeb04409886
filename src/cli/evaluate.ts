/**
 * `tagi evaluate`: a T5 checkpoint, a TAGI checkpoint, a model with a PEFT adapter or the mean-teacher adapter
 * on SNI (ROUGE-L with CIs, sanity floors, reference NLL, compute) or P3 held-out (rank classification),
 * writing per-task tables, predictions and a summary.json that records how it was made.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { SingleBar } from "cli-progress";
import { projectRelative } from "../project-paths";
import { describeBackend, initBackend } from "../backend";
import { environmentReport, peakRssBytes } from "../environment";
import { checkAdapterShapes, loadPeftAdapter, loadT5Checkpoint, peftToLoraAdapter } from "../model/weights";
import type { LoraAdapter } from "../model/lora";
import { readTeachersManifest } from "../train/teachers";
import { loadTagiParams, readTagiConfig, type TagiModel } from "../tagi/model";
import { evaluateTagiSni } from "../tagi/evaluate";
import { meanTeacherDeltas, mergeDeltas, probeInstructions, type InstructionProbe } from "../tagi/probes";
import { loadBaseModel, modelFolderFingerprint, trainedFormat } from "../train/seq2seq";
import { sniComputeSummary } from "../experiments/compute-summary";
import type { Method } from "../compute/method-flops";
import { loadSniSplit, type SniTask } from "../data/sni";
import { DEV_DEFAULTS, seenTasks, trainAndDevTasks } from "../train/dev-split";
import { freshRunFolder, lockFolder } from "../train/folder-lock";
import { randomTinyT5 } from "../model/tiny";
import type { T5Model } from "../model/t5";
import { T5Tokenizer } from "../text/tokenizer";
import { evaluateSni, type SniProgress, type SniResult } from "../eval/sni-eval";
import { fmtSeconds } from "./args";
import { categoryTableData, recordsTableData, taskTableData, writeFileAtomic, writeTableCsv } from "../eval/tables";

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

export interface EvaluateOpts {
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
  decoding: "continuous" | "batched";
  maxInstancesPerTask?: number;
  tasks?: string[];
  split: "test" | "dev" | "seen";
  /** --split seen: the per-task training sample (seed 0) whose instances are left out; absent: keep all. */
  excludeTrainSample?: number;
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
      ...(env.uncommitted?.length ? { uncommitted: env.uncommitted } : {}),
      backend: env.backend,
      environment: { node: env.node, tfjs: env.tfjs, cpu: env.cpu, cores: env.cores, memoryGiB: env.memoryGiB },
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      wallSeconds: (finished.getTime() - started.getTime()) / 1000,
      // Peak resident memory of the whole process (model, data, decoding batches), for `npm run bench --full-eval`.
      peakRssBytes: peakRssBytes(),
    },
  };
}

/**
 * The tasks evaluated: SNI's test tasks; the dev split, the same held-out train tasks as every training
 * stage's dev curve (DEV_DEFAULTS: 5%, stratified by category, seed 0), for choices that must not look at
 * test tasks; or "seen": the training tasks themselves (with --exclude-train-sample, only the instances outside
 * their training sample), which tells a model that has not learned its tasks from one that has learned them
 * but does not carry them to new ones.
 */
async function evaluationTasks(o: EvaluateOpts): Promise<SniTask[]> {
  const dir = o.dataDir ? resolve(o.dataDir) : undefined;
  if (o.split === "test") return (await loadSniSplit("test", dir, { warn: false })).tasks;
  const train = (await loadSniSplit("train", dir, { warn: false })).tasks;
  if (o.split === "dev") return trainAndDevTasks(train, DEV_DEFAULTS).dev;
  const n = o.excludeTrainSample;
  const seen = seenTasks(train, n === undefined ? null : { instancesPerTask: n, seed: 0 });
  console.error(
    n === undefined
      ? `[tagi] seen tasks: the ${seen.tasks.length} training tasks, every instance (training may have read them)`
      : `[tagi] seen tasks: ${seen.tasks.length} training tasks on the instances outside their training sample (${n} per task, seed 0); ` +
          `${seen.fullyTrained.length} task(s) with every instance in the sample left out${seen.fullyTrained.length ? ` (e.g. ${seen.fullyTrained.slice(0, 3).join(", ")})` : ""}`,
  );
  return seen.tasks;
}

export async function evaluateCommand(o: EvaluateOpts, cmd: Command): Promise<void> {
  const started = new Date();
  if (o.excludeTrainSample !== undefined && o.split !== "seen") cmd.error("error: --exclude-train-sample applies to --split seen", { exitCode: 2 });
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
    `[tagi] evaluate ${description.kind === "random-tiny" ? `random tiny T5 (seed ${o.seed})` : `${tagi ? "TAGI " : ""}${String(description.path)}`} on SNI, ` +
      `format ${o.format}, ${o.split} tasks, input ${tagi ? "instance (instruction through the generated adapter and fusion)" : o.input}, batch ${o.batchSize}; writing to ${outDir}`,
  );

  const testTasks = await evaluationTasks(o);
  const progress = makeProgress(o.progress);
  let result: SniResult;
  try {
    const common = {
      format: o.format,
      maxInputTokens: o.maxInputTokens,
      maxNewTokens: o.maxNewTokens,
      batchSize: o.batchSize,
      decoding: o.decoding,
      seed: o.seed,
      ...(o.maxInstancesPerTask !== undefined ? { maxInstancesPerTask: o.maxInstancesPerTask } : {}),
      ...(o.tasks ? { tasks: o.tasks } : {}),
      ...(o.dataDir ? { dataDir: resolve(o.dataDir) } : {}),
      taskSet: o.split,
      onProgress: progress.update,
    };
    result = tagi
      ? await evaluateTagiSni(tagi, tokenizer, {
          ...common,
          testTasks,
          ...(o.instructions !== "own" ? { instructions: probeInstructions(testTasks, o.format, o.instructions, o.seed) } : {}),
        })
      : await evaluateSni(model, tokenizer, { ...common, ...(o.split !== "test" ? { testTasks } : {}), input: o.input, runOptions: adapterOptions(o, model) });
  } finally {
    progress.stop();
  }
  const finished = new Date();

  writeTableCsv(taskTableData(result.rows), join(outDir, "per_task.csv"));
  writeTableCsv(categoryTableData(result.rows, { metrics: ["rougeL", "exactMatch"] }), join(outDir, "per_category.csv"));
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
      `  ${fmtSeconds(summary.wallSeconds)} wall, ${result.timing.instancesPerSec.toFixed(2)} instances/s while generating: encoder ${fmtSeconds(result.timing.encodeMs / 1000)}, ` +
        `decoder ${fmtSeconds(result.timing.decodeMs / 1000)} (${result.timing.decoderSteps} steps, ${result.timing.meanRowsPerStep.toFixed(1)} rows each), reference scoring ${fmtSeconds(result.timing.scoreMs / 1000)}, host ${fmtSeconds(result.timing.hostMs / 1000)}`,
      `  compute (${compute.method}, ${compute.format}, lengths as run): ${(compute.flops / 1e12).toFixed(3)} TFLOP, x${compute.relativeToTkInstruct.toFixed(2)} of Tk-Instruct's on these tasks`,
      `  wrote ${outDir}/{per_task.csv, per_category.csv, predictions.jsonl, summary.json}`,
    ].join("\n"),
  );
  lock.release();
}

// ---- P3 held-out (T0's MTest) ----------------------------------------------------------------------------

async function evaluateP3Command(o: EvaluateOpts, started: Date): Promise<void> {
  // Loaded here: the P3 path pulls in the template engine, which SNI evaluations do not need.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { evaluateP3 } = require("../eval/p3-eval") as typeof import("../eval/p3-eval");
  const backend = await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
  console.error(describeBackend(backend));
  const tokenizer = T5Tokenizer.fromFile(tokenizerPath(o));
  const { model, description } = await loadModel(o);
  const outDir = evaluationOutDir(o, started);
  lockFolder(outDir, { what: "evaluate" }); // released when the process exits
  console.error(`[tagi] evaluate on P3 held-out sets (rank classification); writing to ${outDir}`);
  const progress = makeProgress(o.progress);
  const t0 = Date.now();
  let result: Awaited<ReturnType<typeof evaluateP3>>;
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
  writeTableCsv(recordsTableData(result.perTemplate, ["task", "template", "n", "accuracy", "majorityAccuracy", "chanceAccuracy"]), join(outDir, "per_template.csv"));
  writeTableCsv(recordsTableData(result.perTask, ["task", "templates", "meanAccuracy", "medianAccuracy", "majorityAccuracy", "chanceAccuracy"]), join(outDir, "per_task.csv"));
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

