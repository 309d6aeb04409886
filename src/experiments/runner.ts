/**
 * The experiment runner: `npm run experiment -- NAME [--seed S] [--scale tiny|small]`.
 *
 * An experiment (experiments/NAME.json) is one row of one of the paper's tables: a method, the training
 * stage that produces it (a stage config of configs/<scale>/ with overrides), and what to evaluate (SNI-103
 * in Def and/or Def + 2 Pos, optionally an instruction probe). The scale's settings
 * (configs/<scale>/experiments.json) fix what every experiment shares: the base model, teachers and
 * stage-1 checkpoint they start from, the number of training steps, and the evaluation sample.
 *
 * A run trains into runs/<scale>/experiments/NAME/seed-S/ and writes results/NAME/<scale>/seed-S/:
 *   experiment.json   spec, scale settings, seed, commands, commit, backend, wall time, metrics per format
 *                     (overall, per category), compute (FLOPs, and relative to Tk-Instruct)
 *   eval-<format>/    per_task.csv, per_category.csv, predictions.jsonl, summary.json of each evaluation
 *   log.jsonl         the training curve (every loss term per step), train-run.json the stage's run record
 * Each step runs the project's own CLI in a child process, so each result file also records the exact
 * command. The seed is the training seed (data order, dropout, generator init); the evaluation sample is
 * fixed by the scale so that seeds measure training variance only. Same seed, same backend: same metrics.
 */
import { projectRelative } from "../project-paths";
import { lockFolder } from "../train/folder-lock";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeJsonAtomic } from "../train/checkpoint";
import { applySets } from "../train/config-sets";
import { devLossEnds } from "../train/dev-loss";
import { trainedFormat } from "../train/seq2seq";
import type { PromptFormat } from "../text/prompts";
import { onlyEvaluationDiffers, protocolDifferences, recordProtocol, scaleProtocol, type RecordProtocol } from "./protocol";
import { ensurePrepared, gitCommit, runCli, setStrings } from "./prepare";
import { defaultScale, loadExperiment, loadScale, PROJECT_ROOT, type AdapterAnalysis, type ExperimentSpec, type ScaleSettings } from "./spec";

export * from "./spec";
export * from "./prepare";

export interface ExperimentRecord {
  experiment: ExperimentSpec;
  scale: ScaleSettings;
  /** What the numbers depend on besides experiment and seed (src/experiments/protocol.ts); absent in older records. */
  protocol?: RecordProtocol;
  seed: number;
  command: string;
  steps: { label: string; command: string; seconds: number; log: string }[];
  commit: string | null;
  backend: string | null;
  startedAt: string;
  wallSeconds: number;
  /** Seconds of training in all formats (null: nothing trained, or a shared model without a time). */
  trainSeconds: number | null;
  /** Steps of the first format's model. */
  trainSteps: number | null;
  /**
   * Per format: the model's training (command, seconds, logged steps, the last dev-loss point: what steps and
   * learning rates are chosen on); shared: a prepare stage's model (the
   * logit teacher), trained once for every seed and experiment. Absent in records made before models were
   * trained per format.
   */
  training?: Partial<Record<PromptFormat, { command: string; seconds: number | null; steps: number | null; devLoss: { step: number; loss: number } | null; shared: boolean }>>;
  /** Per format ("def", "def+2pos"). */
  metrics: Record<
    string,
    {
      rougeL: number;
      exactMatch: number;
      referenceNll: number | null;
      instances: number;
      tasks: number;
      perCategory: Record<string, { rougeL: number; exactMatch: number }>;
      /** 95% bootstrap CI of ROUGE-L over instances (absent in records made before it was measured). */
      rougeLCi?: [number, number];
      /** Sanity floors on the same instances (ROUGE-L; absent in older records). */
      floors?: { name: string; rougeL: number; rougeLCi: [number, number] }[];
    }
  >;
  /** The "adapters" analysis (tagi adapters --out adapters.json). */
  adapters: AdapterAnalysis | null;
  /**
   * P3 held-out: mean accuracy over tasks (x100), and per task; the majority-class accuracy of the same
   * examples (x100; absent in records made before it was measured); the row sample (absent: the first rows of
   * each file, before sampling was seeded).
   */
  p3: {
    accuracy: number;
    perTask: Record<string, number>;
    examples: number;
    majorityAccuracy?: number;
    majorityPerTask?: Record<string, number>;
    /** a uniform guess on the same examples (x100) */
    chanceAccuracy?: number;
    sample?: { kind: "all" } | { kind: "seeded"; seed: number; perTemplate: number };
  } | null;
  compute: Record<string, { method: string; flops: number; relativeToTkInstruct: number; relativeAt100Instances: number }>;
  files: string[];
}

