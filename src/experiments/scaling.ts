/**
 * Scaling with the number of meta-training categories (the paper's appendix figure: TAGI and Tk-Instruct
 * trained on 6, 15, 30 and 60 categories, T5-LM-Base, Def + 2 Pos). Each point is an experiment: the
 * `*-categories-N` rows, and at 60 the full runs (TAGI w/o L_kl, since the scaling rows run without the logit
 * teacher, which saw every category; the shared Tk-Instruct model). The table and the figure read summaries.
 */
import { renderVegaLite, type RenderedFigure } from "../plots/render";
import type { ExperimentSummary, Stat } from "./summary";

type Spec = Record<string, unknown>;

/** The series: method label, its experiment at each category count. */
export const SCALING_SERIES: { method: string; points: { categories: number; experiment: string }[] }[] = [
  { method: "TAGI (w/o L_kl)", points: [6, 15, 30].map((n) => ({ categories: n, experiment: `tagi-categories-${n}` })).concat([{ categories: 60, experiment: "tagi-no-kl" }]) },
  { method: "Tk-Instruct", points: [6, 15, 30].map((n) => ({ categories: n, experiment: `tk-instruct-categories-${n}` })).concat([{ categories: 60, experiment: "tk-instruct" }]) },
];

/** The paper's points (T5-LM-Base, Def + 2 Pos, read from its figure: approximate). */
export const PAPER_SCALING: Record<string, Record<number, number>> = {
  "TAGI (w/o L_kl)": { 6: 40.2, 15: 41.3, 30: 41.7, 60: 42.5 },
  "Tk-Instruct": { 6: 38.5, 15: 40.2, 30: 41.3, 60: 42.1 },
};

export interface ScalingPoint {
  method: string;
  categories: number;
  experiment: string;
  /** The series' 60-category experiment, which every other point is paired against. */
  full: string;
  def: Stat | null;
  def2pos: Stat | null;
  paper: number | null;
}

/** The points that have a summary; null when fewer than two categories counts of one method have run. */
export function scalingPoints(s: ReadonlyMap<string, ExperimentSummary>): ScalingPoint[] | null {
  const points = SCALING_SERIES.flatMap((series) => {
    const full = series.points[series.points.length - 1]!.experiment;
    return series.points.flatMap((p) => {
      const x = s.get(p.experiment);
      return x && (x.def || x.def2pos) ? [{ method: series.method, categories: p.categories, experiment: p.experiment, full, def: x.def, def2pos: x.def2pos, paper: PAPER_SCALING[series.method]?.[p.categories] ?? null }] : [];
    });
  });
  const enough = SCALING_SERIES.some((series) => points.filter((p) => p.method === series.method).length >= 2);
  return enough ? points : null;
}

/** ROUGE-L against the number of categories (log axis), one line per method, one panel per format; ± std over seeds. */
export function scalingSpec(points: readonly ScalingPoint[], title: string): Spec {
  const values = points.flatMap((p) =>
    (
      [
        ["Def", p.def],
        ["Def + 2 Pos", p.def2pos],
      ] as const
    ).flatMap(([panel, st]) => (st ? [{ panel, method: p.method, categories: p.categories, rougeL: st.mean, lo: st.mean - (st.std ?? 0), hi: st.mean + (st.std ?? 0), seeds: st.n, seedLabel: `n=${st.n}` }] : [])),
  );
  const x = { field: "categories", type: "quantitative", title: "meta-training categories", scale: { type: "log", domain: [5, 70] }, axis: { values: [6, 15, 30, 60] } };
  const color = { field: "method", type: "nominal", title: null, legend: { orient: "top" } };
  return {
    // The subtitle is split into short lines: without a canvas, vega over-estimates text widths and one long
    // line left most of the figure blank.
    title: { text: title, subtitle: ["mean over n training seeds,", "bars ± one std where n >= 2;", "at 60: the full runs"] },
    data: { values },
    facet: { column: { field: "panel", type: "nominal", sort: ["Def", "Def + 2 Pos"], title: null } },
    spec: {
      width: 300,
      height: 240,
      layer: [
        { mark: { type: "line", point: true }, encoding: { x, y: { field: "rougeL", type: "quantitative", title: "ROUGE-L (x100)", scale: { zero: false } }, color } },
        { mark: { type: "rule" }, encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color } },
        { mark: { type: "text", dx: 6, align: "left", baseline: "middle", fontSize: 10 }, encoding: { x, y: { field: "rougeL", type: "quantitative" }, text: { field: "seedLabel" }, color } },
      ],
    },
    resolve: { scale: { y: "independent" } },
  };
}

/** Every experiment of the scaling series (notebook 05 reads their summaries). */
export const SCALING_EXPERIMENTS: readonly string[] = SCALING_SERIES.flatMap((s) => s.points.map((p) => p.experiment));

export const scalingTitle = (scale: string): string => `ROUGE-L against meta-training categories (${scale})`;

/** Notebook 05's category-scaling figure from experiment summaries; null while no method has two category counts. */
export async function categoryScalingFigure(summaries: readonly ExperimentSummary[], scale: string): Promise<RenderedFigure | null> {
  const points = scalingPoints(new Map(summaries.map((x) => [x.name, x])));
  return points ? renderVegaLite(scalingSpec(points, scalingTitle(scale))) : null;
}
