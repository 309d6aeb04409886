/**
 * What the notebooks call: every step of a notebook is one of these functions (or a library function), so
 * the notebooks narrate and display while the logic stays here, tested and shared with the CLI.
 *
 * The scale comes from $TAGI_SCALE (tiny in the test suite, small for the committed outputs): the same
 * notebook runs in a minute on the tiny model and reads the small runs' results at the small scale.
 */
import { similarityPrecondition } from "../tagi/probes";
import * as fs from "node:fs";
import * as path from "node:path";
import { readTrainingLog, lossCurveSpec, type CurveSeries } from "../plots/curves";
import { renderVegaLite, type RenderedFigure } from "../plots/render";
import { loadSniSplit, groupByCategory, taskCategory, type SniTask } from "../data/sni";
import { buildPrompt, type PromptFormat } from "../text/prompts";
import type { T5Tokenizer } from "../text/tokenizer";
import type { TeachersManifest } from "../train/teachers";
import type { LogRecord } from "../train/loop";
import { defaultScale, ensurePrepared, loadScale, PROJECT_ROOT, resultDir, runExperiment, trainingLogFile, type ExperimentRecord, type ScaleSettings } from "./runner";
import { collectRecords, summarize, stat, fmtStat, rougeFlopsSpec, type ExperimentSummary, type FloorPoint, type Stat } from "./results-report";
import { PAPER_ABLATION } from "./paper";
import { finetuneTagi, parseFinetuneConfig, pretrainHyper, parsePretrainHyperConfig, validateLossWeights, type LossWeights } from "../tagi/train";

export interface ScaleRuns {
  scale: string;
  settings: ScaleSettings;
  /** Folders of the shared stages (absolute). `base`: the base model every method starts from (after the
   * LM-adapt phase where the scale has one); `baseSpan`: the span-corruption phase before it (= base without). */
  base: string;
  baseSpan: string;
  metatrain: string;
  teachers: string;
  pretrainHyper: string;
}

/** The scale's settings and shared run folders, training any that are missing first (tiny: about a minute). */
export async function prepareScale(scale = defaultScale(), log: (line: string) => void = (l) => console.log(l)): Promise<ScaleRuns> {
  const settings = loadScale(scale);
  await ensurePrepared(settings, log);
  const out = (cmd: string) => {
    const p = settings.prepare.find((x) => x.command === cmd);
    if (!p) throw new Error(`configs/${scale}/experiments.json prepares no '${cmd}' stage`);
    return path.join(PROJECT_ROOT, p.out);
  };
  // The base model's run folder is the one holding settings.base (the LM-adapted model when stage 0 has two
  // phases); the span-corruption phase is the pretrain-base stage with pretrain-base.json.
  const base = path.dirname(path.join(PROJECT_ROOT, settings.base));
  const span = settings.prepare.find((x) => x.command === "pretrain-base" && x.config === "pretrain-base.json");
  return { scale, settings, base, baseSpan: span ? path.join(PROJECT_ROOT, span.out) : base, metatrain: out("metatrain"), teachers: out("teachers"), pretrainHyper: out("pretrain-hyper") };
}

/** Rendered loss curves of training logs (log.jsonl files), one series per name. */
export async function lossCurves(logs: Record<string, string>, opts: { title?: string; smooth?: number; logY?: boolean } = {}): Promise<RenderedFigure> {
  const series: CurveSeries[] = Object.entries(logs).map(([name, file]) => ({ name, log: readTrainingLog(file) }));
  return renderVegaLite(lossCurveSpec(series, opts));
}

/** Per-term curves of one run's log records (e.g. ce, kl, ins of a finetune), rendered. */
export async function termCurves(log: readonly LogRecord[], opts: { title?: string; smooth?: number } = {}): Promise<RenderedFigure> {
  const terms = [...new Set(log.flatMap((r) => Object.keys(r.terms)))];
  const unit = (t: string) => (t === "ins" ? "mean squared factor difference" : "nats per target token");
  // The dev curve is a reference NLL: it belongs to the ce panel only.
  const series = terms.map((t) => ({ name: `${t} (${unit(t)})`, log: log.map(({ eval: dev, ...r }) => ({ ...r, ...(t === "ce" && dev ? { eval: dev } : {}), loss: r.terms[t] ?? NaN })) }));
  // One panel per term, each on its own scale: ce and kl are nats per target token, ins a mean squared difference.
  return renderVegaLite(lossCurveSpec(series, { title: opts.title ?? "Loss terms", smooth: opts.smooth ?? 5, panels: true, yTitle: "value" }));
}

