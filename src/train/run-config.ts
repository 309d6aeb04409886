/**
 * Stage configs as plain JSON objects merged over defaults, strictly: a key the defaults do not have is an
 * error naming it and the valid keys (a typo must not silently train with a default), a value of the wrong
 * type is an error, and every problem is reported at once.
 */
import * as fs from "node:fs";
import { ADAFACTOR_DEFAULTS, ADAMW_DEFAULTS, type OptimizerConfig } from "./optimizer";
import { TRAIN_DEFAULTS, validateTrainConfig, type TrainConfig } from "./loop";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * `defaults` with `raw`'s values merged in, recursively. Keys absent from `defaults` are errors, except under
 * the paths in `open` (free-form objects such as a model config). A default of null accepts any value.
 */
export function strictMerge<T>(defaults: T, raw: unknown, where: string, problems: string[], open: string[] = []): T {
  if (raw === undefined) return structuredClone(defaults);
  if (!isPlainObject(defaults)) return raw as T;
  if (!isPlainObject(raw)) {
    problems.push(`${where} must be an object, got ${JSON.stringify(raw)}`);
    return structuredClone(defaults);
  }
  const out: Record<string, unknown> = structuredClone(defaults) as Record<string, unknown>;
  for (const [k, v] of Object.entries(raw)) {
    const path = `${where}.${k}`;
    if (!(k in (defaults as Record<string, unknown>))) {
      problems.push(`unknown key '${path}' (valid keys of ${where}: ${Object.keys(defaults as object).join(", ")})`);
      continue;
    }
    const d = (defaults as Record<string, unknown>)[k];
    if (open.includes(path)) out[k] = v;
    else if (path.endsWith(".optimizer")) out[k] = mergeOptimizer(v, path, problems);
    else if (isPlainObject(d)) out[k] = strictMerge(d, v, path, problems, open);
    else if (d === null || d === undefined || v === null) out[k] = v;
    else if (Array.isArray(d) !== Array.isArray(v) || typeof d !== typeof v) {
      problems.push(`${path} must be ${Array.isArray(d) ? "an array" : `a ${typeof d}`}, got ${JSON.stringify(v)}`);
    } else out[k] = v;
  }
  return out as T;
}

function mergeOptimizer(raw: unknown, where: string, problems: string[]): OptimizerConfig {
  const kind = isPlainObject(raw) ? raw["kind"] : undefined;
  if (kind === "adafactor") return strictMerge(ADAFACTOR_DEFAULTS, raw, where, problems);
  if (kind === "adamw" || kind === undefined) return strictMerge(ADAMW_DEFAULTS, raw, where, problems);
  problems.push(`${where}.kind must be "adamw" or "adafactor", got ${JSON.stringify(kind)}`);
  return ADAMW_DEFAULTS;
}

/**
 * Checks of the fields several stages share, by name, for whichever of them the stage has. A default of null
 * lets strictMerge accept any type, so these are where `"dataDir": 7` or `"categories": "x"` are caught.
 */
