/**
 * results/README.md, generated (`npm run results`) from the experiment records results/NAME/<scale>/seed-S/
 * experiment.json: the paper's tables at this project's scales (mean ± sample standard deviation over
 * seeds) beside the paper's numbers, and the figures under results/figures/<scale>/.
 */
import { similarityPrecondition } from "../tagi/probes";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFigure } from "../plots/render";
import { PAPER_ABLATION, PAPER_P3, PAPER_SNI } from "./paper";
import { formatPaired, formatSeedLevel, pairedVersusTagi, seedBySeed, seedLevelDelta } from "./paired";
import { loadScale, resultsRoot, type ExperimentRecord } from "./runner";
import { collectRecords, missingCells, supersededSection, type SupersededRecord } from "./records";
import { ablationDeltas, ablationDeltaSpec } from "./ablation-deltas";
import { scalingPoints, scalingSpec } from "./scaling";
import { SENSITIVITY_SERIES, sensitivityPoints, sensitivitySpec, sensitivityTitle } from "./sensitivity";

export { ablationBarRows, ablationDeltaFigure, ablationDeltas, ablationDeltaSpec, seedBySeedRows, type AblationDelta } from "./ablation-deltas";
export { SENSITIVITY_EXPERIMENTS, SENSITIVITY_SERIES, sensitivityFigure } from "./sensitivity";

export { collectRecords, type SupersededRecord } from "./records";

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

const MAIN_ORDER = ["no-ft", "tk-instruct", "tk-instruct-lora", "hypter", "hint", "tagi"];
export const ABLATION_ORDER = ["tagi", "tagi-no-pretrain", "tagi-no-fusion", "tagi-no-ce", "tagi-no-kl", "tagi-no-ins", "tagi-ins-relative", "tagi-ins-cosine", "tagi-train-ffn", "tagi-official-losses"];
/** Experiments with the "adapters" analysis, in report order (the first is the paper's TAGI). */
const ADAPTER_ANALYSES = ["adapter-similarity", "adapter-similarity-ins-relative", "adapter-similarity-ins-cosine"];
const PROBE_ORDER = ["tagi", "probe-other-instruction", "probe-shuffled-words", "mean-adapter"];

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

const paperNum = (v: number | null | undefined) => (v === null || v === undefined ? "–" : v.toFixed(1));

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

type Spec = Record<string, unknown>;

/** A sanity floor of one format (what copying scores on the same instances). */
export interface FloorPoint {
  name: string;
  rougeL: number;
}

const FORMAT_LABEL = { def: "Def", "def+2pos": "Def + 2 Pos" } as const;

/**
 * A floor closer than this (ROUGE-L points) to the next one up gets its label under its line instead of
 * above it, so that two near-equal floors (copying the first demonstration and the most frequent one) stay
 * readable.
 */
const FLOOR_LABEL_GAP = 3;

export interface RougeFlopsOptions {
  /**
   * Each row's error bar (by row label): e.g. a single model's 95% CI over instances. Absent: mean ± std over
   * seeds from the summaries.
   */
  intervals?: Record<string, [number, number]>;
  /** What the error bars are, for the subtitle (default "mean ± std over seeds"). */
  intervalLabel?: string;
}

/**
 * ROUGE-L against inference FLOPs (a task of 100 instances, relative to Tk-Instruct), one panel per prompt
 * format: each method's mean ± std over seeds, or opts.intervals (filled), the paper's T5-LM-Base points (hollow; 119 tasks, a
 * 250M model pretrained on C4, so on another level: the shape is what compares), and the sanity floors as
 * dashed lines (a method under them has learnt nothing usable).
 */
