/**
 * The method in a few minutes, from trained models (the README's main job at the `small` scale): TAGI generates
 * an adapter from each unseen SNI test task's instruction and answers a seeded sample of its instances; the
 * same instances go to the base model (No FT) and the meta-trained Tk-Instruct model; each score gets its 95%
 * bootstrap CI, the sanity floors sit beside them, TAGI is compared with each row instance by instance, and the
 * ROUGE-L-versus-FLOPs figure is drawn. Nothing is trained: the models are the scale's published artifacts
 * (configs/<scale>/demo.json names them), each checked against its artifact.json first.
 *
 * Output: results/demo/<scale>/ (README.md, demo.json, rouge-vs-flops.png, one evaluation folder per row).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { verifyArtifact } from "../artifacts/publish";
import { pairedComparison, type PairedComparison } from "../eval/stats";
import { writeFigure } from "../plots/render";
import { PROJECT_DIR } from "../project-paths";
import { writeJsonAtomic } from "../train/checkpoint";
import { environmentReport } from "../environment";
import type { PromptFormat } from "../text/prompts";
import { formatPaired, readInstanceRougeL } from "./paired";
import { rougeFlopsSpec, type FloorPoint } from "./results-figures";
import { stat, type ExperimentSummary } from "./summary";
import { loadScale, runCli, resultsRoot } from "./runner";

export interface DemoRow {
  /** Experiment name whose paper numbers apply (no-ft, tk-instruct, tagi). */
  name: string;
  row: string;
  /** A model folder read whole-prompt (config.json), or a TAGI checkpoint (tagi_config.json). */
  model: string;
}

export interface DemoSettings {
  description: string;
  format: PromptFormat;
  /** Instances of each test task (a seeded sample); null: every instance (the full protocol). */
  instancesPerTask: number | null;
  rows: DemoRow[];
}

/** Reads configs/<scale>/demo.json. */
export function loadDemoSettings(scale: string): DemoSettings {
  const file = path.join(PROJECT_DIR, "configs", scale, "demo.json");
  if (!fs.existsSync(file)) throw new Error(`scale '${scale}' has no demo (no configs/${scale}/demo.json)`);
  return parseDemoSettings(JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>, `configs/${scale}/demo.json`);
}

/** Checks a demo.json's content; every problem named, with `where`. */
export function parseDemoSettings(raw: Record<string, unknown>, where = "demo.json"): DemoSettings {
  const p: string[] = [];
  for (const k of Object.keys(raw)) if (!["description", "format", "instancesPerTask", "rows"].includes(k)) p.push(`unknown key '${k}' (valid: description, format, instancesPerTask, rows)`);
  if (raw["format"] !== "def" && raw["format"] !== "def+2pos") p.push(`format must be "def" or "def+2pos", got ${JSON.stringify(raw["format"])}`);
  const n = raw["instancesPerTask"];
  if (!(Number.isInteger(n) && (n as number) > 0)) p.push(`instancesPerTask must be a positive integer, got ${JSON.stringify(n)}`);
  const rows = raw["rows"];
  const rowOk = (r: unknown) => typeof r === "object" && r !== null && ["name", "row", "model"].every((k) => typeof (r as Record<string, unknown>)[k] === "string") && Object.keys(r).every((k) => ["name", "row", "model"].includes(k));
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every(rowOk)) p.push("rows must be a non-empty list of {name, row, model}");
  else if (!(rows as DemoRow[]).some((r) => r.name === "tagi")) p.push("rows must include the TAGI row (name \"tagi\")");
  if (p.length) throw new Error(`${where}:\n  - ${p.join("\n  - ")}`);
  return { description: String(raw["description"] ?? ""), format: raw["format"] as PromptFormat, instancesPerTask: n as number, rows: rows as DemoRow[] };
}

/**
 * demo.json's settings with the command line's changes: another sample size (null: every instance) and a
 * subset of the rows by name (the TAGI row is kept, since every other row is compared with it).
 */
export function demoSettingsWith(settings: DemoSettings, change: { instancesPerTask?: number | null; rows?: string[] }, where = "demo.json"): DemoSettings {
  let rows = settings.rows;
  if (change.rows) {
    const known = new Set(settings.rows.map((r) => r.name));
    const unknown = change.rows.filter((n) => !known.has(n));
    if (unknown.length) throw new Error(`demo --rows: ${unknown.join(", ")} ${unknown.length > 1 ? "are" : "is"} not a row of ${where} (rows: ${[...known].join(", ")})`);
    const keep = new Set([...change.rows, "tagi"]);
    rows = settings.rows.filter((r) => keep.has(r.name));
  }
  return { ...settings, rows, instancesPerTask: change.instancesPerTask === undefined ? settings.instancesPerTask : change.instancesPerTask };
}

/** The artifact folder (holding artifact.json) a model path lies in, or null for an unpublished run folder. */
function artifactOf(model: string): string | null {
  for (let dir = path.resolve(PROJECT_DIR, model); dir.startsWith(PROJECT_DIR) && dir !== PROJECT_DIR; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "artifact.json"))) return dir;
  }
  return null;
}

