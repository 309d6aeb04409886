/**
 * T0 held-out evaluation on P3 prompts (promptsource templates rendered locally, see src/data/p3.ts) by rank
 * classification, as T0 and TAGI do: every answer choice of an example is scored as the decoder target given
 * the rendered input; the prediction is the choice with the highest token-averaged log-likelihood (lowest
 * token-averaged NLL; ties go to the first choice); the gold is the rendered target's index among the choices.
 *
 * Templates evaluated per task: those with `original_task: true` and answer choices that can be rendered from
 * these raw files (T0 evaluates its held-out sets on the original-task prompts), in promptsource's order
 * (sorted by name); `templatesPerTask` keeps the first N. Examples: rows whose render is usable (non-empty
 * input and target, target among the choices; the rest are counted in `coverage`). With
 * `maxExamplesPerTemplate` N, a seeded random sample of them: the task's rows are put in one order drawn
 * from `sampleSeed` (default 0), and every template takes the first N usable rows in that order, so templates
 * and models are compared on the same rows. Not the first N rows of the file: dev files can be sorted by
 * label (ANLI R3's first 10 rows are all "entailment", which made a model that never says "entailment" score
 * 0 on every template).
 *
 * Beside each accuracy, two reference levels on the same examples: chance (the mean of 1/#choices, a uniform
 * guess) and the majority class (the share of the most frequent gold index: the best a model giving one fixed
 * answer could do, an upper bound chosen after seeing the sample, so above chance on small samples).
 *
 * Aggregation: accuracy per template; per task the mean and the median over its templates (T0 reports the
 * median); overall the mean over tasks of the per-task mean. With all ten available tasks the overall is named
 * "T0 held-out (MTest10, no StoryCloze)": T0's 11 held-out sets (MTest11) minus StoryCloze, which is not
 * obtainable here. HellaSwag is evaluated on its original-task templates that do not need ctx_a/ctx_b.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Model } from "../model/t5";
import { scoreTargets } from "../model/generate";
import { seededRandom } from "../data/sni";
import { padBatch, type T5Tokenizer } from "../text/tokenizer";
import {
  P3_HELDOUT_TASKS,
  datasetCoverage,
  loadP3Records,
  loadP3Templates,
  renderTemplateOver,
  summarizeCoverage,
  type CoverageReport,
  type P3Task,
  type P3Template,
  type TemplateCoverage,
  type UsableExample,
} from "../data/p3";

export const MTEST10_NAME = "T0 held-out (MTest10, no StoryCloze)";

export interface P3EvalOptions {
  tasks?: string[];
  maxExamplesPerTemplate?: number;
  /** the seed of the row order that `maxExamplesPerTemplate` samples from; default 0 */
  sampleSeed?: number;
  templatesPerTask?: number;
  /** (example, choice) pairs per forward pass; default 32 */
  batchSize?: number;
  /** input truncation in tokens (`</s>` included); default 512 */
  maxInputTokens?: number;
  dataDir?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface P3TemplateResult {
  task: string;
  template: string;
  n: number;
  accuracy: number;
  /** accuracy of always answering the most frequent gold index of these examples */
  majorityAccuracy: number;
  /** expected accuracy of a uniform guess: the mean of 1/#choices */
  chanceAccuracy: number;
}

export interface P3TaskResult {
  task: string;
  templates: number;
  meanAccuracy: number;
  medianAccuracy: number;
  /** mean over the task's templates of their majorityAccuracy */
  majorityAccuracy: number;
  /** mean over the task's templates of their chanceAccuracy */
  chanceAccuracy: number;
}

