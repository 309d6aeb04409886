/**
 * Scaling with the number of meta-training categories: the category restriction of meta-training and
 * finetuning (onlyCategories), the committed experiments' nested subsets, and the table's points and figure.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadTrainTasks, taskCategory } from "../src/data/sni";
import { loadExperiment } from "../src/experiments/runner";
import { scalingPoints, scalingSpec, SCALING_SERIES } from "../src/experiments/scaling";
import type { ExperimentSummary, Stat } from "../src/experiments/results-report";
import { onlyCategories, parseMetatrainConfig, trainAndDevTasks, METATRAIN_DEFAULTS } from "../src/train/metatrain";
import { writeFigure } from "../src/plots/render";

describe("scaling with the number of meta-training categories", function () {
  this.timeout(120_000);

  it("meta-training keeps only the named categories' tasks; an unknown category or a bad list is an error naming it", async () => {
    const { tasks } = await loadTrainTasks(undefined, "test");
    const split = trainAndDevTasks(tasks, METATRAIN_DEFAULTS.dev);
    const cats = [...new Set(split.train.map(taskCategory))];
    assert.equal(cats.length, 60, "the training tasks span the 60 categories the teachers cover");
    const kept = onlyCategories(split.train, cats.slice(0, 2), "metatrain");
    assert.ok(kept.length > 0 && kept.every((t) => cats.slice(0, 2).includes(taskCategory(t))));
    assert.equal(kept.length, split.train.filter((t) => cats.slice(0, 2).includes(taskCategory(t))).length);
    assert.throws(() => onlyCategories(split.train, ["Translation", "Astrology"], "metatrain"), /metatrain: config\.categories names category with no training task: Astrology \(known: /);
    assert.throws(() => parseMetatrainConfig({ base: "b", categories: [] }), /config\.categories must be null or a non-empty list/);
    assert.throws(() => parseMetatrainConfig({ base: "b", categories: "Translation" }), /config\.categories must be null or a non-empty list/);
    assert.deepEqual(parseMetatrainConfig({ base: "b", categories: ["Translation"] }).categories, ["Translation"]);
    assert.equal(parseMetatrainConfig({ base: "b" }).categories, null);
  });

  it("the committed scaling experiments use nested subsets of the training categories, and TAGI's run without L_kl", async () => {
    const { tasks } = await loadTrainTasks(undefined, "test");
    const cats = new Set(trainAndDevTasks(tasks, METATRAIN_DEFAULTS.dev).train.map(taskCategory));
    const subsets = new Map<number, string[]>();
    for (const n of [6, 15, 30]) {
      const tk = loadExperiment(`tk-instruct-categories-${n}`);
      const ta = loadExperiment(`tagi-categories-${n}`);
      const list = tk.stage!.set["categories"] as string[];
      assert.equal(list.length, n);
      assert.ok(list.every((c) => cats.has(c)), `${list.filter((c) => !cats.has(c))} are not training categories`);
      assert.deepEqual(ta.stage!.set["categories"], list, "TAGI and Tk-Instruct see the same categories");
      assert.equal(ta.stage!.set["losses.kl"], 0);
      assert.equal(tk.stage!.command, "metatrain");
      subsets.set(n, list);
    }
    assert.deepEqual(subsets.get(15)!.slice(0, 6), subsets.get(6));
    assert.deepEqual(subsets.get(30)!.slice(0, 15), subsets.get(15));
    for (const series of SCALING_SERIES) for (const p of series.points) loadExperiment(p.experiment);
  });

  it("points need two category counts of a method; the figure has one panel per format", async () => {
    const st = (mean: number): Stat => ({ mean, std: 0.5, n: 3, values: [mean - 0.5, mean, mean + 0.5] });
    const summary = (name: string, def2pos: number): ExperimentSummary => ({
      name, row: name, seeds: [0, 1, 2], def: null, def2pos: st(def2pos), nllDef: null, nllDef2pos: null, p3: null, p3Majority: null, p3Chance: null, p3Sample: null,
      flopsAt100: null, flopsAt100Def2pos: null, trainSeconds: null, evalSeconds: st(1),
    });
    assert.equal(scalingPoints(new Map([["tagi-categories-6", summary("tagi-categories-6", 5)]])), null);
    const points = scalingPoints(new Map([["tagi-categories-6", summary("tagi-categories-6", 5)], ["tagi-no-kl", summary("tagi-no-kl", 8)], ["tk-instruct", summary("tk-instruct", 9)]]))!;
    assert.deepEqual(points.map((p) => [p.method, p.categories, p.def2pos!.mean, p.paper]), [["TAGI (w/o L_kl)", 6, 5, 40.2], ["TAGI (w/o L_kl)", 60, 8, 42.5], ["Tk-Instruct", 60, 9, 42.1]]);
    const spec = scalingSpec(points, "t");
    const values = (spec["data"] as { values: Record<string, unknown>[] }).values;
    assert.deepEqual(values.map((v) => [v["panel"], v["categories"], v["lo"], v["hi"]]), [["Def + 2 Pos", 6, 4.5, 5.5], ["Def + 2 Pos", 60, 7.5, 8.5], ["Def + 2 Pos", 60, 8.5, 9.5]]);
    // each point says how many training seeds it averages (a one-seed point has no bar to show it)
    assert.deepEqual(values.map((v) => v["seedLabel"]), ["n=3", "n=3", "n=3"]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-scaling-"));
    try {
      await writeFigure(spec, path.join(dir, "scaling"));
      assert.ok(fs.statSync(path.join(dir, "scaling.png")).size > 5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