export function rougeFlopsSpec(
  summaries: readonly ExperimentSummary[],
  title: string,
  floors: Partial<Record<"def" | "def+2pos", readonly FloorPoint[]>> = {},
  opts: RougeFlopsOptions = {},
): Spec {
  const paperFlops = (f: string | undefined) => (f && /^x[0-9.]+$/.test(f) ? Number(f.slice(1)) : null);
  const panel = (format: "def" | "def+2pos"): Spec | null => {
    const pick = (x: ExperimentSummary) => (format === "def" ? x.def : x.def2pos);
    const flopsOf = (x: ExperimentSummary) => (format === "def" ? x.flopsAt100 : x.flopsAt100Def2pos);
    const ours = summaries
      .filter((x) => pick(x) !== null && flopsOf(x) !== null)
      .map((x) => {
        const m = pick(x)!.mean;
        const [lo, hi] = opts.intervals?.[x.row] ?? [m - (pick(x)!.std ?? 0), m + (pick(x)!.std ?? 0)];
        return { method: x.row, source: "this project", flops: flopsOf(x)!, rougeL: m, lo, hi };
      });
    if (!ours.length) return null;
    const paper = summaries.flatMap((x) => {
      const p = PAPER_SNI[x.name];
      const v = p ? (format === "def" ? p.def : p.def2pos) : null;
      const f = paperFlops(p?.flops);
      return v === null || v === undefined || f === null ? [] : [{ method: x.row, source: `paper (${p!.model})`, flops: f, rougeL: v, lo: v, hi: v }];
    });
    const y = { field: "rougeL", type: "quantitative", title: `ROUGE-L (${FORMAT_LABEL[format]}, x100)` };
    const floorRows = [...(floors[format] ?? [])].sort((a, b) => a.rougeL - b.rougeL).map((f) => ({ floor: f.name, rougeL: f.rougeL, below: false }));
    // of two close floors, the lower takes its label under its line
    for (let i = 0; i + 1 < floorRows.length; i++) if (floorRows[i + 1]!.rougeL - floorRows[i]!.rougeL < FLOOR_LABEL_GAP) floorRows[i]!.below = true;
    const floorText = (below: boolean) => {
      const values = floorRows.filter((f) => f.below === below);
      return values.length ? [{ data: { values }, mark: { type: "text", align: "left", dx: 4, dy: below ? 8 : -6, color: "#666", fontSize: 10 }, encoding: { y, x: { datum: 0 }, text: { field: "floor" } } }] : [];
    };
    return {
      title: { text: FORMAT_LABEL[format] },
      width: 360,
      height: 300,
      layer: [
        ...(floorRows.length
          ? [
              { data: { values: floorRows }, mark: { type: "rule", strokeDash: [5, 4], color: "#888" }, encoding: { y } },
              ...floorText(false),
              ...floorText(true),
            ]
          : []),
        { data: { values: ours }, mark: { type: "rule", strokeWidth: 1.5 }, encoding: { x: { field: "flops", type: "quantitative" }, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color: { field: "method", type: "nominal" } } },
        {
          data: { values: [...ours, ...paper] },
          mark: { type: "point", size: 110, opacity: 0.9, strokeWidth: 2 },
          encoding: {
            x: { field: "flops", type: "quantitative", title: "inference FLOPs relative to Tk-Instruct (x)", scale: { domain: [0, 1.1] } },
            y,
            color: { field: "method", type: "nominal", title: "method" },
            shape: { field: "source", type: "nominal", title: null, scale: { domain: ["this project", ...new Set(paper.map((x) => x.source))], range: ["circle", "diamond"] } },
            fill: { condition: { test: "datum.source === 'this project'", field: "method", type: "nominal", legend: null }, value: "transparent" },
          },
        },
      ],
    };
  };
  const panels = (["def", "def+2pos"] as const).map(panel).filter((x): x is Spec => x !== null);
  return {
    title: {
      text: title,
      subtitle: [`filled circles: this project, ${opts.intervalLabel ?? "mean ± std over seeds"}; hollow diamonds: the paper`, "dashed: sanity floors on the same instances; FLOPs for a task of 100 instances"],
    },
    hconcat: panels,
    resolve: { scale: { color: "shared", shape: "shared" } },
  };
}

/** A bar chart as a dot plot on a non-zero axis: for values (like NLL) whose differences are small next to their size. */
function asDots(spec: Spec): Spec {
  const layer = spec["layer"] as Spec[];
  const bar = layer[0]!;
  const enc = bar["encoding"] as { x: Record<string, unknown> };
  return { ...spec, layer: [{ mark: { type: "point", filled: true, size: 90, color: "#4c78a8" }, encoding: { x: { ...enc.x, scale: { zero: false } } } }, ...layer.slice(1)] };
}

