/**
 * T0 held-out evaluation on P3 prompts (promptsource templates rendered locally, see src/data/p3.ts) by rank
 * classification, as T0 and TAGI do: every answer choice of an example is scored as the decoder target given
 * the rendered input; the prediction is the choice with the highest token-averaged log-likelihood (lowest
 * token-averaged NLL; ties go to the first choice); the gold is the rendered target's index among the choices.
 *
 * Templates evaluated per task: those with `original_task: true` and answer choices that can be rendered from
 * these raw files (T0 evaluates its held-out sets on the original-task prompts), in promptsource's order
 * (sorted by name); `templatesPerTask` keeps the first N. Examples: rows whose render is usable (non-empty
 * input and target, target among the choices; the rest are counted in `coverage`), the first
 * `maxExamplesPerTemplate` of them.
 *
 * Aggregation: accuracy per template; per task the mean and the median over its templates (T0 reports the
 * median); overall the mean over tasks of the per-task mean. With all ten available tasks the overall is named
 * "T0 held-out (MTest10, no StoryCloze)": T0's 11 held-out sets (MTest11) minus StoryCloze, which is not
 * obtainable here. HellaSwag is evaluated on its original-task templates that do not need ctx_a/ctx_b.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Model } from "../model/t5";
import { scoreTargets } from "../model/generate";
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
}

export interface P3TaskResult {
  task: string;
  templates: number;
  meanAccuracy: number;
  medianAccuracy: number;
}

export interface P3Result {
  perTemplate: P3TemplateResult[];
  perTask: P3TaskResult[];
  average: { name: string; accuracy: number };
  coverage: CoverageReport;
  /** tasks asked for that had no evaluable template with examples (not in the average), with the reason */
  skippedTasks: { task: string; reason: string }[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;

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
      work.push({ task, template: t.name, examples: opts.maxExamplesPerTemplate !== undefined ? usable.slice(0, opts.maxExamplesPerTemplate) : usable });
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
    perTemplate.push({ task: w.task, template: w.template, n: w.examples.length, accuracy: correct / w.examples.length });
    await new Promise((r) => setImmediate(r));
  }

  // 3. Aggregate.
  const perTask: P3TaskResult[] = [];
  for (const task of tasks) {
    const accs = perTemplate.filter((r) => r.task === task).map((r) => r.accuracy);
    if (accs.length === 0) continue;
    perTask.push({ task, templates: accs.length, meanAccuracy: mean(accs), medianAccuracy: median(accs) });
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
  };
}
