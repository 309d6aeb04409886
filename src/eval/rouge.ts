/**
 * ROUGE-L and exact match exactly as Super-NaturalInstructions' official evaluation computes them.
 *
 * Based on `compute_metrics.py` of Tk-Instruct (github.com/yizhongw/Tk-Instruct, src/compute_metrics.py) and
 * of TAGI (github.com/Xnhyacinth/TAGI, src/compute_metrics.py, identical in what follows), default track:
 * - ROUGE-L: `rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True).score(target=reference,
 *   prediction=prediction)["rougeL"]` of rouge-score 0.1.2. Its tokenizer: `text.lower()`; every run of
 *   characters outside [a-z0-9] becomes one space; split on whitespace; NLTK's PorterStemmer() (mode
 *   NLTK_EXTENSIONS, ./porter.ts) on tokens longer than 3 characters; drop tokens that are not `^[a-z0-9]+$`
 *   (i.e. the empty ones). Then P = LCS/|prediction|, R = LCS/|reference|, F = 2PR/(P+R) (0 when P+R = 0);
 *   all three are 0 when either token list is empty.
 * - Per instance: the maximum over the reference list (`metric_max_over_ground_truths`).
 * - Exact match: `normalize_answer` = lowercase, drop every character of Python's `string.punctuation`,
 *   `' '.join(text.split())`. NOTE: the official code says "adapted from Squad v1.1 evaluation, *without
 *   removing the articles*": a/an/the are NOT removed there (the SQuAD variant removes them). The default here
 *   follows the official code; `{ removeArticles: true }` gives the SQuAD variant.
 * - Aggregation (`compute_metrics` / `compute_grouped_metrics`): the overall number is 100 x the mean over ALL
 *   instances (not over task means); per task and per category (the task's first `Categories` entry) it is
 *   likewise 100 x the mean over the instances of the group, and the official script rounds each to 4
 *   decimals. With 100 instances in every task, the instance mean equals the mean of task means; they differ
 *   only where tasks have fewer instances (two SNI test tasks do). `aggregateScores` returns both: the
 *   official instance means and, for reference, the means of task means.
 */
import { porterStem } from "./porter";

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** rouge-score's `tokenize.tokenize(text, PorterStemmer())`. */
export function rougeTokenize(text: string, stem = true): string[] {
  const replaced = text.toLowerCase().replace(/[^a-z0-9]+/g, " ");
  const tokens: string[] = [];
  for (const raw of replaced.split(" ")) {
    if (raw.length === 0) continue;
    tokens.push(stem && raw.length > 3 ? porterStem(raw) : raw);
  }
  return tokens.filter((t) => /^[a-z0-9]+$/.test(t));
}

function lcsLength(a: readonly string[], b: readonly string[]): number {
  // one row of the DP table at a time (rouge-score keeps the whole table; the length is the same)
  let prev = new Int32Array(b.length + 1);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      if (ai === b[j - 1]) cur[j] = (prev[j - 1] ?? 0) + 1;
      else cur[j] = Math.max(prev[j] ?? 0, cur[j - 1] ?? 0);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length] ?? 0;
}

/** rouge-score's `fmeasure`. */
function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

