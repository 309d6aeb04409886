/**
 * The loss-weight grid (λ1 for L_kl, λ2 for L_ins, the temperature T), chosen on the dev split: every setting
 * is a full stage-2 run of the scale's TAGI config (the `tagi` experiment's stage, same seed, steps and shared
 * artifacts; only the weights differ), scored by greedy ROUGE-L on the dev tasks every stage holds out (5% of
 * the training tasks, stratified by category), and compared with the config's own weights instance by
 * instance. The test tasks are never read here: the chosen weights go into the stage config and are reported on
 * test once, by the `tagi` experiment.
 *
 * Why a command and not notebook 04's cell: a setting costs what a TAGI cell costs (40-50 min at the small
 * scale), so the grid runs in the background, two settings at a time on two cores, resumes a stopped setting
 * (each run is `tagi finetune --resume`) and keeps every finished setting: rerunning the same command trains
 * only what is missing. A temperature other than the scale's logit cache's gets its own cache first
 * (`tagi teacher-logits`), since a cache holds one temperature's top-k and the finetune refuses another.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { availableParallelism } from "node:os";
import { pairedComparison, type PairedComparison } from "../eval/stats";
import type { PromptFormat } from "../text/prompts";
import { applySets } from "../train/config-sets";
import { writeJsonAtomic } from "../train/checkpoint";
import { formatPaired, pairOnInstances, readInstanceRougeL } from "./paired";
import { readTrainingLog } from "../plots/curves";
import { ensurePrepared, formatSlug, gitCommit, loadExperiment, loadScale, PROJECT_ROOT, runCli, setStrings, stageSets } from "./runner";

export interface LossGridPoint {
  kl: number;
  ins: number;
  temperature: number;
}

export interface LossGridRow extends LossGridPoint {
  label: string;
  /** The config's own weights: what every other row is compared with. */
  isDefault: boolean;
  trainSeconds: number;
  evalSeconds: number;
  /** The training run's dev curve (reference NLL of the dev tasks' instances, nats per target token). */
  devCurve: { step: number; devLoss: number }[];
  dev: { rougeL: number; lo: number; hi: number; referenceNll: number | null; instances: number; tasks: number };
  /** This row minus the default's ROUGE-L, paired over dev instances; null for the default itself. */
  versusDefault: (PairedComparison & { units: number }) | null;
}

export interface LossGridReport {
  scale: string;
  format: PromptFormat;
  seed: number;
  steps: number;
  devInstancesPerTask: number;
  command: string;
  commit: string | null;
  backend: string | null;
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  rows: LossGridRow[];
  /** The row with the highest dev ROUGE-L, and what its choice rests on. */
  chosen: { label: string; rule: string };
}

/** Every combination of the lists, the config's own weights added when missing (the paired baseline). */
export function lossGridPoints(kl: readonly number[], ins: readonly number[], temperature: readonly number[], defaults: LossGridPoint): LossGridPoint[] {
  for (const [name, list, positive] of [["--kl", kl, false], ["--ins", ins, false], ["--temperature", temperature, true]] as const) {
    if (!list.length) throw new Error(`${name}: give at least one value`);
    for (const v of list) if (!Number.isFinite(v) || v < 0 || (positive && v === 0)) throw new Error(`${name}: ${v} is not a ${positive ? "positive" : "non-negative"} number`);
  }
  const out: LossGridPoint[] = [];
  const key = (p: LossGridPoint) => `${p.kl}|${p.ins}|${p.temperature}`;
  // Without L_kl the temperature changes nothing: one run, at the config's temperature.
  for (const k of kl) for (const i of ins) for (const t of temperature) out.push({ kl: k, ins: i, temperature: k === 0 ? defaults.temperature : t });
  if (!out.some((p) => key(p) === key(defaults))) out.unshift(defaults);
  return out.filter((p, i) => out.findIndex((q) => key(q) === key(p)) === i);
}

export function lossGridLabel(p: LossGridPoint, steps: number, seed: number): string {
  return `kl${p.kl}-ins${p.ins}-T${p.temperature}-${steps}steps-seed${seed}`;
}

/** results/loss-grid/<scale>/<format>/ (the report) and runs/<scale>/loss-grid/<format>/ (the trained runs). */
export function lossGridDirs(scale: string, format: PromptFormat): { results: string; runs: string } {
  const runsRoot = process.env.TAGI_RUNS_DIR ? path.resolve(process.env.TAGI_RUNS_DIR) : path.join(PROJECT_ROOT, "runs");
  const resultsRoot = process.env.TAGI_RESULTS_DIR ? path.resolve(process.env.TAGI_RESULTS_DIR) : path.join(PROJECT_ROOT, "results");
  return { results: path.join(resultsRoot, "loss-grid", scale, formatSlug(format)), runs: path.join(runsRoot, scale, "loss-grid", formatSlug(format)) };
}