/** A horizontal bar chart of labelled values, rendered. */
export async function barChart(
  rows: readonly { label: string; value: number; group?: string; error?: number }[],
  /** `logX`: a log axis (values as points, since bars from 0 cannot be drawn on it). `error`: ± error bars (e.g. the std over seeds). */
  opts: { title: string; xTitle: string; logX?: boolean; subtitle?: string },
): Promise<RenderedFigure> {
  const grouped = rows.some((r) => r.group);
  const values = rows.map((r) => ({ ...r, group: r.group ?? "", lo: r.error !== undefined ? r.value - r.error : null, hi: r.error !== undefined ? r.value + r.error : null }));
  const y = { field: "label", type: "nominal", sort: null, title: null, axis: { labelFontSize: rows.length > 30 ? 8 : 11, labelLimit: 380 } };
  const x = { field: "value", type: "quantitative", title: opts.xTitle, ...(opts.logX ? { scale: { type: "log" } } : {}) };
  // Groups side by side within each label (not stacked: each bar is its own value).
  const color = grouped ? { color: { field: "group", type: "nominal", title: null, legend: { labelLimit: 320 } }, yOffset: { field: "group", type: "nominal" } } : {};
  const layers: Record<string, unknown>[] = [
    opts.logX ? { mark: { type: "point", filled: true, size: 120 }, encoding: { y, x, ...color } } : { mark: { type: "bar" }, encoding: { y, x, ...color } },
    { mark: { type: "text", align: "left", dx: 4, fontSize: 10 }, encoding: { y, x: opts.logX ? x : { ...x, field: rows.some((r) => r.error !== undefined) ? "hi" : "value" }, text: { field: "value", type: "quantitative", format: ".3~g" }, ...(grouped ? { yOffset: { field: "group", type: "nominal" } } : {}) } },
  ];
  if (rows.some((r) => r.error !== undefined)) {
    layers.push({ transform: [{ filter: "datum.lo != null" }], mark: { type: "rule", strokeWidth: 1.5, color: "black" }, encoding: { y, x: { field: "lo", type: "quantitative" }, x2: { field: "hi" }, ...(grouped ? { yOffset: { field: "group", type: "nominal" } } : {}) } });
  }
  return renderVegaLite({
    title: opts.subtitle ? { text: opts.title, subtitle: opts.subtitle } : opts.title,
    width: 440,
    height: { step: grouped ? 12 : rows.length > 30 ? 10 : 22 },
    data: { values },
    layer: layers,
  });
}

// ---- 01: data ------------------------------------------------------------------------------------------

export interface CategoryRow {
  category: string;
  tasks: number;
  instances: number;
  meanDefinitionTokens: number;
  meanInputTokens: number;
  meanOutputTokens: number;
}

/** Per-category counts and mean token lengths of an SNI split (lengths over up to `sample` instances per task). */
export function categoryOverview(tasks: readonly SniTask[], tokenizer: T5Tokenizer, sample = 5): CategoryRow[] {
  const rows: CategoryRow[] = [];
  for (const [category, ts] of groupByCategory(tasks)) {
    let defs = 0;
    let ins = 0;
    let outs = 0;
    let n = 0;
    for (const t of ts) {
      defs += tokenizer.encode(t.definition).length;
      for (const i of t.instances.slice(0, sample)) {
        ins += tokenizer.encode(i.input).length;
        outs += tokenizer.encode(i.outputs[0] ?? "").length;
        n++;
      }
    }
    rows.push({
      category,
      tasks: ts.length,
      instances: ts.reduce((s, t) => s + t.instances.length, 0),
      meanDefinitionTokens: Math.round(defs / ts.length),
      meanInputTokens: Math.round(ins / Math.max(1, n)),
      meanOutputTokens: Math.round(outs / Math.max(1, n)),
    });
  }
  return rows.sort((a, b) => b.tasks - a.tasks);
}

