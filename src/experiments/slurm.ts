/**
 * The Slurm executor: an experiment grid (experiments x seeds at one scale) handed to the cluster's scheduler
 * instead of run cell after cell here.
 *
 * - One job runs the scale's shared stages (`tagi prepare`: base, teachers, meta-trained models, stage 1,
 *   caches); every cell depends on it (`--dependency=afterok`).
 * - Cells become job arrays, one array task per (experiment, seed): layer 0 holds the experiments that train or
 *   evaluate on their own, layer 1 the probes that read another experiment's model (they wait for layer 0).
 * - Resources come from a profile (partition, CPUs, memory, time, `--gres`, backend; configs/slurm/*.json).
 * - Each array task runs `tagi experiment-cell`, i.e. the same runExperiment as the local executor: a finished
 *   cell (same protocol) is skipped, the output folder is locked, the record is written atomically at the end.
 *   So a cancelled or killed task leaves no experiment.json a table could read, and submitting the same grid
 *   again resubmits exactly the cells without a record.
 * - Each task writes an exit file (its exit code) beside its log, so status can tell failed from done even where
 *   the cluster keeps no accounting (`sacct`) and the job has left `squeue`.
 *
 * State: <runs>/<scale>/slurm/<grid id>/grid.json (cells, job ids, profile), logs and exit files beside it.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { PROJECT_DIR } from "../project-paths";
import { writeJsonAtomic } from "../train/checkpoint";
import { protocolDifferences, recordProtocol, scaleProtocol, type RecordProtocol } from "./protocol";
import { cliCommand, loadExperiment, loadScale, resultDir, resultsRoot, type ExperimentRecord } from "./runner";

export interface SlurmProfile {
  /** Partition (sbatch --partition); absent: the cluster's default. */
  partition?: string;
  cpusPerTask: number;
  /** Memory per task, as sbatch takes it ("8G", "16000M"). */
  mem: string;
  /** Time limit per task ("4:00:00", "1-00:00:00"). */
  time: string;
  /** Generic resources, e.g. "gpu:1" (GPU nodes; use the tfjs-node-gpu backend there). */
  gres?: string;
  account?: string;
  qos?: string;
  /** TAGI_BACKEND for the tasks (auto, tensorflow, wasm, cpu). */
  backend: "auto" | "tensorflow" | "wasm" | "cpu";
  /** Shell lines run before the command in each job (e.g. `module load nodejs`). */
  setup: string[];
  /** More sbatch options, each a whole option ("--constraint=avx512"). */
  sbatch: string[];
}

const PROFILE_KEYS = ["description", "partition", "cpusPerTask", "mem", "time", "gres", "account", "qos", "backend", "setup", "sbatch"];

/** Checks a profile (configs/slurm/*.json); every problem named with `where`. */
export function parseSlurmProfile(raw: Record<string, unknown>, where = "profile"): SlurmProfile {
  const p: string[] = [];
  for (const k of Object.keys(raw)) if (!PROFILE_KEYS.includes(k)) p.push(`unknown key '${k}' (valid: ${PROFILE_KEYS.join(", ")})`);
  const str = (k: string, re: RegExp, what: string, optional = true) => {
    const v = raw[k];
    if (v === undefined && optional) return undefined;
    if (typeof v !== "string" || !re.test(v)) p.push(`${k} must be ${what}, got ${JSON.stringify(v)}`);
    return v as string;
  };
  const cpus = raw["cpusPerTask"];
  if (!(Number.isInteger(cpus) && (cpus as number) >= 1)) p.push(`cpusPerTask must be an integer >= 1, got ${JSON.stringify(cpus)}`);
  const backend = raw["backend"] ?? "auto";
  if (!["auto", "tensorflow", "wasm", "cpu"].includes(backend as string)) p.push(`backend must be auto, tensorflow, wasm or cpu, got ${JSON.stringify(backend)}`);
  const lines = (k: string) => {
    const v = raw[k] ?? [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) p.push(`${k} must be a list of strings`);
    return (Array.isArray(v) ? v : []) as string[];
  };
  const sbatch = lines("sbatch");
  for (const o of sbatch) if (!o.startsWith("--")) p.push(`sbatch: each entry is a whole long option ("--constraint=avx512"), got ${JSON.stringify(o)}`);
  const profile: SlurmProfile = {
    ...(raw["partition"] !== undefined ? { partition: str("partition", /^[\w.,-]+$/, "a partition name") } : {}),
    cpusPerTask: cpus as number,
    mem: str("mem", /^\d+[KMGT]?$/, 'memory as sbatch takes it ("8G")', false)!,
    time: str("time", /^(\d+-)?\d+(:\d{2}){0,2}$/, 'a time limit ("4:00:00", "1-00:00:00")', false)!,
    ...(raw["gres"] !== undefined ? { gres: str("gres", /^[\w:.,-]+$/, 'generic resources ("gpu:1")') } : {}),
    ...(raw["account"] !== undefined ? { account: str("account", /^[\w.-]+$/, "an account name") } : {}),
    ...(raw["qos"] !== undefined ? { qos: str("qos", /^[\w.-]+$/, "a QOS name") } : {}),
    backend: backend as SlurmProfile["backend"],
    setup: lines("setup"),
    sbatch,
  };
  if (p.length) throw new Error(`${where}: invalid Slurm profile:\n  - ${p.join("\n  - ")}`);
  return profile;
}

