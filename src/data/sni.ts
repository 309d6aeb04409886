/**
 * Super-NaturalInstructions (SNI v2, English default split) from `../shared/data/sni` (see its README):
 * typed tasks, a streaming reader of the gzipped JSONL with validation that counts and reports every skip,
 * seeded instance sampling, a dev split of held-out *train* tasks, and per-category grouping.
 *
 * Tasks carry their split (`task.split`); `devSplit` only accepts train tasks (by type and at run time), so
 * test tasks cannot be used for model selection by accident.
 *
 * Randomness: `mulberry32` (a 32-bit PRNG by Tommy Ettinger; state += 0x6D2B79F5, then two xorshift-multiply
 * rounds), seeded by `seed` mixed with the FNV-1a hash of a string key (the task name for sampling), so
 * results depend only on (seed, key, input order), never on Math.random or the platform.
 */
import { dataDir, dataDirOrigin } from "./data-dir";
import { createReadStream, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createGunzip } from "node:zlib";
import { StrictUtf8Stream, Utf8Error } from "./utf8";
import type { Readable } from "node:stream";

export type SniSplit = "train" | "test";

export interface SniExample {
  input: string;
  output: string;
  explanation: string;
}

export interface SniInstance {
  id: string;
  input: string;
  /** Every acceptable reference (non-empty). */
  outputs: string[];
}

export interface SniTask<S extends SniSplit = SniSplit> {
  /** The split this task was read from; `devSplit` refuses anything but "train". */
  readonly split: S;
  /** File name without `.json`, e.g. "task893_gap_fill_the_blank_coreference_resolution". */
  name: string;
  /** `Definition[0]` (verbatim; Tk-Instruct's collator uses the first entry). */
  definition: string;
  categories: string[];
  reasoning: string[];
  domains: string[];
  source: string[];
  positiveExamples: SniExample[];
  negativeExamples: SniExample[];
  instances: SniInstance[];
  instanceLicense: string[];
  /** Instances in the original task file, before the subset was taken. */
  numInstancesTotal: number;
}

export type SniTrainTask = SniTask<"train">;
export type SniTestTask = SniTask<"test">;

/** A task or instance that was left out, and why (never a silent drop). */
export interface SniSkip {
  /** Task name, or `<file>:<line>` when the line has no usable name. */
  task: string;
  /** Set when a single instance was left out (the task itself was kept unless it had none left). */
  instanceId?: string;
  reason: string;
  file: string;
  line: number;
}

export interface SniLoadResult<S extends SniSplit = SniSplit> {
  split: S;
  file: string;
  tasks: SniTask<S>[];
  skipped: SniSkip[];
  numInstances: number;
  /** Lines that needed Python's NaN/Infinity literals read as null (97 SNI tasks have `"URL": [NaN]`). */
  pythonConstantLines: number;
  /** A human-readable summary: counts and every skip. */
  report: string;
}

export interface SniLoadOptions {
  /** Throw on the first invalid task or instance instead of skipping it. Default false. */
  strict?: boolean;
  /** Print the report with console.warn when something was skipped. Default true. */
  warn?: boolean;
}

/** The data folder: $TAGI_DATA_DIR, else `../shared/data` relative to the project root (src/data/data-dir.ts). */
export const DEFAULT_DATA_DIR = dataDir();

/** The path of `sni_<split>.jsonl.gz` under `dataDir`. */
export function sniSplitFile(split: SniSplit, dataDir: string = DEFAULT_DATA_DIR): string {
  return join(dataDir, "sni", `sni_${split}.jsonl.gz`);
}

/**
 * Reads one split (`<dataDir>/sni/sni_<split>.jsonl.gz`), streaming. Malformed or truncated JSON/gzip throws
 * an error naming the file and line; invalid tasks/instances are skipped and reported (or thrown with
 * `strict`).
 */