export interface P3Result {
  perTemplate: P3TemplateResult[];
  perTask: P3TaskResult[];
  average: { name: string; accuracy: number };
  coverage: CoverageReport;
  /** tasks asked for that had no evaluable template with examples (not in the average), with the reason */
  skippedTasks: { task: string; reason: string }[];
  /** how examples were chosen: "all", or a seeded sample of at most `perTemplate` rows */
  sample: { kind: "all" } | { kind: "seeded"; seed: number; perTemplate: number };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;

/** Share of the most frequent value (the accuracy of always giving the majority answer). */
export function majorityShare(golds: readonly number[]): number {
  if (golds.length === 0) throw new Error("majorityShare of an empty list");
  const counts = new Map<number, number>();
  for (const g of golds) counts.set(g, (counts.get(g) ?? 0) + 1);
  return Math.max(...counts.values()) / golds.length;
}

/**
 * The first `n` usable examples in a seeded order of the task's rows (the same order for every template of the
 * task, so a row drawn for one template is drawn for all that can render it).
 */
export function sampleUsable(usable: readonly UsableExample[], rowCount: number, n: number, seed: number, task: string): UsableExample[] {
  const rand = seededRandom(seed, `p3-sample:${task}`);
  const order = Array.from({ length: rowCount }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const rank = new Int32Array(rowCount);
  order.forEach((row, k) => (rank[row] = k));
  return [...usable].sort((a, b) => rank[a.row]! - rank[b.row]!).slice(0, n);
}

/** Whether a template takes part in rank-classification evaluation (coverage covers every template). */
export function isEvalTemplate(t: P3Template, coverage: TemplateCoverage): boolean {
  return t.metadata.originalTask === true && t.answerChoices !== null && coverage.notRenderable === undefined;
}

interface Pair {
  item: number;
  choice: number;
  input: number[];
  label: number[];
}

/**
 * Rank classification of rendered examples: the index of the best answer choice for each (highest
 * token-averaged log-likelihood). Pairs are sorted by length and scored `batchSize` at a time.
 */
export function rankClassify(
  model: T5Model,
  tokenizer: T5Tokenizer,
  examples: readonly { input: string; answerChoices: readonly string[] }[],
  opts: { batchSize?: number; maxInputTokens?: number; onPairs?: (n: number) => void } = {},
): number[] {
  const batchSize = opts.batchSize ?? 32;
  const maxInputTokens = opts.maxInputTokens ?? 512;
  const pairs: Pair[] = [];
  examples.forEach((ex, item) => {
    if (ex.answerChoices.length === 0) throw new Error(`example ${item}: no answer choices`);
    const input = tokenizer.encode(ex.input, { maxLength: maxInputTokens, truncation: true });
    ex.answerChoices.forEach((c, choice) => pairs.push({ item, choice, input, label: tokenizer.encode(c) }));
  });
  const order = pairs.map((_, i) => i).sort((a, b) => pairs[a]!.input.length - pairs[b]!.input.length || pairs[a]!.label.length - pairs[b]!.label.length);
  const scores = examples.map((ex) => new Array<number>(ex.answerChoices.length).fill(-Infinity));
  for (let s = 0; s < order.length; s += batchSize) {
    const batch = order.slice(s, s + batchSize).map((i) => pairs[i]!);
    const { inputIds, attentionMask } = padBatch(batch.map((p) => p.input), tokenizer.padId);
    const ids = tf.tensor2d(inputIds, undefined, "int32");
    const mask = tf.tensor2d(attentionMask, undefined, "int32");
    try {
      const { mean: m } = scoreTargets(model, ids, mask, batch.map((p) => p.label));
      batch.forEach((p, j) => {
        const v = m[j]!;
        if (!Number.isFinite(v)) throw new Error(`non-finite log-likelihood for example ${p.item}, choice ${p.choice}`);
        scores[p.item]![p.choice] = v;
      });
    } finally {
      tf.dispose([ids, mask]);
    }
    opts.onPairs?.(batch.length);
  }
  return scores.map((row) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0));
}

export async function evaluateP3(model: T5Model, tokenizer: T5Tokenizer, opts: P3EvalOptions = {}): Promise<P3Result> {
  const known = new Set<string>(P3_HELDOUT_TASKS);
  const tasks = (opts.tasks ?? [...P3_HELDOUT_TASKS]).map((t) => {
    if (!known.has(t)) throw new Error(`unknown P3 held-out task "${t}" (known: ${P3_HELDOUT_TASKS.join(", ")})`);
    return t as P3Task;
  });
  if (opts.templatesPerTask !== undefined && opts.templatesPerTask < 1) throw new Error("templatesPerTask must be >= 1");
  if (opts.maxExamplesPerTemplate !== undefined && opts.maxExamplesPerTemplate < 1) throw new Error("maxExamplesPerTemplate must be >= 1");
  const sampleSeed = opts.sampleSeed ?? 0;
  if (!Number.isInteger(sampleSeed) || sampleSeed < 0) throw new Error(`sampleSeed must be an integer >= 0, got ${sampleSeed}`);

  // 1. Render everything (coverage over every template), collect the evaluation work.
  const work: { task: P3Task; template: string; examples: UsableExample[] }[] = [];
  const datasets = [];
  const skippedTasks: { task: string; reason: string }[] = [];
  for (const task of tasks) {
    const records = loadP3Records(task, opts.dataDir);
    const templates = loadP3Templates(task, opts.dataDir).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const covs: TemplateCoverage[] = [];
    let chosen = 0;
    for (const t of templates) {
      const { usable, coverage } = renderTemplateOver(task, t, records);
      covs.push(coverage);
      if (!isEvalTemplate(t, coverage) || usable.length === 0) continue;
      if (opts.templatesPerTask !== undefined && chosen >= opts.templatesPerTask) continue;
      chosen++;
      const examples = opts.maxExamplesPerTemplate !== undefined ? sampleUsable(usable, records.length, opts.maxExamplesPerTemplate, sampleSeed, task) : usable;
      work.push({ task, template: t.name, examples });
    }
    if (chosen === 0) skippedTasks.push({ task, reason: "no original-task template with answer choices rendered a usable example" });
    datasets.push(datasetCoverage(task, covs, records.length));
  }

  // 2. Score.
  const total = work.reduce((a, w) => a + w.examples.reduce((b, e) => b + e.answerChoices.length, 0), 0);
  let done = 0;
  opts.onProgress?.(0, total);
  const perTemplate: P3TemplateResult[] = [];
  for (const w of work) {
    const preds = rankClassify(model, tokenizer, w.examples, {
      ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
      ...(opts.maxInputTokens !== undefined ? { maxInputTokens: opts.maxInputTokens } : {}),
      onPairs: (n) => {
        done += n;
        opts.onProgress?.(done, total);
      },
    });
    const correct = preds.filter((p, i) => p === w.examples[i]!.gold).length;
    perTemplate.push({ task: w.task, template: w.template, n: w.examples.length, accuracy: correct / w.examples.length, majorityAccuracy: majorityShare(w.examples.map((e) => e.gold)), chanceAccuracy: mean(w.examples.map((e) => 1 / e.answerChoices.length)) });
    await new Promise((r) => setImmediate(r));
  }

  // 3. Aggregate.
  const perTask: P3TaskResult[] = [];
  for (const task of tasks) {
    const rows = perTemplate.filter((r) => r.task === task);
    if (rows.length === 0) continue;
    const accs = rows.map((r) => r.accuracy);
    perTask.push({ task, templates: accs.length, meanAccuracy: mean(accs), medianAccuracy: median(accs), majorityAccuracy: mean(rows.map((r) => r.majorityAccuracy)), chanceAccuracy: mean(rows.map((r) => r.chanceAccuracy)) });
  }
  if (perTask.length === 0) throw new Error(`P3 evaluation: no task had an evaluable template (${skippedTasks.map((s) => s.task).join(", ")})`);
  const all = P3_HELDOUT_TASKS.every((t) => perTask.some((p) => p.task === t));
  const name = all ? MTEST10_NAME : `P3 held-out subset (${perTask.map((p) => p.task).join(", ")})`;
  return {
    perTemplate,
    perTask,
    average: { name, accuracy: mean(perTask.map((p) => p.meanAccuracy)) },
    coverage: summarizeCoverage(datasets),
    skippedTasks,
    sample: opts.maxExamplesPerTemplate !== undefined ? { kind: "seeded", seed: sampleSeed, perTemplate: opts.maxExamplesPerTemplate } : { kind: "all" },
  };
}
