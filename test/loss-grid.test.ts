/**
 * The loss-weight grid (tagi loss-grid): its settings, and one tiny grid end to end, scored on the dev split,
 * compared with the config's weights instance by instance, and read back on a rerun without training again.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadSniSplit } from "../src/data/sni";
import { lossGridDirs, lossGridLabel, lossGridMarkdown, lossGridPoints, runLossGrid } from "../src/experiments/loss-grid";

describe("loss-weight grid on the dev split", function () {
  this.timeout(600_000);
  const defaults = { kl: 1, ins: 1, temperature: 2 };

  it("crosses the lists, adds the config's weights, runs λ1 = 0 once whatever T, and rejects bad values", () => {
    const p = lossGridPoints([0, 0.5], [1], [1, 2], defaults);
    assert.deepEqual(p, [
      { kl: 1, ins: 1, temperature: 2 },
      { kl: 0, ins: 1, temperature: 2 },
      { kl: 0.5, ins: 1, temperature: 1 },
      { kl: 0.5, ins: 1, temperature: 2 },
    ]);
    assert.equal(lossGridPoints([1], [1], [2], defaults).length, 1, "the default alone");
    assert.throws(() => lossGridPoints([1], [1], [0], defaults), /--temperature: 0 is not a positive number/);
    assert.throws(() => lossGridPoints([-1], [1], [2], defaults), /--kl: -1 is not a non-negative number/);
    assert.throws(() => lossGridPoints([], [1], [2], defaults), /--kl: give at least one value/);
    assert.equal(lossGridLabel({ kl: 0.5, ins: 0, temperature: 1 }, 300, 2), "kl0.5-ins0-T1-300steps-seed2");
  });

  it("trains each setting, scores it on dev tasks only, pairs it with the config's weights, and reads finished settings back", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-lossgrid-"));
    const prev = { runs: process.env.TAGI_RUNS_DIR, results: process.env.TAGI_RESULTS_DIR };
    process.env.TAGI_RUNS_DIR = path.join(tmp, "runs");
    process.env.TAGI_RESULTS_DIR = path.join(tmp, "results");
    try {
      const lines: string[] = [];
      const opts = { scale: "tiny", format: "def" as const, kl: [0], ins: [1], temperature: [2], seed: 0, steps: 3, parallel: 1, devInstancesPerTask: 2, command: "test", log: (l: string) => lines.push(l) };
      const r = await runLossGrid(opts);
      assert.equal(r.rows.length, 2, "the setting asked for and the config's weights");
      const [def, noKl] = [r.rows.find((x) => x.isDefault)!, r.rows.find((x) => !x.isDefault)!];
      assert.deepEqual([def.kl, def.ins, def.temperature, noKl.kl], [1, 1, 2, 0]);
      assert.equal(def.versusDefault, null);
      assert.ok(noKl.versusDefault && noKl.versusDefault.units === def.dev.instances && def.dev.instances > 0);
      assert.ok(def.dev.tasks > 0 && def.devCurve.length > 0 && def.trainSeconds > 0 && r.steps === 3);
      // Dev tasks only: every scored task is a training-pool task held out by the dev split, none a test task.
      const run = path.join(lossGridDirs("tiny", "def").runs, def.label);
      const preds = fs.readFileSync(path.join(run, "eval-dev", "predictions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { task: string });
      const devTasks = new Set((JSON.parse(fs.readFileSync(path.join(run, "run.json"), "utf8")) as { devTasks: string[] }).devTasks);
      const test = new Set((await loadSniSplit("test")).tasks.map((t) => t.name));
      assert.equal(preds.length, def.dev.instances);
      assert.ok(preds.every((p) => devTasks.has(p.task) && !test.has(p.task)), "only the tasks training held out, no test task");
      const dirs = lossGridDirs("tiny", "def");
      const saved = JSON.parse(fs.readFileSync(path.join(dirs.results, "grid.json"), "utf8")) as typeof r;
      assert.equal(saved.chosen.label, r.chosen.label);
      const md = fs.readFileSync(path.join(dirs.results, "README.md"), "utf8");
      assert.match(md, new RegExp(`Chosen on dev: \\*\\*${r.chosen.label}\\*\\*`));
      assert.equal(md, lossGridMarkdown(saved));
      // The rerun trains and evaluates nothing.
      lines.length = 0;
      const again = await runLossGrid(opts);
      assert.ok(!lines.some((l) => /: (training|evaluating)/.test(l)), lines.join("\n"));
      assert.deepEqual(again.rows.map((x) => [x.label, x.dev.rougeL, x.trainSeconds]), r.rows.map((x) => [x.label, x.dev.rougeL, x.trainSeconds]));
    } finally {
      for (const [k, v] of [["TAGI_RUNS_DIR", prev.runs], ["TAGI_RESULTS_DIR", prev.results]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
