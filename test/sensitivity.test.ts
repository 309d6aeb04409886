/**
 * Sensitivity (learning rate, LoRA rank): the committed rank experiments parse into finetune configs with
 * their own rank, alpha = rank, no stage 1 and L_ins on s·A·B; each series' points put its reference first
 * and need it; the figure renders one panel per parameter.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadExperiment, loadScale, PROJECT_ROOT, setStrings, stageSets } from "../src/experiments/runner";
import { SENSITIVITY_SERIES, sensitivityPoints, sensitivitySpec } from "../src/experiments/sensitivity";
import type { ExperimentSummary, Stat } from "../src/experiments/results-report";
import { applySets } from "../src/train/config-sets";
import { parseFinetuneConfig } from "../src/tagi/finetune-config";
import { writeFigure } from "../src/plots/render";

describe("sensitivity: learning rate and LoRA rank", function () {
  this.timeout(120_000);

  it("the rank experiments set rank and alpha together, start without stage 1 and align on s·A·B; every series' experiment exists", () => {
    for (const scale of ["tiny", "small"]) {
      const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale, "finetune.json"), "utf8")) as Record<string, unknown>;
      for (const r of [16, 32, 64]) {
        const spec = loadExperiment(`tagi-rank-${r}`);
        assert.equal(spec.table, "sensitivity");
        const c = parseFinetuneConfig(applySets(raw, setStrings(stageSets(spec, loadScale(scale), "def+2pos", 0))));
        assert.deepEqual([c.tagi.hypernetwork.rank, c.tagi.hypernetwork.alpha, c.init, c.losses.alignment, c.losses.ins > 0], [r, r, null, "product", true], `${scale} rank ${r}`);
      }
    }
    for (const series of SENSITIVITY_SERIES) {
      assert.ok(series.points.some((p) => p.experiment === series.reference), `${series.parameter}: the reference is one of its points`);
      for (const p of series.points) loadExperiment(p.experiment);
    }
  });

  it("points put the reference first and need it and one other point; the figure has a panel per parameter", async () => {
    const st = (mean: number): Stat => ({ mean, std: 0.5, n: 3, values: [mean - 0.5, mean, mean + 0.5] });
    const summary = (name: string, def2pos: number): ExperimentSummary => ({
      name, row: name, seeds: [0, 1, 2], def: null, def2pos: st(def2pos), nllDef: null, nllDef2pos: null, p3: null, p3Majority: null, p3Chance: null, p3Sample: null,
      flopsAt100: null, flopsAt100Def2pos: null, trainSeconds: null, evalSeconds: st(1),
    });
    const [lr, rank] = SENSITIVITY_SERIES as [(typeof SENSITIVITY_SERIES)[0], (typeof SENSITIVITY_SERIES)[0]];
    const runs = new Map([["tagi-rank-16", summary("tagi-rank-16", 7)], ["tagi-rank-64", summary("tagi-rank-64", 8)], ["tagi", summary("tagi", 9)], ["tagi-lr-1e-3", summary("tagi-lr-1e-3", 6)]]);
    assert.equal(sensitivityPoints(rank, runs), null, "no rank-32 reference: nothing to compare with");
    assert.equal(sensitivityPoints(lr, new Map([["tagi", summary("tagi", 9)]])), null, "the reference alone");
    const lrPoints = sensitivityPoints(lr, runs)!;
    assert.deepEqual(lrPoints.map((p) => [p.experiment, p.value, p.isReference, p.paper]), [["tagi", 5e-4, true, null], ["tagi-lr-1e-3", 1e-3, false, 39.7]]);
    runs.set("tagi-rank-32", summary("tagi-rank-32", 7.5));
    const rankPoints = sensitivityPoints(rank, runs)!;
    assert.deepEqual(rankPoints.map((p) => [p.value, p.isReference, p.paper]), [[32, true, 42.5], [16, false, 41.8], [64, false, 42.3]]);
    const spec = sensitivitySpec([lrPoints, rankPoints], "t");
    const panels = spec["hconcat"] as { data: { values: Record<string, unknown>[] } }[];
    assert.equal(panels.length, 2);
    assert.deepEqual(panels[1]!.data.values.map((v) => [v["value"], v["rougeL"], v["lo"], v["reference"]]), [[32, 7.5, 7, "reference"], [16, 7, 6.5, "variant"], [64, 8, 7.5, "variant"]]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-sensitivity-"));
    try {
      await writeFigure(spec, path.join(dir, "sensitivity"));
      assert.ok(fs.statSync(path.join(dir, "sensitivity.png")).size > 5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