export async function loadSniSplit(split: "train", dataDir?: string, opts?: SniLoadOptions): Promise<SniLoadResult<"train">>;
export async function loadSniSplit(split: "test", dataDir?: string, opts?: SniLoadOptions): Promise<SniLoadResult<"test">>;
export async function loadSniSplit(split: SniSplit, dataDir?: string, opts?: SniLoadOptions): Promise<SniLoadResult>;
export async function loadSniSplit(
  split: SniSplit,
  dataDir: string = DEFAULT_DATA_DIR,
  opts: SniLoadOptions = {},
): Promise<SniLoadResult> {
  if (split !== "train" && split !== "test") throw new Error(`loadSniSplit: split must be "train" or "test", got ${String(split)}`);
  return loadSniFile(sniSplitFile(split, dataDir), split, opts);
}

/**
 * The train split for a training stage: tasks the loader skipped are printed with their reasons on stderr,
 * under the stage's name (a training run must not lose tasks without a word; evaluation reports them in its
 * summary). The counts stay in the result for the stage's run record.
 */
export async function loadTrainTasks(dataDir: string | null | undefined, stage: string): Promise<SniLoadResult<"train">> {
  const r = await loadSniSplit("train", dataDir ?? undefined, { warn: false });
  if (r.skipped.length > 0) process.stderr.write(`[${stage}] ${r.report}\n`);
  return r;
}

/** Like `loadSniSplit` for any file in the same layout (`.gz` is gunzipped; anything else is read as text). */
export async function loadSniFile<S extends SniSplit>(file: string, split: S, opts: SniLoadOptions = {}): Promise<SniLoadResult<S>> {
  const tasks: SniTask<S>[] = [];
  const skipped: SniSkip[] = [];
  const seen = new Map<string, number>();
  let pythonConstantLines = 0;
  for await (const { line, text } of readJsonLines(file)) {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      // Python's json.dumps writes NaN/Infinity (97 SNI tasks have "URL": [NaN]); read them as null, like a
      // tolerant reader, and count them. Anything else is an error naming the file and line.
      const fixed = replacePythonConstants(text);
      try {
        if (fixed.count === 0) throw e;
        obj = JSON.parse(fixed.text);
        pythonConstantLines++;
      } catch {
        throw new Error(`${file}:${line}: malformed JSON (${(e as Error).message}); the line starts ${JSON.stringify(text.slice(0, 80))}`);
      }
    }
    const task = parseTask(obj, split, file, line, skipped, opts.strict ?? false);
    if (task === undefined) continue;
    const prev = seen.get(task.name);
    if (prev !== undefined) {
      const reason = `duplicate task name (first seen on line ${prev})`;
      if (opts.strict) throw new Error(`${file}:${line}: task ${task.name}: ${reason}`);
      skipped.push({ task: task.name, reason, file, line });
      continue;
    }
    seen.set(task.name, line);
    tasks.push(task);
  }
  const numInstances = tasks.reduce((s, t) => s + t.instances.length, 0);
  let report = formatReport(file, split, tasks.length, numInstances, skipped);
  if (pythonConstantLines > 0) report += `\n  (${pythonConstantLines} line(s) used Python's NaN/Infinity literals, read as null)`;
  if (skipped.length > 0 && (opts.warn ?? true)) console.warn(report);
  return { split, file, tasks, skipped, numInstances, pythonConstantLines, report };
}

/** Replaces the bare tokens NaN, Infinity and -Infinity outside JSON strings with null. */
export function replacePythonConstants(text: string): { text: string; count: number } {
  let out = "";
  let count = 0;
  let inStr = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (inStr) {
      if (ch === "\\") {
        out += text.slice(i, i + 2);
        i += 2;
        continue;
      }
      if (ch === '"') inStr = false;
      out += ch;
      i++;
      continue;
    }
    if (ch === '"') {
      inStr = true;
      out += ch;
      i++;
      continue;
    }
    const m = /^(-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (m) {
      out += "null";
      count++;
      i += (m[1] as string).length;
      continue;
    }
    out += ch;
    i++;
  }
  return { text: out, count };
}

