/**
 * Token-id examples to padded seq2seq batches, in an order that is a pure function of (seed, epoch), so a
 * resumed run reads exactly the batches the uninterrupted run would have read: the data-order state is just
 * (epoch, batch index).
 *
 * Batches are length-bucketed to spend less compute on padding: each epoch shuffles the examples, cuts the
 * shuffled list into windows of `bucketWindow` batches, sorts each window by length, cuts it into batches and
 * shuffles the batches. Every example appears exactly once per epoch (the last batch may be smaller).
 */
import * as tf from "@tensorflow/tfjs-core";
import { seededRandom, shuffled } from "./sni";

/** One training example as token ids (`</s>` included where the source text ends). */
export interface Seq2SeqExample {
  input: number[];
  target: number[];
  /** TAGI: the instruction the adapter is generated from (examples of one task share it). */
  instruction?: number[];
  /** TAGI: what the logit teacher reads (instruction + instance). */
  teacherInput?: number[];
  /** TAGI: index of the example's parameter teacher (its category's LoRA). */
  group?: number;
}

/** Examples addressed by index; `example(i, epoch)` may differ per epoch (e.g. fresh span-corruption noise). */
export interface ExampleSource {
  readonly size: number;
  /** Input + target length of example i (used for bucketing; need not depend on the epoch). */
  length(index: number): number;
  example(index: number, epoch: number): Seq2SeqExample;
  /** What the examples are, for logs and errors. */
  readonly description: string;
}

export function arraySource(examples: readonly Seq2SeqExample[], description: string): ExampleSource {
  return {
    size: examples.length,
    description,
    length: (i) => examples[i]!.input.length + examples[i]!.target.length,
    example: (i) => examples[i]!,
  };
}

/** Position in the data stream: the next batch is batch `batch` of epoch `epoch`. */
export interface DataOrderState {
  epoch: number;
  batch: number;
}

export interface BatchPlanOptions {
  batchSize: number;
  seed: number;
  /** Batches per sorting window (1 = no bucketing). Default 16. */
  bucketWindow?: number;
}

/** The batches of one epoch as lists of example indices. */
export function epochBatches(source: ExampleSource, epoch: number, opts: BatchPlanOptions): number[][] {
  const { batchSize, seed } = opts;
  const window = opts.bucketWindow ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  if (batchSize > source.size) {
    throw new Error(`batch size ${batchSize} is larger than the data (${source.size} examples of ${source.description})`);
  }
  const order = shuffled(
    Array.from({ length: source.size }, (_, i) => i),
    seededRandom(seed, `epoch:${epoch}`),
  );
  const batches: number[][] = [];
  const span = batchSize * Math.max(1, window);
  for (let start = 0; start < order.length; start += span) {
    const chunk = order.slice(start, start + span);
    if (window > 1) chunk.sort((a, b) => source.length(a) - source.length(b) || a - b);
    for (let i = 0; i < chunk.length; i += batchSize) batches.push(chunk.slice(i, i + batchSize));
  }
  return window > 1 ? shuffled(batches, seededRandom(seed, `batches:${epoch}`)) : batches;
}

/**
 * An endless stream of batches (epoch after epoch) from a data-order state; `state` always names the batch
 * that `next()` returns next, so saving it and restarting from it continues the sequence exactly.
 */
export class BatchStream {
  private plan: number[][] | null = null;
  private planEpoch = -1;
  state: DataOrderState;
  constructor(
    readonly source: ExampleSource,
    readonly opts: BatchPlanOptions,
    state: DataOrderState = { epoch: 0, batch: 0 },
  ) {
    this.state = { ...state };
    epochBatches(source, 0, opts); // validates the options against the data now, not at the first step
  }
  private batches(epoch: number): number[][] {
    if (this.planEpoch !== epoch) {
      this.plan = epochBatches(this.source, epoch, this.opts);
      this.planEpoch = epoch;
    }
    return this.plan!;
  }
  get batchesPerEpoch(): number {
    return this.batches(this.state.epoch).length;
  }
  next(): { examples: Seq2SeqExample[]; epoch: number; batch: number } {
    let { epoch, batch } = this.state;
    let plan = this.batches(epoch);
    if (batch >= plan.length) {
      epoch += 1;
      batch = 0;
      plan = this.batches(epoch);
    }
    const examples = plan[batch]!.map((i) => this.source.example(i, epoch));
    this.state = { epoch, batch: batch + 1 };
    return { examples, epoch, batch };
  }
}

