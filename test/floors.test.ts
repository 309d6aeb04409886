/**
 * Sanity floors (src/eval/floors.ts) on a hand-made task whose scores follow from the definitions: copying
 * the input, the first demonstration's output, and the most frequent demonstration output, each scored with
 * the official ROUGE-L / exact match on exactly the instances given.
 */
import { strict as assert } from "node:assert";
import type { SniTestTask } from "../src/data/sni";
import { floorPredictions, sanityFloors } from "../src/eval/floors";
import { ablationBarRows, ablationDeltaSpec, rougeFlopsSpec, type ExperimentSummary } from "../src/experiments/results-report";
import { writeFigure } from "../src/plots/render";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const task = (name: string, outputs: string[], instances: { id: string; input: string; outputs: string[] }[]): SniTestTask =>
  ({
    split: "test",
    name,
    definition: "Answer yes or no.",
    categories: ["Misc"],
    reasoning: [],
    domains: [],
    source: [],
    positiveExamples: outputs.map((o, i) => ({ input: `example ${i}`, output: o, explanation: "" })),
    negativeExamples: [],
    instances,
  }) as unknown as SniTestTask;

describe("sanity floors", () => {
  const labels = task("t1_labels", ["no", "yes", "yes"], [
    { id: "a", input: "is the sky green", outputs: ["no"] },
    { id: "b", input: "is grass green", outputs: ["yes"] },
    { id: "c", input: "is snow white", outputs: ["yes"] },
    { id: "d", input: "is coal white", outputs: ["no"] },
  ]);
  const copy = task("t2_copy", [], [{ id: "x", input: "the cat sat", outputs: ["the cat sat"] }]);

  it("floor predictions: the input, the first demonstration's output, the most frequent one (ties: the first)", () => {
    assert.deepEqual(floorPredictions(labels, "q"), { "copy instance input": "q", "copy first demonstration output": "no", "most frequent demonstration output": "yes" });
    assert.deepEqual(floorPredictions(task("t", ["b", "a", "a", "b"], []), "q")["most frequent demonstration output"], "b");
    assert.deepEqual(floorPredictions(copy, "q")["copy first demonstration output"], "");
  });

  it("scores on exactly the instances given, x 100, with a bootstrap CI", () => {
    const f = sanityFloors([labels, copy], [
      { task: "t1_labels", id: "a" },
      { task: "t1_labels", id: "b" },
      { task: "t1_labels", id: "c" },
      { task: "t1_labels", id: "d" },
      { task: "t2_copy", id: "x" },
    ]);
    const by = new Map(f.map((x) => [x.name, x]));
    // copy input: only the copy task's instance matches (100); the label instances share no token with "no"/"yes" -> 0
    assert.deepEqual(by.get("copy instance input")!.perInstance, [0, 0, 0, 0, 100]);
    assert.equal(by.get("copy instance input")!.rougeL, 20);
    assert.equal(by.get("copy instance input")!.exactMatch, 20);
    // first demonstration "no": a and d right; the copy task has none -> ""
    assert.deepEqual(by.get("copy first demonstration output")!.perInstance, [100, 0, 0, 100, 0]);
    // most frequent "yes": b and c
    assert.deepEqual(by.get("most frequent demonstration output")!.perInstance, [0, 100, 100, 0, 0]);
    const ci = by.get("copy first demonstration output")!.rougeLCi;
    assert.ok(ci.lo <= 40 && 40 <= ci.hi && ci.n === 5);
    assert.throws(() => sanityFloors([labels], [{ task: "t1_labels", id: "zz" }]), /no instance zz of task t1_labels/);
  });
});

