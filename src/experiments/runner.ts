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
import { artifactsIndex, publishArtifact, verifyArtifact, type ArtifactDtype } from "../artifacts/publish";
import { lockFolder } from "../train/folder-lock";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeJsonAtomic } from "../train/checkpoint";
import { configDifferences } from "../train/loop";
import { applySets } from "../train/config-sets";
import { devLossEnds } from "../train/dev-loss";
import { trainedFormat } from "../train/seq2seq";
import { parsePretrainBaseConfig } from "../train/base-model";
import { parseMetatrainConfig } from "../train/metatrain";
import { parseTeachersConfig } from "../train/teachers";
import { parseFinetuneConfig, parsePretrainHyperConfig } from "../tagi/train";
import { INSTRUCTION_PROBES, type InstructionProbe } from "../tagi/probes";
import type { PromptFormat } from "../text/prompts";
import type { SimilarityRow } from "../tagi/probes";
import { onlyEvaluationDiffers, protocolDifferences, recordProtocol, scaleProtocol, type RecordProtocol } from "./protocol";

/** What `tagi adapters` writes. */
export interface AdapterAnalysis {
  similarity: SimilarityRow[];
  /** Seconds to encode one instruction and generate its adapter (mean over the instructions used). */
  generateSeconds: number;
  /** Seconds one parameter teacher took to train (mean over teachers, from the teachers' manifest). */
  teacherSeconds: number;
  teacherSteps: number;
  instructions: number;
  /** The prompt format of the generator analysed (absent in records made before it was stored). */
  format?: PromptFormat;
}

export const PROJECT_ROOT = path.resolve(__dirname, "..", "..");
const EXPERIMENTS_DIR = path.join(PROJECT_ROOT, "experiments");

export type ExperimentMethod = "no-ft" | "tk-instruct" | "tk-instruct-lora" | "hypter" | "hint" | "tagi" | "mean-adapter";
export type ExperimentTable = "main" | "ablation" | "probe" | "sensitivity" | "scaling";

export interface ExperimentSpec {
  name: string;
  description: string;
  method: ExperimentMethod;
  /** Which results table the experiment is a row of, and the row's label there. */
  table: ExperimentTable;
  row: string;
  /** The training stage (none for No FT, the mean adapter and probes). */
  stage: { command: "metatrain" | "finetune"; config: string; set: Record<string, unknown> } | null;
  /** Probes: the experiment whose trained model (same seed) is evaluated. */
  uses: string | null;
  /**
   * "logit-teacher": no training of its own; evaluates the scale's shared meta-trained model of each format
   * (ScaleSettings.logitTeachers), the model TAGI distils from. The Tk-Instruct row is that model, as in the
   * paper, so the teacher is never trained longer than the row it is compared with.
   */
  model: "logit-teacher" | null;
  /** "adapters": instead of SNI scores, generated-versus-teacher adapter similarity and generation time. */
  analysis: "adapters" | null;
  /** p3: also rank-classify P3's held-out tasks (models that read the whole prompt; not TAGI students yet). */
  evaluate: { formats: PromptFormat[]; instructions: InstructionProbe; p3: boolean };
}

/**
 * A shared stage of a scale. With `publish`, its finished output is copied to a committed artifact folder
 * (src/artifacts/publish.ts) which later stages and experiments read; `done` is then that folder's
 * artifact.json, so a fresh checkout with the artifacts committed trains nothing.
 */
export interface PrepareStage {
  command: string;
  config: string;
  out: string;
  done: string;
  set?: Record<string, unknown>;
  /** `earlier`: prepare outs this stage continued (name -> run folder), whose records the artifact carries. */
  publish?: { to: string; dtype: ArtifactDtype; earlier?: Record<string, string> };
}