/** A padded batch as plain arrays (labels -100 on padding, decoder inputs = labels shifted right). */
export interface PaddedBatch {
  inputIds: number[][];
  attentionMask: number[][];
  decoderInputIds: number[][];
  labels: number[][];
  /** Real (non-padding) input and target tokens, for throughput. */
  inputTokens: number;
  targetTokens: number;
  /**
   * TAGI fields, present when every example has them. Instructions are deduplicated: `instructionIds` holds
   * each distinct instruction once (padded) and `instructionOfExample[i]` names example i's row, so a batch
   * of one task encodes its instruction once.
   */
  instructionIds?: number[][];
  instructionMask?: number[][];
  instructionOfExample?: number[];
  teacherInputIds?: number[][];
  teacherMask?: number[][];
  groups?: number[];
}

function padRows(rows: readonly (readonly number[])[], padId: number): { ids: number[][]; mask: number[][] } {
  const len = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...r, ...Array<number>(len - r.length).fill(padId)]),
    mask: rows.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(len - r.length).fill(0)]),
  };
}

export function padSeq2Seq(examples: readonly Seq2SeqExample[], padId = 0, decoderStartId = 0): PaddedBatch {
  if (examples.length === 0) throw new Error("padSeq2Seq: empty batch");
  const lin = Math.max(...examples.map((e) => e.input.length));
  const lout = Math.max(...examples.map((e) => e.target.length));
  if (lin === 0 || lout === 0) throw new Error("padSeq2Seq: an example has an empty input or target");
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  const labels: number[][] = [];
  const decoderInputIds: number[][] = [];
  let inputTokens = 0;
  let targetTokens = 0;
  for (const e of examples) {
    inputTokens += e.input.length;
    targetTokens += e.target.length;
    inputIds.push([...e.input, ...Array<number>(lin - e.input.length).fill(padId)]);
    attentionMask.push([...Array<number>(e.input.length).fill(1), ...Array<number>(lin - e.input.length).fill(0)]);
    labels.push([...e.target, ...Array<number>(lout - e.target.length).fill(-100)]);
    decoderInputIds.push([decoderStartId, ...e.target.slice(0, -1), ...Array<number>(lout - e.target.length).fill(padId)]);
  }
  const batch: PaddedBatch = { inputIds, attentionMask, decoderInputIds, labels, inputTokens, targetTokens };
  const has = (k: "instruction" | "teacherInput" | "group") => examples.every((e) => e[k] !== undefined);
  const some = (k: "instruction" | "teacherInput" | "group") => examples.some((e) => e[k] !== undefined);
  for (const k of ["instruction", "teacherInput", "group"] as const) {
    if (some(k) && !has(k)) throw new Error(`padSeq2Seq: some examples have '${k}' and some do not`);
  }
  if (has("instruction")) {
    const keyOf = (ids: readonly number[]) => ids.join(",");
    const rows = new Map<string, number>();
    const unique: number[][] = [];
    batch.instructionOfExample = examples.map((e) => {
      const k = keyOf(e.instruction!);
      let r = rows.get(k);
      if (r === undefined) {
        r = unique.length;
        rows.set(k, r);
        unique.push(e.instruction!);
      }
      return r;
    });
    const p = padRows(unique, padId);
    batch.instructionIds = p.ids;
    batch.instructionMask = p.mask;
  }
  if (has("teacherInput")) {
    const p = padRows(examples.map((e) => e.teacherInput!), padId);
    batch.teacherInputIds = p.ids;
    batch.teacherMask = p.mask;
  }
  if (has("group")) batch.groups = examples.map((e) => e.group!);
  return batch;
}

/** The batch as int32 tensors (the caller disposes them). */
export function batchTensors(b: PaddedBatch): { inputIds: tf.Tensor2D; attentionMask: tf.Tensor2D; decoderInputIds: tf.Tensor2D; labels: tf.Tensor2D } {
  return {
    inputIds: tf.tensor2d(b.inputIds, undefined, "int32"),
    attentionMask: tf.tensor2d(b.attentionMask, undefined, "int32"),
    decoderInputIds: tf.tensor2d(b.decoderInputIds, undefined, "int32"),
    labels: tf.tensor2d(b.labels, undefined, "int32"),
  };
}