function figureSpecs(
  scale: string,
  s: Map<string, ExperimentSummary>,
  adapters: ExperimentRecord["adapters"] | null,
  more: { name: string; row: string; seed: number; a: NonNullable<ExperimentRecord["adapters"]> }[] = [],
  floors: Partial<Record<"def" | "def+2pos", readonly FloorPoint[]>> = {},
): Record<string, Spec> {
  const specs: Record<string, Spec> = {};
  const main = MAIN_ORDER.map((n) => s.get(n)).filter((x): x is ExperimentSummary => !!x);
  if (main.some((x) => (x.def !== null && x.flopsAt100 !== null) || (x.def2pos !== null && x.flopsAt100Def2pos !== null))) {
    specs["rouge-vs-flops"] = rougeFlopsSpec(main, `SNI-103: ROUGE-L against inference compute (${scale})`, floors);
  }
  const bars = (order: string[], title: string, subtitle: string, label: (n: string) => string, pick: (x: ExperimentSummary) => Stat | null = (x) => x.def, xTitle = "ROUGE-L (Def, x100)"): Spec | null => {
    const rows = order.map((n) => s.get(n)).filter((x): x is ExperimentSummary => !!x && pick(x) !== null);
    if (rows.length < 2) return null;
    const values = rows.map((x) => ({ row: label(x.name), rougeL: pick(x)!.mean, lo: pick(x)!.mean - (pick(x)!.std ?? 0), hi: pick(x)!.mean + (pick(x)!.std ?? 0) }));
    return {
      title: { text: title, subtitle },
      width: 440,
      height: { step: 26 },
      data: { values },
      encoding: { y: { field: "row", type: "nominal", sort: null, title: null, axis: { labelLimit: 360 } } },
      layer: [
        { mark: { type: "bar", color: "#4c78a8" }, encoding: { x: { field: "rougeL", type: "quantitative", title: xTitle } } },
        { mark: { type: "rule", color: "black" }, encoding: { x: { field: "lo", type: "quantitative" }, x2: { field: "hi" } } },
      ],
    };
  };
  const ab = bars(ABLATION_ORDER, `Ablations on SNI-103 (Def), ${scale}`, "bars: mean over seeds; lines: ± one standard deviation", (n) => (n === "tagi" ? "TAGI (all terms)" : (s.get(n)?.row ?? n)));
  if (ab) specs["ablations"] = ab;
  const nllMain = bars(
    MAIN_ORDER.filter((n) => n !== "no-ft"),
    `Reference NLL on SNI-103 (Def), ${scale}`,
    "teacher-forced loss of the references; lower is better; mean ± std over seeds (No FT, at 12.1, left out)",
    (n) => s.get(n)?.row ?? n,
    (x) => x.nllDef,
    "nats per reference token",
  );
  if (nllMain) specs["reference-nll"] = asDots(nllMain);
  const nllAbl = bars(ABLATION_ORDER, `Ablations by reference NLL (Def), ${scale}`, "lower is better; mean ± std over seeds", (n) => (n === "tagi" ? "TAGI (all terms)" : (s.get(n)?.row ?? n)), (x) => x.nllDef, "nats per reference token");
  if (nllAbl) specs["ablations-nll"] = asDots(nllAbl);
  const pr = bars(PROBE_ORDER, `Probes on SNI-103 (Def), ${scale}`, "does the score depend on the instruction, and does generation beat one mean adapter?", (n) => (n === "tagi" ? "TAGI, own instruction" : (s.get(n)?.row ?? n)));
  if (pr) specs["probes"] = pr;
  if (adapters) {
    const values = adapters.similarity.flatMap((r) => [
      { category: r.category, against: "its own category's teacher", cosine: r.cosineOwn },
      { category: r.category, against: "other categories' teachers (mean)", cosine: r.cosineOthers },
    ]);
    specs["adapter-similarity"] = {
      title: { text: `Generated versus teacher adapter updates (${scale}, seed 0, ${adapters.format ?? "def"})`, subtitle: "cosine of s·A·B, mean over adapted modules; the generator reads the category's train-task instructions" },
      width: 420,
      height: { step: 9 },
      data: { values },
      mark: { type: "point", filled: true, size: 30 },
      encoding: {
        y: { field: "category", type: "nominal", sort: null, title: null, axis: { labelFontSize: 8 } },
        x: { field: "cosine", type: "quantitative", title: "cosine similarity" },
        color: { field: "against", type: "nominal", title: "compared with", legend: { orient: "top", labelLimit: 320 } },
      },
    };
    // Other analysed models (e.g. trained with the relative L_ins): the same figure, one per model.
    for (const m of more) {
      const base = specs["adapter-similarity"] as Spec;
      specs[m.name] = {
        ...base,
        title: { text: `Generated versus teacher adapter updates, ${m.row.replace(/^Generated vs teacher adapters, /, "TAGI trained with ")} (${scale}, seed ${m.seed})`, subtitle: (base["title"] as { subtitle: string }).subtitle },
        data: {
          values: m.a.similarity.flatMap((r) => [
            { category: r.category, against: "its own category's teacher", cosine: r.cosineOwn },
            { category: r.category, against: "other categories' teachers (mean)", cosine: r.cosineOthers },
          ]),
        },
      };
    }
    specs["generation-time"] = {
      title: { text: `Seconds to get a task adapter (${scale})`, subtitle: `generate from the instruction vs train one LoRA teacher (${adapters.teacherSteps} steps, as trained here)` },
      width: 420,
      height: { step: 34 },
      data: {
        values: [
          { way: "TAGI: encode instruction + generate", seconds: adapters.generateSeconds },
          { way: "train a LoRA teacher", seconds: adapters.teacherSeconds },
        ],
      },
      mark: { type: "bar", color: "#f58518" },
      encoding: { y: { field: "way", type: "nominal", title: null }, x: { field: "seconds", type: "quantitative", scale: { type: "log" }, title: "seconds per task (log scale)" } },
    };
  }
  return specs;
}

export interface ResultsReportOptions {
  scales?: string[];
  out?: string;
  resultsDir?: string;
}

