/**
 * The figures of results/README.md as Vega-Lite specs: ROUGE-L against inference FLOPs with the sanity floors
 * and the paper's points, the ablation, NLL and probe bars, and the adapter-similarity and generation-time
 * plots. results-report.ts renders them (src/plots/render.ts).
 */
import type { ExperimentRecord } from "./runner";
import { PAPER_SNI } from "./paper";
import { ABLATION_ORDER, MAIN_ORDER, PROBE_ORDER, type ExperimentSummary, type Stat } from "./summary";

export type Spec = Record<string, unknown>;

/** A sanity floor of one format (what copying scores on the same instances). */
export interface FloorPoint {
  name: string;
  rougeL: number;
}

export const FORMAT_LABEL = { def: "Def", "def+2pos": "Def + 2 Pos" } as const;

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

export function figureSpecs(
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
      title: { text: `Seconds to get a task adapter (${scale})`, subtitle: `generate from the instruction vs train one LoRA teacher (mean ${adapters.teacherSteps.toFixed(1)} steps, as trained here)` },
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
