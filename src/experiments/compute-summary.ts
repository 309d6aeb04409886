/**
 * The compute an SNI evaluation spent, by method, recorded with every evaluation: for each evaluated task,
 * the instruction length S (its Def or Def + 2 Pos part), the mean instance length I and the mean reference
 * length T (capped at the generation limit), then methodFlops per task, summed; with Tk-Instruct's count for
 * the same tasks as the reference (the paper's relative-FLOPs column).
 */
import type { SniTestTask } from "../data/sni";
import type { SniResult } from "../eval/sni-eval";
import type { T5Config } from "../model/config";
import { buildPrompt, type PromptFormat } from "../text/prompts";
import type { T5Tokenizer } from "../text/tokenizer";
import { methodFlops, type Method } from "../compute/method-flops";
import type { HypernetworkConfig } from "../tagi/hypernetwork";

export interface ComputeSummary {
  method: Method;
  /** Matmul FLOPs of inference over all evaluated tasks. */
  flops: number;
  /** Tk-Instruct's count for the same tasks and lengths. */
  tkInstructFlops: number;
  relativeToTkInstruct: number;
  /**
   * The same ratio for a task of 100 instances with the mean lengths (the paper's FLOPs column): the
   * per-task cost (instruction encoding, generation) amortises over more instances than an eval sample has.
   */
  relativeAt100Instances: number;
  /** Means over tasks of the lengths used (tokens). */
  meanInstructionTokens: number;
  meanInstanceTokens: number;
  meanTargetTokens: number;
  note: string;
}

export function sniComputeSummary(
  result: SniResult,
  tasks: readonly SniTestTask[],
  tokenizer: T5Tokenizer,
  format: PromptFormat,
  method: Method,
  config: T5Config,
  maxNewTokens: number,
  hypernetwork?: HypernetworkConfig,
): ComputeSummary {
  const byTask = new Map<string, { ids: Set<string> }>();
  for (const p of result.predictions) {
    const e = byTask.get(p.task) ?? { ids: new Set<string>() };
    e.ids.add(p.id);
    byTask.set(p.task, e);
  }
  let flops = 0;
  let tk = 0;
  let sumS = 0;
  let sumI = 0;
  let sumT = 0;
  for (const task of tasks) {
    const e = byTask.get(task.name);
    if (!e) continue;
    const insts = task.instances.filter((i) => e.ids.has(i.id));
    const S = tokenizer.encode(buildPrompt(task, insts[0] ?? task.instances[0]!, { format }).instruction).length;
    const I = insts.reduce((s, i) => s + tokenizer.encode(buildPrompt(task, i, { format }).instance).length, 0) / Math.max(1, insts.length);
    const T = insts.reduce((s, i) => s + Math.min(maxNewTokens, tokenizer.encode(i.outputs[0] ?? "").length), 0) / Math.max(1, insts.length);
    const shape = { instances: insts.length, instructionLength: S, instanceLength: I, targetLength: T };
    flops += methodFlops(method, config, shape, hypernetwork).total;
    tk += methodFlops("tk-instruct", config, shape).total;
    sumS += S;
    sumI += I;
    sumT += T;
  }
  const n = Math.max(1, byTask.size);
  const shape100 = { instances: 100, instructionLength: sumS / n, instanceLength: sumI / n, targetLength: sumT / n };
  return {
    method,
    flops,
    tkInstructFlops: tk,
    relativeToTkInstruct: flops / tk,
    relativeAt100Instances: methodFlops(method, config, shape100, hypernetwork).total / methodFlops("tk-instruct", config, shape100).total,
    meanInstructionTokens: sumS / n,
    meanInstanceTokens: sumI / n,
    meanTargetTokens: sumT / n,
    note: "inference matMul FLOPs (src/compute/method-flops.ts) with each task's instruction length and mean instance and reference lengths (references capped at the generation limit)",
  };
}