/** The evaluations of an experiment that `reevaluate` can redo separately. */
export const EVALUATION_PARTS = ["sni", "p3", "adapters"] as const;
export type EvaluationPart = (typeof EVALUATION_PARTS)[number];

/** Parses `--reevaluate [parts]`: no value means every part; else a comma list of EVALUATION_PARTS. */
export function parseEvaluationParts(value: string | true): EvaluationPart[] {
  if (value === true) return [...EVALUATION_PARTS];
  const parts = value.split(",").map((x) => x.trim()).filter((x) => x !== "");
  const bad = parts.filter((x) => !(EVALUATION_PARTS as readonly string[]).includes(x));
  if (bad.length > 0 || parts.length === 0) throw new Error(`--reevaluate: unknown part(s) ${JSON.stringify(bad.length > 0 ? bad : value)} (valid: ${EVALUATION_PARTS.join(", ")}, comma-separated)`);
  return parts as EvaluationPart[];
}

export interface RunExperimentOptions {
  seed?: number;
  scale?: string;
  /** Rerun even if results/NAME/<scale>/seed-S/experiment.json exists. */
  force?: boolean;
  /**
   * Redo the evaluations of a finished experiment, with its trained model (e.g. after the evaluation gained a
   * metric): `true` redoes all of them, a list only those parts (the others are carried over from the previous
   * record, as are the training step and its time).
   */
  reevaluate?: boolean | readonly EvaluationPart[];
  /** Where progress lines go (default: stdout). */
  log?: (line: string) => void;
  /** Results root (default <project>/results). */
  resultsDir?: string;
  /** Runs root (default <project>/runs). */
  runsDir?: string;
  /**
   * Evaluate only these formats (of those the experiment names and the scale allows); null or absent: all.
   * A record made with fewer formats than a later run asks for is completed (the missing formats are trained
   * and evaluated, the others kept), not redone: a Def + 2 Pos column can be filled before the Def models exist.
   */
  formats?: readonly PromptFormat[] | null;
}

/** Where experiment results go: $TAGI_RESULTS_DIR (the test suite points it at a temporary folder), else results/. */
export function resultsRoot(): string {
  return process.env.TAGI_RESULTS_DIR ? path.resolve(process.env.TAGI_RESULTS_DIR) : path.join(PROJECT_ROOT, "results");
}

export function resultDir(name: string, scale: string, seed: number, resultsDir = resultsRoot()): string {
  return path.join(resultsDir, name, scale, `seed-${seed}`);
}

function runDir(name: string, scale: string, seed: number, runsDir = process.env.TAGI_RUNS_DIR ? path.resolve(process.env.TAGI_RUNS_DIR) : path.join(PROJECT_ROOT, "runs")): string {
  return path.join(runsDir, scale, "experiments", name, `seed-${seed}`);
}

/** A format in file names: "def", "def2pos". */
export const formatSlug = (f: PromptFormat): string => f.replace("+", "");

/**
 * The training curve of an experiment's model for `format` in its results folder: log-<format>.jsonl (one
 * model per format), or log.jsonl in records made before models were trained per format.
 */
export function trainingLogFile(resDir: string, format: PromptFormat): string | null {
  for (const f of [`log-${formatSlug(format)}.jsonl`, "log.jsonl"]) if (fs.existsSync(path.join(resDir, f))) return path.join(resDir, f);
  return null;
}

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, "utf8")) as T;