/** Writes results/README.md and its figures; returns the README path. */
export async function writeResultsReport(opts: ResultsReportOptions = {}): Promise<string> {
  const resultsDir = opts.resultsDir ?? resultsRoot();
  const out = opts.out ?? path.join(resultsDir, "README.md");
  const superseded: SupersededRecord[] = [];
  const all = collectRecords(resultsDir, superseded);
  const scales = (opts.scales ?? [...all.keys()]).filter((s) => all.has(s));
  const order = ["small", "tiny"];
  const rank = (x: string) => (order.includes(x) ? order.indexOf(x) : order.length);
  scales.sort((a, b) => rank(a) - rank(b));
  const lines: string[] = [
    "# Results",
    "",
    "Generated by `npm run results` from `results/<experiment>/<scale>/seed-<S>/experiment.json`; each of those",
    "comes from `npm run experiment -- <experiment> --seed <S> --scale <scale>` (the command, config, commit,",
    "backend, seed and wall time are in the file). Do not edit by hand.",
    "",
    "**What differs from the paper.** The paper finetunes T5-LM-adapted checkpoints (Base 250M, XL 3B, XXL 11B)",
    "pretrained by Google on C4, meta-trains for many epochs on SNI's 756 English training tasks, and evaluates",
    "on all instances of 119 unseen tasks. Here there are no pretrained weights and two CPU cores: the `small`",
    "base model is a 24M-parameter T5 pretrained *from scratch* on SNI training text (span corruption, then",
    "LM-adapt; `artifacts/README.md` gives its steps, time and dev curve), and every model trained from it is",
    "small and briefly trained; SNI is evaluated on the 103 English test tasks this data has (not 119); P3 uses",
    "the held-out tasks only (no T0 training mixture). Absolute scores are therefore far below the paper's; what",
    "can be compared is the ordering of methods, the ablation deltas and the compute. ROUGE-L and accuracy are",
    "x100. Each scale's section gives its own settings, read from its records.",
    "",
  ];
  const figuresDir = path.join(resultsDir, "figures");
  for (const scale of scales) {
    const byName = all.get(scale)!;
    // The settings the records were made with (the newest record's), not today's config: a scale's config may
    // have moved on (e.g. to equal token budgets) since these runs.
    const newest = [...byName.values()].flat().sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0];
    const settings = newest?.scale ?? loadScale(scale);
    const s = new Map([...byName].map(([n, recs]) => [n, summarize(n, recs)]));
    const seedsOf = (n: string) => s.get(n)?.seeds.join(", ") ?? "–";
    // Seeds per format: a record made with --formats holds one column only.
    const seedsByFormat = (n: string) => {
      const of = (f: string) => (byName.get(n) ?? []).filter((r) => r.metrics[f]).map((r) => r.seed).sort((a, b) => a - b).join(", ") || "–";
      return `${of("def")} / ${of("def+2pos")}`;
    };
    // Sanity floors (copy the input, copy a demonstration): the same instances for every method at a scale.
    const floorsOf = (format: string) => [...byName.values()].flat().find((r) => r.metrics[format]?.floors)?.metrics[format]!.floors ?? null;
    const floorRows = (width: number, cols: Record<string, number>): string[][] => {
      const def = floorsOf("def");
      const pos = floorsOf("def+2pos");
      const names = (def ?? pos ?? []).map((f) => f.name);
      return names.map((name) => {
        const row = Array.from({ length: width }, () => "–");
        row[0] = `*floor: ${name}*`;
        const fmt = (fs: typeof def) => {
          const f = fs?.find((x) => x.name === name);
          return f ? `${f.rougeL.toFixed(2)} [${f.rougeLCi[0].toFixed(1)}, ${f.rougeLCi[1].toFixed(1)}]` : "not measured";
        };
        if (cols["def"] !== undefined) row[cols["def"]] = fmt(def);
        if (cols["def+2pos"] !== undefined) row[cols["def+2pos"]] = fmt(pos);
        return row;
      });
    };
    const floorNote = floorsOf("def") || floorsOf("def+2pos") ? "Rows in italics are sanity floors: what copying scores on the same instances, with its 95% bootstrap CI over instances; a method at or below them has learnt nothing usable." : "Sanity floors: not in these records (evaluations made before floors were computed); rerun with `--reevaluate sni`.";
    const e = settings.eval;
    lines.push(
      `## Scale \`${scale}\``,
      "",
      settings.description,
      `Evaluation: ${e.maxInstancesPerTask === null ? "all" : `${e.maxInstancesPerTask} (seeded sample)`} instances per SNI test task; prompts cut at ${e.maxInputTokens.def} (Def) / ${e.maxInputTokens["def+2pos"]} (Def + 2 Pos) tokens, instance-only inputs at ${e.maxInstanceTokens}; ${e.maxNewTokens} new tokens, greedy. Training steps per experiment: ${settings.steps ?? "the stage configs'"}. Each format's column is evaluated with models trained in that format (the paper's protocol): a record may hold one format only (\`npm run experiment -- ... --formats def+2pos\`), so the two columns can have different seeds.`,
      "",
      "### SNI-103, main table",
      "",
      "Mean ± std over training seeds. No FT (and, below, the mean teacher adapter) trains nothing and is evaluated on the fixed sample, so its single run is exact: another seed gives the same numbers. " +
        "The Δ column compares each method with TAGI instance by instance on the same sample (units: TAGI seed × instance; a method's run at the same seed, or its single run), with a paired bootstrap 95% CI and the paired t-test's p. " +
        floorNote,
      "",
      table(
        ["Method", "seeds (Def / Def+2Pos)", "Def ROUGE-L", "Def: Δ vs TAGI, paired over instances [95% CI], p", "Def+2Pos ROUGE-L", "Def+2Pos: Δ vs TAGI, paired over instances [95% CI], p", "reference NLL ↓ (Def / Def+2Pos)", "FLOPs (x Tk-Instruct, Def / Def+2Pos, lengths as run)", "paper Def (Base)", "paper Def+2Pos (Base)", "paper FLOPs"],
        [
          ...MAIN_ORDER.filter((n) => s.has(n)).map((n) => {
            const x = s.get(n)!;
            const p = PAPER_SNI[n];
            const vsTagi = (f: string) => (n === "tagi" ? "–" : formatPaired(pairedVersusTagi(resultsDir, byName.get(n) ?? [], byName.get("tagi") ?? [], f)));
            const flops = (v: number | null) => (v === null ? "–" : `x${v.toFixed(2)}`);
            return [x.row, seedsByFormat(n), fmtStat(x.def), vsTagi("def"), fmtStat(x.def2pos), vsTagi("def+2pos"), `${fmtStat(x.nllDef, 3)} / ${fmtStat(x.nllDef2pos, 3)}`, `${flops(x.flopsAt100)} / ${flops(x.flopsAt100Def2pos)}`, paperNum(p?.def), paperNum(p?.def2pos), p?.flops ?? "–"];
          }),
          ...floorRows(11, { def: 2, "def+2pos": 4 }),
        ],
      ),
      "",
    );
    // Deltas against a reference (TAGI, or a sensitivity series' own reference) on the same seeds as the
    // variant (paired), so a variant run at fewer seeds is not compared with another seed's luck.
    const paired = (x: ExperimentSummary, ref: string, pick: (r: ExperimentRecord) => number | null | undefined): string => {
      const values = (name: string) => new Map((byName.get(name) ?? []).flatMap((r) => { const v = pick(r); return typeof v === "number" ? [[r.seed, v] as [number, number]] : []; }));
      // With 2+ pairs: the std of the paired differences and the seed-level t-test, to judge the Δ against seed noise.
      return formatSeedLevel(seedLevelDelta(values(x.name), values(ref)));
    };
    // The ablation and sensitivity tables: each variant against the reference (`ref`, first in `order`), per
    // format, paired by seed and by instance.
    const variantTable = (o: { order: readonly string[]; heading: string; refLabel: string; paperOf: (n: string) => { def?: number; def2pos?: number } | undefined; paperModel: string; extra?: string; ref?: string }) => {
      const ref = o.ref ?? "tagi";
      const rows = o.order.filter((n) => s.has(n));
      if (rows.length <= 1 || !rows.includes(ref)) return;
      const refName = ref === "tagi" ? "TAGI" : `the reference row (${s.get(ref)!.row})`;
      lines.push(
        o.heading,
        "",
        `Δ columns: the variant minus ${refName}, per format (each format's models trained in it). '(seeds)': on the same seeds, mean ± std of the paired differences and, with two or more seeds, the paired t-test's p over seeds (the seed-level test, which counts training noise); 'paired over instances': instance by instance on the same sample (units: seed × instance), paired bootstrap 95% CI and paired t p. With one seed that CI covers the instance sample only, not training noise: read a Δ smaller than the seed-to-seed spread of the main table's TAGI row as unresolved. The paper's column gives its Δ (${o.paperModel}) in brackets. Lower NLL is better, so a positive Δ NLL means the removed part helped.` + (o.extra ?? ""),
        "",
        table(
          ["Variant", "seeds (Def / Def+2Pos)", "Def ROUGE-L", "Def Δ (seeds)", "Def Δ paired over instances [95% CI], p", "Def+2Pos ROUGE-L", "Def+2Pos Δ (seeds)", "Def+2Pos Δ paired over instances [95% CI], p", "Δ reference NLL (Def / Def+2Pos)", `paper Def (${o.paperModel})`, `paper Def+2Pos (${o.paperModel})`],
          [
            ...[ref, ...rows.filter((n) => n !== ref)].map((n) => {
              const x = s.get(n)!;
              const p = o.paperOf(n);
              const r0 = o.paperOf(ref);
              const isRef = n === ref;
              const paperDelta = (v: number | undefined, r: number | undefined) => (v === undefined ? "–" : isRef || r === undefined ? v.toFixed(1) : `${v.toFixed(1)} (${v - r >= 0 ? "+" : ""}${(v - r).toFixed(1)})`);
              const vsRef = (f: string) => (isRef ? "–" : formatPaired(pairedVersusTagi(resultsDir, byName.get(n) ?? [], byName.get(ref) ?? [], f)));
              return [
                isRef ? o.refLabel : x.row,
                seedsByFormat(n),
                fmtStat(x.def),
                isRef ? "–" : paired(x, ref, (r) => r.metrics["def"]?.rougeL),
                vsRef("def"),
                fmtStat(x.def2pos),
                isRef ? "–" : paired(x, ref, (r) => r.metrics["def+2pos"]?.rougeL),
                vsRef("def+2pos"),
                isRef ? `${fmtStat(x.nllDef, 3)} / ${fmtStat(x.nllDef2pos, 3)}` : `${paired(x, ref, (r) => r.metrics["def"]?.referenceNll)} / ${paired(x, ref, (r) => r.metrics["def+2pos"]?.referenceNll)}`,
                paperDelta(p?.def, r0?.def),
                paperDelta(p?.def2pos, r0?.def2pos),
              ];
            }),
            ...floorRows(11, { def: 2, "def+2pos": 5 }),
          ],
        ),
        "",
      );
    };
    variantTable({ order: ABLATION_ORDER, heading: "### Ablations (SNI-103)", refLabel: "TAGI (all terms)", paperOf: (n) => PAPER_ABLATION[n], paperModel: "XL" });
    // Seed by seed: the per-seed deltas behind the means above, so that a sign that flips between seeds shows.
    for (const f of ["def", "def+2pos"] as const) {
      const sb = seedBySeed(resultsDir, byName, ["tagi", ...[...MAIN_ORDER, ...ABLATION_ORDER].filter((n) => n !== "tagi")], f);
      if (!sb) continue;
      lines.push(
        `### Seed by seed (SNI-103, ${FORMAT_LABEL[f]})`,
        "",
        "Each trained method's run minus TAGI's run at the same seed, paired over instances (paired bootstrap 95% CI, paired t p); the first row is TAGI's own seed-to-seed difference on the same instances, the spread a single-seed delta has to beat. Seed-free rows (No FT, Tk-Instruct) are in the main table.",
        "",
        table(
          ["Comparison", ...sb.seeds.map((k) => `seed ${k}`)],
          sb.rows.map((r) => [r.name === "tagi" ? `TAGI: this seed minus seed ${sb.tagiBaseSeed}` : `${s.get(r.name)?.row ?? r.name} minus TAGI`, ...sb.seeds.map((k) => (r.cells.has(k) ? formatPaired(r.cells.get(k)!) : "–"))]),
        ),
        "",
      );
    }
    // Sensitivity (paper appendix): each series against its own reference (src/experiments/sensitivity.ts).
    const sensitivity = SENSITIVITY_SERIES.map((series) => ({ series, points: sensitivityPoints(series, s) }));
    for (const { series, points } of sensitivity) {
      if (!points) continue;
      const ref = s.get(series.reference)!;
      variantTable({
        order: points.map((p) => p.experiment),
        heading: `### Sensitivity: ${series.parameter} (SNI-103)`,
        refLabel: series.reference === "tagi" ? `TAGI (${ref.row === "TAGI" ? "the config's" : ref.row})` : `${ref.row} (reference)`,
        paperOf: (n) => {
          const v = series.points.find((p) => p.experiment === n)?.value;
          const paper = v === undefined ? undefined : series.paper[v];
          return paper === undefined ? undefined : { def2pos: paper };
        },
        paperModel: "Base",
        ref: series.reference,
        extra:
          ` The paper's points (T5-LM-Base, Def + 2 Pos): ${Object.entries(series.paper)
            .map(([v, r]) => `${r} at ${v}`)
            .join(", ")}.` + (series.reference === "tagi" ? " They were for a pretrained 250M model; this scale's learning rates are centred on its own default." : ` ${byName.get(series.reference)?.[0]?.experiment.description ?? ""}`),
      });
    }
    const scaling = scalingPoints(s);
    if (scaling) {
      lines.push(
        "### Scaling with the number of meta-training categories (SNI-103)",
        "",
        "Nested category subsets (6 ⊂ 15 ⊂ 30 ⊂ 60); mean ± std over seeds. TAGI runs without L_kl here, since its logit teacher saw all 60 categories; its 60-category point is the w/o L_kl ablation, Tk-Instruct's the shared meta-trained model. The paper's points (T5-LM-Base, Def + 2 Pos) are read from its figure.",
        "",
        table(
          ["Method", "categories", "experiment", "seeds (Def / Def+2Pos)", "Def ROUGE-L", "Def+2Pos ROUGE-L", "paper Def+2Pos (Base)"],
          scaling.map((p) => [p.method, String(p.categories), `\`${p.experiment}\``, seedsByFormat(p.experiment), fmtStat(p.def), fmtStat(p.def2pos), paperNum(p.paper)]),
        ),
        "",
      );
    }
    const order = [...MAIN_ORDER, ...PROBE_ORDER];
    const rank = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
    const p3Rows = [...s.values()].filter((x) => x.p3 !== null).sort((a, b) => rank(a.name) - rank(b.name));
    if (p3Rows.length) {
      lines.push(
        "### P3 held-out (rank classification accuracy)",
        "",
        `At most ${e.p3MaxExamplesPerTemplate} examples per template, drawn as a seeded sample of each task's rows (the same rows for every template and model): ` +
          "the dev files are not shuffled (ANLI R3's first rows are all one label). " +
          "On the same examples: 'chance' is a uniform guess over the answer choices; 'majority class' is always giving the sample's most frequent answer, an upper bound for a model that gives one fixed answer (chosen after seeing the sample, so above chance on 10-row samples). " +
          "TAGI, Hypter and HINT are not evaluated on P3: the paper trains their P3 models on T0's training mixture, which this data does not include (`loadT0Mixture` reads it where a user has it), and models trained on SNI here would answer a different question. " +
          "With 10 rows per template a task's accuracy moves in steps of a few points; differences under ~5 points are within sampling noise.",
        "",
        table(
          ["Method", "seeds", "accuracy", "chance", "majority class", "rows", "paper (T5 Base)"],
          p3Rows.map((x) => [x.row, x.seeds.join(", "), fmtStat(x.p3), x.p3Chance ? x.p3Chance.mean.toFixed(2) : "–", x.p3Majority ? x.p3Majority.mean.toFixed(2) : "–", x.p3Sample ?? "–", paperNum(PAPER_P3[x.name])]),
        ),
        "",
      );
    }
    const probes = PROBE_ORDER.filter((n) => s.has(n) && s.get(n)!.def);
    if (probes.length > 1) {
      lines.push(
        "### Beyond the paper: probes (SNI-103, Def)",
        "",
        "Δ columns: the probe minus TAGI with its own instruction. '(seeds)': on the same seeds, mean ± std of the paired differences (for the mean adapter, TAGI's seeds that exist) and with two or more the seed-level t-test's p; 'paired over instances': instance by instance (units: seed × instance), paired bootstrap 95% CI and paired t p.",
        "",
        table(
          ["Probe", "seeds", "ROUGE-L", "Δ ROUGE-L (seeds)", "Δ ROUGE-L paired over instances [95% CI], p", "reference NLL ↓", "Δ NLL"],
          [
            ...probes.map((n) => {
              const x = s.get(n)!;
              const isRef = n === "tagi";
              const vsTagi = isRef ? "–" : formatPaired(pairedVersusTagi(resultsDir, byName.get(n) ?? [], byName.get("tagi") ?? [], "def"));
              return [isRef ? "TAGI, own instruction" : x.row, seedsOf(n), fmtStat(x.def), isRef ? "–" : paired(x, "tagi", (r) => r.metrics["def"]?.rougeL), vsTagi, fmtStat(x.nllDef, 3), isRef ? "–" : paired(x, "tagi", (r) => r.metrics["def"]?.referenceNll)];
            }),
            ...floorRows(7, { def: 2 }),
          ],
        ),
        "",
      );
    }
    const analyses = ADAPTER_ANALYSES.flatMap((n) => (byName.get(n) ?? []).filter((r) => r.adapters).sort((a, b) => a.seed - b.seed).map((r) => ({ name: n, rec: r, a: r.adapters! })));
    const adapterRec = analyses.find((x) => x.name === "adapter-similarity" && x.rec.seed === 0) ?? analyses.find((x) => x.name === "adapter-similarity");
    const adapters = adapterRec?.a ?? null;
    if (analyses.length) {
      const fmt = (xs: number[]) => {
        const st = stat(xs);
        return `${st.mean.toFixed(4)} ± ${(st.std ?? 0).toFixed(4)}`;
      };
      lines.push(
        "### Generated versus teacher adapters",
        "",
        "Cosine between the generated update s·A·B (from a category's train-task instructions) and the teachers', mean ± std over the teacher categories; " +
          "'closer' counts the categories whose generated update is nearer its own teacher than the other teachers' mean (chance: half), 'closest' those whose own teacher is the nearest of all (chance: 1/K), " +
          "each with its one-sided binomial p-value: the precondition for reading any L_ins row.",
        "",
        table(
          ["Model", "seed", "format", "categories", "cosine, own teacher", "cosine, other teachers", "closer to own (p)", "own closest (p)"],
          analyses.map(({ rec, a }) => {
            const pc = similarityPrecondition(a.similarity);
            const fp = (x: number) => (x < 1e-3 ? x.toExponential(1) : x.toFixed(3));
            return [
              rec.experiment.row,
              String(rec.seed),
              a.format ?? "def",
              String(a.similarity.length),
              fmt(a.similarity.map((r) => r.cosineOwn)),
              fmt(a.similarity.map((r) => r.cosineOthers)),
              `${pc.closerThanOthersMean} of ${pc.categories} (${fp(pc.pCloserThanOthersMean)})`,
              pc.ownClosest === null ? "– (not recorded)" : `${pc.ownClosest} of ${pc.categories} (${fp(pc.pOwnClosest!)})`,
            ];
          }),
        ),
        "",
      );
      if (adapters)
        lines.push(
          `Generating an adapter takes ${adapters.generateSeconds.toFixed(3)} s per instruction; training one teacher took ${adapters.teacherSeconds.toFixed(1)} s (${adapters.teacherSteps} steps), ` +
            `x${(adapters.teacherSeconds / adapters.generateSeconds).toFixed(0)}.`,
          "",
        );
    }
    const timing = [...s.values()].filter((x) => x.trainSeconds !== null);
    if (timing.length) {
      lines.push(
        "### Wall time per experiment (2 CPU cores)",
        "",
        "Two grids ran side by side on the 2 cores (and at times the test suite), so these are upper bounds.",
        "",
        table(["Experiment", "train (s)", "evaluate (s)"], timing.map((x) => [x.row, fmtStat(x.trainSeconds, 0), fmtStat(x.evalSeconds, 0)])),
        "",
      );
    }
    const more = ADAPTER_ANALYSES.slice(1).flatMap((n) => {
      const x = analyses.find((y) => y.name === n && y.rec.seed === 0) ?? analyses.find((y) => y.name === n);
      return x ? [{ name: n, row: x.rec.experiment.row, seed: x.rec.seed, a: x.a }] : [];
    });
    const floorPoints = (format: string): FloorPoint[] => (floorsOf(format) ?? []).map((f) => ({ name: f.name, rougeL: f.rougeL }));
    const specs = figureSpecs(scale, s, adapters, more, { def: floorPoints("def"), "def+2pos": floorPoints("def+2pos") });
    const deltaSpec = ablationDeltaSpec(ablationDeltas(resultsDir, byName, ABLATION_ORDER), `Ablations: Δ ROUGE-L against TAGI on SNI-103 (${scale})`);
    if (deltaSpec) specs["ablation-deltas"] = deltaSpec;
    if (scaling) specs["category-scaling"] = scalingSpec(scaling, `ROUGE-L against the number of meta-training categories (${scale})`);
    const sensitivityPanels = sensitivity.flatMap((x) => (x.points ? [x.points] : []));
    if (sensitivityPanels.length) specs["sensitivity"] = sensitivitySpec(sensitivityPanels, sensitivityTitle(scale));
    if (Object.keys(specs).length) {
      lines.push("### Figures", "");
      for (const [name, spec] of Object.entries(specs)) {
        const base = path.join(figuresDir, scale, name);
        await writeFigure(spec, base);
        const relPng = path.relative(path.dirname(out), base + ".png");
        lines.push(`![${name}](${relPng})`, "");
      }
    }
    const missing = missingCells(scale, byName);
    lines.push(
      ...(missing.length
        ? [`Not run yet at this scale (so not in these tables): ${missing.map((m) => `${m.name} (seed${m.seeds.length > 1 ? "s" : ""} ${m.seeds.join(", ")}${m.formats ? `: ${m.formats.join(", ")} not yet` : ""})`).join(", ")}; \`npm run experiment -- NAME --seeds ... --scale ${scale}\`, or \`--executor slurm\`.`, ""]
        : []),
      "Rerun one cell of these tables: `npm run experiment -- <experiment> --seed <S> --scale " + scale + " --force`, then `npm run results`.",
      "",
    );
  }
  if (!scales.length) lines.push(`No experiment results under the current protocol yet${superseded.length ? " (older records: see below)" : ""}: run \`npm run experiment -- tagi --seeds 0,1,2\`.`, "");
  lines.push(...supersededSection(superseded));
  const other = [
    ["training/small/README.md", "the shared `small` stages: base model, logit teacher, 60 LoRA teachers, stage 1 (curves, run records)"],
    ["training/tiny/README.md", "the tiny pipeline of the README's main job"],
    ["eval/README.md", "standalone evaluations (`tagi evaluate`), e.g. the small meta-trained model on all 10,210 SNI-103 instances"],
    ["bench/README.md", "speed: GEMM and training-step throughput against native GEMM and PyTorch (`npm run bench`)"],
  ].filter(([f]) => fs.existsSync(path.join(resultsDir, f!)));
  if (other.length) lines.push("## Other results", "", ...other.map(([f, what]) => `- [${f}](${f}): ${what}`), "");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, lines.join("\n"));
  return out;
}

