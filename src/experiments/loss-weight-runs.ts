/**
 * Notebook 04 as an instrument: every run of its loss-weight cell is kept, and the runs are compared side by
 * side, so that "what does λ2 do?" is answered by looking.
 *
 * A run is a short stage-2 finetune from the scale's stage-1 generator with the given weights, kept in
 * runs/<scale>/loss-weights/<label>/ (label: the weights, steps and seed, so rerunning a setting reads it back
 * instead of training it again), then scored on held-out *train* tasks (the dev split, one task per category
 * first): the weights are chosen there, never on the test tasks. Each run records its loss terms, the dev
 * curve's last point (the teacher-forced reference NLL of the dev tasks, the stable signal at this scale), and
 * ROUGE-L with a bootstrap 95% interval on the dev sample.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { readTrainingLog, lossCurveSpec, type CurveSeries } from "../plots/curves";
import { renderVegaLite, type RenderedFigure } from "../plots/render";
import { groupByCategory, loadTrainTasks } from "../data/sni";
import { trainAndDevTasks } from "../train/metatrain";
import { parseFinetuneConfig, type LossWeights } from "../tagi/train";
import type { LogRecord } from "../train/loop";
import { writeJsonAtomic } from "../train/checkpoint";
import { PROJECT_ROOT } from "./runner";
import { shortFinetune, type ScaleRuns } from "./notebook";

export interface LossWeightRun {
  label: string;
  /** The run folder, project-relative. */
  dir: string;
  losses: LossWeights;
  steps: number;
  seed: number;
  seconds: number;
  finishedAt: string;
  /** Each loss term's mean over the last 5 logged steps. */
  terms: Record<string, number>;
  /** The stage's dev curve at its last point: reference NLL of the dev tasks (nats per target token). */
  devNll: number | null;
  /** Greedy decoding on the dev sample. */
  dev: { tasks: number; instances: number; rougeL: number; lo: number; hi: number; referenceNll: number | null };
  examples: { task: string; prediction: string; reference: string }[];
}

const SUMMARY = "loss-weight-run.json";

/** The folder name of a setting: every weight, the temperature, the alignment, steps and seed. */
export function lossWeightLabel(w: LossWeights, steps: number, seed: number): string {
  const n = (x: number) => String(x).replace(/^0\./, ".");
  return `ce${n(w.ce)}-kl${n(w.kl)}-ins${n(w.ins)}-T${n(w.temperature)}-${w.alignment}${w.variant && w.variant !== "paper" ? `-${w.variant}` : ""}-${steps}steps-seed${seed}`;
}

/** runs/<scale>/loss-weights, under $TAGI_RUNS_DIR when set (as the experiment runner's runs). */
function historyDir(scale: string): string {
  return path.join(process.env.TAGI_RUNS_DIR ? path.resolve(process.env.TAGI_RUNS_DIR) : path.join(PROJECT_ROOT, "runs"), scale, "loss-weights");
}

/**
 * Runs (or reads back) one setting: a short finetune with these weights, then its dev-split scores. `log`
 * hears the training progress; a setting already in the history is returned as it was recorded.
 */
export async function runLossWeights(
  runs: ScaleRuns,
  losses: LossWeights,
  opts: { steps: number; seed?: number; devTasks?: number; instancesPerTask?: number; onLog?: (r: LogRecord) => void },
): Promise<LossWeightRun & { reused: boolean }> {
  const seed = opts.seed ?? 0;
  const label = lossWeightLabel(losses, opts.steps, seed);
  const dir = path.join(historyDir(runs.scale), label);
  const summaryFile = path.join(dir, SUMMARY);
  if (fs.existsSync(summaryFile)) return { ...(JSON.parse(fs.readFileSync(summaryFile, "utf8")) as LossWeightRun), reused: true };
  const ft = await shortFinetune(runs, losses, { steps: opts.steps, out: dir, seed, ...(opts.onLog ? { onLog: opts.onLog } : {}) });
  const last = ft.log.slice(-5);
  const terms: Record<string, number> = {};
  for (const k of new Set(last.flatMap((r) => Object.keys(r.terms)))) terms[k] = last.reduce((a, r) => a + (r.terms[k] ?? 0), 0) / last.length;
  const devPoints = ft.log.filter((r) => r.eval?.["devLoss"] !== undefined);
  const dev = await devScores(runs, ft.model, opts.devTasks ?? 8, opts.instancesPerTask ?? 4);
  const run: LossWeightRun = {
    label,
    dir: path.relative(PROJECT_ROOT, dir), // may climb out of the project (TAGI_RUNS_DIR); resolved against it on reading
    losses,
    steps: opts.steps,
    seed,
    seconds: ft.seconds,
    finishedAt: new Date().toISOString(),
    terms,
    devNll: devPoints.length ? devPoints.at(-1)!.eval!["devLoss"]! : null,
    dev: dev.scores,
    examples: dev.examples,
  };
  writeJsonAtomic(summaryFile, run);
  return { ...run, reused: false };
}