/** One task's prompt in both formats, split into the instruction TAGI's generator reads and the instance. */
export function promptExample(task: SniTask, format: PromptFormat): { instruction: string; instance: string; target: string } {
  const inst = task.instances[0]!;
  const p = buildPrompt(task, inst, { format });
  return { instruction: p.instruction, instance: p.instance, target: inst.outputs[0] ?? "" };
}

// ---- 02: base model and teachers ---------------------------------------------------------------------

/** The parameter teachers' manifest as table rows (one per category), worst final loss first. */
export function teacherRows(teachersDir: string): { category: string; tasks: number; examples: number; steps: number; meanLossLast10: number; seconds: number }[] {
  const file = path.join(teachersDir, "manifest.json");
  if (!fs.existsSync(file)) throw new Error(`no teachers at ${teachersDir} (manifest.json missing)`);
  const m = JSON.parse(fs.readFileSync(file, "utf8")) as TeachersManifest;
  return m.teachers
    .map((t) => {
      const x = t as unknown as { meanLossLast10?: number; seconds?: number };
      return { category: t.group, tasks: t.tasks.length, examples: t.examples, steps: t.steps, meanLossLast10: x.meanLossLast10 ?? NaN, seconds: x.seconds ?? NaN };
    })
    .sort((a, b) => b.meanLossLast10 - a.meanLossLast10);
}

// ---- 03 and 04: short stage runs ------------------------------------------------------------------------

/** Runs stage 1 for `steps` steps from the scale's config into a fresh `out` (a demo; the real run is shared). */
export async function shortPretrainHyper(runs: ScaleRuns, steps: number, out: string): Promise<{ log: LogRecord[]; model: string }> {
  const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", runs.scale, "pretrain-hyper.json"), "utf8")) as Record<string, unknown>;
  const train = raw["train"] as Record<string, unknown>;
  const schedule = train["schedule"] as Record<string, unknown>;
  const c = parsePretrainHyperConfig({
    ...raw,
    base: path.relative(PROJECT_ROOT, path.join(runs.base, "model")),
    maxTasks: 20, // a demo: 20 tasks' text is plenty for a few steps and loads in seconds
    train: { ...train, steps, checkpointEvery: 0, schedule: { ...schedule, warmupSteps: Math.min(Number(schedule["warmupSteps"] ?? 0), steps) } },
  });
  fs.rmSync(out, { recursive: true, force: true });
  const log: LogRecord[] = [];
  const r = await withCwd(PROJECT_ROOT, () => pretrainHyper(c, { out, progress: false, onLog: (x) => log.push(x) }));
  return { log, model: r.model };
}

/**
 * The loss weights of a finetune, checked: negative weights, T <= 0 and all-zero weights are refused with one
 * message naming each problem (the notebook cell shows it; nothing crashes).
 */
export function checkLossWeights(w: LossWeights): LossWeights {
  const p = validateLossWeights(w, "losses");
  if (p.length) throw new Error(`invalid loss weights:\n  - ${p.join("\n  - ")}`);
  return w;
}

/** Stage 2 for `steps` steps with the given loss weights, from the scale's finetune config, into a fresh `out`. */
export async function shortFinetune(
  runs: ScaleRuns,
  losses: LossWeights,
  opts: { steps: number; out: string; seed?: number; onLog?: (r: LogRecord) => void },
): Promise<{ log: LogRecord[]; model: string; seconds: number }> {
  checkLossWeights(losses);
  const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", runs.scale, "finetune.json"), "utf8")) as Record<string, unknown>;
  const train = raw["train"] as Record<string, unknown>;
  const schedule = train["schedule"] as Record<string, unknown>;
  const shared = runs.settings.set ?? {};
  const c = parseFinetuneConfig({
    ...raw,
    losses,
    ...(typeof shared["instancesPerTask"] === "number" ? { instancesPerTask: shared["instancesPerTask"] } : {}),
    train: {
      ...train,
      ...(typeof shared["train.batchSize"] === "number" ? { batchSize: shared["train.batchSize"] } : {}),
      steps: opts.steps,
      seed: opts.seed ?? 0,
      checkpointEvery: 0,
      schedule: { ...schedule, warmupSteps: Math.min(Number(schedule["warmupSteps"] ?? 0), opts.steps) },
    },
  });
  fs.rmSync(opts.out, { recursive: true, force: true });
  const log: LogRecord[] = [];
  const t0 = performance.now();
  const r = await withCwd(PROJECT_ROOT, () =>
    finetuneTagi(c, {
      out: opts.out,
      progress: false,
      onLog: (x) => {
        log.push(x);
        opts.onLog?.(x);
      },
    }),
  );
  return { log, model: r.model, seconds: (performance.now() - t0) / 1000 };
}