export function loadSlurmProfile(file: string): SlurmProfile {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`Slurm profile ${file} not found (examples: configs/slurm/cpu.json, configs/slurm/gpu.json)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(abs, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`Slurm profile ${file}: not valid JSON: ${(e as Error).message}`);
  }
  return parseSlurmProfile(raw, file);
}

export interface GridCell {
  name: string;
  seed: number;
  /** 0: trains or evaluates on its own; 1: a probe that reads another experiment's model (waits for layer 0). */
  layer: 0 | 1;
}

export interface SubmittedCell extends GridCell {
  /** The array job and this cell's task in it ("123_4"). */
  job: string;
  log: string;
  exitFile: string;
}

export interface SubmittedGrid {
  id: string;
  scale: string;
  createdAt: string;
  profile: SlurmProfile;
  prepareJob: string;
  prepareLog: string;
  cells: SubmittedCell[];
  /** Cells left out because their record exists under the current protocol. */
  skipped: { name: string; seed: number }[];
}

/** The cells of a grid, layered (probes that use another experiment's model after it). */
export function gridCells(names: readonly string[], seeds: readonly number[]): GridCell[] {
  return names.flatMap((name) => {
    const layer: 0 | 1 = loadExperiment(name).uses ? 1 : 0;
    return seeds.map((seed) => ({ name, seed, layer }));
  });
}

/**
 * Whether a cell's record exists under the scale's current protocol (the local executor would skip it). A
 * caller checking many cells passes the protocol once (it hashes every published artifact.json).
 */
export function cellDone(name: string, scale: string, seed: number, resultsDir = resultsRoot(), protocol: RecordProtocol = scaleProtocol(loadScale(scale))): boolean {
  const file = path.join(resultDir(name, scale, seed, resultsDir), "experiment.json");
  if (!fs.existsSync(file)) return false;
  const rec = JSON.parse(fs.readFileSync(file, "utf8")) as ExperimentRecord;
  return protocolDifferences(recordProtocol(rec), protocol).length === 0;
}

function gridsRoot(scale: string): string {
  const runs = process.env.TAGI_RUNS_DIR ? path.resolve(process.env.TAGI_RUNS_DIR) : path.join(PROJECT_DIR, "runs");
  return path.join(runs, scale, "slurm");
}

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/** A batch script: #SBATCH lines from the profile, the setup lines, then `command` with its exit code recorded. */
export function jobScript(o: { profile: SlurmProfile; name: string; log: string; array?: number; command: string[]; exitFile: string; env: Record<string, string> }): string {
  const pr = o.profile;
  const sb = [
    `--job-name=${o.name}`,
    `--output=${o.log}`,
    `--cpus-per-task=${pr.cpusPerTask}`,
    `--mem=${pr.mem}`,
    `--time=${pr.time}`,
    ...(pr.partition ? [`--partition=${pr.partition}`] : []),
    ...(pr.gres ? [`--gres=${pr.gres}`] : []),
    ...(pr.account ? [`--account=${pr.account}`] : []),
    ...(pr.qos ? [`--qos=${pr.qos}`] : []),
    ...(o.array !== undefined ? [`--array=0-${o.array - 1}`] : []),
    ...pr.sbatch,
  ];
  return [
    "#!/usr/bin/env bash",
    ...sb.map((x) => `#SBATCH ${x}`),
    "set -uo pipefail",
    `cd ${shellQuote(PROJECT_DIR)}`,
    ...Object.entries(o.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    ...pr.setup,
    // the exit file is written whatever happens to the command (not when Slurm kills the whole job: then the
    // missing file and the job's absence from squeue say "cancelled or killed")
    `${o.command.map(shellQuote).join(" ")}`,
    "code=$?",
    `echo "$code" > "${o.exitFile.replace("%a", "${SLURM_ARRAY_TASK_ID:-0}")}"`,
    'exit "$code"',
    "",
  ].join("\n");
}