/** Each row's model is there and, when published, matches its artifact.json; otherwise an error naming the file. */
export function checkDemoModels(settings: DemoSettings, scale: string): void {
  const problems: string[] = [];
  for (const r of settings.rows) {
    const dir = path.resolve(PROJECT_DIR, r.model);
    const kind = fs.existsSync(path.join(dir, "tagi_config.json")) ? "tagi" : fs.existsSync(path.join(dir, "config.json")) ? "model" : null;
    if (!kind) {
      problems.push(`${r.row}: ${r.model} is not here (no config.json or tagi_config.json); it is trained and published by scripts/train-${scale}.sh${scale === "small" ? " (hours; see artifacts/README.md)" : ""}`);
      continue;
    }
    const artifact = artifactOf(r.model);
    if (artifact) problems.push(...verifyArtifact(artifact).problems.map((x) => `${r.row}: ${x}`));
  }
  if (problems.length) throw new Error(`demo (${scale}): the models it reads are missing or damaged:\n  - ${problems.join("\n  - ")}`);
}

interface EvalSummary {
  overall: { rougeL: number; instances: number; tasks: number };
  intervals?: { rougeL: { lo: number; hi: number } };
  floors?: { name: string; rougeL: number; rougeLCi: { lo: number; hi: number } }[];
  compute: { relativeAt100Instances: number };
  referenceNll?: { overall: number } | null;
  backend: unknown;
  wallSeconds: number;
}

export interface DemoResult {
  scale: string;
  format: PromptFormat;
  instancesPerTask: number | null;
  rows: { name: string; row: string; model: string; rougeL: number; ci: [number, number] | null; referenceNll: number | null; flopsAt100: number; instances: number; tasks: number; seconds: number }[];
  floors: { name: string; rougeL: number; ci: [number, number] }[];
  /** TAGI minus each other row, paired over instances. */
  paired: { versus: string; units: number; comparison: PairedComparison }[];
  command: string;
  commit: string | null;
  /** Tracked files that differed from `commit` when the demo started. */
  uncommitted: string[] | null;
  backend: string | null;
  startedAt: string;
  wallSeconds: number;
}

/** Runs the demo of `scale` (see the module comment) and writes its report; returns the result record. */
export async function runDemo(opts: { scale: string; out?: string; log?: (line: string) => void; settings?: DemoSettings; command?: string }): Promise<DemoResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const settings = opts.settings ?? loadDemoSettings(opts.scale);
  const scale = loadScale(opts.scale);
  checkDemoModels(settings, opts.scale);
  const out = opts.out ?? path.join(resultsRoot(), "demo", opts.scale);
  fs.mkdirSync(out, { recursive: true });
  const started = new Date();
  const t0 = performance.now();
  const rel = (p: string) => path.relative(PROJECT_DIR, p);
  const e = scale.eval;
  const rows: DemoResult["rows"] = [];
  let floors: DemoResult["floors"] = [];
  let backend: string | null = null;
  for (const r of settings.rows) {
    const tagi = fs.existsSync(path.resolve(PROJECT_DIR, r.model, "tagi_config.json"));
    const dir = path.join(out, r.name);
    const args = [
      "evaluate", tagi ? "--tagi" : "--model", r.model,
      "--benchmark", "sni", "--format", settings.format,
      "--max-input-tokens", String(tagi ? e.maxInstanceTokens : e.maxInputTokens[settings.format]),
      "--max-new-tokens", String(e.maxNewTokens), "--batch-size", String(e.batchSize),
      "--seed", String(e.sampleSeed), ...(settings.instancesPerTask === null ? [] : ["--max-instances-per-task", String(settings.instancesPerTask)]),
      "--no-progress", "--out", rel(dir),
    ];
    log(`[demo] ${r.row}: tagi ${args.join(" ")}`);
    const code = await runCli(args, path.join(out, `${r.name}.log`), log);
    if (code !== 0) throw new Error(`demo (${opts.scale}): evaluating ${r.row} failed (exit ${code}); see ${rel(path.join(out, `${r.name}.log`))}`);
    const s = JSON.parse(fs.readFileSync(path.join(dir, "summary.json"), "utf8")) as EvalSummary;
    rows.push({
      name: r.name, row: r.row, model: r.model,
      rougeL: s.overall.rougeL, ci: s.intervals ? [s.intervals.rougeL.lo, s.intervals.rougeL.hi] : null,
      referenceNll: s.referenceNll?.overall ?? null, flopsAt100: s.compute.relativeAt100Instances,
      instances: s.overall.instances, tasks: s.overall.tasks, seconds: s.wallSeconds,
    });
    if (!floors.length && s.floors) floors = s.floors.map((f) => ({ name: f.name, rougeL: f.rougeL, ci: [f.rougeLCi.lo, f.rougeLCi.hi] as [number, number] }));
    backend = typeof s.backend === "string" ? s.backend : JSON.stringify(s.backend);
    log(`[demo] ${r.row}: ROUGE-L ${s.overall.rougeL.toFixed(2)} on ${s.overall.instances} instances`);
  }
  // TAGI against each other row on the same instances.
  const tagiScores = readInstanceRougeL(path.join(out, "tagi", "predictions.jsonl"));
  const paired: DemoResult["paired"] = [];
  for (const r of rows.filter((x) => x.name !== "tagi")) {
    const other = readInstanceRougeL(path.join(out, r.name, "predictions.jsonl"));
    const a: number[] = [];
    const b: number[] = [];
    for (const [k, v] of tagiScores) if (other.has(k)) (a.push(v), b.push(other.get(k)!));
    if (!a.length) continue;
    paired.push({ versus: r.row, units: a.length, comparison: pairedComparison(a, b) });
  }
  const result: DemoResult = {
    scale: opts.scale, format: settings.format, instancesPerTask: settings.instancesPerTask, rows, floors, paired,
    command: opts.command ?? `npm run demo -- --scale ${opts.scale}`, commit: environmentReport().commit, uncommitted: environmentReport().uncommitted, backend,
    startedAt: started.toISOString(), wallSeconds: (performance.now() - t0) / 1000,
  };
  writeJsonAtomic(path.join(out, "demo.json"), result);
  await writeDemoReport(result, settings, out);
  log(`[demo] wrote ${rel(path.join(out, "README.md"))} (${result.wallSeconds.toFixed(0)} s)`);
  return result;
}