/** Stage configs name their inputs relative to the project root; notebooks run in notebooks/. */
async function withCwd<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const prev = process.cwd();
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(prev);
  }
}

/**
 * ROUGE-L of a TAGI checkpoint on a few SNI test tasks (a quick look inside a notebook; the tables use the
 * experiment runner). Loads the SNI evaluation (and danfojs) on first use.
 */
export async function quickTagiEval(modelDir: string, opts: { format: PromptFormat; tasks: number; instancesPerTask: number; maxNewTokens?: number }): Promise<{ rougeL: number; exactMatch: number; instances: number; examples: { task: string; prediction: string; reference: string }[] }> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { evaluateTagiSni } = require("../tagi/evaluate") as typeof import("../tagi/evaluate");
  const { loadTagiParams, readTagiConfig } = require("../tagi/model") as typeof import("../tagi/model");
  const { loadBaseModel, disposeModel } = require("../train/seq2seq") as typeof import("../train/seq2seq");
  const { T5Tokenizer } = require("../text/tokenizer") as typeof import("../text/tokenizer");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const { base } = readTagiConfig(modelDir);
  const model = loadBaseModel(base);
  const m = loadTagiParams(modelDir, model);
  try {
    const tasks = (await loadSniSplit("test", undefined, { warn: false })).tasks;
    // One task per category first, so a handful of tasks still spans different kinds of task.
    const seen = new Set<string>();
    const picked = tasks.filter((t) => !seen.has(taskCategory(t)) && seen.add(taskCategory(t))).slice(0, opts.tasks);
    const r = await evaluateTagiSni(m, T5Tokenizer.fromFile(), {
      format: opts.format,
      maxInputTokens: 128,
      maxNewTokens: opts.maxNewTokens ?? 16,
      batchSize: 16,
      maxInstancesPerTask: opts.instancesPerTask,
      testTasks: picked,
    });
    return {
      rougeL: r.overall.rougeL,
      exactMatch: r.overall.exactMatch,
      instances: r.counts.instances,
      examples: r.predictions.slice(0, 6).map((p) => ({ task: p.task, prediction: p.prediction, reference: p.references[0] ?? "" })),
    };
  } finally {
    for (const t of m.hyper.values()) t.dispose();
    for (const t of m.fusion.values()) t.dispose();
    disposeModel(model);
  }
}

// ---- 05, 06, 07: experiments -----------------------------------------------------------------------------

/** Runs (or reads, when done) experiments at a scale for the given seeds; one summary per experiment. */
export async function experimentSummaries(
  names: readonly string[],
  opts: { scale?: string; seeds?: number[]; log?: (l: string) => void; onlyFinished?: boolean } = {},
): Promise<ExperimentSummary[]> {
  const scale = opts.scale ?? defaultScale();
  const out: ExperimentSummary[] = [];
  for (const name of names) {
    const recs: ExperimentRecord[] = [];
    if (opts.onlyFinished) {
      const done = finishedRecords(name, scale).filter((r) => !opts.seeds || opts.seeds.includes(r.seed));
      if (!done.length) (opts.log ?? console.log)(`[experiment] ${name} (${scale}): no finished run yet (npm run experiment -- ${name} --scale ${scale})`);
      recs.push(...done);
    } else for (const seed of opts.seeds ?? [0]) recs.push(await runExperiment(name, { scale, seed, log: opts.log }));
    if (recs.length) out.push(summarize(name, recs));
  }
  return out;
}