/** `sbatch --parsable SCRIPT` with extra options; returns the job id, or throws naming `what` and Slurm's words. */
function sbatch(script: string, extra: string[], what: string): string {
  try {
    return execFileSync("sbatch", ["--parsable", ...extra, script], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 }).toString().trim().split(";")[0]!;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === "ENOENT") throw new Error(`${what}: no sbatch on the PATH: this machine is not a Slurm submit host (run with --executor local, or from a login node)`);
    throw new Error(`${what}: sbatch refused the job: ${String(err.stderr ?? err.message).trim()} (script ${script})`);
  }
}

/**
 * Submits the grid (see the module comment) and writes its grid.json; cells whose record exists under the
 * current protocol are skipped. Returns what was submitted.
 */
export function submitGrid(o: { scale: string; names: readonly string[]; seeds: readonly number[]; profile: SlurmProfile; resultsDir?: string; log?: (line: string) => void }): SubmittedGrid {
  const log = o.log ?? ((l: string) => console.error(l));
  const protocol = scaleProtocol(loadScale(o.scale)); // a bad scale fails here, not in the jobs
  const all = gridCells(o.names, o.seeds);
  const skipped = all.filter((c) => cellDone(c.name, o.scale, c.seed, o.resultsDir, protocol)).map((c) => ({ name: c.name, seed: c.seed }));
  const todo = all.filter((c) => !skipped.some((s) => s.name === c.name && s.seed === c.seed));
  const id = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  const dir = path.join(gridsRoot(o.scale), id);
  fs.mkdirSync(dir, { recursive: true });
  const env: Record<string, string> = { TAGI_BACKEND: o.profile.backend, TAGI_THREADS: String(o.profile.cpusPerTask), ...(o.resultsDir ? { TAGI_RESULTS_DIR: path.resolve(o.resultsDir) } : {}) };
  for (const k of ["TAGI_DATA_DIR", "TAGI_RUNS_DIR"]) if (process.env[k]) env[k] = path.resolve(process.env[k]!);
  const node = [process.execPath, ...cliCommand()];
  const prepareLog = path.join(dir, "prepare.out");
  const prepareScript = path.join(dir, "prepare.sh");
  fs.writeFileSync(prepareScript, jobScript({ profile: o.profile, name: `tagi-prepare-${o.scale}`, log: prepareLog, command: [...node, "prepare", "--scale", o.scale], exitFile: path.join(dir, "prepare.exit"), env }));
  const grid: SubmittedGrid = { id, scale: o.scale, createdAt: new Date().toISOString(), profile: o.profile, prepareJob: "", prepareLog, cells: [], skipped };
  if (!todo.length) {
    log(`[slurm] nothing to submit: all ${all.length} cells have records under the current protocol`);
    return grid;
  }
  grid.prepareJob = sbatch(prepareScript, [], `grid ${id}: the shared stages of ${o.scale}`);
  log(`[slurm] shared stages: job ${grid.prepareJob} (log ${path.relative(PROJECT_DIR, prepareLog)})`);
  const layerJobs: string[] = [];
  for (const layer of [0, 1] as const) {
    const cells = todo.filter((c) => c.layer === layer);
    if (!cells.length) continue;
    const cellsFile = path.join(dir, `layer-${layer}.json`);
    writeJsonAtomic(cellsFile, cells.map((c) => ({ name: c.name, seed: c.seed })));
    const logPattern = path.join(dir, `layer-${layer}-%a.out`);
    const script = path.join(dir, `layer-${layer}.sh`);
    fs.writeFileSync(script, jobScript({ profile: o.profile, name: `tagi-${o.scale}-l${layer}`, log: logPattern, array: cells.length, command: [...node, "experiment-cell", "--cells", cellsFile, "--scale", o.scale], exitFile: path.join(dir, `layer-${layer}-%a.exit`), env }));
    // after the shared stages succeeded, and (probes) after the cells whose models they read have ended; a
    // probe whose experiment failed trains it itself, as the local executor does
    const after = `afterok:${grid.prepareJob}${layerJobs.length ? `,afterany:${layerJobs.join(":")}` : ""}`;
    const job = sbatch(script, [`--dependency=${after}`], `grid ${id}: cells ${cells.map((c) => `${c.name} seed ${c.seed}`).join(", ")}`);
    layerJobs.push(job);
    cells.forEach((c, i) => grid.cells.push({ ...c, job: `${job}_${i}`, log: logPattern.replace("%a", String(i)), exitFile: path.join(dir, `layer-${layer}-${i}.exit`) }));
    log(`[slurm] ${cells.length} cell${cells.length > 1 ? "s" : ""} as array job ${job} (after ${after})`);
  }
  writeJsonAtomic(path.join(dir, "grid.json"), grid);
  if (skipped.length) log(`[slurm] skipped ${skipped.length} finished cell(s): ${skipped.map((s) => `${s.name} seed ${s.seed}`).join(", ")}`);
  return grid;
}