export interface ScaleSettings {
  scale: string;
  description: string;
  /** Shared prerequisite stages (base model, logit teacher, parameter teachers, stage 1), run when `done` is missing. */
  prepare: PrepareStage[];
  /**
   * The meta-trained model of each prompt format (a prepare stage's model folder): the Tk-Instruct row and the
   * logit teacher of every finetune stage trained on that format (its config's `teacher` is replaced).
   */
  logitTeachers: Partial<Record<PromptFormat, string>>;
  /**
   * The logit teacher's cache of each format (`tagi teacher-logits`, a prepare stage): every stage that
   * distils reads it (config teacherLogits) instead of running the teacher. Absent: teachers run live.
   */
  teacherLogitCaches?: Partial<Record<PromptFormat, string>>;
  /** Base model every experiment starts from (No FT evaluates it). */
  base: string;
  /** Parameter teachers (for the mean-adapter baseline). */
  teachers: string;
  /** Training steps of every experiment's stage (null: the stage config's). */
  steps: number | null;
  /** Config overrides applied to every experiment's stage (e.g. a smaller batch), before the experiment's own. */
  set: Record<string, unknown>;
  /** Seeds the results tables expect. */
  seeds: number[];
  /** Evaluate only these formats (of those an experiment names); null: all. The tiny scale skips Def + 2 Pos. */
  formats: PromptFormat[] | null;
  eval: {
    maxInstancesPerTask: number | null;
    /** Source length limit per format for models that read the whole prompt. */
    maxInputTokens: Record<PromptFormat, number>;
    /** Source length limit for models that read the instance only (TAGI, HINT, Hypter). */
    maxInstanceTokens: number;
    maxNewTokens: number;
    batchSize: number;
    /** Seed of the instance sample (and of the instruction probes' shuffles): the same for every run. */
    sampleSeed: number;
    /** P3: examples per template. */
    p3MaxExamplesPerTemplate: number;
    /** Why the methods' token budgets differ, when they do (tokenBudgetProblems); absent: they must be equal. */
    unequalBudgets?: string;
  };
}

const METHODS: readonly ExperimentMethod[] = ["no-ft", "tk-instruct", "tk-instruct-lora", "hypter", "hint", "tagi", "mean-adapter"];

