/**
 * Published artifacts: the trained models that later work needs (the base model, the meta-trained models,
 * the parameter teachers, the stage-1 generator), committed under `artifacts/<scale>/<name>/` so that a fresh
 * checkout runs every experiment without training them again.
 *
 * `publishArtifact` copies a finished stage's output folder (its run.json says which stage made it) into the
 * artifact folder: the weights (float32 safetensors stored as bfloat16 when the artifact is frozen where it is
 * used, `dtype: "bf16"`), the configs and manifests with this machine's paths made project-relative, the
 * training log (whose `eval.devLoss` points are the dev-split curve) and the run record. It writes
 * `artifact.json` last: every file's size and sha256, the parameter count, the command, commit and backend that
 * trained it, the command and commit that published it, and the dev curve; a folder without it is not an
 * artifact (a publish that was interrupted). `verifyArtifacts` checks every file against its artifact.json.
 *
 * Later stages read the published copy, not the run folder, so a chain trained on one machine (base, then
 * teachers on that base) and the same chain read from a checkout use bit-identical weights.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { PROJECT_DIR, projectRelative } from "../project-paths";
import { convertSafetensorsToBf16 } from "../model/safetensors-convert";
import { readSafetensorsHeader, writeJsonAtomic } from "../model/safetensors";
import { environmentReport } from "../environment";

/** The repository's budget for committed artifacts (all of artifacts/), in bytes. */
export const ARTIFACTS_BUDGET_BYTES = 250e6;
export const ARTIFACT_FILE = "artifact.json";

export type ArtifactDtype = "bf16" | "f32";

export interface ArtifactFile {
  path: string;
  bytes: number;
  sha256: string;
  /** Elements per stored dtype (safetensors files only). */
  elements?: Record<string, number>;
}

export interface ArtifactManifest {
  artifact: string;
  /** What the folder holds: a T5 model folder, a TAGI checkpoint, or parameter teachers (LoRA adapters). */
  kind: "t5" | "tagi" | "teachers";
  /** How its float32 weights are stored. */
  dtype: ArtifactDtype;
  parameters: number;
  bytes: number;
  files: ArtifactFile[];
  trainedBy: { stage: string; command: string | null; commit: string | null; uncommitted?: string[]; backend: string | null; seed: unknown; startedAt: string | null; wallSeconds: number | null; steps: number | null };
  publishedBy: { command: string | null; commit: string | null; at: string };
  /** The dev-split curve (teacher-forced loss of held-out dev tasks) of the run; per teacher for teachers. */
  devCurve: { step: number; loss: number }[] | Record<string, DevEnds | null>;
  trainLoss: { first: number; last: number } | null;
  /**
   * The published artifacts its run read (the base it sat on, a logit teacher, stage 1), each with the sha256
   * of its artifact.json when this one was published: republishing one of them makes this one stale, and
   * verifyArtifact says so.
   */
  reads?: { artifact: string; sha256: string }[];
  /** The earlier runs this one continued, by name: how each was trained and its dev curve. */
  earlier?: Record<string, { stage: string; command: string | null; commit: string | null; steps: number | null; wallSeconds: number | null; devCurve: { step: number; loss: number }[]; trainLoss: { first: number; last: number } | null }>;
}

/** A teacher's dev curve ends, as its manifest records them (TeacherEntry.devLoss). */
type DevEnds = { first: number; last: number; firstStep: number; lastStep: number };

interface RunRecord {
  config?: unknown;
  stage?: string;
  command?: string | null;
  commit?: string | null;
  uncommitted?: string[];
  backend?: { backend?: string } | string | null;
  seed?: unknown;
  startedAt?: string;
  wallSeconds?: number;
  training?: { steps?: number };
}

/**
 * The published artifacts a run's config names (any string value that is a path inside artifacts/<scale>/<name>
 * holding an artifact.json), with the sha256 of each artifact.json now.
 */