/** `RougeScorer(['rougeL'], use_stemmer=True).score(target=reference, prediction=prediction)['rougeL']`. */
export function rougeL(prediction: string, reference: string): RougeScore {
  const target = rougeTokenize(reference);
  const pred = rougeTokenize(prediction);
  if (target.length === 0 || pred.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(target, pred);
  const precision = lcs / pred.length;
  const recall = lcs / target.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

function checkReferences(references: readonly string[], context: string | undefined): void {
  if (!Array.isArray(references) || references.length === 0) {
    throw new Error(`empty reference list${context ? ` for ${context}` : ""}: SNI scores need at least one reference`);
  }
}

/** SNI's per-instance ROUGE-L: max over the references of the F-measure (in [0, 1]). */
export function sniRougeL(prediction: string, references: readonly string[], context?: string): number {
  checkReferences(references, context);
  let best = -Infinity;
  for (const ref of references) best = Math.max(best, rougeL(prediction, ref).fmeasure);
  return best;
}

/** Python's `string.punctuation`. */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
/** The characters Python's `str.split()` splits on (str.isspace). */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

export interface NormalizeOptions {
  /** SQuAD's article removal (not in SNI's official code; ASCII word boundaries). Default false. */
  removeArticles?: boolean;
}

/** SNI's `normalize_answer`: lowercase, drop string.punctuation, collapse whitespace. */
export function normalizeAnswer(s: string, options: NormalizeOptions = {}): string {
  let text = s.toLowerCase();
  text = Array.from(text)
    .filter((c) => !PUNCTUATION.has(c))
    .join("");
  if (options.removeArticles) text = text.replace(/\b(a|an|the)\b/g, " ");
  return text.split(PY_WHITESPACE).filter((t) => t.length > 0).join(" ");
}

/** SNI's per-instance exact match: 1 when the normalized prediction equals any normalized reference. */
export function exactMatch(
  prediction: string,
  references: readonly string[],
  context?: string,
  options: NormalizeOptions = {},
): number {
  checkReferences(references, context);
  const p = normalizeAnswer(prediction, options);
  return references.some((r) => normalizeAnswer(r, options) === p) ? 1 : 0;
}

/** One scored instance. */
export interface InstanceScore {
  task: string;
  category: string;
  id?: string;
  rougeL: number; // in [0, 1]
  exactMatch: number; // 0 or 1
}

/** Scores one prediction against its references; errors name the task/instance. */
export function scoreInstance(
  prediction: string,
  references: readonly string[],
  meta: { task: string; category: string; id?: string },
): InstanceScore {
  const context = `task ${meta.task}${meta.id !== undefined ? `, instance ${meta.id}` : ""}`;
  return {
    ...meta,
    rougeL: sniRougeL(prediction, references, context),
    exactMatch: exactMatch(prediction, references, context),
  };
}

export interface GroupMetrics {
  rougeL: number; // x 100
  exactMatch: number; // x 100
  instances: number;
}

export interface CategoryMetrics extends GroupMetrics {
  tasks: number;
  /** mean over the category's tasks of the task numbers (not what the official script reports) */
  rougeLTaskMean: number;
  exactMatchTaskMean: number;
}

export interface AggregateMetrics {
  /** official: 100 x mean over all instances */
  overall: GroupMetrics & { tasks: number; rougeLTaskMean: number; exactMatchTaskMean: number };
  perTask: Map<string, GroupMetrics & { category: string }>;
  perCategory: Map<string, CategoryMetrics>;
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/**
 * Per-task, per-category and overall numbers (x 100, unrounded) as SNI's compute_metrics: each is the mean over
 * the instances of the group. Throws on an empty list or a non-finite score (never returns NaN).
 */
export function aggregateScores(scores: readonly InstanceScore[]): AggregateMetrics {
  if (scores.length === 0) throw new Error("aggregateScores: no instances to aggregate");
  const byTask = new Map<string, InstanceScore[]>();
  for (const s of scores) {
    if (!Number.isFinite(s.rougeL) || !Number.isFinite(s.exactMatch)) {
      throw new Error(`non-finite score for task ${s.task}${s.id !== undefined ? `, instance ${s.id}` : ""}`);
    }
    let list = byTask.get(s.task);
    if (!list) byTask.set(s.task, (list = []));
    const first = list[0];
    if (first && first.category !== s.category) {
      throw new Error(`task ${s.task} has two categories: ${first.category} and ${s.category}`);
    }
    list.push(s);
  }
  const group = (xs: readonly InstanceScore[]): GroupMetrics => ({
    rougeL: 100 * mean(xs.map((x) => x.rougeL)),
    exactMatch: 100 * mean(xs.map((x) => x.exactMatch)),
    instances: xs.length,
  });
  const perTask = new Map<string, GroupMetrics & { category: string }>();
  for (const [task, xs] of byTask) perTask.set(task, { ...group(xs), category: xs[0]?.category ?? "" });
  const byCategory = new Map<string, InstanceScore[]>();
  for (const s of scores) {
    let list = byCategory.get(s.category);
    if (!list) byCategory.set(s.category, (list = []));
    list.push(s);
  }
  const perCategory = new Map<string, CategoryMetrics>();
  for (const [category, xs] of byCategory) {
    const tasks = [...perTask.values()].filter((t) => t.category === category);
    perCategory.set(category, {
      ...group(xs),
      tasks: tasks.length,
      rougeLTaskMean: mean(tasks.map((t) => t.rougeL)),
      exactMatchTaskMean: mean(tasks.map((t) => t.exactMatch)),
    });
  }
  const taskList = [...perTask.values()];
  return {
    overall: {
      ...group(scores),
      tasks: taskList.length,
      rougeLTaskMean: mean(taskList.map((t) => t.rougeL)),
      exactMatchTaskMean: mean(taskList.map((t) => t.exactMatch)),
    },
    perTask,
    perCategory,
  };
}
