/**
 * Vega-Lite specs to SVG (vega's headless renderer) and PNG (resvg, system fonts). vega and vega-lite are
 * ES modules with top-level await: they are loaded with a real dynamic import(), which CommonJS output (and
 * tslab's compiled cells) would otherwise turn into require().
 */
import * as fs from "node:fs";
import * as path from "node:path";

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const esmImport = new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>;

type VegaLiteSpec = Record<string, unknown>;

export interface RenderedFigure {
  svg: string;
  png: Buffer;
}

/** Renders a Vega-Lite spec (data inline) to SVG and PNG (scale 2 for legibility). */
export async function renderVegaLite(spec: VegaLiteSpec, opts: { scale?: number } = {}): Promise<RenderedFigure> {
  const vl = (await esmImport("vega-lite")) as { compile: (s: unknown) => { spec: unknown } };
  const vega = (await esmImport("vega")) as {
    parse: (s: unknown) => unknown;
    View: new (runtime: unknown, o: { renderer: string }) => { toSVG: () => Promise<string>; finalize: () => void };
  };
  const compiled = vl.compile({ background: "white", config: { font: "DejaVu Sans" }, ...spec }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  const { Resvg } = await import("@resvg/resvg-js");
  const png = new Resvg(svg, {
    fitTo: { mode: "zoom", value: opts.scale ?? 2 },
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
    background: "white",
  })
    .render()
    .asPng();
  return { svg, png: Buffer.from(png) };
}

/** Renders and writes `<base>.svg` and `<base>.png`; returns the two paths. */
export async function writeFigure(spec: VegaLiteSpec, base: string): Promise<{ svg: string; png: string }> {
  const fig = await renderVegaLite(spec);
  fs.mkdirSync(path.dirname(base), { recursive: true });
  fs.writeFileSync(`${base}.svg`, fig.svg);
  fs.writeFileSync(`${base}.png`, fig.png);
  return { svg: `${base}.svg`, png: `${base}.png` };
}