/** results/demo/<scale>/README.md and its figure. */
async function writeDemoReport(r: DemoResult, settings: DemoSettings, out: string): Promise<void> {
  const fmtCi = (ci: [number, number] | null) => (ci ? `[${ci[0].toFixed(1)}, ${ci[1].toFixed(1)}]` : "–");
  const label = r.format === "def" ? "Def" : "Def + 2 Pos";
  const summaries: ExperimentSummary[] = r.rows.map((x) => {
    const one = stat([x.rougeL]);
    return { name: x.name, row: x.row, seeds: [0], def: r.format === "def" ? one : null, def2pos: r.format === "def+2pos" ? one : null, nllDef: null, nllDef2pos: null, p3: null, p3Majority: null, p3Chance: null, p3Sample: null, flopsAt100: r.format === "def" ? x.flopsAt100 : null, flopsAt100Def2pos: r.format === "def+2pos" ? x.flopsAt100 : null, trainSeconds: null, evalSeconds: stat([x.seconds]) };
  });
  const floorPoints: FloorPoint[] = r.floors.map((f) => ({ name: f.name, rougeL: f.rougeL }));
  // One model per row: its bar is the 95% CI over instances (there is no spread over seeds to show).
  const intervals = Object.fromEntries(r.rows.filter((x) => x.ci !== null).map((x) => [x.row, x.ci!]));
  await writeFigure(
    rougeFlopsSpec(summaries, `SNI-103 (${label}), ${r.instancesPerTask === null ? "every instance" : `${r.instancesPerTask} instances per task`}: ROUGE-L against inference compute (${r.scale})`, { [r.format]: floorPoints }, { intervals, intervalLabel: "one model each, 95% CI over instances" }),
    path.join(out, "rouge-vs-flops"),
  );
  const lines = [
    `# Demo: TAGI on unseen SNI tasks (${r.scale})`,
    "",
    `Generated by \`${r.command}\` (commit ${r.commit?.slice(0, 7) ?? "unknown"}, ${r.wallSeconds.toFixed(0)} s); do not edit by hand. ${settings.description}`,
    "",
    `${r.rows[0]?.instances ?? 0} instances (${r.instancesPerTask === null ? "every instance" : `${r.instancesPerTask} per task, seeded`}) of the ${r.rows[0]?.tasks ?? 0} SNI test tasks, ${label} prompts. ROUGE-L x100 with its 95% bootstrap CI over instances; FLOPs for a task of 100 instances relative to Tk-Instruct. Floors (italics) are what copying scores on the same instances. ` +
      (r.instancesPerTask === null ? "One trained model per row (seed 0 for TAGI): the grid's tables over seeds are in results/README.md." : "This is a sample: the full-protocol tables are in results/README.md."),
    "",
    "| Method | model | ROUGE-L [95% CI] | reference NLL ↓ | FLOPs (x Tk-Instruct) | TAGI minus it, paired over instances [95% CI], p |",
    "|---|---|---|---|---|---|",
    ...r.rows.map((x) => {
      const p = r.paired.find((y) => y.versus === x.row);
      return `| ${x.row} | \`${x.model}\` | ${x.rougeL.toFixed(2)} ${fmtCi(x.ci)} | ${x.referenceNll === null ? "–" : x.referenceNll.toFixed(3)} | x${x.flopsAt100.toFixed(2)} | ${p ? `${formatPaired(p.comparison)} (${p.units} instances)` : "–"} |`;
    }),
    ...r.floors.map((f) => `| *floor: ${f.name}* | – | ${f.rougeL.toFixed(2)} ${fmtCi(f.ci)} | – | – | – |`),
    "",
    "![ROUGE-L against inference FLOPs](rouge-vs-flops.png)",
    "",
  ];
  fs.writeFileSync(path.join(out, "README.md"), lines.join("\n"));
}