/** Every finished record of an experiment at a scale (all seeds), without running anything. */
export function finishedRecords(name: string, scale = defaultScale()): ExperimentRecord[] {
  return collectRecords().get(scale)?.get(name) ?? [];
}

/** Table rows (strings) of experiment summaries: ROUGE-L mean ± std per format, FLOPs, P3. */
export function summaryRows(summaries: readonly ExperimentSummary[]): Record<string, string>[] {
  return summaries.map((s) => ({
    experiment: s.row,
    seeds: s.seeds.join(","),
    "Def ROUGE-L": fmtStat(s.def),
    "Def+2Pos ROUGE-L": fmtStat(s.def2pos),
    "Def ref. NLL": fmtStat(s.nllDef, 3),
    "Def+2Pos ref. NLL": fmtStat(s.nllDef2pos, 3),
    "FLOPs (x Tk, Def / Def+2Pos)": `${s.flopsAt100 === null ? "–" : `x${s.flopsAt100.toFixed(2)}`} / ${s.flopsAt100Def2pos === null ? "–" : `x${s.flopsAt100Def2pos.toFixed(2)}`}`,
    P3: fmtStat(s.p3),
  }));
}

/** ROUGE-L against relative FLOPs per format, one point per experiment (mean ± std), the paper's and the floors, rendered. */
export async function rougeVersusFlops(summaries: readonly ExperimentSummary[], title: string, floors: Partial<Record<"def" | "def+2pos", readonly FloorPoint[]>> = {}): Promise<RenderedFigure> {
  return renderVegaLite(rougeFlopsSpec(summaries, title, floors));
}

/** The sanity floors of a scale's SNI evaluations (the same instances for every method), from its finished records. */
export function sanityFloors(scale = defaultScale()): Partial<Record<"def" | "def+2pos", FloorPoint[]>> {
  const recs = [...(collectRecords().get(scale)?.values() ?? [])].flat();
  const out: Partial<Record<"def" | "def+2pos", FloorPoint[]>> = {};
  for (const format of ["def", "def+2pos"] as const) {
    const floors = recs.find((r) => r.metrics[format]?.floors)?.metrics[format]!.floors;
    if (floors) out[format] = floors.map((f) => ({ name: f.name, rougeL: f.rougeL }));
  }
  return out;
}

export { stat, fmtStat };

/**
 * Prints rows as a danfojs DataFrame with columns wide enough to read (danfojs cuts cells at 17 characters by
 * default). Returns nothing, so that a notebook cell ending with it shows the table only.
 */
export function printFrame(rows: readonly object[], width = 26): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { dfd } = require("../eval/report") as typeof import("../eval/report");
  const round = (v: unknown) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toFixed(3)) : v);
  const data = rows.map((r) => Object.fromEntries(Object.entries(r as Record<string, unknown>).map(([k, v]) => [k, round(v)])));
  const ncol = Object.keys(data[0] ?? {}).length;
  const columns: Record<number, { width: number; truncate?: number }> = { 0: { width: 4 } };
  for (let i = 1; i <= ncol; i++) columns[i] = { width, truncate: width * 3 };
  const df = new dfd.DataFrame(data, { config: { tableDisplayConfig: { columns }, tableMaxRow: Math.max(10, Math.min(rows.length, 70)), tableMaxColInConsole: 12 } });
  df.print();
}

/**
 * An interactive plotly figure as HTML for `tslab.display.html` (hover, zoom, toggling series). By default it
 * loads plotly.js from its CDN (needs internet when viewed; a few hundred bytes in the notebook); `inline`
 * embeds the installed plotly.js-dist-min instead (works offline, ~4.8 MB per figure).
 */
let plotlyInlined = false;

