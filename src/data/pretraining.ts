/**
 * Pretraining text and objectives for the project's own base model (stage 0).
 *
 * Corpus: text of the SNI *train* tasks only — each task's definition, its positive examples and its
 * instances (input, then first reference output) — tokenized in task order and cut into fixed-length raw
 * segments. Test tasks are refused by type and at run time, so the base model never reads an evaluation task.
 *
 * Objectives, as in T5:
 * - span corruption (Raffel et al. 2020, `random_spans_noise_mask`): 15% of a segment's tokens, in spans of
 *   mean length 3, are replaced in the input by sentinels <extra_id_0>, <extra_id_1>, ...; the target lists
 *   each sentinel followed by the tokens it hid. Noise is drawn afresh per (epoch, segment).
 * - prefix LM (T5-LM-adapt): the segment is split at a random point; the model reads the prefix and
 *   predicts the rest.
 */
import type { T5Tokenizer } from "../text/tokenizer";
import type { ExampleSource, Seq2SeqExample } from "./batching";
import { seededRandom, shuffled, type SniTask, type SniTrainTask } from "./sni";

export interface PretrainCorpus {
  /** The whole token stream (no `</s>`), segments cut from it in order. */
  tokens: Int32Array;
  /** Where each task's text starts in `tokens`, then tokens.length: task i is [taskStarts[i], taskStarts[i+1]). */
  taskStarts: Int32Array;
  /** Tasks and texts it was built from. */
  tasks: number;
  texts: number;
  /** Texts skipped because they were empty after trimming (counted, not silently dropped). */
  emptyTexts: number;
}

/** The texts of one train task that pretraining reads, in a fixed order. */
export function taskTexts(task: SniTrainTask): string[] {
  const texts = [task.definition];
  for (const ex of task.positiveExamples) texts.push(`${ex.input}\n${ex.output}`);
  for (const inst of task.instances) texts.push(`${inst.input}\n${inst.outputs[0] ?? ""}`);
  return texts;
}

export function buildPretrainCorpus(tasks: readonly SniTrainTask[], tokenizer: T5Tokenizer): PretrainCorpus {
  const bad = tasks.filter((t) => (t as SniTask).split !== "train");
  if (bad.length) {
    throw new Error(
      `pretraining corpus: only SNI train tasks may be used; got ${bad.length} from another split (e.g. ${bad
        .slice(0, 3)
        .map((t) => t.name)
        .join(", ")})`,
    );
  }
  const chunks: number[][] = [];
  let total = 0;
  let texts = 0;
  let emptyTexts = 0;
  const taskStarts = new Int32Array(tasks.length + 1);
  for (const [ti, task] of tasks.entries()) {
    taskStarts[ti] = total;
    for (const text of taskTexts(task)) {
      const trimmed = text.trim();
      if (!trimmed) {
        emptyTexts++;
        continue;
      }
      const ids = tokenizer.encode(trimmed, { addEos: false });
      chunks.push(ids);
      total += ids.length;
      texts++;
    }
  }
  const tokens = new Int32Array(total);
  let o = 0;
  for (const c of chunks) {
    tokens.set(c, o);
    o += c.length;
  }
  taskStarts[tasks.length] = total;
  return { tokens, taskStarts, tasks: tasks.length, texts, emptyTexts };
}

/**
 * Offsets of segments of `length` tokens that each lie inside one task's text (a task shorter than a
 * segment gives none; the remainder of each task is left out), in task order. Stage 1's a | b | c cuts must
 * not join the end of one task to the start of another: the "instruction" a would then describe another text.
 */
export function segmentsWithinTasks(corpus: Pick<PretrainCorpus, "taskStarts">, length: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < corpus.taskStarts.length; i++) {
    const start = corpus.taskStarts[i]!;
    const end = corpus.taskStarts[i + 1]!;
    for (let o = start; o + length <= end; o += length) out.push(o);
  }
  return out;
}

export interface SpanCorruptionOptions {
  /** Share of tokens hidden (T5: 0.15). */
  noiseDensity: number;
  /** Mean length of a hidden span (T5: 3). */
  meanNoiseSpanLength: number;
}

export const T5_SPAN_CORRUPTION: SpanCorruptionOptions = { noiseDensity: 0.15, meanNoiseSpanLength: 3 };

/** Splits `n` items into `k` non-empty segments uniformly at random (T5's _random_segmentation). */
function randomSegmentation(n: number, k: number, rand: () => number): number[] {
  // Choose k-1 of the n-1 gaps between items as segment starts.
  const starts = shuffled(
    Array.from({ length: n - 1 }, (_, i) => i < k - 1),
    rand,
  );
  const lengths: number[] = [];
  let run = 1;
  for (const s of starts) {
    if (s) {
      lengths.push(run);
      run = 1;
    } else run++;
  }
  lengths.push(run);
  return lengths;
}

