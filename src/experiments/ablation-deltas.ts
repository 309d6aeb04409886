/**
 * The ablations as differences: each variant minus TAGI, paired by seed and instance (./paired.ts), with its 95%
 * CI, per format, beside the paper's difference (T5-LM-XL). The results report draws them; notebook 05 shows them.
 */
import { renderVegaLite, type RenderedFigure } from "../plots/render";
import { PAPER_ABLATION } from "./paper";
import { formatPaired, pairedVersusTagi, seedBySeed } from "./paired";
import { collectRecords } from "./records";
import { defaultScale, resultsRoot, type ExperimentRecord } from "./runner";

type Spec = Record<string, unknown>;
const FORMAT_LABEL = { def: "Def", "def+2pos": "Def + 2 Pos" } as const;

/** One ablation's paired difference against TAGI in one format (a point of the ablation-delta figure). */
export interface AblationDelta {
  row: string;
  format: "def" | "def+2pos";
  /** Variant minus TAGI, paired over instances (and seeds): mean and 95% bootstrap CI. */
  mean: number;
  lo: number;
  hi: number;
  seeds: number;
  /** The paper's Δ (T5-LM-XL), null when it reports none. */
  paper: number | null;
}

/**
 * The ablation deltas with their CIs, one panel per format: a variant left of 0 lost points when its part was
 * removed (so the part helped). Hollow diamonds are the paper's deltas on the same axis.
 */
export function ablationDeltaSpec(deltas: readonly AblationDelta[], title: string): Spec | null {
  if (!deltas.length) return null;
  // One facet per format over the same rows (a variant not run in a format leaves its line empty there).
  const values = deltas.map((d) => ({ panel: FORMAT_LABEL[d.format], row: d.row, mean: d.mean, lo: d.lo, hi: d.hi, paper: d.paper, seeds: `${d.seeds} seed${d.seeds > 1 ? "s" : ""}` }));
  const panels = (["def", "def+2pos"] as const).filter((f) => deltas.some((d) => d.format === f)).map((f) => FORMAT_LABEL[f]);
  const y = { field: "row", type: "nominal", sort: null, title: null, axis: { labelLimit: 440 } };
  const x = { type: "quantitative", title: "Δ ROUGE-L vs TAGI (x100)" };
  return {
    title: { text: title, subtitle: ["blue: this project, variant minus TAGI paired over instances, 95% CI (with one seed: instance sampling only)", "red diamonds: the paper's Δ (T5-LM-XL); left of 0: the removed part helped"] },
    data: { values },
    facet: { column: { field: "panel", type: "nominal", sort: panels, title: null, header: { labelFontSize: 13, labelFontWeight: "bold" } } },
    spec: {
      width: 300,
      height: { step: 30 },
      layer: [
        { mark: { type: "rule", color: "#999", strokeDash: [4, 3] }, encoding: { x: { datum: 0, ...x } } },
        { mark: { type: "rule", color: "#4c78a8", strokeWidth: 2 }, encoding: { y, x: { field: "lo", ...x }, x2: { field: "hi" } } },
        { mark: { type: "point", filled: true, size: 70, color: "#4c78a8" }, encoding: { y, x: { field: "mean", ...x }, tooltip: [{ field: "mean", format: ".2f" }, { field: "seeds" }] } },
        { transform: [{ filter: "datum.paper !== null" }], mark: { type: "point", shape: "diamond", filled: false, size: 80, color: "#e45756" }, encoding: { y, x: { field: "paper", ...x } } },
      ],
    },
    resolve: { scale: { x: "independent" } },
  };
}

/** Each variant of `names` (TAGI itself skipped) against TAGI in each format where both have predictions. */
export function ablationDeltas(resultsDir: string, byName: ReadonlyMap<string, readonly ExperimentRecord[]>, names: readonly string[]): AblationDelta[] {
  return names
    .filter((n) => n !== "tagi" && (byName.get(n) ?? []).length > 0)
    .flatMap((n) =>
      (["def", "def+2pos"] as const).flatMap((format) => {
        const c = pairedVersusTagi(resultsDir, byName.get(n) ?? [], byName.get("tagi") ?? [], format);
        const paper = PAPER_ABLATION[n];
        const ref = PAPER_ABLATION["tagi"]!;
        const paperDelta = paper ? (format === "def" ? paper.def - ref.def : paper.def2pos - ref.def2pos) : null;
        return c ? [{ row: byName.get(n)![0]!.experiment.row, format, mean: c.diff.mean, lo: c.diff.lo, hi: c.diff.hi, seeds: c.seeds, paper: paperDelta }] : [];
      }),
    );
}

/** Notebook 05's figure: the finished records of `names` at `scale` (the current protocol's), drawn; null when no variant pairs with TAGI. */
export async function ablationDeltaFigure(names: readonly string[], scale = defaultScale(), resultsDir = resultsRoot()): Promise<RenderedFigure | null> {
  const byName = collectRecords(resultsDir).get(scale) ?? new Map<string, ExperimentRecord[]>();
  const spec = ablationDeltaSpec(ablationDeltas(resultsDir, byName, names), `Ablations: Δ ROUGE-L against TAGI on SNI-103 (${scale})`);
  return spec ? renderVegaLite(spec) : null;
}

/** Notebook 05's bar chart rows: each variant's ROUGE-L in each format it has (mean ± std over seeds), grouped by format. */
export function ablationBarRows(summaries: readonly { name: string; row: string; def: { mean: number; std: number | null } | null; def2pos: { mean: number; std: number | null } | null }[]): { label: string; value: number; group: string; error?: number }[] {
  return summaries.flatMap((s) =>
    (
      [
        ["Def", s.def],
        ["Def + 2 Pos", s.def2pos],
      ] as const
    ).flatMap(([group, st]) => (st ? [{ label: s.name === "tagi" ? "TAGI (all terms)" : s.row, value: st.mean, group, ...(st.std !== null ? { error: st.std } : {}) }] : [])),
  );
}

/**
 * Notebook 05's seed-by-seed table (the results report's): per format, each trained method minus TAGI at each
 * seed, and TAGI minus its first seed, paired over instances; one row per format and comparison, one column per seed.
 */
export function seedBySeedRows(names: readonly string[], scale = defaultScale(), resultsDir = resultsRoot()): Record<string, string>[] {
  const byName = collectRecords(resultsDir).get(scale) ?? new Map<string, ExperimentRecord[]>();
  const tables = (["def", "def+2pos"] as const).flatMap((format) => {
    const sb = seedBySeed(resultsDir, byName, names, format);
    return sb ? [{ format, sb }] : [];
  });
  const seeds = [...new Set(tables.flatMap((t) => t.sb.seeds))].sort((a, b) => a - b);
  return tables.flatMap(({ format, sb }) =>
    sb.rows.map((r) => ({
      format: FORMAT_LABEL[format],
      comparison: r.name === "tagi" ? `TAGI: this seed minus seed ${sb.tagiBaseSeed}` : `${byName.get(r.name)?.[0]?.experiment.row ?? r.name} minus TAGI`,
      ...Object.fromEntries(seeds.map((k) => [`seed ${k}`, r.cells.has(k) ? formatPaired(r.cells.get(k)!) : "–"])),
    })),
  );
}