function formatReport(file: string, split: SniSplit, nTasks: number, nInst: number, skipped: SniSkip[]): string {
  const taskSkips = skipped.filter((s) => s.instanceId === undefined);
  const instSkips = skipped.filter((s) => s.instanceId !== undefined);
  const lines = [
    `SNI ${split} (${file}): ${nTasks} tasks, ${nInst} instances; skipped ${taskSkips.length} task(s) and ${instSkips.length} instance(s)`,
  ];
  for (const s of skipped) {
    lines.push(`  - line ${s.line}: ${s.task}${s.instanceId !== undefined ? ` instance ${s.instanceId}` : ""}: ${s.reason}`);
  }
  return lines.join("\n");
}

/** Lines of a (gzipped) text file, 1-based, streaming; a gzip error names the file and the line reached. */
async function* readJsonLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  if (!existsSync(file)) {
    throw new Error(`SNI data file not found: ${file}. The data folder is ${dataDirOrigin()}; SNI is its sni/ (see its README).`);
  }
  const raw = createReadStream(file);
  let stream: Readable = raw;
  if (file.endsWith(".gz")) {
    const gz = createGunzip();
    raw.on("error", (e) => gz.destroy(e));
    stream = raw.pipe(gz);
  }
  // Strict: an invalid byte is an error naming its offset (in the decompressed text) and line, never U+FFFD.
  const decoder = new StrictUtf8Stream(file.endsWith(".gz") ? `${file} (decompressed)` : file);
  let buf = "";
  let line = 0;
  try {
    for await (const chunk of stream) {
      buf += decoder.write(chunk as Buffer);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        line++;
        if (text.trim() !== "") yield { line, text };
      }
    }
  } catch (e) {
    if (e instanceof Utf8Error) throw e;
    const err = e as Error & { code?: string };
    throw new Error(
      `${file}: truncated or corrupt gzip stream after line ${line} (reading line ${line + 1}): ${err.message}${err.code ? ` [${err.code}]` : ""}`,
    );
  }
  decoder.end();
  if (buf.trim() !== "") {
    line++;
    yield { line, text: buf };
  }
}

function isStringArray(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((s) => typeof s === "string");
}

function parseExamples(x: unknown): SniExample[] | string {
  if (x === undefined) return [];
  if (!Array.isArray(x)) return "is not a list";
  const out: SniExample[] = [];
  for (const [i, e] of x.entries()) {
    if (typeof e !== "object" || e === null) return `entry ${i} is not an object`;
    const r = e as Record<string, unknown>;
    if (typeof r.input !== "string" || typeof r.output !== "string") return `entry ${i} lacks a string input/output`;
    out.push({ input: r.input, output: r.output, explanation: typeof r.explanation === "string" ? r.explanation : "" });
  }
  return out;
}