/** The cell of this array task (SLURM_ARRAY_TASK_ID) in a layer's cells file. */
export function arrayTaskCell(cellsFile: string, env: NodeJS.ProcessEnv = process.env): { name: string; seed: number } {
  const cells = JSON.parse(fs.readFileSync(cellsFile, "utf8")) as { name: string; seed: number }[];
  const i = Number(env["SLURM_ARRAY_TASK_ID"]);
  if (!Number.isInteger(i) || i < 0 || i >= cells.length) throw new Error(`experiment-cell: SLURM_ARRAY_TASK_ID ${JSON.stringify(env["SLURM_ARRAY_TASK_ID"])} is not a task of ${cellsFile} (0..${cells.length - 1})`);
  return cells[i]!;
}

export type CellState = "done" | "pending" | "running" | "failed" | "cancelled" | "unknown";

export interface CellStatus {
  name: string;
  seed: number;
  job: string;
  state: CellState;
  /** Slurm's state or reason, the exit code, where the log is. */
  detail: string;
}

/** Slurm's view of jobs: squeue (recent jobs of every state), then sacct where the cluster keeps accounting. */
function slurmStates(jobs: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!jobs.length) return out;
  const ids = [...new Set(jobs.map((j) => j.split("_")[0]!))].join(",");
  const ask = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 }).toString();
    } catch {
      return ""; // no accounting, or the jobs aged out: the exit files tell the rest
    }
  };
  for (const line of ask("sacct", ["-n", "-P", "-X", "-j", ids, "-o", "JobID,State"]).split("\n")) {
    const [id, state] = line.trim().split("|");
    if (id && state) out.set(id, state.split(" ")[0]!);
  }
  for (const line of ask("squeue", ["-h", "-t", "all", "-r", "-j", ids, "-o", "%i|%T|%r"]).split("\n")) {
    const [id, state, reason] = line.trim().split("|");
    if (id && state) out.set(id, reason && reason !== "None" && state === "PENDING" ? `${state} (${reason})` : state);
  }
  return out;
}

