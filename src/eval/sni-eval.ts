/**
 * Evaluation of a T5 on Super-NaturalInstructions' test tasks ("SNI-103"), as Tk-Instruct / TAGI evaluate:
 * the collator's prompt (Def or Def + 2 Pos) cut to `maxInputTokens` (1024, the paper's max source length),
 * greedy decoding of up to `maxNewTokens` (128) tokens, decoding that skips special tokens, ROUGE-L and exact
 * match per instance as the official script (./rouge.ts), and means per task, per category and overall.
 *
 * Differences from Tk-Instruct, all reported in the result:
 * - truncation keeps the instance whole by shortening the definition (`truncatePrompt`'s default
 *   "keep-instance"); the collator instead cuts the end of the source (pass truncation "collator" for that);
 * - `input: "instance"` feeds only the instance part (for models that read the instruction elsewhere, like
 *   TAGI's hypernetwork).
 */
import * as tf from "@tensorflow/tfjs-core";
import { loadSniSplit, sampleInstances, taskCategory, type SniSkip, type SniTask } from "../data/sni";
import { generateAndScore, greedyDecode, newGenerationTiming } from "../model/generate";
import { streamGreedy } from "../model/stream-decode";
import type { RunOptions, T5Model } from "../model/t5";
import { buildPrompt, truncatePrompt, type PromptFormat } from "../text/prompts";
import { padBatch, type T5Tokenizer } from "../text/tokenizer";
import { aggregateScores, scoreInstance, type AggregateMetrics, type InstanceScore } from "./rouge";
import type { TaskRow } from "./tables";
import { bootstrapMean, type Interval } from "./stats";
import { sanityFloors, type FloorScore } from "./floors";

export interface SniProgress {
  done: number;
  total: number;
  elapsedMs: number;
  /** Instances per second so far (generation phase). */
  instancesPerSec: number;
  /** Estimated remaining time, ms (undefined before the first batch). */
  etaMs: number | undefined;
}

export interface SniEvalOptions {
  format: PromptFormat;
  /** "full" (default): instruction + instance, as the Tk-Instruct baseline reads it; "instance": the instance part only. */
  input?: "full" | "instance";
  /** Source length limit, `</s>` included. Default 1024 (the paper's). */
  maxInputTokens?: number;
  /** Default 128. */
  maxNewTokens?: number;
  /** Default 8. */
  batchSize?: number;
  /** At most this many instances per task, drawn with `sampleInstances(task, n, seed)`. Default: all. */
  maxInstancesPerTask?: number;
  /** Seed for the instance sample. Default 0. */
  seed?: number;
  /** Only these test tasks (names; an unknown name is an error). Default: all. */
  tasks?: string[];
  /** Default `../shared/data` (DEFAULT_DATA_DIR). */
  dataDir?: string;
  /**
   * Pre-loaded tasks (skips reading the data; `skipped` is then empty unless given): test tasks, or held-out
   * train tasks (the dev split) where a choice is made on them rather than on the test tasks.
   */
  testTasks?: readonly SniTask[];
  /** What the tasks are called in the benchmark label and errors: "test" (default) or "dev" (held-out train tasks). */
  taskSet?: "test" | "dev" | "seen";
  /** "keep-instance" (default) or "collator" (Tk-Instruct's exact cut of the source). */
  truncation?: "keep-instance" | "collator";
  /** HF's clean_up_tokenization_spaces when decoding predictions. Default true (AutoTokenizer on a T5 folder). */
  cleanUpTokenizationSpaces?: boolean;
  /** Options for the forward pass (e.g. a LoRA adapter), or one set per task (then batches never mix tasks). */
  runOptions?: RunOptions | ((task: string, batchSize: number) => RunOptions);
  /** Also score the first reference under teacher forcing (SniResult.referenceNll). Default true. */
  referenceNll?: boolean;
  /**
   * "continuous" (default): batchSize rows decode at once and a finished row's place is refilled from the
   * queue (src/model/stream-decode.ts), over all instances, or one task at a time when run options are per task.
   * "batched": fixed batches of similar length, each decoded until its last row finishes (finished rows leave
   * it unless compactDecoding is false). Both give each row the tokens it would get alone, up to float rounding.
   */
  decoding?: "continuous" | "batched";
  /** With batched decoding: finished sequences leave the batch (default true; false: the reference path, for measurements). */
  compactDecoding?: boolean;
  /** With batched decoding: each batch's padded input ids and mask, as run (for side-by-side measurements). */
  onBatch?: (inputIds: number[][], attentionMask: number[][]) => void;
  onProgress?: (p: SniProgress) => void;
}