function scaleLogitTeacher(scale: ScaleSettings, format: PromptFormat): string {
  const t = scale.logitTeachers[format];
  if (!t) throw new Error(`configs/${scale.scale}/experiments.json has no logitTeachers.${format}, the meta-trained ${format} model`);
  return t;
}

/** The formats a run evaluates: those the experiment names, of those the scale allows and `only` (if given) lists. */
export function experimentFormats(spec: ExperimentSpec, scale: ScaleSettings, only: readonly PromptFormat[] | null): PromptFormat[] {
  return spec.evaluate.formats.filter((f) => (!scale.formats || scale.formats.includes(f)) && (!only || only.includes(f)));
}

/** The format an analysis reads: the first this run evaluates (--formats def+2pos analyses the Def + 2 Pos generator). */
export function analysisFormat(spec: ExperimentSpec, formats: readonly PromptFormat[]): PromptFormat {
  return formats[0] ?? spec.evaluate.formats[0] ?? "def";
}

/**
 * The config overrides of an experiment's training stage for one format: the scale's, the experiment's, the
 * format, the format's logit teacher in place of the config's (where the stage distils from one), the seed
 * (data order, dropout; for TAGI also the generator's init) and the scale's steps.
 */
export function stageSets(spec: ExperimentSpec, scale: ScaleSettings, format: PromptFormat, seed: number): Record<string, unknown> {
  if (!spec.stage) throw new Error(`experiment ${spec.name} has no training stage`);
  const staged = stagedConfig(spec, scale, { ...(scale.set ?? {}), ...spec.stage.set });
  const distils = spec.stage.command === "finetune" && typeof staged["teacher"] === "string";
  const teacher = distils ? { teacher: scaleLogitTeacher(scale, format) } : {};
  // An experiment that sets teacherLogits to null runs its logit teacher live (the official KL variant counts
  // padded positions, which the cache does not hold).
  const live = spec.stage.set["teacherLogits"] === null;
  const cache = distils && !live ? scale.teacherLogitCaches?.[format] : undefined;
  return {
    ...(scale.set ?? {}),
    ...spec.stage.set,
    format,
    ...teacher,
    ...(cache ? { teacherLogits: cache } : {}),
    "train.seed": seed,
    ...(spec.stage.command === "finetune" ? { initSeed: seed } : {}),
    ...(scale.steps !== null ? { "train.steps": scale.steps } : {}),
  };
}

/** The experiment's training-stage config file with `sets` applied. */
function stagedConfig(spec: ExperimentSpec, scale: ScaleSettings, sets: Record<string, unknown>): Record<string, unknown> {
  const configText = fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale.scale, spec.stage!.config), "utf8");
  return applySets(JSON.parse(configText) as Record<string, unknown>, setStrings(sets));
}

/**
 * Whether the experiment's training stage reads the scale's logit cache of `format`: it distils with L_kl > 0
 * from the cache (not live). A run with L_kl off (the category-scaling rows, w/o L_kl) or a baseline without a
 * logit teacher never opens it, and the Def + 2 Pos cache takes over half an hour of a 2-core machine to build
 * (32.8 min alone, far longer beside training).
 */
export function readsLogitCache(spec: ExperimentSpec, scale: ScaleSettings, format: PromptFormat): boolean {
  if (spec.stage?.command !== "finetune") return false;
  const sets = stageSets(spec, scale, format, 0);
  if (typeof sets["teacherLogits"] !== "string") return false;
  const staged = stagedConfig(spec, scale, sets);
  const losses = staged["losses"] as { kl?: unknown } | undefined;
  return typeof losses?.kl === "number" && losses.kl > 0;
}

/**
 * Runs experiment `name` at `scale` with `seed` (training, then every evaluation) and returns its record;
 * an existing record is returned as is unless `force`. Probes run the experiment they use first if needed.
 */