export function commonFieldProblems(c: Record<string, unknown>, where = "config"): string[] {
  const p: string[] = [];
  const has = (k: string) => Object.prototype.hasOwnProperty.call(c, k);
  for (const k of ["base", "init", "teacher", "teachers", "dataDir", "tokenizer"]) {
    if (has(k) && c[k] !== null && (typeof c[k] !== "string" || c[k] === "")) {
      p.push(`${where}.${k} must be a folder or file path (a non-empty string) or null, got ${JSON.stringify(c[k])}`);
    }
  }
  for (const k of ["maxTasks", "instancesPerTask", "maxGroups"]) {
    if (has(k) && c[k] !== null && (!Number.isInteger(c[k]) || (c[k] as number) < 1)) p.push(`${where}.${k} must be a positive integer or null, got ${JSON.stringify(c[k])}`);
  }
  if (has("initSeed") && (!Number.isInteger(c.initSeed) || (c.initSeed as number) < 0)) p.push(`${where}.initSeed must be an integer >= 0, got ${JSON.stringify(c.initSeed)}`);
  for (const k of ["categories", "groups"]) {
    const v = c[k];
    if (has(k) && v !== null && (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string" && x !== ""))) {
      p.push(`${where}.${k} must be a non-empty list of names or null, got ${JSON.stringify(v)}`);
    }
  }
  if (has("dev")) {
    const d = c.dev as { fraction?: unknown; seed?: unknown };
    if (d.fraction !== null && !(typeof d.fraction === "number" && d.fraction > 0 && d.fraction < 1)) p.push(`${where}.dev.fraction must be in (0, 1) or null, got ${JSON.stringify(d.fraction)}`);
    if (!Number.isInteger(d.seed) || (d.seed as number) < 0) p.push(`${where}.dev.seed must be an integer >= 0, got ${JSON.stringify(d.seed)}`);
    const e = c.dev as { every?: unknown; instancesPerTask?: unknown };
    if (e.every !== undefined && (!Number.isInteger(e.every) || (e.every as number) < 0)) p.push(`${where}.dev.every must be an integer >= 0 (steps between dev-loss points; 0: none), got ${JSON.stringify(e.every)}`);
    if (e.instancesPerTask !== undefined && (!Number.isInteger(e.instancesPerTask) || (e.instancesPerTask as number) < 1)) p.push(`${where}.dev.instancesPerTask must be a positive integer, got ${JSON.stringify(e.instancesPerTask)}`);
    if (d.fraction === null && (e.every as number) > 0) p.push(`${where}.dev.every is ${String(e.every)} but dev.fraction is null: there is no dev split to measure`);
  }
  if (has("trainBase")) {
    const t = c.trainBase as Record<string, unknown>;
    for (const k of ["layerNorms", "feedForward"]) if (typeof t[k] !== "boolean") p.push(`${where}.trainBase.${k} must be true or false, got ${JSON.stringify(t[k])}`);
  }
  return p;
}

/** Default training section; stage defaults override parts of it. */
export function trainDefaults(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    steps: 100,
    batchSize: 8,
    optimizer: ADAMW_DEFAULTS,
    schedule: { kind: "constant", lr: 1e-4, warmupSteps: 0 },
    ...over,
  };
}

/** Reads a JSON config file (or takes an object), merges it over `defaults`, validates the train section. */
export function loadStageConfig<T extends { train: TrainConfig }>(
  source: string | Record<string, unknown> | undefined,
  defaults: T,
  name: string,
  open: string[] = [],
  extraChecks: (c: T) => string[] = () => [],
): T {
  let raw: unknown = {};
  let where = name;
  if (source === "") throw new Error(`${name}: the config file path is empty`);
  if (typeof source === "string") {
    where = source;
    if (!fs.existsSync(source)) throw new Error(`${name}: config file not found: ${source}`);
    try {
      raw = JSON.parse(fs.readFileSync(source, "utf8")) as Json;
    } catch (e) {
      throw new Error(`${name}: cannot parse ${source} as JSON: ${(e as Error).message}`);
    }
  } else if (source !== undefined) raw = source; // null, 0, false, "" are configs too, and wrong ones
  const problems: string[] = [];
  if (!isPlainObject(raw)) problems.push(`the config must be a JSON object ({...}), got ${JSON.stringify(raw)}`);
  const merged = strictMerge(defaults, raw, "config", problems, open);
  if (isPlainObject(raw)) {
    // Every check runs, so that all problems are reported at once (a field of the wrong type kept its default).
    problems.push(...validateTrainConfig(merged.train, "config.train"), ...commonFieldProblems(merged as Record<string, unknown>));
    try {
      problems.push(...extraChecks(merged));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length) throw new Error(`${name}: invalid config (${where}):\n  - ${problems.join("\n  - ")}`);
  return merged;
}