export interface SniPrediction {
  task: string;
  category: string;
  id: string;
  prediction: string;
  references: string[];
  /** x 100 */
  rougeL: number;
  /** 0 or 100 */
  exactMatch: number;
  inputTokens: number;
  truncated: boolean;
  /** What truncation did, in words (absent when nothing). */
  truncation?: string[];
}

export interface SniTaskRow extends TaskRow {
  rougeL: number;
  exactMatch: number;
  /** Instances whose prompt was truncated. */
  truncated: number;
}

export interface SniCounts {
  tasks: number;
  categories: number;
  instances: number;
  /** Prompts changed to fit maxInputTokens (examples dropped, definition shortened or instance cut). */
  truncated: number;
  examplesDropped: number;
  definitionTruncated: number;
  /** Prompts whose instance part could not be kept whole. */
  instanceTruncated: number;
  /** Tasks/instances the loader left out (see `skips`). */
  skipped: number;
  skippedTasks: number;
  skippedInstances: number;
  /** Generated ids >= the tokenizer's vocabulary size (unused rows of the model's head), dropped when decoding. */
  outOfVocabTokens: number;
}

export interface SniResult {
  /** "SNI-103" when every test task was evaluated on all its instances, otherwise "SNI subset (...)". */
  benchmark: string;
  options: {
    format: PromptFormat;
    input: "full" | "instance";
    maxInputTokens: number;
    maxNewTokens: number;
    batchSize: number;
    maxInstancesPerTask: number | null;
    seed: number;
    tasks: string[] | null;
    truncation: "keep-instance" | "collator";
    cleanUpTokenizationSpaces: boolean;
    decoding: "continuous" | "batched";
  };
  metrics: { name: "rougeL" | "exactMatch"; description: string }[];
  /** One row per task (x 100), in test-file order. */
  rows: SniTaskRow[];
  /** The official aggregation (instance means) and task means, from `aggregateScores`. */
  aggregate: AggregateMetrics;
  overall: { rougeL: number; exactMatch: number; rougeLTaskMean: number; exactMatchTaskMean: number; tasks: number; instances: number };
  predictions: SniPrediction[];
  /**
   * Teacher-forced negative log-likelihood of the first reference (its first maxNewTokens tokens, </s>
   * included), nats per token: mean over instances, and per task. A smooth signal where greedy outputs of a
   * weak model are still mostly empty or repetitive. Null when `referenceNll: false`.
   */
  referenceNll: { overall: number; perTask: Record<string, number> } | null;
  /** 95% percentile-bootstrap CIs of the overall scores over instances (2,000 resamples, seeded). */
  intervals: { rougeL: Interval; exactMatch: Interval };
  /**
   * Sanity floors (./floors.ts) on exactly these instances: copy the input, copy the first demonstration's
   * output, the most frequent demonstration output. A score near them means the model learnt nothing more.
   */
  floors: FloorScore[];
  counts: SniCounts;
  skips: SniSkip[];
  /**
   * Where the time went: preparing prompts, then generating (encoder, step-by-step decoder, reference
   * scoring, and the host's share: batching, tokenizing references, detokenizing, ROUGE), and the decoder's
   * rows per step (finished sequences leave the batch).
   */
  timing: {
    totalMs: number;
    prepareMs: number;
    generateMs: number;
    encodeMs: number;
    decodeMs: number;
    scoreMs: number;
    hostMs: number;
    decoderSteps: number;
    meanRowsPerStep: number;
    instancesPerSec: number;
  };
}

export const SNI_METRICS: SniResult["metrics"] = [
  { name: "rougeL", description: "ROUGE-L F (rouge-score 0.1.2, Porter stemmer), max over references, x 100, mean over instances" },
  { name: "exactMatch", description: "exact match after SNI's normalize_answer (no article removal), any reference, x 100, mean over instances" },
];

interface Item {
  index: number;
  task: string;
  category: string;
  id: string;
  references: string[];
  ids: number[];
  truncated: boolean;
  notes: string[];
  droppedExamples: number;
  definitionTruncated: boolean;
  instanceTruncated: boolean;
}