/** plotly.js 3 draws no title given as a bare string (it wants {text}): string titles of the layout and its axes, wrapped. */
function plotlyTitles(layout: Record<string, unknown>): Record<string, unknown> {
  const wrap = (t: unknown) => (typeof t === "string" ? { text: t } : t);
  const out: Record<string, unknown> = { ...layout };
  if ("title" in out) out["title"] = wrap(out["title"]);
  for (const [k, v] of Object.entries(out)) {
    if (/^[xy]axis\d*$/.test(k) && v && typeof v === "object" && "title" in (v as object)) out[k] = { ...(v as object), title: wrap((v as { title: unknown }).title) };
  }
  return out;
}

/**
 * A plotly figure as HTML for `tslab.display.html`. It needs no network: the first figure of a kernel
 * carries plotly's bundle (plotly.js-dist-min, loaded as a global even where the page has an AMD loader, as
 * the classic Notebook does), later ones use it; `inline: true` carries it again (e.g. in a cell that may run
 * alone).
 */
export function plotlyHtml(data: readonly Record<string, unknown>[], layout: Record<string, unknown>, opts: { inline?: boolean; height?: number } = {}): string {
  const id = `plotly-${Math.random().toString(36).slice(2, 10)}`;
  const carry = opts.inline === true || !plotlyInlined;
  plotlyInlined = true;
  // Parameters named define/exports/module shadow an AMD loader, so the UMD bundle sets globalThis.Plotly.
  const lib = carry ? `<script>(function (define, exports, module) {\n${fs.readFileSync(require.resolve("plotly.js-dist-min"), "utf8")}\n}).call(window);</script>` : "";
  const call = `window.Plotly.newPlot(${JSON.stringify(id)}, ${JSON.stringify(data)}, ${JSON.stringify(plotlyTitles(layout))}, {responsive: true});`;
  return `<div id="${id}" style="height:${opts.height ?? 420}px"></div>${lib}<script>${call}</script>`;
}

/** Per-category ROUGE-L (Def, mean over seeds) of finished experiments, as plotly bar traces. */
export function perCategoryTraces(summaries: readonly ExperimentSummary[], scale = defaultScale(), format: PromptFormat = perCategoryFormat(summaries, scale)): Record<string, unknown>[] {
  return summaries.map((s) => {
    const recs = finishedRecords(s.name, scale).filter((r) => r.metrics[format]);
    const cats = [...new Set(recs.flatMap((r) => Object.keys(r.metrics[format]!.perCategory)))].sort();
    const y = cats.map((c) => stat(recs.map((r) => r.metrics[format]!.perCategory[c]?.rougeL ?? NaN).filter((v) => !Number.isNaN(v))).mean);
    return { type: "bar", name: s.row, x: cats, y };
  });
}

/** The format the per-category chart shows: Def where any of these experiments has it, else Def + 2 Pos. */
export function perCategoryFormat(summaries: readonly ExperimentSummary[], scale = defaultScale()): PromptFormat {
  return summaries.some((s) => finishedRecords(s.name, scale).some((r) => r.metrics["def"])) ? "def" : "def+2pos";
}

/**
 * One line per ablation: Def ROUGE-L and reference NLL with their differences from TAGI (of the means over
 * seeds; results/README.md pairs them by seed), and the paper's (XL) ROUGE-L difference.
 */
export function ablationLines(summaries: readonly ExperimentSummary[]): string[] {
  const full = summaries.find((s) => s.name === "tagi");
  const ref = PAPER_ABLATION["tagi"]!;
  const signed = (v: number, digits: number) => `${v >= 0 ? "+" : ""}${v.toFixed(digits)}`;
  const delta = (a: Stat | null | undefined, b: Stat | null | undefined, digits: number) => (a && b ? signed(a.mean - b.mean, digits) : "–");
  return summaries.map((s) => {
    const paper = PAPER_ABLATION[s.name];
    const paperText = paper ? `${paper.def} / ${paper.def2pos} (Δ ${(paper.def - ref.def).toFixed(1)} / ${(paper.def2pos - ref.def2pos).toFixed(1)})` : "–";
    return (
      `${s.row}\n    Def ${fmtStat(s.def).padEnd(14)} Δ ${delta(s.def, full?.def, 2).padEnd(6)} | Def+2Pos ${fmtStat(s.def2pos).padEnd(14)} Δ ${delta(s.def2pos, full?.def2pos, 2).padEnd(6)}` +
      ` | NLL Δ ${delta(s.nllDef, full?.nllDef, 3)} / ${delta(s.nllDef2pos, full?.nllDef2pos, 3)} | paper (XL) ${paperText}`
    );
  });
}