/** The noise mask of a length-`length` segment (true = hidden), with T5's span-count rules. */
export function randomSpansNoiseMask(length: number, opts: SpanCorruptionOptions, rand: () => number): boolean[] {
  if (length < 2) throw new Error(`span corruption needs segments of at least 2 tokens, got ${length}`);
  const numNoise = Math.min(Math.max(Math.round(length * opts.noiseDensity), 1), length - 1);
  const numSpans = Math.max(Math.round(numNoise / opts.meanNoiseSpanLength), 1);
  const noiseLens = randomSegmentation(numNoise, Math.min(numSpans, numNoise), rand);
  const keepLens = randomSegmentation(length - numNoise, Math.min(noiseLens.length, length - numNoise), rand);
  const mask: boolean[] = [];
  // Interleaved: kept span, hidden span, kept span, hidden span, ... (starting with kept text, as T5).
  for (let i = 0; i < keepLens.length; i++) {
    for (let j = 0; j < keepLens[i]!; j++) mask.push(false);
    for (let j = 0; j < (noiseLens[i] ?? 0); j++) mask.push(true);
  }
  for (let i = keepLens.length; i < noiseLens.length; i++) for (let j = 0; j < noiseLens[i]!; j++) mask.push(true);
  return mask;
}

/** Input and target of span corruption for `tokens` under `mask`; sentinels count down from `sentinel0`. */
export function spanCorrupt(tokens: ArrayLike<number>, mask: readonly boolean[], sentinel0: number, eosId: number): Seq2SeqExample {
  const input: number[] = [];
  const target: number[] = [];
  let span = -1;
  for (let i = 0; i < tokens.length; i++) {
    if (mask[i]) {
      if (i === 0 || !mask[i - 1]) {
        span++;
        input.push(sentinel0 - span);
        target.push(sentinel0 - span);
      }
      target.push(tokens[i]!);
    } else input.push(tokens[i]!);
  }
  input.push(eosId);
  target.push(eosId);
  return { input, target };
}

export interface PretrainSourceOptions {
  objective: "span-corruption" | "prefix-lm";
  /** Raw segment length in tokens, before corruption. */
  segmentLength: number;
  seed: number;
  spanCorruption?: SpanCorruptionOptions;
}

/**
 * The corpus as training examples: segment i is tokens [i·L, (i+1)·L); its corruption (or split point) is
 * drawn from seededRandom(seed, "<epoch>:<i>"), so it is reproducible and differs between epochs.
 */
export function pretrainSource(corpus: PretrainCorpus, tokenizer: T5Tokenizer, opts: PretrainSourceOptions): ExampleSource {
  const L = opts.segmentLength;
  if (!Number.isInteger(L) || L < 4) throw new Error(`pretraining: segmentLength must be an integer >= 4, got ${L}`);
  const size = Math.floor(corpus.tokens.length / L);
  if (size === 0) throw new Error(`pretraining: the corpus has ${corpus.tokens.length} tokens, less than one segment of ${L}`);
  const sentinel0 = tokenizer.tokenToId("<extra_id_0>");
  if (sentinel0 === undefined) throw new Error(`pretraining: the tokenizer ${tokenizer.path} has no <extra_id_0> sentinel`);
  const sc = opts.spanCorruption ?? T5_SPAN_CORRUPTION;
  const expectLen =
    opts.objective === "span-corruption"
      ? (() => {
          const noise = Math.min(Math.max(Math.round(L * sc.noiseDensity), 1), L - 1);
          const spans = Math.max(Math.round(noise / sc.meanNoiseSpanLength), 1);
          return L + 2 * spans + 2;
        })()
      : L + 2;
  return {
    size,
    description: `${size} segments of ${L} tokens (${opts.objective}) from ${corpus.tasks} SNI train tasks`,
    length: () => expectLen,
    example: (i, epoch) => {
      const seg = corpus.tokens.subarray(i * L, (i + 1) * L);
      const rand = seededRandom(opts.seed, `${epoch}:${i}`);
      if (opts.objective === "span-corruption") {
        return spanCorrupt(seg, randomSpansNoiseMask(L, sc, rand), sentinel0, tokenizer.eosId);
      }
      const cut = 1 + Math.floor(rand() * (L - 1)); // prefix of 1..L-1 tokens
      return { input: [...seg.subarray(0, cut), tokenizer.eosId], target: [...seg.subarray(cut), tokenizer.eosId] };
    },
  };
}
