/**
 * Stage 2 reads each training task's instruction many times (once per instance drawn from the task), and the
 * instruction encoder is the frozen base encoder: the same instruction always encodes to the same states.
 * This cache encodes each distinct instruction once per run and assembles later batches from the stored
 * states (zero rows where a batch pads a shorter instruction; the mask hides them from fusion and pooling).
 * With 653 training tasks and 16 instructions per step, a run of thousands of steps encodes 653 instructions
 * instead of 16 per step.
 *
 * Valid only while the encoder is frozen and the pooled vector ignores padding: `instructionCacheFor` returns
 * null for a run that trains base weights (the official code's FFN and layer norms) or pools "first-last"
 * (the official pooling averages padding positions too, so it depends on the batch), which then encode live.
 * The states live in JS memory (not on a 4 GiB wasm heap): about 0.4 MB per 384-token instruction at
 * d_model 256.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { InstructionEncoding } from "./instruction-encoder";
import { encodeInstructions, type TagiModel } from "./model";

interface Entry {
  /** Last-layer states of the instruction's tokens [len, d]. */
  states: Float32Array;
  len: number;
  pooled: Float32Array;
}

export class InstructionEncodingCache {
  private readonly entries = new Map<string, Entry>();
  hits = 0;
  misses = 0;

  constructor(private readonly m: TagiModel) {}

  get size(): number {
    return this.entries.size;
  }

  /** The encoding of padded instruction rows (as encodeInstructions), from the cache where it can. */
  encode(ids: number[][], mask: number[][]): InstructionEncoding {
    const d = this.m.base.config.d_model;
    const lens = mask.map((row) => row.reduce((a, x) => a + x, 0));
    const keys = ids.map((row, i) => row.slice(0, lens[i]).join(","));
    const missing = [...new Set(keys.filter((k) => !this.entries.has(k)))];
    this.misses += missing.length;
    this.hits += keys.length - missing.length;
    if (missing.length) {
      const rows = missing.map((k) => keys.indexOf(k));
      const width = Math.max(...rows.map((r) => lens[r]!));
      const e = encodeInstructions(
        this.m,
        rows.map((r) => ids[r]!.slice(0, width)),
        rows.map((r) => mask[r]!.slice(0, width)),
      );
      try {
        const states = e.states.dataSync() as Float32Array;
        const pooled = e.pooled.dataSync() as Float32Array;
        rows.forEach((r, j) => {
          const len = lens[r]!;
          this.entries.set(missing[j]!, { len, states: states.slice(j * width * d, (j * width + len) * d), pooled: pooled.slice(j * d, (j + 1) * d) });
        });
      } finally {
        tf.dispose([e.states, e.mask, e.pooled]);
      }
    }
    const b = ids.length;
    const s = ids[0]?.length ?? 0;
    const states = new Float32Array(b * s * d);
    const pooled = new Float32Array(b * d);
    keys.forEach((k, i) => {
      const e = this.entries.get(k)!;
      states.set(e.states, i * s * d);
      pooled.set(e.pooled, i * d);
    });
    return {
      states: tf.tensor3d(states, [b, s, d]),
      mask: tf.tensor2d(mask, [b, s], "int32"),
      pooled: tf.tensor2d(pooled, [b, d]),
    };
  }
}

/** A cache for this run, or null when encodings depend on more than the instruction (see the module comment). */
export function instructionCacheFor(m: TagiModel, trainBase: { layerNorms: boolean; feedForward: boolean }): InstructionEncodingCache | null {
  return !trainBase.layerNorms && !trainBase.feedForward && m.config.pooling === "mean" ? new InstructionEncodingCache(m) : null;
}