/** The state of every cell of the scale's submitted grids (newest submission of a cell wins). */
export function gridStatus(scale: string, resultsDir = resultsRoot()): CellStatus[] {
  const root = gridsRoot(scale);
  if (!fs.existsSync(root)) return [];
  const grids = fs
    .readdirSync(root)
    .sort()
    .map((g) => path.join(root, g, "grid.json"))
    .filter((f) => fs.existsSync(f))
    .map((f) => JSON.parse(fs.readFileSync(f, "utf8")) as SubmittedGrid);
  const latest = new Map<string, SubmittedCell>();
  const gridOf = new Map<string, SubmittedGrid>();
  for (const g of grids) for (const c of g.cells) (latest.set(`${c.name}|${c.seed}`, c), gridOf.set(`${c.name}|${c.seed}`, g));
  const states = slurmStates([...latest.values()].map((c) => c.job));
  const protocol = scaleProtocol(loadScale(scale));
  return [...latest.values()].map((c) => {
    const rel = path.relative(PROJECT_DIR, c.log);
    if (cellDone(c.name, scale, c.seed, resultsDir, protocol)) return { name: c.name, seed: c.seed, job: c.job, state: "done", detail: `record written (log ${rel})` };
    const slurm = states.get(c.job);
    const exit = fs.existsSync(c.exitFile) ? Number(fs.readFileSync(c.exitFile, "utf8").trim()) : null;
    const base = { name: c.name, seed: c.seed, job: c.job };
    if (slurm?.includes("DependencyNeverSatisfied")) {
      // what it waited for failed: the shared stages (their exit file and log say why) or, for a probe, never ran
      const g = gridOf.get(`${c.name}|${c.seed}`)!;
      const prepExit = path.join(path.dirname(g.prepareLog), "prepare.exit");
      const code = fs.existsSync(prepExit) ? fs.readFileSync(prepExit, "utf8").trim() : null;
      const why = code !== null && code !== "0" ? `the shared stages' job ${g.prepareJob} failed (exit ${code}; log ${path.relative(PROJECT_DIR, g.prepareLog)})` : `a job it depends on failed (shared stages: job ${g.prepareJob}, log ${path.relative(PROJECT_DIR, g.prepareLog)})`;
      return { ...base, state: "failed", detail: `never started: ${why}; scancel ${c.job.split("_")[0]} and submit again` };
    }
    if (slurm?.startsWith("PENDING")) return { ...base, state: "pending", detail: slurm };
    if (slurm === "RUNNING" || slurm === "COMPLETING" || slurm === "CONFIGURING") return { ...base, state: "running", detail: `${slurm} (log ${rel})` };
    if (slurm?.startsWith("CANCELLED")) return { ...base, state: "cancelled", detail: `${slurm}; no record (log ${rel})` };
    if (exit !== null) return { ...base, state: "failed", detail: `exit ${exit} without a record${slurm ? ` (${slurm})` : ""}; log ${rel}` };
    if (slurm) return { ...base, state: "failed", detail: `${slurm} without a record or exit file (killed by Slurm?); log ${rel}` };
    return { ...base, state: "unknown", detail: `Slurm no longer knows job ${c.job} and it left no record or exit file (cancelled or killed); log ${rel}` };
  });
}

/** The status as a table for the terminal. */
export function formatStatus(rows: readonly CellStatus[]): string {
  if (!rows.length) return "no Slurm grid submitted at this scale (npm run experiment -- NAMES --executor slurm --profile FILE)";
  const counts = (["done", "running", "pending", "failed", "cancelled", "unknown"] as const).map((s) => [s, rows.filter((r) => r.state === s).length] as const).filter(([, n]) => n);
  const w = Math.max(...rows.map((r) => `${r.name} seed ${r.seed}`.length));
  return [
    ...rows.map((r) => `${`${r.name} seed ${r.seed}`.padEnd(w)}  ${r.job.padEnd(10)} ${r.state.padEnd(9)} ${r.detail}`),
    counts.map(([s, n]) => `${n} ${s}`).join(", "),
  ].join("\n");
}