export interface LossGridOptions {
  scale: string;
  format: PromptFormat;
  kl: number[];
  ins: number[];
  temperature: number[];
  seed: number;
  /** Training steps of every setting (default: the stage config's). */
  steps: number | null;
  parallel: number;
  devInstancesPerTask: number;
  command: string;
  log?: (line: string) => void;
}

/** Runs (or reads back) every setting, then writes grid.json and README.md under lossGridDirs().results. */
export async function runLossGrid(o: LossGridOptions): Promise<LossGridReport> {
  const log = o.log ?? ((l: string) => console.error(l));
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const scale = loadScale(o.scale);
  const spec = loadExperiment("tagi");
  await ensurePrepared(scale, log, { formats: [o.format] });
  const base = stageSets(spec, scale, o.format, o.seed);
  const configFile = path.join("configs", o.scale, spec.stage!.config);
  const config = applySets(JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, configFile), "utf8")) as Record<string, unknown>, setStrings(base));
  const losses = config["losses"] as Record<string, number>;
  const defaults: LossGridPoint = { kl: losses["kl"]!, ins: losses["ins"]!, temperature: losses["temperature"]! };
  const steps = o.steps ?? ((config["train"] as Record<string, number>)["steps"] as number);
  const points = lossGridPoints(o.kl, o.ins, o.temperature, defaults);
  const dirs = lossGridDirs(o.scale, o.format);
  const rel = (p: string) => path.relative(PROJECT_ROOT, p);

  // A logit cache per temperature, built (with every core) before any setting trains.
  const caches = new Map<number, string | null>();
  for (const t of new Set(points.filter((p) => p.kl > 0).map((p) => p.temperature))) {
    const cache = typeof base["teacherLogits"] === "string" ? (base["teacherLogits"] as string) : null;
    if (!cache || t === defaults.temperature) {
      caches.set(t, cache);
      continue;
    }
    const dir = path.join(path.dirname(path.join(PROJECT_ROOT, cache)), `${path.basename(cache)}-T${t}`);
    if (!fs.existsSync(path.join(dir, "index.json"))) {
      log(`[loss-grid] T = ${t}: the logit cache ${cache} holds T = ${defaults.temperature}; building ${rel(dir)}`);
      const sets = setStrings({ format: o.format, teacher: base["teacher"], "losses.temperature": t });
      const code = await runCli(["teacher-logits", "--config", configFile, ...sets.flatMap((s) => ["--set", s]), "--out", rel(dir)], `${dir}.log`, log);
      if (code !== 0) throw new Error(`teacher-logits for T = ${t} failed (exit ${code}); see ${rel(dir)}.log`);
    }
    caches.set(t, rel(dir));
  }

  const previous = process.env.TAGI_THREADS;
  const threads = Math.max(1, Math.floor((previous ? Number(previous) : availableParallelism()) / o.parallel));
  const rows: (Omit<LossGridRow, "versusDefault"> & { predictions: string })[] = [];
  const queue = [...points];
  try {
    if (o.parallel > 1) process.env.TAGI_THREADS = String(threads);
    log(`[loss-grid] ${points.length} settings (${o.format}, seed ${o.seed}, ${steps} steps each), ${o.parallel} at a time${o.parallel > 1 ? `, ${threads} thread(s) each` : ""}`);
    const worker = async () => {
      for (let p = queue.shift(); p; p = queue.shift()) rows.push(await runPoint(p));
    };
    const runPoint = async (p: LossGridPoint) => {
      const label = lossGridLabel(p, steps, o.seed);
      const run = path.join(dirs.runs, label);
      const evalDir = path.join(run, "eval-dev");
      const timing = path.join(run, "grid-times.json");
      const times = fs.existsSync(timing) ? (JSON.parse(fs.readFileSync(timing, "utf8")) as { train: number; eval: number }) : { train: 0, eval: 0 };
      // A finished run has its model and run record; anything less resumes from its checkpoint.
      if (!fs.existsSync(path.join(run, "model")) || !fs.existsSync(path.join(run, "run.json"))) {
        const sets = { ...base, "losses.kl": p.kl, "losses.ins": p.ins, "losses.temperature": p.temperature, "train.steps": steps, ...(p.kl > 0 ? { teacherLogits: caches.get(p.temperature) ?? null } : {}) };
        log(`[loss-grid] ${label}: training`);
        const s = Date.now();
        const code = await runCli(["finetune", "--config", configFile, "--out", rel(run), "--resume", ...setStrings(sets).flatMap((x) => ["--set", x])], path.join(run, "finetune.log"), log);
        if (code !== 0) throw new Error(`${label}: finetune failed (exit ${code}); see ${rel(run)}/finetune.log`);
        times.train = (Date.now() - s) / 1000;
        writeJsonAtomic(timing, times);
      }
      if (!fs.existsSync(path.join(evalDir, "summary.json"))) {
        log(`[loss-grid] ${label}: evaluating on the dev split`);
        const s = Date.now();
        const e = scale.eval;
        const args = ["evaluate", "--tagi", rel(path.join(run, "model")), "--benchmark", "sni", "--split", "dev", "--format", o.format, "--max-input-tokens", String(e.maxInstanceTokens), "--max-new-tokens", String(e.maxNewTokens), "--batch-size", String(e.batchSize), "--seed", String(e.sampleSeed), "--max-instances-per-task", String(o.devInstancesPerTask), "--out", rel(evalDir)];
        const code = await runCli(args, path.join(run, "evaluate-dev.log"), log);
        if (code !== 0) throw new Error(`${label}: dev evaluation failed (exit ${code}); see ${rel(run)}/evaluate-dev.log`);
        times.eval = (Date.now() - s) / 1000;
        writeJsonAtomic(timing, times);
      }
      const s = JSON.parse(fs.readFileSync(path.join(evalDir, "summary.json"), "utf8")) as {
        overall: { rougeL: number };
        intervals: { rougeL: { lo: number; hi: number } };
        referenceNll?: { overall: number } | null;
        counts: { instances: number; tasks: number };
      };
      const devCurve = readTrainingLog(path.join(run, "log.jsonl"))
        .filter((r) => typeof r.eval?.["devLoss"] === "number")
        .map((r) => ({ step: r.step, devLoss: r.eval!["devLoss"]! }));
      const row = {
        ...p,
        label,
        isDefault: p.kl === defaults.kl && p.ins === defaults.ins && p.temperature === defaults.temperature,
        trainSeconds: times.train,
        evalSeconds: times.eval,
        devCurve,
        dev: { rougeL: s.overall.rougeL, lo: s.intervals.rougeL.lo, hi: s.intervals.rougeL.hi, referenceNll: s.referenceNll?.overall ?? null, instances: s.counts.instances, tasks: s.counts.tasks },
        predictions: path.join(evalDir, "predictions.jsonl"),
      };
      log(`[loss-grid] ${label}: dev ROUGE-L ${row.dev.rougeL.toFixed(2)} [${row.dev.lo.toFixed(2)}, ${row.dev.hi.toFixed(2)}]`);
      return row;
    };
    await Promise.all(Array.from({ length: Math.min(o.parallel, queue.length) }, worker));
  } finally {
    if (previous === undefined) delete process.env.TAGI_THREADS;
    else process.env.TAGI_THREADS = previous;
  }

  rows.sort((a, b) => points.findIndex((p) => lossGridLabel(p, steps, o.seed) === a.label) - points.findIndex((p) => lossGridLabel(p, steps, o.seed) === b.label));
  const def = rows.find((r) => r.isDefault)!;
  const defScores = readInstanceRougeL(def.predictions);
  const final: LossGridRow[] = rows.map(({ predictions, ...r }) => ({ ...r, versusDefault: r.isDefault ? null : pairedOnInstances(readInstanceRougeL(predictions), defScores, r.label) }));
  // Ties go to the config's weights: a change needs a higher dev score to be chosen.
  const best = [...final].sort((a, b) => b.dev.rougeL - a.dev.rougeL || Number(b.isDefault) - Number(a.isDefault))[0]!;
  const backend = readBackend(path.join(dirs.runs, def.label, "eval-dev", "summary.json"));
  const report: LossGridReport = {
    scale: o.scale,
    format: o.format,
    seed: o.seed,
    steps,
    devInstancesPerTask: o.devInstancesPerTask,
    command: o.command,
    commit: gitCommit(),
    backend,
    startedAt,
    finishedAt: new Date().toISOString(),
    wallSeconds: (Date.now() - t0) / 1000,
    rows: final,
    chosen: {
      label: best.label,
      rule: best.isDefault
        ? "highest dev ROUGE-L: the config's own weights; no other setting beat them on the dev split"
        : `highest dev ROUGE-L; against the config's weights ${formatPaired(best.versusDefault)} over ${best.versusDefault!.units} dev instances${best.versusDefault!.diff.lo > 0 ? "" : " (the interval includes 0: not a resolved improvement)"}`,
    },
  };
  fs.mkdirSync(dirs.results, { recursive: true });
  writeJsonAtomic(path.join(dirs.results, "grid.json"), report);
  fs.writeFileSync(path.join(dirs.results, "README.md"), lossGridMarkdown(report));
  log(`[loss-grid] chosen on dev: ${report.chosen.label} (${report.chosen.rule}); wrote ${rel(dirs.results)}/{grid.json, README.md}`);
  return report;
}

