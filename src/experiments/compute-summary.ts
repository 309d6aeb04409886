/**
 * The compute an SNI evaluation spent, by method, recorded with every evaluation, counting what was run: for
 * each evaluated task, the instruction length S and the mean instance length I as the model read them (after
 * truncation: a full prompt cut to maxInputTokens is split into what was left of its instruction and
 * instance; an instance-only model reads the instance as cut, and TAGI's generator the instruction cut at
 * maxInstructionTokens), and the mean generated length T (the prediction's tokens and </s>, at most the
 * generation limit); then methodFlops per task, summed, with Tk-Instruct's count for the same lengths as the
 * reference (the paper's relative-FLOPs column). The summary names the prompt format it was measured on.
 */
import type { SniTask } from "../data/sni";
import type { SniResult } from "../eval/sni-eval";
import type { T5Config } from "../model/config";
import { buildPrompt, type PromptFormat } from "../text/prompts";
import type { T5Tokenizer } from "../text/tokenizer";
import { methodFlops, type Method } from "../compute/method-flops";
import type { HypernetworkConfig } from "../tagi/hypernetwork";

export interface ComputeSummary {
  method: Method;
  /** The prompt format of the evaluation (the FLOPs of Def and Def + 2 Pos differ). */
  format: PromptFormat;
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
  tasks: readonly SniTask[],
  tokenizer: T5Tokenizer,
  format: PromptFormat,
  method: Method,
  config: T5Config,
  maxNewTokens: number,
  hypernetwork?: HypernetworkConfig,
  maxInstructionTokens = Infinity,
): ComputeSummary {
  const byTask = new Map<string, { ids: Set<string>; read: Map<string, number>; generated: Map<string, number> }>();
  for (const p of result.predictions) {
    const e = byTask.get(p.task) ?? { ids: new Set<string>(), read: new Map<string, number>(), generated: new Map<string, number>() };
    e.ids.add(p.id);
    e.read.set(p.id, p.inputTokens);
    e.generated.set(p.id, Math.min(maxNewTokens, tokenizer.encode(p.prediction).length));
    byTask.set(p.task, e);
  }
  const fullInput = result.options.input === "full";
  let flops = 0;
  let tk = 0;
  let sumS = 0;
  let sumI = 0;
  let sumT = 0;
  for (const task of tasks) {
    const e = byTask.get(task.name);
    if (!e) continue;
    const insts = task.instances.filter((i) => e.ids.has(i.id));
    const fullS = tokenizer.encode(buildPrompt(task, insts[0] ?? task.instances[0]!, { format }).instruction).length;
    let S: number;
    let I: number;
    if (fullInput) {
      // The prompt as read (instance kept whole where it fits): its instance part, and the rest as instruction.
      const parts = insts.map((i) => {
        const read = e.read.get(i.id)!;
        const inst = Math.min(read, tokenizer.encode(buildPrompt(task, i, { format }).instance).length);
        return { S: read - inst, I: inst };
      });
      S = parts.reduce((a, x) => a + x.S, 0) / Math.max(1, parts.length);
      I = parts.reduce((a, x) => a + x.I, 0) / Math.max(1, parts.length);
    } else {
      S = Math.min(fullS, maxInstructionTokens);
      I = insts.reduce((a, i) => a + e.read.get(i.id)!, 0) / Math.max(1, insts.length);
    }
    // generated tokens and </s> (a generation cut at the limit has no </s>)
    const T = insts.reduce((a, i) => a + Math.min(maxNewTokens, e.generated.get(i.id)! + 1), 0) / Math.max(1, insts.length);
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
    format,
    flops,
    tkInstructFlops: tk,
    relativeToTkInstruct: flops / tk,
    relativeAt100Instances: methodFlops(method, config, shape100, hypernetwork).total / methodFlops("tk-instruct", config, shape100).total,
    meanInstructionTokens: sumS / n,
    meanInstanceTokens: sumI / n,
    meanTargetTokens: sumT / n,
    note: `inference matMul FLOPs (src/compute/method-flops.ts) on ${format} prompts, with the lengths as run: instruction and instance tokens after truncation, generated tokens (with </s>)`,
  };
}
