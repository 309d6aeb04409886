/**
 * Compute of each method for one task of N instances (the paper's FLOPs column), counted from the model
 * config and sequence lengths: matMul FLOPs of inference, 2 per multiply-add (src/compute/flops.ts).
 *
 * - Tk-Instruct / No FT (instance training): every instance is read with the instruction in front,
 *   N x T5(S + I -> T).
 * - Hypter-style: the instruction is encoded and the adapter generated once per task; each instance is read
 *   alone with the LoRA: enc(S) + generator + N x (T5(I -> T) + LoRA).
 * - HINT-style: as Hypter, and the decoder also attends over the instruction encoding (its keys and values in
 *   each decoder layer computed once per task).
 * - TAGI: as HINT, plus Eq. 1's cross-attention in every encoder layer (the instruction's keys and values
 *   once per task; queries, scores and output per instance).
 * S, I and T are the instruction, instance and target lengths in tokens.
 */
import type { T5Config } from "../model/config";
import { t5DecoderFlops, t5EncoderFlops } from "./flops";
import { adapterSlots, hypernetworkFlops, type HypernetworkConfig } from "../tagi/hypernetwork";

export type Method = "no-ft" | "tk-instruct" | "hypter" | "hint" | "tagi";

export interface TaskShape {
  /** Instances in the task. */
  instances: number;
  instructionLength: number;
  instanceLength: number;
  targetLength: number;
}

export interface MethodFlops {
  method: Method;
  /** Once per task (instruction encoding, adapter generation, cached keys/values). */
  perTask: number;
  /** Per instance. */
  perInstance: number;
  /** perTask + instances x perInstance. */
  total: number;
}

/** LoRA FLOPs per instance: 2·tokens·(in·r + r·out) per adapted module, tokens being what the module reads. */
export function loraFlops(c: T5Config, h: HypernetworkConfig, s: TaskShape, memoryLength: number): number {
  let f = 0;
  for (const slot of adapterSlots(c, h)) {
    const kv = slot.module.endsWith(".k") || slot.module.endsWith(".v");
    const tokens = slot.module.startsWith("encoder.") ? s.instanceLength : slot.module.includes("EncDecAttention") && kv ? memoryLength : s.targetLength;
    f += 2 * tokens * (slot.inFeatures * h.rank + h.rank * slot.outFeatures);
  }
  return f;
}

export function methodFlops(method: Method, c: T5Config, s: TaskShape, h?: HypernetworkConfig): MethodFlops {
  const { instructionLength: S, instanceLength: I, targetLength: T } = s;
  const inner = c.num_heads * c.d_kv;
  let perTask = 0;
  let perInstance = 0;
  if (method === "no-ft" || method === "tk-instruct") {
    perInstance = t5EncoderFlops(c, 1, S + I) + t5DecoderFlops(c, 1, T, S + I);
  } else {
    if (!h) throw new Error(`methodFlops: ${method} needs the hypernetwork config`);
    perTask = t5EncoderFlops(c, 1, S) + hypernetworkFlops(c, h);
    const concat = method === "hint" || method === "tagi";
    const memory = concat ? S + I : I;
    perInstance = t5EncoderFlops(c, 1, I) + t5DecoderFlops(c, 1, T, memory, concat ? S : 0) + loraFlops(c, h, s, memory);
    if (concat) perTask += c.num_decoder_layers * 2 * 2 * S * c.d_model * inner; // the instruction's cross-attention keys and values
    if (method === "tagi") {
      perTask += c.num_layers * 2 * 2 * S * c.d_model * inner; // Eq. 1: the instruction's keys and values in each encoder layer
      perInstance += c.num_layers * (2 * 2 * I * c.d_model * inner + 2 * 2 * c.num_heads * I * S * c.d_kv); // queries and output; scores and mix
    }
  }
  return { method, perTask, perInstance, total: perTask + s.instances * perInstance };
}