function pairedOnInstances(a: Map<string, number>, b: Map<string, number>, label: string): PairedComparison & { units: number } {
  const p = pairOnInstances(a, b);
  if (p.a.length !== b.size || a.size !== b.size) throw new Error(`loss grid: ${label} was evaluated on ${a.size} dev instances and the default on ${b.size} (${p.a.length} shared); rerun its evaluation (delete its eval-dev folder)`);
  return { ...pairedComparison(p.a, p.b), units: p.a.length };
}

/** "tensorflow (tfjs-node), 1 thread, fp32" from an evaluation summary's backend record. */
function readBackend(summary: string): string | null {
  const b = (JSON.parse(fs.readFileSync(summary, "utf8")) as { backend?: unknown }).backend;
  if (b === undefined || b === null) return null;
  if (typeof b === "string") return b;
  const r = b as { backend?: string; variant?: string; threads?: number; precision?: { inUse?: string } };
  return `${r.backend ?? "?"}${r.variant ? ` (${r.variant})` : ""}, ${r.threads ?? "?"} thread${r.threads === 1 ? "" : "s"}, ${r.precision?.inUse ?? "fp32"}`;
}

/** The report as markdown: one row per setting, the chosen one in bold. */
export function lossGridMarkdown(r: LossGridReport): string {
  const f = (x: number | null, d: number) => (x === null ? "–" : x.toFixed(d));
  const lines = [
    `# Loss-weight grid: ${r.scale}, ${r.format}, seed ${r.seed}`,
    "",
    `Written by \`${r.command}\` at ${r.commit?.slice(0, 7) ?? "an unknown commit"} (${r.backend ?? "backend unknown"}), ${r.finishedAt.slice(0, 10)}. Every setting is the \`tagi\` experiment's stage-2 run (${r.steps} steps, seed ${r.seed}, the scale's shared stages) with only λ1 (L_kl), λ2 (L_ins) and T changed, scored on the dev split (held-out training tasks, up to ${r.devInstancesPerTask} instances each; greedy ROUGE-L x100 with a bootstrap 95% CI), never on the test tasks. Δ: the setting minus the config's own weights, paired over dev instances (bootstrap 95% CI, paired t p). Dev reference NLL: of the references on the scored dev instances; dev curve: the training run's dev loss (nats per target token). Without L_kl (λ1 = 0) the temperature changes nothing, so those settings run once.`,
    "",
    "| λ1 (kl) | λ2 (ins) | T | dev ROUGE-L [95% CI] | Δ vs config's weights | dev reference NLL | dev curve last / lowest | train s | eval s |",
    "|---:|---:|---:|---|---|---:|---|---:|---:|",
    ...r.rows.map((x) => {
      const b = x.label === r.chosen.label ? "**" : "";
      const last = x.devCurve.at(-1)?.devLoss ?? null;
      const low = x.devCurve.length ? Math.min(...x.devCurve.map((c) => c.devLoss)) : null;
      return `| ${b}${x.kl}${b} | ${b}${x.ins}${b} | ${b}${x.temperature}${b} | ${f(x.dev.rougeL, 2)} [${f(x.dev.lo, 2)}, ${f(x.dev.hi, 2)}] | ${x.isDefault ? "(config's weights)" : formatPaired(x.versusDefault)} | ${f(x.dev.referenceNll, 3)} | ${f(last, 3)} / ${f(low, 3)} | ${Math.round(x.trainSeconds)} | ${Math.round(x.evalSeconds)} |`;
    }),
    "",
    `Chosen on dev: **${r.chosen.label}** (${r.chosen.rule}). ${r.rows.length} settings, ${(r.wallSeconds / 60).toFixed(0)} min of this invocation (finished settings are read back, not retrained).`,
    "",
  ];
  return lines.join("\n");
}
