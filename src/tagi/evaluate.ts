/**
 * Evaluating a TAGI student on SNI's test tasks: per task, the instruction (Def or Def + 2 Pos) is encoded
 * once and one adapter generated; every instance of the task is then decoded from the instance alone with
 * that adapter and the fused instruction. Scoring is evaluateSni's (the official ROUGE-L).
 */
import * as tf from "@tensorflow/tfjs-core";
import { loadSniSplit, type SniTask } from "../data/sni";
import { evaluateSni, type SniEvalOptions, type SniResult } from "../eval/sni-eval";
import type { RunOptions } from "../model/t5";
import { buildPrompt } from "../text/prompts";
import type { T5Tokenizer } from "../text/tokenizer";
import { disposeEncoding, tokenizeInstructions, type InstructionEncoding } from "./instruction-encoder";
import { disposeAdapter, generateAdapter } from "./hypernetwork";
import { adapterPerExample, encodeInstructions, type TagiModel } from "./model";
import { instructionFusion } from "./fusion";
import type { LoraAdapter } from "../model/lora";

export type TagiSniOptions = Omit<SniEvalOptions, "input" | "runOptions" | "truncation"> & {
  /** Instruction per task name, replacing the task's own (the instruction probes in ./probes.ts). */
  instructions?: Map<string, string>;
};

export async function evaluateTagiSni(m: TagiModel, tokenizer: T5Tokenizer, opts: TagiSniOptions): Promise<SniResult> {
  const tasks: readonly SniTask[] = opts.testTasks ?? (await loadSniSplit("test", opts.dataDir, { warn: false })).tasks;
  const byName = new Map(tasks.map((t) => [t.name, t]));
  // One task at a time (evaluateSni never mixes tasks in a batch when run options are per task).
  let current: { task: string; enc: InstructionEncoding; adapter: LoraAdapter; perSize: Map<number, { lora: LoraAdapter; enc: InstructionEncoding }> } | null = null;
  const release = () => {
    if (!current) return;
    disposeEncoding(current.enc);
    disposeAdapter(current.adapter);
    for (const { lora, enc } of current.perSize.values()) {
      disposeAdapter(lora);
      disposeEncoding(enc);
    }
    current = null;
  };
  const runOptions = (taskName: string, n: number): RunOptions => {
    if (current?.task !== taskName) {
      release();
      const task = byName.get(taskName)!;
      const instruction = opts.instructions?.get(taskName) ?? buildPrompt(task, task.instances[0] ?? { input: "" }, { format: opts.format }).instruction;
      const { ids, mask } = tokenizeInstructions(tokenizer, [instruction], m.config.maxInstructionTokens, () => {});
      const enc = encodeInstructions(m, ids, mask);
      current = { task: taskName, enc, adapter: generateAdapter(m.hyper, m.base.config, m.config.hypernetwork, enc.pooled), perSize: new Map() };
    }
    const cur = current!;
    let entry = cur.perSize.get(n);
    if (!entry) {
      const rows = tf.zeros([n], "int32") as tf.Tensor1D;
      const lora = adapterPerExample(cur.adapter, rows);
      const enc = { states: tf.gather(cur.enc.states, rows) as tf.Tensor3D, mask: tf.gather(cur.enc.mask, rows) as tf.Tensor2D, pooled: tf.gather(cur.enc.pooled, rows) as tf.Tensor2D };
      rows.dispose();
      entry = { lora, enc };
      cur.perSize.set(n, entry);
    }
    return { lora: entry.lora, fusion: instructionFusion(m.config.fusion, entry.enc, m.fusion) };
  };
  try {
    const { instructions: _probe, ...rest } = opts;
    return await evaluateSni(m.base, tokenizer, { ...rest, testTasks: tasks, input: "instance", runOptions });
  } finally {
    release();
  }
}
