/**
 * Sensitivity as in the paper's appendix (T5-LM-Base, SNI Def + 2 Pos): the stage-2 learning rate and the
 * LoRA rank. Each point is an experiment; each series has its own reference, the point every other is
 * compared with: TAGI itself for the learning rate (its config's 5e-4), and for the rank the rank-32 row with
 * the rank rows' own settings (no stage 1, whose generator is rank 32; L_ins on the update s·A·B, since the
 * parameter teachers are rank 32), so that a rank delta is not a stage-1 or L_ins delta. The tables and the
 * figure read summaries.
 */
import { renderVegaLite, type RenderedFigure } from "../plots/render";
import type { ExperimentSummary, Stat } from "./summary";

type Spec = Record<string, unknown>;

export interface SensitivitySeries {
  /** Heading word and axis title. */
  parameter: string;
  /** The experiment every other point is compared with, paired by seed and instance. */
  reference: string;
  points: { value: number; experiment: string }[];
  /** The paper's Def + 2 Pos ROUGE-L at each value (T5-LM-Base, REFERENCE.md). */
  paper: Record<number, number>;
}

export const SENSITIVITY_SERIES: readonly SensitivitySeries[] = [
  {
    parameter: "learning rate",
    reference: "tagi",
    points: [
      { value: 1e-4, experiment: "tagi-lr-1e-4" },
      { value: 3e-4, experiment: "tagi-lr-3e-4" },
      { value: 5e-4, experiment: "tagi" },
      { value: 1e-3, experiment: "tagi-lr-1e-3" },
    ],
    paper: { 5e-5: 42.1, 1e-4: 42.5, 3e-4: 40.3, 1e-3: 39.7 },
  },
  {
    parameter: "LoRA rank",
    reference: "tagi-rank-32",
    points: [16, 32, 64].map((r) => ({ value: r, experiment: `tagi-rank-${r}` })),
    paper: { 16: 41.8, 32: 42.5, 64: 42.3 },
  },
];

export interface SensitivityPoint {
  parameter: string;
  value: number;
  experiment: string;
  isReference: boolean;
  def: Stat | null;
  def2pos: Stat | null;
  paper: number | null;
}

/**
 * One series' points that have a summary, reference first; null when the reference or every other point is
 * missing (nothing to compare).
 */
export function sensitivityPoints(series: SensitivitySeries, s: ReadonlyMap<string, ExperimentSummary>): SensitivityPoint[] | null {
  const points = series.points.flatMap((p) => {
    const x = s.get(p.experiment);
    return x && (x.def || x.def2pos) ? [{ parameter: series.parameter, value: p.value, experiment: p.experiment, isReference: p.experiment === series.reference, def: x.def, def2pos: x.def2pos, paper: series.paper[p.value] ?? null }] : [];
  });
  if (!points.some((p) => p.isReference) || points.length < 2) return null;
  return [...points.filter((p) => p.isReference), ...points.filter((p) => !p.isReference)];
}

/**
 * ROUGE-L against each parameter (log axis), one panel per parameter, one line per format; mean over seeds,
 * bars ± one standard deviation; the reference point drawn larger.
 */
export function sensitivitySpec(panels: readonly SensitivityPoint[][], title: string): Spec {
  const panel = (points: readonly SensitivityPoint[]): Spec => {
    const values = points.flatMap((p) =>
      (
        [
          ["Def", p.def],
          ["Def + 2 Pos", p.def2pos],
        ] as const
      ).flatMap(([format, st]) => (st ? [{ format, value: p.value, rougeL: st.mean, lo: st.mean - (st.std ?? 0), hi: st.mean + (st.std ?? 0), seeds: st.n, reference: p.isReference ? "reference" : "variant" }] : [])),
    );
    const ticks = [...new Set(points.map((p) => p.value))].sort((a, b) => a - b);
    const x = { field: "value", type: "quantitative", title: points[0]!.parameter, scale: { type: "log", domain: [ticks[0]! / 1.5, ticks.at(-1)! * 1.5] }, axis: { values: ticks, format: ticks[0]! < 0.01 ? ".0e" : "d" } };
    const color = { field: "format", type: "nominal", title: null, legend: { orient: "top" } };
    return {
      width: 260,
      height: 220,
      data: { values },
      layer: [
        { mark: { type: "line" }, encoding: { x, y: { field: "rougeL", type: "quantitative", title: "ROUGE-L (x100)", scale: { zero: false } }, color } },
        { mark: { type: "point", filled: true }, encoding: { x, y: { field: "rougeL", type: "quantitative" }, color, size: { field: "reference", type: "ordinal", sort: ["reference", "variant"], scale: { domain: ["reference", "variant"], range: [140, 40] }, title: null } } },
        { mark: { type: "rule" }, encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color } },
      ],
    };
  };
  return {
    title: { text: title, subtitle: "mean over seeds, bars ± one standard deviation; the large point is each panel's reference" },
    hconcat: panels.filter((p) => p.length).map(panel),
    resolve: { scale: { y: "independent" } },
  };
}

/** Every experiment of the sensitivity series (notebook 05 reads their summaries). */
export const SENSITIVITY_EXPERIMENTS: readonly string[] = [...new Set(SENSITIVITY_SERIES.flatMap((s) => s.points.map((p) => p.experiment)))];

/** Notebook 05's sensitivity figure from experiment summaries; null while no series has its reference and another point. */
export async function sensitivityFigure(summaries: readonly ExperimentSummary[], scale: string): Promise<RenderedFigure | null> {
  const byName = new Map(summaries.map((x) => [x.name, x]));
  const panels = SENSITIVITY_SERIES.flatMap((series) => {
    const p = sensitivityPoints(series, byName);
    return p ? [p] : [];
  });
  return panels.length ? renderVegaLite(sensitivitySpec(panels, sensitivityTitle(scale))) : null;
}

export const sensitivityTitle = (scale: string): string => `Sensitivity of TAGI to the stage-2 learning rate and the LoRA rank (${scale})`;