export function artifactReads(config: unknown, root = path.join(PROJECT_DIR, "artifacts")): { artifact: string; sha256: string }[] {
  const found = new Map<string, string>();
  const visit = (v: unknown): void => {
    if (typeof v === "string") {
      const abs = path.resolve(PROJECT_DIR, v);
      const rel = path.relative(root, abs);
      if (rel.startsWith("..") || path.isAbsolute(rel)) return;
      const [scale, name] = rel.split(path.sep);
      if (!scale || !name) return;
      const file = path.join(root, scale, name, ARTIFACT_FILE);
      if (fs.existsSync(file)) found.set(path.relative(PROJECT_DIR, path.dirname(file)), sha256File(file));
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === "object") Object.values(v as Record<string, unknown>).forEach(visit);
  };
  visit(config);
  return [...found].sort().map(([artifact, sha256]) => ({ artifact, sha256 }));
}

function sha256File(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 22);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (e) {
    throw new Error(`${file}: cannot read JSON (${(e as Error).message})`);
  }
}

/** The files of a stage's output folder that make the artifact (relative paths), and its kind. */
function payload(run: string): { kind: ArtifactManifest["kind"]; files: string[] } {
  const has = (p: string) => fs.existsSync(path.join(run, p));
  const folder = (dir: string) => fs.readdirSync(path.join(run, dir)).filter((f) => fs.statSync(path.join(run, dir, f)).isFile()).sort().map((f) => path.join(dir, f));
  if (has("manifest.json") && !has("model")) {
    const m = readJson<{ teachers?: { dir: string; adapter: string }[] }>(path.join(run, "manifest.json"));
    if (!m.teachers?.length) throw new Error(`${run}/manifest.json lists no teachers`);
    const files = ["manifest.json"];
    for (const t of m.teachers) {
      if (!has(t.adapter)) throw new Error(`${run}: teacher adapter ${t.adapter} is missing (manifest.json lists it)`);
      files.push(...folder(t.adapter));
      if (has(path.join(t.dir, "log.jsonl"))) files.push(path.join(t.dir, "log.jsonl"));
    }
    return { kind: "teachers", files };
  }
  if (has("model/tagi_config.json")) return { kind: "tagi", files: folder("model") };
  if (has("model/config.json")) return { kind: "t5", files: folder("model") };
  throw new Error(`${run} holds no model/ folder (config.json or tagi_config.json) and no teachers manifest.json: not a finished stage`);
}

function backendName(b: RunRecord["backend"]): string | null {
  if (!b) return null;
  if (typeof b === "string") return b;
  return b.backend ?? null;
}

function devCurveOf(logFile: string): { curve: { step: number; loss: number }[]; trainLoss: ArtifactManifest["trainLoss"] } {
  if (!fs.existsSync(logFile)) return { curve: [], trainLoss: null };
  const recs = fs
    .readFileSync(logFile, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { step: number; loss?: number; eval?: Record<string, number> });
  const curve = recs.filter((r) => r.eval?.["devLoss"] !== undefined).map((r) => ({ step: r.step, loss: r.eval!["devLoss"]! }));
  const losses = recs.map((r) => r.loss).filter((x): x is number => typeof x === "number");
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { curve, trainLoss: losses.length ? { first: mean(losses.slice(0, 10)), last: mean(losses.slice(-10)) } : null };
}

export interface PublishOptions {
  /** A finished stage's output folder (run.json, model/ or a teachers manifest). */
  run: string;
  /** The artifact folder, e.g. artifacts/small/base. */
  out: string;
  dtype: ArtifactDtype;
  /** The command line that publishes (recorded). */
  command?: string[];
  /** Refuse when artifacts/ would exceed this many bytes (default ARTIFACTS_BUDGET_BYTES; the folder's parent's parent is measured). */
  budgetBytes?: number;
  /**
   * Earlier runs this one continued (e.g. the span-corruption phase an LM-adapt phase starts from): their
   * run.json and log.jsonl (no weights) go to `<out>/<name>/`, so the artifact carries its whole history.
   */
  earlier?: { name: string; run: string }[];
}