function parseTask<S extends SniSplit>(
  obj: unknown,
  split: S,
  file: string,
  line: number,
  skipped: SniSkip[],
  strict: boolean,
): SniTask<S> | undefined {
  const where = `${file}:${line}`;
  const skip = (task: string, reason: string, instanceId?: string): undefined => {
    if (strict) throw new Error(`${where}: task ${task}${instanceId !== undefined ? ` instance ${instanceId}` : ""}: ${reason}`);
    skipped.push({ task, reason, file, line, ...(instanceId !== undefined ? { instanceId } : {}) });
    return undefined;
  };
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return skip(where, "the line is not a JSON object");
  const r = obj as Record<string, unknown>;
  if (typeof r.task !== "string" || r.task === "") return skip(where, "missing task name (field `task`)");
  const name = r.task;

  let definition: string | undefined;
  if (typeof r.Definition === "string") definition = r.Definition;
  else if (Array.isArray(r.Definition) && typeof r.Definition[0] === "string") definition = r.Definition[0];
  if (definition === undefined || definition.trim() === "") return skip(name, "missing or empty Definition");

  if (!Array.isArray(r.Instances)) return skip(name, "missing Instances");
  const instances: SniInstance[] = [];
  for (const [i, x] of r.Instances.entries()) {
    const inst = (typeof x === "object" && x !== null ? x : {}) as Record<string, unknown>;
    const id = typeof inst.id === "string" ? inst.id : `#${i}`;
    if (typeof inst.id !== "string") {
      skip(name, "instance without a string id", id);
      continue;
    }
    if (typeof inst.input !== "string") {
      skip(name, "instance without a string input", id);
      continue;
    }
    if (!isStringArray(inst.output)) {
      skip(name, "instance output is not a list of strings", id);
      continue;
    }
    if (inst.output.length === 0) {
      skip(name, "empty output (reference) list", id);
      continue;
    }
    instances.push({ id, input: inst.input, outputs: [...inst.output] });
  }
  if (instances.length === 0) {
    return skip(name, r.Instances.length === 0 ? "empty Instances" : "no valid instances left");
  }

  const pos = parseExamples(r["Positive Examples"]);
  if (typeof pos === "string") return skip(name, `Positive Examples ${pos}`);
  const neg = parseExamples(r["Negative Examples"]);
  if (typeof neg === "string") return skip(name, `Negative Examples ${neg}`);
  const strs = (k: string): string[] => (isStringArray(r[k]) ? [...(r[k] as string[])] : typeof r[k] === "string" ? [r[k] as string] : []);
  const categories = strs("Categories");
  if (categories.length === 0) return skip(name, "missing Categories");
  const total = r._num_instances_total;
  return {
    split,
    name,
    definition,
    categories,
    reasoning: strs("Reasoning"),
    domains: strs("Domains"),
    source: strs("Source"),
    positiveExamples: pos,
    negativeExamples: neg,
    instances,
    instanceLicense: strs("Instance License"),
    numInstancesTotal: typeof total === "number" && Number.isInteger(total) ? total : r.Instances.length,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Seeded randomness

/** FNV-1a 32-bit hash of a string's UTF-16 code units. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** mulberry32: a deterministic PRNG returning floats in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkSeed(seed: number, fn: string): void {
  if (!Number.isInteger(seed)) throw new Error(`${fn}: seed must be an integer, got ${seed}`);
}

/** A PRNG for (seed, key): mulberry32(seed XOR fnv1a(key)). */
export function seededRandom(seed: number, key = ""): () => number {
  return mulberry32((seed ^ fnv1a(key)) >>> 0);
}

/** Fisher-Yates shuffle of a copy, with the given PRNG. */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = a[i] as T;
    a[i] = a[j] as T;
    a[j] = tmp;
  }
  return a;
}

/**
 * `n` instances of `task` drawn without replacement, deterministic in (seed, task name): a Fisher-Yates
 * shuffle of the indices with `seededRandom(seed, task.name)`, the first n kept, returned in the task's
 * original order. n >= the number of instances returns them all.
 */
export function sampleInstances(task: Pick<SniTask, "name" | "instances">, n: number, seed: number): SniInstance[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`sampleInstances: n must be an integer >= 0, got ${n}`);
  checkSeed(seed, "sampleInstances");
  if (n >= task.instances.length) return [...task.instances];
  const idx = shuffled(
    task.instances.map((_, i) => i),
    seededRandom(seed, task.name),
  )
    .slice(0, n)
    .sort((a, b) => a - b);
  return idx.map((i) => task.instances[i] as SniInstance);
}

// ---------------------------------------------------------------------------------------------------------
// Grouping and the dev split

/** The category a task belongs to: its first (in this data, only) category. */
export function taskCategory(task: Pick<SniTask, "categories">): string {
  return task.categories[0] ?? "(none)";
}

