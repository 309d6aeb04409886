/**
 * One experiment's numbers at one scale, summarised over its seeds (mean ± sample standard deviation), and the
 * order in which the report lists experiments. Shared by results/README.md (results-report.ts), its figures
 * (results-figures.ts) and the notebooks.
 */
import type { ExperimentRecord } from "./runner";

export interface Stat {
  mean: number;
  std: number | null;
  n: number;
  values: number[];
}

/** Mean and sample standard deviation (n - 1); std is null for a single value. */
export function stat(values: readonly number[]): Stat {
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / Math.max(1, n);
  const std = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : null;
  return { mean, std, n, values: [...values] };
}

export const fmtStat = (s: Stat | null, digits = 2): string =>
  s === null || s.n === 0 ? "–" : s.std === null ? `${s.mean.toFixed(digits)} (1 seed)` : `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;

export const MAIN_ORDER = ["no-ft", "tk-instruct", "tk-instruct-lora", "hypter", "hint", "tagi"];
export const ABLATION_ORDER = ["tagi", "tagi-no-pretrain", "tagi-no-fusion", "tagi-no-ce", "tagi-no-kl", "tagi-no-ins", "tagi-ins-relative", "tagi-ins-cosine", "tagi-train-ffn", "tagi-official-losses"];
/** Experiments with the "adapters" analysis, in report order (the first is the paper's TAGI). */
export const ADAPTER_ANALYSES = ["adapter-similarity", "adapter-similarity-ins-relative", "adapter-similarity-ins-cosine"];
export const PROBE_ORDER = ["tagi", "probe-other-instruction", "probe-shuffled-words", "mean-adapter"];

/** Summary numbers of one experiment at one scale. */
export interface ExperimentSummary {
  name: string;
  row: string;
  seeds: number[];
  def: Stat | null;
  def2pos: Stat | null;
  /** Teacher-forced NLL of the references (Def), nats per token. */
  nllDef: Stat | null;
  /** The same with Def + 2 Pos models and prompts. */
  nllDef2pos: Stat | null;
  p3: Stat | null;
  /** Majority-class accuracy of the same P3 examples (an upper bound for always giving one answer). */
  p3Majority: Stat | null;
  /** A uniform guess on the same P3 examples. */
  p3Chance: Stat | null;
  /** How the P3 rows were chosen, e.g. "seeded sample (seed 0), 10 per template"; null without P3. */
  p3Sample: string | null;
  /** Inference FLOPs for a task of 100 instances relative to Tk-Instruct, Def prompts (null: not recorded). */
  flopsAt100: number | null;
  /** The same with Def + 2 Pos prompts (longer: the instruction-free methods gain more). */
  flopsAt100Def2pos: number | null;
  trainSeconds: Stat | null;
  /** Seconds of the evaluation steps (SNI formats, P3). */
  evalSeconds: Stat;
}

export function summarize(name: string, recs: readonly ExperimentRecord[]): ExperimentSummary {
  const metric = (f: string) => {
    const v = recs.filter((r) => r.metrics[f]).map((r) => r.metrics[f]!.rougeL);
    return v.length ? stat(v) : null;
  };
  const nllOf = (f: string) => recs.map((r) => r.metrics[f]?.referenceNll).filter((v): v is number => typeof v === "number");
  const nll = nllOf("def");
  const nll2 = nllOf("def+2pos");
  const p3 = recs.filter((r) => r.p3).map((r) => r.p3!.accuracy);
  const p3Majority = recs.map((r) => r.p3?.majorityAccuracy).filter((v): v is number => typeof v === "number");
  const p3Chance = recs.map((r) => r.p3?.chanceAccuracy).filter((v): v is number => typeof v === "number");
  const samples = [...new Set(recs.filter((r) => r.p3).map((r) => {
    const sm = r.p3!.sample;
    return sm === undefined ? "the first rows of each file" : sm.kind === "all" ? "every usable row" : `seeded sample (seed ${sm.seed}), ${sm.perTemplate} per template`;
  }))];
  const train = recs.filter((r) => r.trainSeconds !== null).map((r) => r.trainSeconds!);
  const flops = recs.find((r) => r.compute["def"])?.compute["def"]?.relativeAt100Instances ?? null;
  const flopsDef2pos = recs.find((r) => r.compute["def+2pos"])?.compute["def+2pos"]?.relativeAt100Instances ?? null;
  return {
    name,
    row: recs[0]?.experiment.row ?? name,
    seeds: recs.map((r) => r.seed).sort((a, b) => a - b),
    def: metric("def"),
    def2pos: metric("def+2pos"),
    nllDef: nll.length ? stat(nll) : null,
    nllDef2pos: nll2.length ? stat(nll2) : null,
    p3: p3.length ? stat(p3) : null,
    p3Majority: p3Majority.length ? stat(p3Majority) : null,
    p3Chance: p3Chance.length ? stat(p3Chance) : null,
    p3Sample: samples.length ? samples.join("; ") : null,
    flopsAt100: flops,
    flopsAt100Def2pos: flopsDef2pos,
    trainSeconds: train.length ? stat(train) : null,
    evalSeconds: stat(recs.map((r) => r.steps.filter((x) => x.label.startsWith("eval")).reduce((a, x) => a + x.seconds, 0))),
  };
}
