/**
 * Sanity floors for SNI (REFERENCE.md, "Sanity floors"): what a model that learnt nothing but copying scores
 * on the same instances, with the same metric. A results table without them cannot say whether a model learnt
 * anything (the SNI paper: copying the instance input scores 14.2 ROUGE-L on the English test tasks, copying
 * the first demonstration's output 28.5).
 *
 * - copy instance input: the prediction is the instance's input;
 * - copy first demonstration output: the output of the task's first positive example (what Def + 2 Pos shows);
 * - most frequent demonstration output: the most common output among the task's positive examples (ties: the
 *   first), a label-prior heuristic.
 *
 * Each floor is scored with the official ROUGE-L and exact match (./rouge.ts), with a bootstrap CI over
 * instances. A task without positive examples gets an empty prediction for the two demonstration floors.
 */
import type { SniTask } from "../data/sni";
import { scoreInstance } from "./rouge";
import { bootstrapMean, type Interval } from "./stats";

export const FLOORS = ["copy instance input", "copy first demonstration output", "most frequent demonstration output"] as const;
export type FloorName = (typeof FLOORS)[number];

export interface FloorScore {
  name: FloorName;
  rougeL: number;
  exactMatch: number;
  rougeLCi: Interval;
  /** Per instance, in the order of the instances given (x 100). */
  perInstance: number[];
}

function mostFrequent(xs: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  let best = "";
  let n = 0;
  for (const [x, c] of counts) if (c > n) [best, n] = [x, c];
  return best;
}

/** The floor predictions for one instance of `task`. */
export function floorPredictions(task: SniTask, input: string): Record<FloorName, string> {
  const outs = task.positiveExamples.map((e) => e.output);
  return {
    "copy instance input": input,
    "copy first demonstration output": outs[0] ?? "",
    "most frequent demonstration output": mostFrequent(outs),
  };
}

/**
 * Every floor on `instances` (task name and instance id, e.g. an evaluation's predictions, so the floors are
 * computed on exactly the instances the model was scored on).
 */
export function sanityFloors(tasks: readonly SniTask[], instances: readonly { task: string; id: string }[], opts: { seed?: number } = {}): FloorScore[] {
  const byTask = new Map(tasks.map((t) => [t.name, { task: t, byId: new Map(t.instances.map((i) => [i.id, i])) }]));
  const scores = new Map<FloorName, { rougeL: number[]; exactMatch: number[] }>(FLOORS.map((f) => [f, { rougeL: [], exactMatch: [] }]));
  for (const { task: name, id } of instances) {
    const t = byTask.get(name);
    const inst = t?.byId.get(id);
    if (!t || !inst) throw new Error(`sanityFloors: no instance ${id} of task ${name} among the test tasks given`);
    const preds = floorPredictions(t.task, inst.input);
    for (const f of FLOORS) {
      const s = scoreInstance(preds[f], inst.outputs, { task: name, category: "", id });
      scores.get(f)!.rougeL.push(s.rougeL * 100);
      scores.get(f)!.exactMatch.push(s.exactMatch * 100);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return FLOORS.map((name) => {
    const s = scores.get(name)!;
    return { name, rougeL: mean(s.rougeL), exactMatch: mean(s.exactMatch), rougeLCi: bootstrapMean(s.rougeL, { seed: opts.seed ?? 0 }), perInstance: s.rougeL };
  });
}