/** Publishes a finished stage (see the module comment); returns the artifact's manifest. */
export function publishArtifact(o: PublishOptions): ArtifactManifest {
  const run = path.resolve(o.run);
  const out = path.resolve(o.out);
  const runFile = path.join(run, "run.json");
  if (!fs.existsSync(runFile)) throw new Error(`publish: ${run} has no run.json (not a finished stage: train it first)`);
  const record = readJson<RunRecord>(runFile);
  const { kind, files } = payload(run);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const listed: ArtifactFile[] = [];
  let parameters = 0;
  const extra = ["run.json", ...(fs.existsSync(path.join(run, "log.jsonl")) ? ["log.jsonl"] : [])];
  const sources = new Map<string, string>([...files, ...extra].map((rel) => [rel, path.join(run, rel)]));
  for (const e of o.earlier ?? []) {
    if (!/^[a-z0-9-]+$/.test(e.name)) throw new Error(`publish: earlier run name '${e.name}' must be lower-case letters, digits and dashes`);
    for (const f of ["run.json", "log.jsonl"]) {
      const src = path.join(path.resolve(e.run), f);
      if (!fs.existsSync(src)) throw new Error(`publish: the earlier run ${e.run} has no ${f}`);
      sources.set(path.join(e.name, f), src);
    }
  }
  for (const [rel, src] of sources) {
    const dst = path.join(out, rel);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    let elements: Record<string, number> | undefined;
    if (rel.endsWith(".safetensors")) {
      if (o.dtype === "bf16") elements = convertSafetensorsToBf16(src, dst).elements as Record<string, number>;
      else {
        fs.copyFileSync(src, dst);
        elements = {};
        for (const e of readSafetensorsHeader(dst).tensors.values()) elements[e.dtype] = (elements[e.dtype] ?? 0) + e.shape.reduce((a, b) => a * b, 1);
      }
      parameters += Object.values(elements).reduce((a, b) => a + b, 0);
    } else if (rel.endsWith(".json")) {
      // configs and manifests name the base they sit on: project-relative here, resolved against the project on reading
      writeJsonAtomic(dst, projectRelative(readJson<unknown>(src)));
    } else {
      fs.copyFileSync(src, dst);
    }
    listed.push({ path: rel, bytes: fs.statSync(dst).size, sha256: sha256File(dst), ...(elements ? { elements } : {}) });
  }
  const log = devCurveOf(path.join(run, "log.jsonl"));
  let devCurve: ArtifactManifest["devCurve"] = log.curve;
  if (kind === "teachers") {
    const m = readJson<{ teachers: { group: string; devLoss?: DevEnds | null }[] }>(path.join(run, "manifest.json"));
    devCurve = Object.fromEntries(m.teachers.map((t) => [t.group, t.devLoss ?? null]));
  }
  const env = environmentReport();
  const manifest: ArtifactManifest = {
    artifact: path.relative(PROJECT_DIR, out) || out,
    kind,
    dtype: o.dtype,
    parameters,
    bytes: listed.reduce((a, f) => a + f.bytes, 0),
    files: listed,
    trainedBy: {
      stage: record.stage ?? "unknown",
      command: record.command ?? null,
      commit: record.commit ?? null,
      ...(record.uncommitted?.length ? { uncommitted: record.uncommitted } : {}),
      backend: backendName(record.backend),
      seed: record.seed ?? null,
      startedAt: record.startedAt ?? null,
      wallSeconds: record.wallSeconds ?? null,
      steps: record.training?.steps ?? null,
    },
    publishedBy: { command: o.command ? o.command.join(" ") : null, commit: env.commit, at: new Date().toISOString() },
    devCurve,
    trainLoss: log.trainLoss,
    reads: artifactReads(record.config, path.dirname(path.dirname(out))).filter((r) => path.resolve(PROJECT_DIR, r.artifact) !== out),
    ...(o.earlier?.length
      ? {
          earlier: Object.fromEntries(
            o.earlier.map((e) => {
              const r = readJson<RunRecord>(path.join(path.resolve(e.run), "run.json"));
              const l = devCurveOf(path.join(path.resolve(e.run), "log.jsonl"));
              return [e.name, { stage: r.stage ?? "unknown", command: r.command ?? null, commit: r.commit ?? null, steps: r.training?.steps ?? null, wallSeconds: r.wallSeconds ?? null, devCurve: l.curve, trainLoss: l.trainLoss }];
            }),
          ),
        }
      : {}),
  };
  const root = path.dirname(path.dirname(out));
  const total = folderBytes(root);
  const budget = o.budgetBytes ?? ARTIFACTS_BUDGET_BYTES;
  if (total > budget) {
    fs.rmSync(out, { recursive: true, force: true });
    throw new Error(`publish: ${path.relative(PROJECT_DIR, root) || root} would hold ${(total / 1e6).toFixed(1)} MB with ${manifest.artifact} (${(manifest.bytes / 1e6).toFixed(1)} MB), over the ${(budget / 1e6).toFixed(0)} MB budget for committed artifacts`);
  }
  writeJsonAtomic(path.join(out, ARTIFACT_FILE), projectRelative(manifest));
  return manifest;
}

function folderBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : e.isFile() ? fs.statSync(p).size : 0;
  }
  return n;
}

/** Every artifact.json under `root` (artifacts/<scale>/<name>/artifact.json), sorted. */
export function listArtifacts(root = path.join(PROJECT_DIR, "artifacts")): { dir: string; manifest: ArtifactManifest }[] {
  if (!fs.existsSync(root)) return [];
  const found: { dir: string; manifest: ArtifactManifest }[] = [];
  for (const scale of fs.readdirSync(root).sort()) {
    const sdir = path.join(root, scale);
    if (!fs.statSync(sdir).isDirectory()) continue;
    for (const name of fs.readdirSync(sdir).sort()) {
      const file = path.join(sdir, name, ARTIFACT_FILE);
      if (fs.existsSync(file)) found.push({ dir: path.join(sdir, name), manifest: readJson<ArtifactManifest>(file) });
    }
  }
  return found;
}

const LFS_POINTER = "version https://git-lfs.github.com/spec/";

/**
 * Checks every file of every artifact against its artifact.json (size, sha256) and that no file is missing,
 * extra, or a Git LFS pointer in place of the data. Returns one line per problem, naming the file; [] when
 * all hold.
 */
export function verifyArtifacts(root = path.join(PROJECT_DIR, "artifacts")): { artifacts: number; bytes: number; problems: string[] } {
  const all = listArtifacts(root);
  let bytes = 0;
  const problems: string[] = [];
  for (const { dir, manifest } of all) {
    const r = verifyArtifact(dir, manifest);
    bytes += r.bytes;
    problems.push(...r.problems);
  }
  return { artifacts: all.length, bytes, problems };
}

/** One artifact folder against its artifact.json (see verifyArtifacts). */
export function verifyArtifact(dir: string, manifest: ArtifactManifest = readJson<ArtifactManifest>(path.join(dir, ARTIFACT_FILE))): { bytes: number; problems: string[] } {
  const problems: string[] = [];
  let bytes = 0;
  const name = path.relative(PROJECT_DIR, dir) || dir;
  const want = new Set(manifest.files.map((f) => f.path));
  for (const f of manifest.files) {
    const file = path.join(dir, f.path);
    if (!fs.existsSync(file)) {
      problems.push(`${name}/${f.path}: missing (artifact.json lists it)`);
      continue;
    }
    const size = fs.statSync(file).size;
    bytes += size;
    if (size < 1024 && fs.readFileSync(file, "utf8").startsWith(LFS_POINTER)) {
      problems.push(`${name}/${f.path}: a Git LFS pointer, not the file (run \`git lfs pull\`)`);
      continue;
    }
    if (size !== f.bytes) problems.push(`${name}/${f.path}: ${size} bytes, artifact.json says ${f.bytes}`);
    else if (sha256File(file) !== f.sha256) problems.push(`${name}/${f.path}: sha256 differs from artifact.json (the file was changed after publishing)`);
  }
  const walk = (d: string, rel: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name), path.join(rel, e.name)) : [path.join(rel, e.name)]));
  for (const f of walk(dir, "")) if (f !== ARTIFACT_FILE && !want.has(f)) problems.push(`${name}/${f}: not listed in artifact.json`);
  for (const r of manifest.reads ?? []) {
    const file = path.resolve(PROJECT_DIR, r.artifact, ARTIFACT_FILE);
    if (!fs.existsSync(file)) problems.push(`${name}: trained on ${r.artifact}, which is not there any more (restore it, or retrain ${name} with tagi prepare)`);
    else if (sha256File(file) !== r.sha256) problems.push(`${name}: trained on ${r.artifact}, which was republished since (its artifact.json changed): ${name} is stale; retrain it (tagi prepare) or restore ${r.artifact}`);
  }
  return { bytes, problems };
}

