/**
 * Resuming a training run safely: what a checkpoint must agree on with the run that resumes it.
 * - The config: the fingerprinted config is kept in the state (configSnapshot), so a refusal lists the keys
 *   that differ; a few keys (RESUME_CHANGEABLE) may differ when the user says so (--allow-change), e.g. a
 *   lower learning rate after a non-finite loss, and each accepted change is kept in the state.
 * - The data: each data file's size and sha256, the task names and a hash of the examples (dataFingerprint);
 *   resuming on changed data is refused with what changed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import type { ExampleSource } from "../data/batching";
import type { DataFingerprint, ResumeOverride, TrainerState } from "./checkpoint";

/**
 * Config keys a resume may change (with allowChanges): they change how later steps update, not what the run
 * is (data order, model, loss). Matched as the end of a fingerprint path (the stage config holds `train` too).
 */
export const RESUME_CHANGEABLE = ["train.schedule.lr", "train.schedule.warmupSteps", "train.maxGradNorm", "train.steps", "train.checkpointEvery", "train.logEvery"] as const;

/** JSON with object keys sorted: the same value always gives the same text (for hashes and comparisons). */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

/** Leaf values of a JSON value by dotted path ("extra.stage.train.schedule.lr"). */
function flatten(v: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, stableJson(v));
  return out;
}

/** Keys whose values differ between two fingerprinted configs, with both values. */
export function configDifferences(before: unknown, after: unknown): { key: string; from: string; to: string }[] {
  const a = flatten(before);
  const b = flatten(after);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  // A key on one side only whose value is null is not a change: a config key added later with a null default
  // (e.g. metatrain's `categories`, null = every category) keeps the earlier runs' behaviour, so their records,
  // checkpoints and published artifacts stay valid.
  const absentOrNull = (v: string | undefined) => v === undefined || v === "null";
  return keys
    .filter((k) => a.get(k) !== b.get(k) && !(absentOrNull(a.get(k)) && absentOrNull(b.get(k))))
    .map((k) => ({ key: k, from: a.get(k) ?? "(absent)", to: b.get(k) ?? "(absent)" }));
}

/** Sha256 and size of each data file, task names, and a hash of the examples (lengths + a seeded sample). */
/**
 * Size and sha256 of a data file, read once per process while its size and mtime stay the same (the teachers
 * stage trains one run per category over the same file).
 */
const fileHashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();
function fileFingerprint(file: string): { size: number; sha256: string } {
  const abs = path.resolve(file);
  const st = fs.statSync(abs);
  const known = fileHashes.get(abs);
  if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) return { size: known.size, sha256: known.sha256 };
  const sha256 = createHash("sha256").update(fs.readFileSync(abs)).digest("hex");
  fileHashes.set(abs, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
  return { size: st.size, sha256 };
}

export function dataFingerprint(source: ExampleSource, data: { files?: string[]; tasks?: string[] } = {}): DataFingerprint {
  const files: DataFingerprint["files"] = {};
  for (const f of data.files ?? []) files[path.resolve(f)] = fileFingerprint(f);
  const h = createHash("sha256");
  const lengths = new Int32Array(source.size);
  for (let i = 0; i < source.size; i++) lengths[i] = source.length(i);
  h.update(new Uint8Array(lengths.buffer));
  // Token ids of up to 256 examples spread over the set (every example would cost a pass over the data).
  const sample = Math.min(256, source.size);
  for (let k = 0; k < sample; k++) {
    const e = source.example(Math.floor((k * source.size) / sample), 0);
    h.update(JSON.stringify([e.instruction ?? null, e.input, e.target]));
  }
  return { files, tasks: [...(data.tasks ?? [])], examples: source.size, exampleHash: h.digest("hex").slice(0, 16) };
}

/** What changed between two data fingerprints, in words (empty when nothing did). */
export function dataDifferences(before: DataFingerprint, after: DataFingerprint): string[] {
  const d: string[] = [];
  for (const f of new Set([...Object.keys(before.files), ...Object.keys(after.files)])) {
    const a = before.files[f];
    const b = after.files[f];
    if (!a) d.push(`new data file ${f}`);
    else if (!b) d.push(`data file ${f} no longer used`);
    else if (a.sha256 !== b.sha256) d.push(`${f} changed (${a.size} -> ${b.size} bytes, sha256 ${a.sha256.slice(0, 12)} -> ${b.sha256.slice(0, 12)})`);
  }
  const added = after.tasks.filter((t) => !before.tasks.includes(t));
  const removed = before.tasks.filter((t) => !after.tasks.includes(t));
  const list = (xs: string[]) => `${xs.slice(0, 5).join(", ")}${xs.length > 5 ? `, ... (${xs.length})` : ""}`;
  if (added.length) d.push(`tasks added: ${list(added)}`);
  if (removed.length) d.push(`tasks removed: ${list(removed)}`);
  if (before.examples !== after.examples) d.push(`examples: ${before.examples} -> ${after.examples}`);
  else if (before.exampleHash !== after.exampleHash) d.push(`the examples' tokens differ (hash ${before.exampleHash} -> ${after.exampleHash})`);
  return d;
}

/**
 * The resume overrides for a checkpoint written under another config: every differing key must be in
 * `allowed` (else an error listing each difference and how to allow it); returns them, printed, for the state.
 */
export function acceptedChanges(label: string, dir: string, state: TrainerState, snapshot: unknown, allowed: readonly string[], hash: string): ResumeOverride[] {
  if (state.configSnapshot === undefined) {
    throw new Error(`${label}: cannot resume ${dir}: it was written by a different configuration (fingerprint ${state.configHash}, this run ${hash}); use the same config or another --out`);
  }
  const diffs = configDifferences(state.configSnapshot, snapshot);
  const matches = (key: string) => allowed.some((a) => key === a || key.endsWith(`.${a}`));
  const refused = diffs.filter((d) => !matches(d.key));
  if (refused.length || diffs.length === 0) {
    throw new Error(
      `${label}: cannot resume ${dir}: it was written by a different configuration:\n  - ${refused.map((d) => `${d.key}: ${d.from} -> ${d.to}`).join("\n  - ")}\n` +
        `Use the same config or another --out. To change ${RESUME_CHANGEABLE.join(", ")} on resume (e.g. a lower learning rate after a non-finite loss), ` +
        `say so with --allow-change KEY; the change is kept in trainer_state.json.`,
    );
  }
  const at = new Date().toISOString();
  const seen = new Set<string>();
  const out: ResumeOverride[] = [];
  for (const d of diffs) {
    const key = allowed.find((a) => d.key === a || d.key.endsWith(`.${a}`))!;
    if (seen.has(key)) continue; // the same key inside the stage config and the loop config
    seen.add(key);
    const value = (x: string): unknown => (x === "(absent)" ? null : (JSON.parse(x) as unknown));
    out.push({ atStep: state.step, key, from: value(d.from), to: value(d.to), at });
    process.stderr.write(`[tagi] ${label}: resuming at step ${state.step} with ${key} changed from ${d.from} to ${d.to} (--allow-change; recorded in trainer_state.json)\n`);
  }
  return out;
}