describe("the ROUGE-L-versus-FLOPs figure", () => {
  const row = (name: string, label: string, mean: number, std: number | null, flops: number): ExperimentSummary => ({
    name, row: label, seeds: [0], def: null, def2pos: { mean, std, n: std === null ? 1 : 3, values: [mean] }, nllDef: null, nllDef2pos: null,
    p3: null, p3Majority: null, p3Chance: null, p3Sample: null, flopsAt100: null, flopsAt100Def2pos: flops, trainSeconds: null, evalSeconds: { mean: 1, std: null, n: 1, values: [1] },
  });
  type Layer = { data?: { values: Record<string, unknown>[] }; mark: { type: string; dy?: number } };
  const layersOf = (spec: Record<string, unknown>) => ((spec["hconcat"] as Record<string, unknown>[])[0]!["layer"] as Layer[]);

  it("draws each floor with a label, the lower of two close floors labelled under its line; error bars are std over seeds unless intervals are given", () => {
    const floors = [{ name: "copy instance input", rougeL: 15 }, { name: "copy first demonstration output", rougeL: 27.5 }, { name: "most frequent demonstration output", rougeL: 27.0 }];
    const rows = [row("tk-instruct", "Tk-Instruct (full)", 9.5, 1, 1), row("tagi", "TAGI", 9.4, 2, 0.4)];
    const spec = rougeFlopsSpec(rows, "t", { "def+2pos": floors });
    const texts = layersOf(spec).filter((l) => l.mark.type === "text");
    const label = (dy: number) => texts.filter((l) => l.mark.dy === dy).flatMap((l) => l.data!.values.map((v) => v["floor"]));
    assert.deepEqual(label(8), ["most frequent demonstration output"]);
    assert.deepEqual(label(-6).sort(), ["copy first demonstration output", "copy instance input"]);
    const bars = layersOf(spec).find((l) => l.mark.type === "rule" && l.data!.values.some((v) => v["method"] === "TAGI"))!.data!.values;
    assert.deepEqual([bars[1]!["lo"], bars[1]!["hi"]], [7.4, 11.4]);
    assert.match(JSON.stringify(spec["title"]), /mean ± std over seeds/);
    // one model per row (the demo): the bars are the given intervals, and the subtitle says so
    const ci = rougeFlopsSpec(rows, "t", {}, { intervals: { TAGI: [6.5, 12.5] }, intervalLabel: "one model each, 95% CI over instances" });
    const ciBars = layersOf(ci).find((l) => l.mark.type === "rule")!.data!.values;
    assert.deepEqual([ciBars[1]!["lo"], ciBars[1]!["hi"]], [6.5, 12.5]);
    assert.deepEqual([ciBars[0]!["lo"], ciBars[0]!["hi"]], [8.5, 10.5]);
    assert.match(JSON.stringify(ci["title"]), /95% CI over instances/);
    assert.ok(!layersOf(ci).some((l) => l.mark.type === "text"), "no floors, no labels");
  });
});

describe("the ablation-delta figure", () => {
  it("one panel per format, each variant's paired Δ with its CI and the paper's Δ beside it; nothing to draw is null", async () => {
    const deltas = [
      { row: "w/o L_kl", format: "def+2pos" as const, mean: -1.2, lo: -1.8, hi: -0.6, seeds: 1, paper: -2.4 },
      { row: "w/o L_ins", format: "def+2pos" as const, mean: 0.3, lo: -0.2, hi: 0.8, seeds: 1, paper: -1.1 },
      { row: "w/o L_kl", format: "def" as const, mean: -0.5, lo: -1, hi: 0, seeds: 3, paper: null },
    ];
    const spec = ablationDeltaSpec(deltas, "t")!;
    const values = (spec["data"] as { values: Record<string, unknown>[] }).values;
    assert.deepEqual((spec["facet"] as { column: { sort: string[] } }).column.sort, ["Def", "Def + 2 Pos"]);
    assert.deepEqual(values.filter((v) => v["panel"] === "Def + 2 Pos").map((v) => [v["row"], v["lo"], v["hi"], v["paper"]]), [["w/o L_kl", -1.8, -0.6, -2.4], ["w/o L_ins", -0.2, 0.8, -1.1]]);
    assert.equal(values.find((v) => v["panel"] === "Def")!["seeds"], "3 seeds");
    assert.match(JSON.stringify(spec["title"]), /instance sampling only/);
    assert.equal(ablationDeltaSpec([], "t"), null);
    // notebook 05's bars: one per format a variant has, TAGI labelled as the reference, std only with seeds
    assert.deepEqual(
      ablationBarRows([
        { name: "tagi", row: "TAGI", def: null, def2pos: { mean: 8.1, std: null } },
        { name: "tagi-no-kl", row: "w/o L_kl", def: { mean: 7, std: 0.5 }, def2pos: { mean: 8.2, std: null } },
      ]),
      [
        { label: "TAGI (all terms)", value: 8.1, group: "Def + 2 Pos" },
        { label: "w/o L_kl", value: 7, group: "Def", error: 0.5 },
        { label: "w/o L_kl", value: 8.2, group: "Def + 2 Pos" },
      ],
    );
    assert.deepEqual((ablationDeltaSpec(deltas.slice(0, 2), "t")!["facet"] as { column: { sort: string[] } }).column.sort, ["Def + 2 Pos"], "a format without deltas has no panel");
    // it renders (vega-lite compiles it; a spec error would throw here)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-fig-"));
    try {
      await writeFigure(spec, path.join(dir, "deltas"));
      assert.ok(fs.statSync(path.join(dir, "deltas.png")).size > 5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