/** ROUGE-L (with a 95% bootstrap interval) and reference NLL of a TAGI model on the scale's dev tasks. */
async function devScores(runs: ScaleRuns, modelDir: string, tasks: number, perTask: number): Promise<{ scores: LossWeightRun["dev"]; examples: LossWeightRun["examples"] }> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { evaluateTagiSni } = require("../tagi/evaluate") as typeof import("../tagi/evaluate");
  const { loadTagiParams, readTagiConfig } = require("../tagi/model") as typeof import("../tagi/model");
  const { loadBaseModel, disposeModel } = require("../train/seq2seq") as typeof import("../train/seq2seq");
  const { T5Tokenizer } = require("../text/tokenizer") as typeof import("../text/tokenizer");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const c = parseFinetuneConfig(JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", runs.scale, "finetune.json"), "utf8")) as Record<string, unknown>);
  const { tasks: all } = await loadTrainTasks(c.dataDir, "loss-weights");
  const { dev } = trainAndDevTasks(all, c.dev);
  // One dev task per category first, so a few tasks still span different kinds of task.
  const picked = [...groupByCategory(dev).values()].map((g) => g[0]!).slice(0, tasks);
  const model = loadBaseModel(readTagiConfig(modelDir).base);
  const m = loadTagiParams(modelDir, model);
  try {
    const r = await evaluateTagiSni(m, T5Tokenizer.fromFile(), {
      format: c.format,
      maxInputTokens: c.maxInputTokens,
      maxNewTokens: Math.min(32, c.maxTargetTokens),
      batchSize: 16,
      maxInstancesPerTask: perTask,
      testTasks: picked,
      seed: c.dev.seed,
    });
    return {
      scores: { tasks: picked.length, instances: r.counts.instances, rougeL: r.overall.rougeL, lo: r.intervals.rougeL.lo, hi: r.intervals.rougeL.hi, referenceNll: r.referenceNll?.overall ?? null },
      // one prediction from each of the first tasks
      examples: r.predictions.filter((p, i, all) => all.findIndex((q) => q.task === p.task) === i).slice(0, 6).map((p) => ({ task: p.task, prediction: p.prediction, reference: p.references[0] ?? "" })),
    };
  } finally {
    for (const t of m.hyper.values()) t.dispose();
    for (const t of m.fusion.values()) t.dispose();
    disposeModel(model);
  }
}

/** Every kept run of a scale, oldest first. */
export function lossWeightHistory(scale: string): LossWeightRun[] {
  const dir = historyDir(scale);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((d) => path.join(dir, d, SUMMARY))
    .filter((f) => fs.existsSync(f))
    .map((f) => JSON.parse(fs.readFileSync(f, "utf8")) as LossWeightRun)
    .sort((a, b) => (a.finishedAt < b.finishedAt ? -1 : 1));
}

/** One row per kept run: the weights, then the dev numbers (what the weights are chosen on). */
export function lossWeightRows(history: readonly LossWeightRun[]): Record<string, string | number>[] {
  const f = (x: number | null, d: number) => (x === null || !Number.isFinite(x) ? "" : x.toFixed(d));
  return history.map((r) => ({
    "w_ce": r.losses.ce,
    "λ1 (kl)": r.losses.kl,
    "λ2 (ins)": r.losses.ins,
    T: r.losses.temperature,
    alignment: r.losses.alignment,
    steps: r.steps,
    seed: r.seed,
    "dev NLL (curve)": r.devNll ?? NaN,
    "dev ref. NLL": r.dev.referenceNll ?? NaN,
    "dev ROUGE-L [95% CI]": `${f(r.dev.rougeL, 2)} [${f(r.dev.lo, 2)}, ${f(r.dev.hi, 2)}]`,
    instances: r.dev.instances,
    "train s": Math.round(r.seconds),
  }));
}

/** The kept runs' training curves overlaid: the total loss, or one term ("ce", "kl", "ins") of each. */
export async function lossWeightCurves(history: readonly LossWeightRun[], opts: { term?: string; title?: string; smooth?: number } = {}): Promise<RenderedFigure> {
  const term = opts.term ?? "ce";
  const series: CurveSeries[] = history.map((r) => {
    const log = readTrainingLog(path.join(PROJECT_ROOT, r.dir, "log.jsonl"));
    const name = `λ1=${r.losses.kl} λ2=${r.losses.ins} T=${r.losses.temperature}${r.losses.ce !== 1 ? ` ce=${r.losses.ce}` : ""}${r.seed ? ` s${r.seed}` : ""}`;
    return { name, log: term === "total" ? log : log.map((x) => ({ ...x, loss: x.terms[term] ?? NaN })) };
  });
  const yTitle = term === "ins" ? "L_ins (mean squared difference of LoRA factors)" : term === "total" ? "weighted loss (w_ce L_ce + λ1 L_kl + λ2 L_ins)" : "nats per target token";
  return renderVegaLite(lossCurveSpec(series, { title: opts.title ?? `Stage 2, ${term === "total" ? "the weighted loss" : `L_${term}`} of each kept run`, yTitle, ...(opts.smooth !== undefined ? { smooth: opts.smooth } : {}) }));
}

/** A kept run's training log (for its per-term curves). */
export function lossWeightLog(run: Pick<LossWeightRun, "dir">): LogRecord[] {
  return readTrainingLog(path.join(PROJECT_ROOT, run.dir, "log.jsonl"));
}
