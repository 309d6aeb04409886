/**
 * Training curves: loss against optimizer step for one or more runs (their log.jsonl records), raw and
 * smoothed (moving mean), as a Vega-Lite spec.
 */
import * as fs from "node:fs";
import type { LogRecord } from "../train/loop";

export function readTrainingLog(file: string): LogRecord[] {
  if (!fs.existsSync(file)) throw new Error(`training log not found: ${file}`);
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as LogRecord;
      } catch {
        throw new Error(`${file}:${i + 1}: not a JSON log record`);
      }
    });
}

export interface CurveSeries {
  name: string;
  log: readonly LogRecord[];
}

/** Loss (nats per target token) against step, one colour per series; faint raw lines, bold moving means. */
export function lossCurveSpec(
  series: readonly CurveSeries[],
  /** `panels`: one panel per series, each with its own y scale (loss terms in different units). */
  opts: { title?: string; smooth?: number; width?: number; height?: number; logY?: boolean; yTitle?: string; panels?: boolean } = {},
): Record<string, unknown> {
  const smooth = opts.smooth ?? 20;
  const yTitle = opts.yTitle ?? "loss (nats per target token)";
  const values = series.flatMap((s) => s.log.map((r) => ({ run: s.name, step: r.step, loss: r.loss, dev: r.eval?.["devLoss"] ?? null })));
  const hasDev = values.some((v) => v.dev !== null);
  const title = { text: opts.title ?? "Training loss", subtitle: `faint: every step; bold: mean of the last ${smooth} steps${hasDev ? "; dashed with points: dev-split loss (held-out tasks, no dropout)" : ""}` };
  const layered = {
    width: opts.width ?? 560,
    height: opts.panels ? 140 : (opts.height ?? 300),
    encoding: {
      x: { field: "step", type: "quantitative", title: "optimizer step" },
      // Legend swatches drawn solid (the first layer's faint raw lines would make them too pale to tell apart).
      color: { field: "run", type: "nominal", title: "run", legend: opts.panels ? null : { symbolType: "stroke", symbolOpacity: 1, symbolStrokeWidth: 3, labelLimit: 320 } },
    },
    layer: [
      {
        mark: { type: "line", opacity: 0.25, strokeWidth: 1 },
        encoding: { y: { field: "loss", type: "quantitative", title: yTitle, scale: { type: opts.logY ? "log" : "linear", zero: false } } },
      },
      {
        transform: [{ window: [{ op: "mean", field: "loss", as: "smoothed" }], frame: [-(smooth - 1), 0], groupby: ["run"], sort: [{ field: "step" }] }],
        mark: { type: "line", strokeWidth: 2 },
        encoding: { y: { field: "smoothed", type: "quantitative", title: yTitle } },
      },
      ...(hasDev
        ? [
            {
              transform: [{ filter: "datum.dev != null" }],
              mark: { type: "line", strokeWidth: 2, strokeDash: [6, 3], point: { filled: true, size: 40 } },
              encoding: { y: { field: "dev", type: "quantitative", title: yTitle } },
            },
          ]
        : []),
    ],
  };
  if (opts.panels) {
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      title,
      data: { values },
      facet: { row: { field: "run", type: "nominal", title: null, header: { labelAngle: 0, labelAlign: "left", labelAnchor: "start", labelFontWeight: "bold", labelOrient: "top" } } },
      spec: layered,
      resolve: { scale: { y: "independent" } },
    };
  }
  return { $schema: "https://vega.github.io/schema/vega-lite/v5.json", title, data: { values }, ...layered };
}