function positiveInt(v: number | undefined, dflt: number, name: string, min = 1): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min) throw new Error(`evaluateSni: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Evaluates `model` on SNI's test tasks; see the module comment. */
function referenceNllOf(items: readonly { index: number; task: string }[], nll: readonly number[]): { overall: number; perTask: Record<string, number> } {
  const byTask = new Map<string, number[]>();
  for (const it of items) byTask.set(it.task, [...(byTask.get(it.task) ?? []), nll[it.index]!]);
  const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  return { overall: mean(items.map((it) => nll[it.index]!)), perTask: Object.fromEntries([...byTask].map(([t, xs]) => [t, mean(xs)])) };
}

export async function evaluateSni(model: T5Model, tokenizer: T5Tokenizer, opts: SniEvalOptions): Promise<SniResult> {
  const t0 = Date.now();
  if (opts.format !== "def" && opts.format !== "def+2pos") throw new Error(`evaluateSni: format must be "def" or "def+2pos", got ${String(opts.format)}`);
  const input = opts.input ?? "full";
  if (input !== "full" && input !== "instance") throw new Error(`evaluateSni: input must be "full" or "instance", got ${String(input)}`);
  const maxInputTokens = positiveInt(opts.maxInputTokens, 1024, "maxInputTokens");
  const maxNewTokens = positiveInt(opts.maxNewTokens, 128, "maxNewTokens", 0);
  const batchSize = positiveInt(opts.batchSize, 8, "batchSize");
  const maxPerTask = opts.maxInstancesPerTask === undefined ? undefined : positiveInt(opts.maxInstancesPerTask, 0, "maxInstancesPerTask");
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`evaluateSni: seed must be an integer, got ${seed}`);
  const truncation = opts.truncation ?? "keep-instance";
  const cleanUp = opts.cleanUpTokenizationSpaces ?? true;

  let allTasks: readonly SniTask[];
  let skips: SniSkip[] = [];
  if (opts.testTasks) allTasks = opts.testTasks;
  else {
    const loaded = await loadSniSplit("test", opts.dataDir, { warn: false });
    allTasks = loaded.tasks;
    skips = loaded.skipped;
  }
  let tasks = allTasks;
  if (opts.tasks) {
    const byName = new Map(allTasks.map((t) => [t.name, t]));
    const unknown = opts.tasks.filter((n) => !byName.has(n));
    if (unknown.length > 0) {
      const skippedNames = new Set(skips.map((s) => s.task));
      throw new Error(
        `evaluateSni: unknown ${opts.taskSet ?? "test"} task(s): ${unknown
          .map((n) => (skippedNames.has(n) ? `${n} (skipped by the loader)` : n))
          .join(", ")}. ${{ test: "Test", dev: "Dev", seen: "Seen" }[opts.taskSet ?? "test"]} tasks: ${allTasks.length}, e.g. ${allTasks
          .slice(0, 3)
          .map((t) => t.name)
          .join(", ")}`,
      );
    }
    const wanted = new Set(opts.tasks);
    tasks = allTasks.filter((t) => wanted.has(t.name));
    skips = skips.filter((s) => wanted.has(s.task));
  }
  if (tasks.length === 0) throw new Error("evaluateSni: no tasks to evaluate");

  // Prompts and token ids.
  const items: Item[] = [];
  for (const task of tasks) {
    const category = taskCategory(task);
    const instances = maxPerTask === undefined ? task.instances : sampleInstances(task, maxPerTask, seed);
    for (const inst of instances) {
      const parts = buildPrompt(task, inst, { format: opts.format });
      let ids: number[];
      let notes: string[] = [];
      let droppedExamples = 0;
      let definitionTruncated = false;
      let instanceTruncated = false;
      if (input === "full") {
        const tp = truncatePrompt(parts, tokenizer, maxInputTokens, { strategy: truncation });
        notes = tp.notes;
        droppedExamples = tp.droppedExamples;
        definitionTruncated = tp.definitionTruncated;
        instanceTruncated = tp.instanceTruncated;
        ids = tokenizer.encode(tp.full, { maxLength: maxInputTokens, truncation: true });
      } else {
        const whole = tokenizer.encode(parts.instance);
        if (whole.length > maxInputTokens) {
          instanceTruncated = true;
          notes = [`cut the instance from ${whole.length} to ${maxInputTokens} tokens`];
        }
        ids = tokenizer.encode(parts.instance, { maxLength: maxInputTokens, truncation: true });
      }
      items.push({
        index: items.length,
        task: task.name,
        category,
        id: inst.id,
        references: inst.outputs,
        ids,
        truncated: notes.length > 0,
        notes,
        droppedExamples,
        definitionTruncated,
        instanceTruncated,
      });
    }
  }
  const tPrep = Date.now();

  // Longest first, never mixing tasks in a group when run options are per task: groups of at most maxRows.
  const perTask = typeof opts.runOptions === "function";
  const order = [...items].sort((a, b) => (perTask && a.task !== b.task ? (a.task < b.task ? -1 : 1) : 0) || b.ids.length - a.ids.length || a.index - b.index);
  const groups = (maxRows: number): Item[][] => {
    const out: Item[][] = [];
    for (const it of order) {
      const last = out[out.length - 1];
      if (last && last.length < maxRows && (!perTask || last[0]?.task === it.task)) last.push(it);
      else out.push([it]);
    }
    return out;
  };
  const predictions = new Array<string>(items.length);
  const nll = new Array<number>(items.length);
  const wantNll = opts.referenceNll ?? true;
  const decoding = opts.decoding ?? (opts.compactDecoding === false ? "batched" : "continuous");
  if (decoding !== "continuous" && decoding !== "batched") throw new Error(`evaluateSni: decoding must be "continuous" or "batched", got ${String(decoding)}`);
  if (decoding === "continuous" && opts.compactDecoding === false) throw new Error("evaluateSni: compactDecoding: false needs decoding: \"batched\" (continuous decoding always lets finished rows leave)");
  let done = 0;
  let outOfVocab = 0;
  const gen = newGenerationTiming();
  const labelsOf = (batch: readonly Item[]) => batch.map((b) => tokenizer.encode(b.references[0] ?? "").slice(0, Math.max(1, maxNewTokens)));
  const progress = (finished: number) => {
    if (!opts.onProgress) return;
    const elapsedMs = Date.now() - tPrep;
    const rate = elapsedMs > 0 ? (finished * 1000) / elapsedMs : 0;
    opts.onProgress({ done: finished, total: items.length, elapsedMs, instancesPerSec: rate, etaMs: rate > 0 ? ((items.length - finished) / rate) * 1000 : undefined });
  };
  /** Generated ids to text. Drops decoder_start_token_id, and ids past the tokenizer's vocabulary (a 32,128-row
   * head has 28 unused rows over the 32,100 pieces; HF's fast tokenizer decodes them to nothing): counted. */
  const record = (batch: readonly Item[], out: number[][]) =>
    batch.forEach((b, i) => {
      const row = (out[i] ?? []).slice(1).filter((id) => {
        if (id < tokenizer.vocabSize) return true;
        outOfVocab++;
        return false;
      });
      predictions[b.index] = tokenizer.decode(row, { skipSpecialTokens: true, cleanUpTokenizationSpaces: cleanUp }).trim();
    });
  if (decoding === "continuous") {
    // One queue (or one per task when run options are per task).
    for (const queue of groups(Infinity)) {
      const rows = Math.min(batchSize, queue.length);
      const ro = typeof opts.runOptions === "function" ? opts.runOptions((queue[0] as Item).task, rows) : (opts.runOptions ?? {});
      const before = done;
      const r = await streamGreedy(
        model,
        queue.map((it) => it.ids),
        { maxNewTokens, batchSize: rows, runOptions: ro, ...(wantNll ? { labels: labelsOf(queue) } : {}), timing: gen, onProgress: (k) => progress(before + k) },
      );
      if (r.scores) queue.forEach((b, i) => (nll[b.index] = -r.scores!.mean[i]!));
      record(queue, r.ids);
      done += queue.length;
    }
  } else {
    for (const batch of groups(batchSize)) {
      const { inputIds, attentionMask } = padBatch(batch.map((b) => b.ids), tokenizer.padId);
      opts.onBatch?.(inputIds, attentionMask);
      const ids = tf.tensor2d(inputIds, undefined, "int32");
      const mask = tf.tensor2d(attentionMask, undefined, "int32");
      const ro = typeof opts.runOptions === "function" ? opts.runOptions((batch[0] as Item).task, batch.length) : (opts.runOptions ?? {});
      let out: number[][];
      try {
        if (wantNll) {
          // one encoder pass for both the generated text and the reference's NLL
          const r = generateAndScore(model, ids, mask, labelsOf(batch), { ...ro, maxNewTokens, timing: gen, compact: opts.compactDecoding !== false });
          out = r.ids;
          batch.forEach((b, i) => (nll[b.index] = -r.scores.mean[i]!));
        } else out = greedyDecode(model, ids, mask, { ...ro, maxNewTokens, timing: gen, compact: opts.compactDecoding !== false });
      } finally {
        tf.dispose([ids, mask]);
      }
      record(batch, out);
      done += batch.length;
      progress(done);
      await new Promise<void>((r) => setImmediate(r)); // let the progress bar draw
    }
  }
  const tGen = Date.now();

  // Scores.
  const scores: InstanceScore[] = [];
  const preds: SniPrediction[] = items.map((it) => {
    const prediction = predictions[it.index] ?? "";
    const s = scoreInstance(prediction, it.references, { task: it.task, category: it.category, id: it.id });
    scores.push(s);
    return {
      task: it.task,
      category: it.category,
      id: it.id,
      prediction,
      references: it.references,
      rougeL: 100 * s.rougeL,
      exactMatch: 100 * s.exactMatch,
      inputTokens: it.ids.length,
      truncated: it.truncated,
      ...(it.notes.length > 0 ? { truncation: it.notes } : {}),
    };
  });
  const aggregate = aggregateScores(scores);
  const truncByTask = new Map<string, number>();
  for (const it of items) if (it.truncated) truncByTask.set(it.task, (truncByTask.get(it.task) ?? 0) + 1);
  const rows: SniTaskRow[] = [];
  for (const [task, m] of aggregate.perTask) {
    rows.push({ task, category: m.category, instances: m.instances, rougeL: m.rougeL, exactMatch: m.exactMatch, truncated: truncByTask.get(task) ?? 0 });
  }
  const o = aggregate.overall;
  const full = !opts.tasks && maxPerTask === undefined && !opts.testTasks;
  const benchmark =
    full && tasks.length === 103
      ? "SNI-103"
      : `SNI ${{ test: "subset", dev: "dev split", seen: "seen tasks" }[opts.taskSet ?? "test"]} (${tasks.length} ${opts.taskSet ?? "test"} task${tasks.length === 1 ? "" : "s"}${maxPerTask !== undefined ? `, <= ${maxPerTask} instances each` : ""})`;
  const tEnd = Date.now();
  return {
    benchmark,
    options: {
      format: opts.format,
      input,
      maxInputTokens,
      maxNewTokens,
      batchSize,
      maxInstancesPerTask: maxPerTask ?? null,
      seed,
      tasks: opts.tasks ? [...opts.tasks] : null,
      truncation,
      cleanUpTokenizationSpaces: cleanUp,
      decoding,
    },
    metrics: SNI_METRICS,
    rows,
    aggregate,
    overall: {
      rougeL: o.rougeL,
      exactMatch: o.exactMatch,
      rougeLTaskMean: o.rougeLTaskMean,
      exactMatchTaskMean: o.exactMatchTaskMean,
      tasks: o.tasks,
      instances: o.instances,
    },
    predictions: preds,
    referenceNll: wantNll ? referenceNllOf(items, nll) : null,
    intervals: { rougeL: bootstrapMean(preds.map((p) => p.rougeL), { seed }), exactMatch: bootstrapMean(preds.map((p) => p.exactMatch), { seed }) },
    floors: sanityFloors(tasks, preds, { seed }),
    counts: {
      tasks: tasks.length,
      categories: aggregate.perCategory.size,
      instances: items.length,
      truncated: items.filter((i) => i.truncated).length,
      examplesDropped: items.filter((i) => i.droppedExamples > 0).length,
      definitionTruncated: items.filter((i) => i.definitionTruncated).length,
      instanceTruncated: items.filter((i) => i.instanceTruncated).length,
      skipped: skips.length,
      skippedTasks: skips.filter((s) => s.instanceId === undefined).length,
      skippedInstances: skips.filter((s) => s.instanceId !== undefined).length,
      outOfVocabTokens: outOfVocab,
    },
    skips,
    timing: {
      totalMs: tEnd - t0,
      prepareMs: tPrep - t0,
      generateMs: tGen - tPrep,
      encodeMs: gen.encodeMs,
      decodeMs: gen.decodeMs,
      scoreMs: gen.scoreMs,
      hostMs: Math.max(0, tGen - tPrep - gen.encodeMs - gen.decodeMs - gen.scoreMs),
      decoderSteps: gen.steps,
      meanRowsPerStep: gen.steps ? gen.rowSteps / gen.steps : 0,
      instancesPerSec: tGen > tPrep ? (items.length * 1000) / (tGen - tPrep) : 0,
    },
  };
}
