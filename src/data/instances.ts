/**
 * SNI train-task instances as token-id training examples, prompted as Tk-Instruct does: the instruction
 * (Def, or Def + 2 Pos) prepended to every input ("full"), or the instance alone ("instance", what a TAGI
 * student reads). The target is the instance's first reference output. Everything cut or left out is
 * counted and returned, never silently dropped.
 */
import type { T5Tokenizer } from "../text/tokenizer";
import { buildPrompt, truncatePrompt, type PromptFormat } from "../text/prompts";
import type { Seq2SeqExample } from "./batching";
import { sampleInstances, type SniTask, type SniTrainTask } from "./sni";

export interface InstanceExampleOptions {
  format: PromptFormat;
  input: "full" | "instance";
  /** Source limit, `</s>` included (prompts are fitted with truncatePrompt's keep-instance strategy). */
  maxInputTokens: number;
  /** Target limit, `</s>` included (longer references are cut and counted). */
  maxTargetTokens: number;
  /** At most this many instances per task (sampleInstances with `seed`); null: all. */
  instancesPerTask: number | null;
  seed: number;
}

export interface InstanceExample extends Seq2SeqExample {
  task: string;
  id: string;
}

export interface InstanceExampleCounts {
  tasks: number;
  examples: number;
  promptsTruncated: number;
  examplesDropped: number;
  instancesCut: number;
  targetsCut: number;
  /** Instances without a usable reference (empty first output), left out. */
  emptyTargets: number;
}

export function instanceExamples(
  tasks: readonly SniTrainTask[],
  tokenizer: T5Tokenizer,
  opts: InstanceExampleOptions,
): { examples: InstanceExample[]; counts: InstanceExampleCounts } {
  const bad = tasks.filter((t) => (t as SniTask).split !== "train");
  if (bad.length) throw new Error(`training examples: only SNI train tasks may be trained on; got test task(s) ${bad.slice(0, 3).map((t) => t.name).join(", ")}`);
  if (!Number.isInteger(opts.maxInputTokens) || opts.maxInputTokens < 8) throw new Error(`maxInputTokens must be an integer >= 8, got ${opts.maxInputTokens}`);
  if (!Number.isInteger(opts.maxTargetTokens) || opts.maxTargetTokens < 2) throw new Error(`maxTargetTokens must be an integer >= 2, got ${opts.maxTargetTokens}`);
  const counts: InstanceExampleCounts = { tasks: tasks.length, examples: 0, promptsTruncated: 0, examplesDropped: 0, instancesCut: 0, targetsCut: 0, emptyTargets: 0 };
  const examples: InstanceExample[] = [];
  for (const task of tasks) {
    const instances = opts.instancesPerTask === null ? task.instances : sampleInstances(task, opts.instancesPerTask, opts.seed);
    for (const inst of instances) {
      const reference = inst.outputs[0] ?? "";
      if (!reference.trim()) {
        counts.emptyTargets++;
        continue;
      }
      const parts = buildPrompt(task, inst, { format: opts.format });
      let input = tokenizer.encode(opts.input === "full" ? parts.full : parts.instance);
      // Most prompts fit; truncatePrompt (several tokenizations) runs only near or over the limit. The margin
      // covers its example-fitting check, which joins examples with spaces.
      if (opts.input === "full" && input.length > opts.maxInputTokens - 4) {
        const tp = truncatePrompt(parts, tokenizer, opts.maxInputTokens);
        if (tp.truncated) counts.promptsTruncated++;
        counts.examplesDropped += tp.droppedExamples;
        if (tp.instanceTruncated) counts.instancesCut++;
        input = tokenizer.encode(tp.full);
      } else if (opts.input === "instance" && input.length > opts.maxInputTokens) counts.instancesCut++;
      input = truncateIds(input, opts.maxInputTokens, tokenizer.eosId);
      const fullTarget = tokenizer.encode(reference);
      if (fullTarget.length > opts.maxTargetTokens) counts.targetsCut++;
      const target = truncateIds(fullTarget, opts.maxTargetTokens, tokenizer.eosId);
      examples.push({ input, target, task: task.name, id: inst.id });
    }
  }
  counts.examples = examples.length;
  return { examples, counts };
}

/** The first max-1 ids and `</s>` (what T5Tokenizer.encode does with truncation), or ids unchanged when they fit. */
export function truncateIds(ids: number[], max: number, eos: number): number[] {
  return ids.length <= max ? ids : [...ids.slice(0, max - 1), eos];
}