/** artifacts/README.md: one row per artifact (what, size, how it was trained, its dev curve's ends), then how each was made. */
export function artifactsIndex(root = path.join(PROJECT_DIR, "artifacts")): string {
  const all = listArtifacts(root);
  const ends = (curve: { step: number; loss: number }[]) => (curve.length ? `${curve[0]!.loss.toFixed(3)} (step ${curve[0]!.step}) -> ${curve.at(-1)!.loss.toFixed(3)} (step ${curve.at(-1)!.step})` : "");
  const minutes = (s: number | null) => (s !== null ? (s / 60).toFixed(0) : "");
  const rows = all.map(({ dir, manifest: m }) => {
    const dev = Array.isArray(m.devCurve) ? ends(m.devCurve) : m.kind === "teachers" ? "per teacher in artifact.json" : "";
    return `| \`${path.relative(root, dir)}\` | ${m.kind} | ${(m.parameters / 1e6).toFixed(2)}M | ${m.dtype} | ${(m.bytes / 1e6).toFixed(1)} | ${m.trainedBy.steps ?? ""} | ${minutes(m.trainedBy.wallSeconds)} | ${m.trainedBy.backend ?? ""} | ${m.trainedBy.commit?.slice(0, 7) ?? ""} | ${dev} |`;
  });
  const how = all.flatMap(({ dir, manifest: m }) => [
    `- \`${path.relative(root, dir)}\`: \`${m.trainedBy.command ?? "?"}\` at ${m.trainedBy.commit?.slice(0, 7) ?? "?"}${m.trainedBy.uncommitted?.length ? ` (plus uncommitted changes to ${m.trainedBy.uncommitted.join(", ")})` : ""}; published by \`${m.publishedBy.command ?? "?"}\`.`,
    ...Object.entries(m.earlier ?? {}).map(
      ([name, e]) => `  - continues \`${name}/\`: \`${e.command ?? "?"}\` at ${e.commit?.slice(0, 7) ?? "?"}, ${e.steps ?? "?"} steps, ${minutes(e.wallSeconds)} min; dev loss ${ends(e.devCurve) || "not recorded"}.`,
    ),
  ]);
  const total = all.reduce((a, x) => a + x.manifest.bytes, 0);
  return [
    "# Published artifacts",
    "",
    "Trained once, committed once, read by every later stage and experiment (`configs/<scale>/`). Each folder's",
    "`artifact.json` lists its files with sha256 and size, the command and commit that trained it and the one that",
    "published it, and its dev-split curve; `npm run tagi -- artifacts` checks every file against it, and",
    "`tagi prepare` does before it reads one. Weights that later stages keep frozen are stored as bfloat16 (rounded",
    "to nearest even, as torch rounds). `scripts/train-small.sh` (`tagi prepare --scale small`) trains whatever is",
    "missing and publishes it here.",
    "",
    `${(total / 1e6).toFixed(1)} MB in all (budget ${(ARTIFACTS_BUDGET_BYTES / 1e6).toFixed(0)} MB).`,
    "",
    "| artifact | kind | parameters | stored as | MB | steps | train min | backend | trained at | dev loss first -> last |",
    "|---|---|---:|---|---:|---:|---:|---|---|---|",
    ...rows,
    "",
    ...how,
    "",
  ].join("\n");
}