export async function runExperiment(name: string, opts: RunExperimentOptions = {}): Promise<ExperimentRecord> {
  const spec = loadExperiment(name);
  const scale = loadScale(opts.scale ?? defaultScale());
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`experiment ${name}: seed must be an integer >= 0, got ${seed}`);
  const log = opts.log ?? ((l: string) => console.log(l));
  const resDir = resultDir(name, scale.scale, seed, opts.resultsDir);
  const recordFile = path.join(resDir, "experiment.json");
  const previous = fs.existsSync(recordFile) ? readJson<ExperimentRecord>(recordFile) : null;
  const redo = new Set<EvaluationPart>(opts.reevaluate === true ? EVALUATION_PARTS : opts.reevaluate ? opts.reevaluate : EVALUATION_PARTS);
  if (Array.isArray(opts.reevaluate) && opts.reevaluate.length === 0) throw new Error(`experiment ${name}: reevaluate lists no evaluation (valid: ${EVALUATION_PARTS.join(", ")})`);
  if (opts.reevaluate && !previous) throw new Error(`experiment ${name} (${scale.scale}, seed ${seed}): nothing to re-evaluate (no ${path.relative(PROJECT_ROOT, recordFile)})`);
  // A record made under another protocol (a scale whose config or artifacts have moved on since) is not done:
  // it is trained again; re-evaluating it is sound only when just the evaluation settings changed.
  const superseded = previous ? protocolDifferences(recordProtocol(previous), scaleProtocol(scale)) : [];
  if (opts.reevaluate && superseded.length && !onlyEvaluationDiffers(superseded)) {
    throw new Error(
      `experiment ${name} (${scale.scale}, seed ${seed}): ${path.relative(PROJECT_ROOT, recordFile)} was made under another protocol ` +
        `(${superseded.slice(0, 4).join("; ")}${superseded.length > 4 ? "; ..." : ""}): its model is not the one configs/${scale.scale} trains now, so re-evaluating it would mix protocols; run it again without --reevaluate`,
    );
  }
  const formats = experimentFormats(spec, scale, opts.formats ?? null);
  if (!formats.length && !spec.analysis) {
    throw new Error(`experiment ${name}: no format to evaluate: it names ${spec.evaluate.formats.join(", ")}, the ${scale.scale} scale evaluates ${scale.formats?.join(", ") ?? "every format"}${opts.formats ? `, --formats asks for ${opts.formats.join(", ")}` : ""}`);
  }
  // A record of today's protocol that lacks some of these formats (made with --formats) is completed.
  const missing = formats.filter((f) => !spec.analysis && previous && !previous.metrics[f]);
  const extending = !opts.force && !opts.reevaluate && previous && superseded.length === 0 && missing.length > 0 ? previous : null;
  if (!opts.force && !opts.reevaluate && previous && superseded.length === 0 && !extending) {
    log(`[experiment] ${name} (${scale.scale}, seed ${seed}): already done, ${path.relative(PROJECT_ROOT, recordFile)}`);
    return previous;
  }
  if (extending) log(`[experiment] ${name} (${scale.scale}, seed ${seed}): ${path.relative(PROJECT_ROOT, recordFile)} has ${Object.keys(extending.metrics).join(", ") || "no format"}; adding ${missing.join(", ")}`);
  if (!opts.reevaluate && previous && superseded.length) {
    log(`[experiment] ${name} (${scale.scale}, seed ${seed}): ${path.relative(PROJECT_ROOT, recordFile)} was made under another protocol (${superseded.slice(0, 4).join("; ")}${superseded.length > 4 ? "; ..." : ""}): running it again`);
  }
  const started = new Date();
  const t0 = performance.now();
  const steps: ExperimentRecord["steps"] = extending ? [...extending.steps] : [];
  const rel = (p: string) => path.relative(PROJECT_ROOT, p);
  const step = async (label: string, args: string[]) => {
    const logFile = path.join(resDir, `${label}.log`);
    log(`[experiment] ${name} (${scale.scale}, seed ${seed}): ${label}: tagi ${args.join(" ")}`);
    const ts = performance.now();
    const code = await runCli(args, logFile, log);
    const seconds = (performance.now() - ts) / 1000;
    steps.push({ label, command: `tagi ${args.join(" ")}`, seconds, log: path.basename(logFile) });
    if (code !== 0) {
      const tail = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join("\n    ");
      throw new Error(`experiment ${name} (${scale.scale}, seed ${seed}): step '${label}' failed (exit ${code}); see ${rel(logFile)}:\n    ${tail}`);
    }
    return seconds;
  };
  // P3 is answered by the model of the experiment's first format; a run whose --formats leave that format out
  // leaves P3 to the run that completes the record with it.
  const p3Format: PromptFormat = spec.evaluate.formats[0] ?? "def";
  const p3Now = spec.evaluate.p3 && formats.includes(p3Format);
  // Only the shared stages of the formats this run needs (the adapters analysis reads the generator of
  // analysisFormat: with --formats def+2pos, not the Def stages, whose meta-training alone takes hours at small).
  await ensurePrepared(scale, log, { formats: [...new Set([...formats, ...(spec.analysis ? [analysisFormat(spec, formats)] : [])])], logitCaches: formats.filter((f) => readsLogitCache(spec, scale, f)) });
  // One process per (experiment, scale, seed): a second runner (e.g. a parallel grid) is refused, naming the
  // first; a lock left by a killed runner is taken over. The lock sits beside the folder, which is replaced.
  const lock = lockFolder(resDir, { what: `experiment ${name} (${scale.scale}, seed ${seed})`, lockFile: `${resDir}.lock`, log });
  try {
    return await runLocked();
  } finally {
    lock.release();
  }
  async function runLocked(): Promise<ExperimentRecord> {
    // A re-evaluation keeps the folder (the training curve, the evaluations not redone) and overwrites the rest.
    if (!opts.reevaluate && !extending) fs.rmSync(resDir, { recursive: true, force: true });
    fs.mkdirSync(resDir, { recursive: true });

    // 1. Training, one model per prompt format as in the paper (Def models for the Def column, Def + 2 Pos
    //    models for the other), or the trained model of the experiment a probe uses, or a shared model.
    const training: NonNullable<ExperimentRecord["training"]> = { ...(extending?.training ?? {}) };
    const models = new Map<PromptFormat, string[]>();
    const modelFor = async (format: PromptFormat): Promise<string[]> => {
      const known = models.get(format);
      if (known) return known;
      const args = await prepareModel(format);
      models.set(format, args);
      return args;
    };
    const copyTraining = (dir: string, format: PromptFormat) => {
      const slug = formatSlug(format);
      for (const [from, to] of [["log.jsonl", `log-${slug}.jsonl`], ["run.json", `train-run-${slug}.json`]] as const) {
        if (fs.existsSync(path.join(dir, from))) fs.copyFileSync(path.join(dir, from), path.join(resDir, to));
      }
      if (!fs.existsSync(path.join(dir, "log.jsonl"))) return { steps: null, devLoss: null };
      const lines = fs.readFileSync(path.join(dir, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; eval?: Record<string, number> });
      return { steps: lines.length, devLoss: devLossEnds(lines)?.last ?? null };
    };
    async function prepareModel(format: PromptFormat): Promise<string[]> {
      const slug = formatSlug(format);
      if (spec.stage) {
        const out = path.join(runDir(name, scale.scale, seed, opts.runsDir), slug);
        // --force retrains from scratch; otherwise an interrupted run resumes from its checkpoint, but only one made
        // by the same stage command (a run folder left by another config, e.g. other steps, is started over).
        const reuse = opts.reevaluate && (fs.existsSync(path.join(out, "model")) || fs.existsSync(path.join(out, "adapter")));
        if (opts.reevaluate && !reuse) throw new Error(`experiment ${name} (${scale.scale}, seed ${seed}): no trained ${format} model in ${rel(out)} to re-evaluate`);
        const argsFile = path.join(out, "experiment-stage.json");
        const configFile = path.join(PROJECT_ROOT, "configs", scale.scale, spec.stage.config);
        // The config file's content is part of the key: a run folder made under an edited config starts over
        // instead of failing to resume.
        const configText = fs.readFileSync(configFile, "utf8");
        // So are the shared stages' run records: a run trained on a base or teacher that has since been rebuilt
        // starts over too.
        const prepared = scale.prepare.map((p) => {
          const f = path.join(PROJECT_ROOT, p.out, "run.json");
          return fs.existsSync(f) ? createHash("sha256").update(fs.readFileSync(f)).digest("hex").slice(0, 16) : null;
        });
        const sets = stageSets(spec, scale, format, seed);
        // And the backend asked for: a run trained on wasm is not continued on tensorflow (their float sums
        // differ in order, so one seed would give two curves).
        const backend = process.env.TAGI_BACKEND ?? "auto";
        const stageKey = JSON.stringify({ command: spec.stage.command, config: spec.stage.config, configText, prepared, sets, backend });
        const sameStage = fs.existsSync(argsFile) && fs.readFileSync(argsFile, "utf8") === stageKey;
        if (!reuse && (opts.force || !sameStage)) fs.rmSync(out, { recursive: true, force: true });
        fs.mkdirSync(out, { recursive: true });
        if (!reuse) fs.writeFileSync(argsFile, stageKey);
        const args = [spec.stage.command, "--config", rel(configFile), "--out", rel(out), "--resume", ...setStrings(sets).flatMap((x) => ["--set", x])];
        let seconds: number | null;
        let command = `tagi ${args.join(" ")}`;
        if (reuse) {
          const trained = previous!.steps.find((x) => x.label === `train-${slug}` || x.label === "train");
          if (trained) steps.push(trained);
          seconds = previous!.training?.[format]?.seconds ?? previous!.trainSeconds;
          command = trained?.command ?? command;
          log(`[experiment] ${name} (${scale.scale}, seed ${seed}): re-evaluating the ${format} model trained by: ${command}`);
        } else seconds = await step(`train-${slug}`, args);
        training[format] = { command, seconds, ...copyTraining(out, format), shared: false };
        return spec.stage.command === "finetune"
          ? ["--tagi", rel(path.join(out, "model"))]
          : fs.existsSync(path.join(out, "adapter"))
            ? ["--model", scale.base, "--adapter", rel(path.join(out, "adapter"))]
            : ["--model", rel(path.join(out, "model"))];
      }
      if (spec.uses) {
        await runExperiment(spec.uses, { ...opts, seed, scale: scale.scale, force: false, reevaluate: false });
        return ["--tagi", rel(path.join(runDir(spec.uses, scale.scale, seed, opts.runsDir), slug, "model"))];
      }
      if (spec.model === "logit-teacher") {
        // The shared meta-trained model: its training (a prepare stage) is recorded, not repeated; every seed
        // evaluates the same model.
        const model = scaleLogitTeacher(scale, format);
        const dir = path.dirname(path.join(PROJECT_ROOT, model));
        const run = fs.existsSync(path.join(dir, "run.json")) ? readJson<{ command?: string | string[]; training?: { trainSeconds?: number } }>(path.join(dir, "run.json")) : null;
        training[format] = { command: (Array.isArray(run?.command) ? run.command.join(" ") : run?.command) ?? "(no run.json)", seconds: run?.training?.trainSeconds ?? null, ...copyTraining(dir, format), shared: true };
        return ["--model", model];
      }
      // merged into the model the teachers sit on (their manifest's base), reading what they read
      if (spec.method === "mean-adapter") return ["--mean-adapter", scale.teachers];
      return ["--model", scale.base];
    }

    // 2. Evaluations.
    // A completed record keeps its P3 and adapter parts and its formats' SNI metrics; it adds the missing formats.
    const keep = (part: EvaluationPart): ExperimentRecord | null => (extending ?? (opts.reevaluate && !redo.has(part) ? previous : null));
    const kept = extending ? null : keep("sni");
    const metrics: ExperimentRecord["metrics"] = kept ? kept.metrics : { ...(extending?.metrics ?? {}) };
    const compute: ExperimentRecord["compute"] = kept ? kept.compute : { ...(extending?.compute ?? {}) };
    let backend: string | null = kept ? kept.backend : (extending?.backend ?? null);
    if (kept) log(`[experiment] ${name} (${scale.scale}, seed ${seed}): SNI metrics carried over from the previous record`);
    for (const format of spec.analysis || kept ? [] : extending ? missing : formats) {
      const dir = path.join(resDir, `eval-${formatSlug(format)}`);
      const e = scale.eval;
      const modelArgs = await modelFor(format);
      const readsInstanceOnly = modelArgs[0] === "--tagi";
      // Each format is evaluated with the model trained on it; a model of another format here (e.g. a
      // logitTeachers entry pointing at the wrong folder) is a configuration error, not a cross-format result.
      const trained = modelArgs[0] === "--tagi" || modelArgs[0] === "--model" ? trainedFormat(path.join(PROJECT_ROOT, modelArgs[1]!)) : null;
      if (trained && trained.format !== format) throw new Error(`experiment ${name} (${scale.scale}): ${modelArgs[1]} was trained on ${trained.format} prompts (${trained.record}), not ${format}`);
      const args = [
        "evaluate",
        ...modelArgs,
        "--benchmark", "sni",
        "--format", format,
        "--max-input-tokens", String(readsInstanceOnly ? e.maxInstanceTokens : e.maxInputTokens[format]),
        "--max-new-tokens", String(e.maxNewTokens),
        "--batch-size", String(e.batchSize),
        "--seed", String(e.sampleSeed),
        ...(e.maxInstancesPerTask !== null ? ["--max-instances-per-task", String(e.maxInstancesPerTask)] : []),
        ...(spec.evaluate.instructions !== "own" ? ["--instructions", spec.evaluate.instructions] : []),
        "--out", rel(dir),
      ];
      await step(`eval-${formatSlug(format)}`, args);
      const s = readJson<{
        overall: { rougeL: number; exactMatch: number };
        referenceNll?: { overall: number } | null;
        intervals?: { rougeL: { lo: number; hi: number } };
        floors?: { name: string; rougeL: number; rougeLCi: { lo: number; hi: number } }[];
        counts: { instances: number; tasks: number };
        perCategory: Record<string, { rougeL: number; exactMatch: number }>;
        compute: { method: string; flops: number; relativeToTkInstruct: number; relativeAt100Instances: number };
        backend: unknown;
      }>(path.join(dir, "summary.json"));
      metrics[format] = {
        rougeL: s.overall.rougeL,
        exactMatch: s.overall.exactMatch,
        referenceNll: s.referenceNll?.overall ?? null,
        instances: s.counts.instances,
        tasks: s.counts.tasks,
        perCategory: Object.fromEntries(Object.entries(s.perCategory).map(([c, v]) => [c, { rougeL: v.rougeL, exactMatch: v.exactMatch }])),
        ...(s.intervals ? { rougeLCi: [s.intervals.rougeL.lo, s.intervals.rougeL.hi] as [number, number] } : {}),
        ...(s.floors ? { floors: s.floors.map((f) => ({ name: f.name, rougeL: f.rougeL, rougeLCi: [f.rougeLCi.lo, f.rougeLCi.hi] as [number, number] })) } : {}),
      };
      compute[format] = { method: s.compute.method, flops: s.compute.flops, relativeToTkInstruct: s.compute.relativeToTkInstruct, relativeAt100Instances: s.compute.relativeAt100Instances };
      backend = typeof s.backend === "string" ? s.backend : JSON.stringify(s.backend);
    }

    let adapters: AdapterAnalysis | null = null;
    if (spec.analysis === "adapters" && keep("adapters")?.adapters) adapters = keep("adapters")!.adapters;
    else if (spec.analysis === "adapters") {
      const format = analysisFormat(spec, formats);
      const modelArgs = await modelFor(format);
      if (modelArgs[0] !== "--tagi") throw new Error(`experiment ${name}: the adapters analysis needs a TAGI model (a finetune stage or 'uses')`);
      const file = path.join(resDir, "adapters.json");
      await step("adapters", ["adapters", "--tagi", modelArgs[1]!, "--teachers", scale.teachers, "--format", format, "--out", rel(file)]);
      adapters = readJson<AdapterAnalysis>(file);
    }
    let p3: ExperimentRecord["p3"] = null;
    if (spec.evaluate.p3 && keep("p3")?.p3) p3 = keep("p3")!.p3;
    else if (spec.evaluate.p3 && !p3Now) log(`[experiment] ${name} (${scale.scale}, seed ${seed}): P3 not evaluated now: it is answered by the ${p3Format} model, which this run's formats leave out`);
    else if (spec.evaluate.p3) {
      const dir = path.join(resDir, "eval-p3");
      const sampleArgs = ["--max-examples-per-template", String(scale.eval.p3MaxExamplesPerTemplate), "--seed", String(scale.eval.sampleSeed)];
      // P3's prompts are promptsource templates, neither SNI format: the first format's model answers them.
      const modelArgs = await modelFor(p3Format);
      await step("eval-p3", ["evaluate", ...modelArgs, "--benchmark", "p3", ...sampleArgs, "--out", rel(dir)]);
      const s = readJson<{
        overall: { accuracy: number; majorityAccuracy: number; chanceAccuracy: number };
        counts: { examples: number };
        config: { sample: NonNullable<ExperimentRecord["p3"]>["sample"] };
      }>(path.join(dir, "summary.json"));
      const perTask: Record<string, number> = {};
      const majorityPerTask: Record<string, number> = {};
      const csv = fs.readFileSync(path.join(dir, "per_task.csv"), "utf8").trim().split("\n");
      const header = csv[0]!.split(",");
      for (const line of csv.slice(1)) {
        const cells = line.split(",");
        const task = cells[header.indexOf("task")]!;
        perTask[task] = 100 * Number(cells[header.indexOf("meanAccuracy")]);
        majorityPerTask[task] = 100 * Number(cells[header.indexOf("majorityAccuracy")]);
      }
      p3 = { accuracy: 100 * s.overall.accuracy, perTask, examples: s.counts.examples, majorityAccuracy: 100 * s.overall.majorityAccuracy, majorityPerTask, chanceAccuracy: 100 * s.overall.chanceAccuracy, sample: s.config.sample };
    }

    const record: ExperimentRecord = {
      experiment: spec,
      scale,
      protocol: scaleProtocol(scale),
      seed,
      command: `npm run experiment -- ${name} --seed ${seed} --scale ${scale.scale}`,
      steps,
      commit: gitCommit(),
      backend,
      startedAt: extending?.startedAt ?? started.toISOString(),
      wallSeconds: (extending?.wallSeconds ?? 0) + (performance.now() - t0) / 1000,
      trainSeconds: Object.values(training).some((t) => t.seconds !== null) ? Object.values(training).reduce((a, t) => a + (t.seconds ?? 0), 0) : null,
      trainSteps: Object.values(training)[0]?.steps ?? null,
      training,
      metrics,
      compute,
      p3,
      adapters,
      files: [...new Set([...fs.readdirSync(resDir), "experiment.json"])].sort(),
    };
    writeJsonAtomic(recordFile, projectRelative(record));
    const summary = [...Object.entries(metrics).map(([f, m]) => `${f} ROUGE-L ${m.rougeL.toFixed(2)}`), ...(p3 ? [`P3 accuracy ${p3.accuracy.toFixed(2)}`] : [])].join(", ");
    log(`[experiment] ${name} (${scale.scale}, seed ${seed}): ${summary}; ${record.wallSeconds.toFixed(0)} s; ${rel(recordFile)}`);
    return record;
  }
}