/** P3 accuracy per task (rows) and experiment (columns), from the finished records of one seed. */
export function p3PerTaskRows(names: readonly string[], scale = defaultScale(), seed = 0): Record<string, string | number>[] {
  const perTask: Record<string, Record<string, number>> = {};
  for (const name of names) {
    for (const r of finishedRecords(name, scale).filter((x) => x.seed === seed && x.p3)) {
      for (const [task, acc] of Object.entries(r.p3!.perTask)) (perTask[task] ??= {})[r.experiment.row] = Number(acc.toFixed(1));
      // The majority-class level of the same rows (equal for every model with the same sample).
      for (const [task, acc] of Object.entries(r.p3!.majorityPerTask ?? {})) (perTask[task] ??= {})["majority class"] = Number(acc.toFixed(1));
    }
  }
  return Object.entries(perTask).map(([task, v]) => ({ task, ...v }));
}

/**
 * Each loss term of finished experiments' training curves: mean over the first and the last `window` steps
 * (mean over the seeds found). Shows how large each distillation term is next to the others, e.g. that
 * the factor-MSE L_ins is ~1e-3 of L_ce at the small scale.
 */
export function lossTermRows(names: readonly string[], scale = defaultScale(), window = 10): Record<string, string | number>[] {
  const runs = names.flatMap((name) => {
    // the first format's model the record has (Def, else Def + 2 Pos): one curve per seed
    const logOf = (r: ExperimentRecord) => r.experiment.evaluate.formats.map((f) => trainingLogFile(resultDir(name, scale, r.seed), f)).find((f) => f !== null) ?? null;
    const recs = finishedRecords(name, scale).filter((r) => logOf(r) !== null);
    return recs.length ? [{ recs, logs: recs.map((r) => readTrainingLog(logOf(r)!)) }] : [];
  });
  // Every row gets every term's columns ("–" where a run did not log it), so the rows tabulate.
  const terms = [...new Set(runs.flatMap(({ logs }) => logs.flatMap((l) => l.flatMap((x) => Object.keys(x.terms)))))].sort();
  return runs.map(({ recs, logs }) => {
    const row: Record<string, string | number> = { experiment: recs[0]!.experiment.row, seeds: recs.map((r) => r.seed).join(","), steps: logs[0]!.length };
    for (const t of terms) {
      const logged = logs.every((l) => l.some((x) => t in x.terms));
      const at = (pick: (l: LogRecord[]) => LogRecord[]) => logs.reduce((a, l) => a + pick(l).reduce((b, x) => b + (x.terms[t] ?? 0), 0) / Math.max(pick(l).length, 1), 0) / logs.length;
      row[`${t} first`] = logged ? at((l) => l.slice(0, window)).toPrecision(3) : "–";
      row[`${t} last`] = logged ? at((l) => l.slice(-window)).toPrecision(3) : "–";
    }
    return row;
  });
}

/** Generated-versus-teacher adapter analyses (experiments with `analysis: "adapters"`): one row per record. */
export function adapterAnalysisRows(names: readonly string[], scale = defaultScale()): Record<string, string | number>[] {
  return names.flatMap((name) =>
    finishedRecords(name, scale)
      .filter((r) => r.adapters)
      .map((r) => {
        const sim = r.adapters!.similarity;
        const own = stat(sim.map((x) => x.cosineOwn));
        const others = stat(sim.map((x) => x.cosineOthers));
        return {
          model: r.experiment.row,
          seed: r.seed,
          "cosine, own teacher": own.mean.toPrecision(3),
          "cosine, other teachers": others.mean.toPrecision(3),
          "closer to own": `${sim.filter((x) => x.cosineOwn > x.cosineOthers).length}/${sim.length}`,
          "binomial p": similarityPrecondition(sim).pCloserThanOthersMean.toPrecision(2),
        };
      }),
  );
}