/** Names of the experiments in experiments/ (sorted). */
export function listExperiments(): string[] {
  if (!fs.existsSync(EXPERIMENTS_DIR)) return [];
  return fs
    .readdirSync(EXPERIMENTS_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Reads and checks experiments/NAME.json; an unknown name is an error listing the known ones. */
export function loadExperiment(name: string): ExperimentSpec {
  const file = path.join(EXPERIMENTS_DIR, `${name}.json`);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || !fs.existsSync(file)) {
    throw new Error(`unknown experiment '${name}'. Known experiments: ${listExperiments().join(", ")}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const problems: string[] = [];
  const known = ["description", "method", "table", "row", "stage", "uses", "model", "evaluate", "analysis"];
  const analysis = (raw["analysis"] ?? null) as "adapters" | null;
  if (analysis !== null && analysis !== "adapters") problems.push(`analysis must be "adapters" or absent, got ${JSON.stringify(analysis)}`);
  for (const k of Object.keys(raw)) if (!known.includes(k)) problems.push(`unknown key '${k}' (valid: ${known.join(", ")})`);
  const method = raw["method"] as ExperimentMethod;
  if (!METHODS.includes(method)) problems.push(`method must be one of ${METHODS.join(", ")}, got ${JSON.stringify(method)}`);
  const table = raw["table"] as ExperimentTable;
  if (!["main", "ablation", "probe", "sensitivity", "scaling"].includes(table)) problems.push(`table must be main, ablation, probe, sensitivity or scaling, got ${JSON.stringify(table)}`);
  const stage = (raw["stage"] ?? null) as ExperimentSpec["stage"] | null;
  if (stage !== null && (!["metatrain", "finetune"].includes(stage.command) || typeof stage.config !== "string")) {
    problems.push(`stage must be {command: metatrain|finetune, config: FILE, set?: {...}}, got ${JSON.stringify(stage)}`);
  }
  const uses = (raw["uses"] ?? null) as string | null;
  if (uses !== null && !listExperiments().includes(uses)) problems.push(`uses: unknown experiment '${uses}'`);
  const model = (raw["model"] ?? null) as "logit-teacher" | null;
  if (model !== null && model !== "logit-teacher") problems.push(`model must be "logit-teacher" or absent, got ${JSON.stringify(model)}`);
  if (model !== null && (stage !== null || uses !== null)) problems.push("model: a shared model is evaluated as is; give either model, stage or uses");
  const needsModel = !["no-ft", "mean-adapter"].includes(method);
  if (needsModel && stage === null && uses === null && model === null) problems.push(`method ${method} needs a stage, 'uses' (a trained experiment) or 'model'`);
  const ev = (raw["evaluate"] ?? {}) as { formats?: PromptFormat[]; instructions?: InstructionProbe; p3?: boolean };
  for (const k of Object.keys(ev)) if (!["formats", "instructions", "p3"].includes(k)) problems.push(`evaluate: unknown key '${k}' (valid: formats, instructions, p3)`);
  if (ev.p3 && !["no-ft", "tk-instruct", "mean-adapter"].includes(method)) problems.push(`evaluate.p3: P3 is evaluated for models that read the whole prompt (no-ft, tk-instruct, mean-adapter), not ${method}`);
  const formats = ev.formats ?? ["def"];
  for (const f of formats) if (f !== "def" && f !== "def+2pos") problems.push(`evaluate.formats: unknown format '${f}' (def, def+2pos)`);
  const instructions = ev.instructions ?? "own";
  if (!INSTRUCTION_PROBES.includes(instructions)) problems.push(`evaluate.instructions must be one of ${INSTRUCTION_PROBES.join(", ")}`);
  if (problems.length) throw new Error(`${file}: invalid experiment:\n  - ${problems.join("\n  - ")}`);
  return {
    name,
    description: String(raw["description"] ?? ""),
    method,
    table,
    row: String(raw["row"] ?? name),
    stage: stage ? { command: stage.command, config: stage.config, set: stage.set ?? {} } : null,
    uses,
    model,
    analysis,
    evaluate: { formats, instructions, p3: ev.p3 ?? false },
  };
}

/** configs/<scale>/experiments.json. */
export function loadScale(scale: string): ScaleSettings {
  const file = path.join(PROJECT_ROOT, "configs", scale, "experiments.json");
  if (!fs.existsSync(file)) {
    const scales = fs.readdirSync(path.join(PROJECT_ROOT, "configs")).filter((d) => fs.existsSync(path.join(PROJECT_ROOT, "configs", d, "experiments.json")));
    throw new Error(`unknown scale '${scale}' (no ${path.relative(PROJECT_ROOT, file)}); scales: ${scales.join(", ")}`);
  }
  const settings = parseScaleSettings(JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>, scale, path.relative(PROJECT_ROOT, file));
  const problems = tokenBudgetProblems(settings, path.join(PROJECT_ROOT, "configs", scale));
  if (problems.length && !settings.eval.unequalBudgets) {
    throw new Error(
      `${path.relative(PROJECT_ROOT, file)}: the methods do not get the same token budget:\n  - ${problems.join("\n  - ")}\n` +
        `Make them equal, or state the measured reason in eval.unequalBudgets (it is printed with the results).`,
    );
  }
  return settings;
}

/**
 * Equal budgets (the paper's comparison): a model that reads the whole prompt gets as many tokens as TAGI
 * reads in all, its instruction (the generator's limit, tagi.maxInstructionTokens) plus its instance
 * (finetune's maxInputTokens): in evaluation (eval.maxInputTokens per format, eval.maxInstanceTokens), in
 * meta-training (metatrain's maxInputTokens) and for the logit teacher (finetune's maxTeacherInputTokens).
 * Returns each mismatch in words (empty: equal).
 */
export function tokenBudgetProblems(settings: ScaleSettings, configDir: string): string[] {
  const read = (f: string): Record<string, any> | null => (fs.existsSync(path.join(configDir, f)) ? (JSON.parse(fs.readFileSync(path.join(configDir, f), "utf8")) as Record<string, any>) : null);
  const ft = read("finetune.json");
  if (!ft) return [];
  const instruction = Number(ft["tagi"]?.["maxInstructionTokens"] ?? 512);
  const instance = Number(ft["maxInputTokens"] ?? 256);
  const total = instruction + instance;
  const p: string[] = [];
  const want = (what: string, got: unknown) => {
    if (got !== undefined && got !== total) p.push(`${what} is ${String(got)}, TAGI reads ${instruction} instruction + ${instance} instance = ${total} tokens`);
  };
  for (const f of ["def", "def+2pos"] as const) want(`eval.maxInputTokens.${f}`, settings.eval.maxInputTokens[f]);
  if (settings.eval.maxInstanceTokens !== instance) p.push(`eval.maxInstanceTokens is ${settings.eval.maxInstanceTokens}, finetune's maxInputTokens (the instance) ${instance}`);
  want("metatrain.json maxInputTokens", read("metatrain.json")?.["maxInputTokens"]);
  want("finetune.json maxTeacherInputTokens", ft["maxTeacherInputTokens"]);
  return p;
}

/** Checks a scale's settings (configs/<scale>/experiments.json): unknown keys and bad values, all listed. */
export function parseScaleSettings(raw: Record<string, unknown>, scale: string, where = "experiments.json"): ScaleSettings {
  const p: string[] = [];
  const keys = ["description", "base", "teachers", "logitTeachers", "teacherLogitCaches", "steps", "set", "seeds", "formats", "prepare", "eval"];
  for (const k of Object.keys(raw)) if (!keys.includes(k)) p.push(`unknown key '${k}' (valid: ${keys.join(", ")})`);
  for (const k of ["base", "teachers"]) if (typeof raw[k] !== "string") p.push(`${k} must be a folder path`);
  const steps = raw["steps"];
  if (steps !== null && !(Number.isInteger(steps) && (steps as number) > 0)) p.push(`steps must be a positive integer or null, got ${JSON.stringify(steps)}`);
  const seeds = raw["seeds"];
  if (!Array.isArray(seeds) || seeds.length === 0 || !seeds.every((x) => Number.isInteger(x) && x >= 0)) p.push("seeds must be a non-empty list of integers >= 0");
  const formats = raw["formats"] ?? null;
  if (formats !== null && (!Array.isArray(formats) || !formats.every((f) => f === "def" || f === "def+2pos"))) p.push(`formats must be null or a list of "def", "def+2pos"`);
  const prepare = raw["prepare"];
  const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
  const isPublish = (x: unknown) =>
    x === undefined ||
    (isObject(x) &&
      typeof x["to"] === "string" &&
      (x["dtype"] === "bf16" || x["dtype"] === "f32") &&
      (x["earlier"] === undefined || (isObject(x["earlier"]) && Object.values(x["earlier"]).every((v) => typeof v === "string"))) &&
      Object.keys(x).every((k) => ["to", "dtype", "earlier"].includes(k)));
  if (
    !Array.isArray(prepare) ||
    !prepare.every(
      (x) =>
        isObject(x) &&
        ["command", "config", "out", "done"].every((k) => typeof x[k] === "string") &&
        (x["set"] === undefined || isObject(x["set"])) &&
        isPublish(x["publish"]) &&
        Object.keys(x).every((k) => ["command", "config", "out", "done", "set", "publish"].includes(k)),
    )
  ) {
    p.push('prepare must be a list of {command, config, out, done, set?: {key: value}, publish?: {to: FOLDER, dtype: "bf16" | "f32", earlier?: {name: RUN_FOLDER}}}');
  }
  // One meta-trained model per format the scale evaluates (the paper trains one model per format).
  const lt = raw["logitTeachers"];
  if (!isObject(lt)) p.push('logitTeachers must be {"def": MODEL_FOLDER, "def+2pos": MODEL_FOLDER} (the meta-trained model of each format)');
  else {
    for (const [k, v] of Object.entries(lt)) {
      if (k !== "def" && k !== "def+2pos") p.push(`logitTeachers: unknown format '${k}' (def, def+2pos)`);
      else if (typeof v !== "string" || v === "") p.push(`logitTeachers.${k} must be a model folder`);
    }
    const needed = Array.isArray(formats) ? (formats as string[]) : ["def", "def+2pos"];
    for (const f of needed) if (!(f in lt)) p.push(`logitTeachers has no model for ${f}, a format this scale evaluates`);
  }
  const tlc = raw["teacherLogitCaches"];
  if (tlc !== undefined) {
    if (!isObject(tlc)) p.push('teacherLogitCaches must be {"def": CACHE_FOLDER, "def+2pos": CACHE_FOLDER} (tagi teacher-logits of each format)');
    else for (const [k, v] of Object.entries(tlc)) if ((k !== "def" && k !== "def+2pos") || typeof v !== "string" || v === "") p.push(`teacherLogitCaches.${k}: expected a cache folder for "def" or "def+2pos"`);
  }
  const ev = (raw["eval"] ?? {}) as Record<string, unknown>;
  const evKeys = ["maxInstancesPerTask", "maxInputTokens", "maxInstanceTokens", "maxNewTokens", "batchSize", "sampleSeed", "p3MaxExamplesPerTemplate", "unequalBudgets"];
  for (const k of Object.keys(ev)) if (!evKeys.includes(k)) p.push(`eval: unknown key '${k}' (valid: ${evKeys.join(", ")})`);
  for (const k of ["maxInstanceTokens", "maxNewTokens", "batchSize", "p3MaxExamplesPerTemplate"]) if (!(Number.isInteger(ev[k]) && (ev[k] as number) > 0)) p.push(`eval.${k} must be a positive integer, got ${JSON.stringify(ev[k])}`);
  if (!(Number.isInteger(ev["sampleSeed"]) && (ev["sampleSeed"] as number) >= 0)) p.push("eval.sampleSeed must be an integer >= 0");
  if (ev["maxInstancesPerTask"] !== null && !(Number.isInteger(ev["maxInstancesPerTask"]) && (ev["maxInstancesPerTask"] as number) > 0)) p.push("eval.maxInstancesPerTask must be a positive integer or null");
  const mit = ev["maxInputTokens"] as Record<string, unknown> | undefined;
  if (!mit || !(Number.isInteger(mit["def"]) && Number.isInteger(mit["def+2pos"]))) p.push('eval.maxInputTokens must be {"def": N, "def+2pos": N}');
  if (ev["unequalBudgets"] !== undefined && (typeof ev["unequalBudgets"] !== "string" || ev["unequalBudgets"] === "")) p.push("eval.unequalBudgets must be a non-empty string (the measured reason) when given");
  if (p.length) throw new Error(`${where}: invalid scale settings:\n  - ${p.join("\n  - ")}`);
  const s = raw as unknown as ScaleSettings;
  return { ...s, description: String(raw["description"] ?? ""), formats: (formats as PromptFormat[] | null) ?? null, set: s.set ?? {}, scale };
}

/** The scale notebooks and the CLI use when none is given: $TAGI_SCALE, else tiny. */
export function defaultScale(): string {
  return process.env.TAGI_SCALE || "tiny";
}

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

/** Runs `node --import tsx src/cli.ts ARGS` from the project root; its output goes to `logFile` and `log`. */
/**
 * The command line of the same build as this module: dist/cli.js when the runner runs from dist/ (an installed
 * package, notebooks), src/cli.ts under tsx when it runs from the sources (a checkout's `npm run experiment`).
 */
export function cliCommand(): string[] {
  return __filename.endsWith(".ts") ? ["--import", "tsx", path.join(__dirname, "..", "cli.ts")] : [path.join(__dirname, "..", "cli.js")];
}

export function runCli(args: string[], logFile: string, log: (line: string) => void): Promise<number> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.createWriteStream(logFile);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliCommand(), ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let pending = "";
    const onData = (chunk: Buffer) => {
      out.write(chunk);
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      // The child's progress (not a terminal: a line every logEvery steps, every ~10% of an evaluation) and results.
      for (const l of lines) if (/step \d+\/|\d+\/\d+ instances|ROUGE-L|wrote|error|Error|warning/.test(l)) log(`  ${l}`);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) => {
      out.end();
      if (pending && /error|Error/.test(pending)) log(`  ${pending}`);
      resolve(code ?? 1);
    });
  });
}