/** Tasks by category (`taskCategory`), categories in order of first appearance, tasks in input order. */
export function groupByCategory<T extends Pick<SniTask, "categories">>(tasks: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of tasks) {
    const c = taskCategory(t);
    const g = out.get(c);
    if (g) g.push(t);
    else out.set(c, [t]);
  }
  return out;
}

export interface DevSplitOptions {
  /** Share of the train tasks held out for dev, in (0, 1). Exactly one of fraction/count. */
  fraction?: number;
  /** Number of train tasks held out for dev. */
  count?: number;
  seed: number;
  /**
   * Hold out the same share of every category (largest-remainder allocation of the total over categories,
   * ties broken by category name), tasks within a category drawn with `seededRandom(seed, category)`.
   * Otherwise one shuffle of all tasks with `seededRandom(seed, "devSplit")`. Default false.
   */
  stratifyByCategory?: boolean;
}

export interface DevSplit {
  /** Train tasks kept for training, in input order. */
  train: SniTrainTask[];
  /** Held-out train tasks for model selection, in input order. */
  dev: SniTrainTask[];
}

/**
 * Splits *train* tasks into train and dev (held-out train tasks for model selection), deterministic in the
 * seed and the input. Test tasks are refused: by type (`SniTask<"train">`) and at run time (`task.split`).
 */
export function devSplit(trainTasks: readonly SniTrainTask[], opts: DevSplitOptions): DevSplit {
  checkSeed(opts.seed, "devSplit");
  const bad = trainTasks.filter((t) => (t as SniTask).split !== "train");
  if (bad.length > 0) {
    throw new Error(
      `devSplit: only train tasks may be used for model selection; got ${bad.length} task(s) from another split ` +
        `(e.g. ${bad.slice(0, 3).map((t) => `${t.name} [${String((t as SniTask).split)}]`).join(", ")})`,
    );
  }
  const names = new Set<string>();
  for (const t of trainTasks) {
    if (names.has(t.name)) throw new Error(`devSplit: task ${t.name} appears twice`);
    names.add(t.name);
  }
  const n = trainTasks.length;
  if ((opts.fraction === undefined) === (opts.count === undefined)) throw new Error("devSplit: give exactly one of fraction or count");
  let k: number;
  if (opts.fraction !== undefined) {
    if (!(opts.fraction > 0 && opts.fraction < 1)) throw new Error(`devSplit: fraction must be in (0, 1), got ${opts.fraction}`);
    k = Math.round(opts.fraction * n);
  } else {
    k = opts.count as number;
    if (!Number.isInteger(k) || k < 0 || k > n) throw new Error(`devSplit: count must be an integer in [0, ${n}], got ${k}`);
  }
  const chosen = new Set<SniTrainTask>();
  if (opts.stratifyByCategory) {
    const groups = [...groupByCategory(trainTasks).entries()];
    const quotas = groups.map(([c, g]) => {
      const exact = (k * g.length) / n;
      return { c, g, q: Math.floor(exact), rem: exact - Math.floor(exact) };
    });
    let left = k - quotas.reduce((s, x) => s + x.q, 0);
    const order = [...quotas].sort((a, b) => b.rem - a.rem || (a.c < b.c ? -1 : a.c > b.c ? 1 : 0));
    for (const x of order) {
      if (left <= 0) break;
      if (x.q < x.g.length) {
        x.q++;
        left--;
      }
    }
    for (const { c, g, q } of quotas) {
      for (const t of shuffled(g, seededRandom(opts.seed, c)).slice(0, q)) chosen.add(t);
    }
  } else {
    for (const t of shuffled(trainTasks, seededRandom(opts.seed, "devSplit")).slice(0, k)) chosen.add(t);
  }
  return { train: trainTasks.filter((t) => !chosen.has(t)), dev: trainTasks.filter((t) => chosen.has(t)) };
}
