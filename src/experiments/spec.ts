/**
 * What an experiment is: experiments/NAME.json (a method, its training stage and overrides, what to
 * evaluate) and a scale's shared settings (configs/<scale>/experiments.json: base model, teachers, stage-1
 * checkpoint, step budgets, evaluation sample), parsed and checked with errors that name the file and key.
 * runner.ts runs them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { ArtifactDtype } from "../artifacts/publish";
import { INSTRUCTION_PROBES, type InstructionProbe, type SimilarityRow } from "../tagi/probes";
import type { PromptFormat } from "../text/prompts";

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