/** Config overrides as the CLI's --set takes them: key=value, strings bare, the rest as JSON. */
export function setStrings(sets: Record<string, unknown>): string[] {
  return Object.entries(sets).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
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

export function gitCommit(): string | null {
  try {
    const head = fs.readFileSync(path.join(PROJECT_ROOT, ".git", "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    const loose = path.join(PROJECT_ROOT, ".git", ref);
    if (fs.existsSync(loose)) return fs.readFileSync(loose, "utf8").trim();
    const packed = fs.readFileSync(path.join(PROJECT_ROOT, ".git", "packed-refs"), "utf8");
    return packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * Runs the scale's shared stages whose output is missing (e.g. on a fresh clone at the tiny scale: the base
 * model, meta-trained teacher, LoRA teachers and stage-1 generator, about a minute), in order.
 */
/** The stage parsers of the prepare stages, for comparing a finished stage's config with the current one. */
export const STAGE_PARSERS: Record<string, (raw: Record<string, unknown>) => unknown> = {
  "pretrain-base": parsePretrainBaseConfig,
  metatrain: parseMetatrainConfig,
  teachers: parseTeachersConfig,
  "pretrain-hyper": parsePretrainHyperConfig,
  finetune: parseFinetuneConfig,
};

/**
 * How a finished prepare stage's config (its run.json) differs from the current config file's, parsed the same
 * way (defaults merged); [] when equal or when there is nothing to compare (no run.json, an unknown stage).
 */
export function preparedConfigChanges(p: PrepareStage, scale: string): string[] {
  const runFile = path.join(PROJECT_ROOT, p.publish?.to ?? p.out, "run.json");
  const parse = STAGE_PARSERS[p.command];
  if (!parse || !fs.existsSync(runFile)) return [];
  const recorded = (JSON.parse(fs.readFileSync(runFile, "utf8")) as { config?: unknown }).config;
  if (recorded === undefined) return [];
  const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale, p.config), "utf8")) as Record<string, unknown>;
  const current = parse(applySets(raw, setStrings(p.set ?? {})));
  // train.precision is how a run computes, not what it is (TrainConfig.precision): not a change of config
  return configDifferences(recorded, JSON.parse(JSON.stringify(current)) as unknown)
    .filter((d) => !/(^|\.)train\.precision$/.test(d.key))
    .map((d) => `${d.key}: ${d.from} -> ${d.to}`);
}

/**
 * Runs the scale's prepare stages that are not done. A done stage whose config has changed since (the design
 * moved, e.g. where teachers sit) is rebuilt, and so is every stage after it (they read its outputs); the
 * log says why.
 */
export async function ensurePrepared(scale: ScaleSettings, log: (line: string) => void = (l) => console.log(l), opts: { through?: string; formats?: readonly PromptFormat[] | null } = {}): Promise<void> {
  const through = opts.through === undefined ? null : path.normalize(opts.through);
  if (through !== null && !scale.prepare.some((p) => [p.out, p.publish?.to].includes(through))) {
    throw new Error(`prepare --through ${opts.through}: no stage of the ${scale.scale} scale writes it (${scale.prepare.map((p) => p.publish?.to ?? p.out).join(", ")})`);
  }
  // A published artifact is committed and costly to retrain: one that no longer matches its config (or what it
  // was made from) is refused, before anything trains, never replaced behind the user's back.
  const refusePublished = (p: PrepareStage, why: string[]) =>
    new Error(
      `${p.publish!.to} (a published artifact) was made with another config than configs/${scale.scale}/${p.config} gives now (${why.slice(0, 6).join("; ")}${why.length > 6 ? "; ..." : ""}); ` +
        `restore the config, or delete ${p.publish!.to} and rerun to train and publish it again`,
    );
  const isDone = (p: PrepareStage) => fs.existsSync(path.join(PROJECT_ROOT, p.done));
  for (const p of scale.prepare) {
    if (!p.publish || !isDone(p)) continue;
    // every file as published (sha256): a damaged or half-fetched artifact is an error naming the file
    const damaged = verifyArtifact(path.join(PROJECT_ROOT, p.publish.to)).problems;
    if (damaged.length) throw new Error(`the published artifact ${p.publish.to} does not match its artifact.json:\n  - ${damaged.join("\n  - ")}\nrestore it (git checkout -- ${p.publish.to}) or delete it to train it again`);
    const changes = preparedConfigChanges(p, scale.scale);
    if (changes.length) throw refusePublished(p, changes);
  }
  // Which stage reads which: a stage reads another when its config (or its --set values) names the other's
  // output folder or artifact.
  const readsFrom = (j: PrepareStage, i: PrepareStage) => {
    const text = fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale.scale, j.config), "utf8") + JSON.stringify(j.set ?? {});
    // the folder as a whole path ("runs/small/base" must not match "runs/small/base-span")
    const names = (folder: string) => new RegExp(`${folder.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=["/\\s,}]|$)`).test(text);
    return names(i.out) || (i.publish !== undefined && names(i.publish.to));
  };
  const rebuilt: PrepareStage[] = [];
  for (const [index, p] of scale.prepare.entries()) {
    const done = isDone(p);
    // A stage of one prompt format (its meta-trained model, its logit cache) waits until a run needs that format.
    const stageFormat = p.set?.["format"];
    if (opts.formats && typeof stageFormat === "string" && !opts.formats.includes(stageFormat as PromptFormat)) {
      if (!done) log(`[experiment] ${p.publish?.to ?? p.out}: not prepared now (a ${stageFormat} stage; this run evaluates ${opts.formats.join(", ")})`);
      continue;
    }
    // An unpublished intermediate (the span-corruption phase the published base continued) is needed only to
    // build what reads it: when every later stage that reads it is done and unchanged, it is not rebuilt
    // (a fresh checkout with the artifacts committed lacks it, and needs nothing from it).
    const readers = scale.prepare.slice(index + 1).filter((j) => readsFrom(j, p));
    if (!done && !p.publish && readers.length > 0 && readers.every((j) => isDone(j) && preparedConfigChanges(j, scale.scale).length === 0 && !rebuilt.some((r) => readsFrom(j, r)))) {
      log(`[experiment] ${p.out}: not here, and not needed (${readers.map((j) => j.publish?.to ?? j.out).join(", ")} ${readers.length > 1 ? "are" : "is"} done from it)`);
      continue;
    }
    const stale = rebuilt.filter((r) => readsFrom(p, r)).map((r) => `${r.out} was rebuilt`);
    const changes = !done ? [] : stale.length ? stale : preparedConfigChanges(p, scale.scale);
    if (changes.length && p.publish) throw refusePublished(p, changes);
    if (changes.length) {
      log(`[experiment] ${p.out} was made with another config (${changes.slice(0, 6).join("; ")}${changes.length > 6 ? "; ..." : ""}): rebuilding it`);
      fs.rmSync(path.join(PROJECT_ROOT, p.out), { recursive: true, force: true });
    }
    if (!done || changes.length) {
      rebuilt.push(p); // stages that read this one's outputs are rebuilt too
      const logFile = path.join(PROJECT_ROOT, p.out + ".log");
      const resumable = p.command !== "teacher-logits"; // a cache is built whole (it takes no --resume)
      const args = [p.command, "--config", path.join("configs", scale.scale, p.config), "--out", p.out, ...(resumable ? ["--resume"] : []), ...setStrings(p.set ?? {}).flatMap((x) => ["--set", x])];
      log(`[experiment] preparing the ${scale.scale} scale: tagi ${args.join(" ")} (log: ${path.relative(PROJECT_ROOT, logFile)})`);
      const code = await runCli(args, logFile, log);
      if (code !== 0) throw new Error(`preparing the ${scale.scale} scale: 'tagi ${args.join(" ")}' failed (exit ${code}); see ${path.relative(PROJECT_ROOT, logFile)}`);
      if (p.publish) {
        const earlier = Object.entries(p.publish.earlier ?? {}).map(([name, run]) => ({ name, run: path.join(PROJECT_ROOT, run) }));
        const m = publishArtifact({ run: path.join(PROJECT_ROOT, p.out), out: path.join(PROJECT_ROOT, p.publish.to), dtype: p.publish.dtype, command: ["tagi", "prepare", "--scale", scale.scale], earlier });
        const root = path.dirname(path.dirname(path.join(PROJECT_ROOT, p.publish.to))); // artifacts/<scale>/<name>
        fs.writeFileSync(path.join(root, "README.md"), artifactsIndex(root));
        log(`[experiment] published ${m.artifact} (${(m.bytes / 1e6).toFixed(1)} MB, ${m.dtype}): commit it; later stages read it`);
      }
    }
    if (through !== null && [p.out, p.publish?.to].includes(through)) return;
  }
}

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
  const configText = fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale.scale, spec.stage.config), "utf8");
  const staged = applySets(JSON.parse(configText) as Record<string, unknown>, setStrings({ ...(scale.set ?? {}), ...spec.stage.set }));
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
  await ensurePrepared(scale, log, { formats: [...new Set([...formats, ...(spec.analysis ? [analysisFormat(spec, formats)] : [])])] });
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
