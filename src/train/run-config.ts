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
  if (typeof source === "string") {
    where = source;
    if (!fs.existsSync(source)) throw new Error(`${name}: config file not found: ${source}`);
    try {
      raw = JSON.parse(fs.readFileSync(source, "utf8")) as Json;
    } catch (e) {
      throw new Error(`${name}: cannot parse ${source} as JSON: ${(e as Error).message}`);
    }
  } else if (source) raw = source;
  const problems: string[] = [];
  const merged = strictMerge(defaults, raw, "config", problems, open);
  if (!problems.length) problems.push(...validateTrainConfig(merged.train, "config.train"), ...extraChecks(merged));
  if (problems.length) throw new Error(`${name}: invalid config (${where}):\n  - ${problems.join("\n  - ")}`);
  return merged;
}
