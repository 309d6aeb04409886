/**
 * Notebooks 01–07 run top to bottom under tslab at the tiny scale (TAGI_SCALE=tiny) and show what they claim.
 * Experiment results go to a temporary folder (TAGI_RESULTS_DIR); the tiny shared stages to runs/tiny/.
 * Same requirements and TAGI_SKIP_NOTEBOOKS switch as test/notebook.test.ts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { allText, cellSource, runNotebook, streamText, type NotebookRun } from "./notebook-run";

const CHECKS: Record<string, { minPngs: number; expect: RegExp[]; html?: RegExp }> = {
  "01_data": { minPngs: 1, expect: [/train: 687 tasks/, /test: {2}103 tasks, 10210 instances, 0 skipped/, /tasks in both splits: 0/, /def\+2pos: instruction \d+ tokens/, /rte: \d+ examples, \d+ templates/] },
  "02_base_and_teachers": { minPngs: 2, expect: [/base: \d+ parameters/, /metatrain: \d+ parameters/, /\d+ teachers; mean last-10 loss [0-9.]+/] },
  "03_hypernetwork_pretraining": { minPngs: 1, expect: [/a \(instruction\): \S/, /b \(input\): +\S/, /step 1: loss [0-9.]+/, /\d+ adapted modules, rank \d+/] },
  "04_finetune_distillation": {
    minPngs: 2,
    html: /1 kept run\(s\), tiny scale.*dev ROUGE-L \[95% CI\].*<td[^>]*>[0-9.]+ \[[0-9.]+, [0-9.]+\]<\/td>/s,
    expect: [/losses\.kl must be a finite number >= 0, got -1/, /losses\.temperature must be a finite number > 0, got 0/, /step 10: ce [0-9.]+, kl [0-9.]+, ins [0-9.]+/, /finetuned 10 steps in \d+ s: ce1-kl1-ins1-T2-factors-10steps-seed0/, /predicted ".*" \| reference ".*"/],
  },
  "05_ablations": {
    minPngs: 1,
    html: /w\/o L_kl minus TAGI<\/td><td[^>]*>[+-][0-9.]+ \[-?[0-9.]+, -?[0-9.]+\], p = /,
    expect: [/no sensitivity series has its reference and another point yet at the tiny scale/, /no method has run on two category counts yet at the tiny scale/, /w\/o instruction fusion/, /w\/o L_kl\n +Def [0-9.]+.*\| Def\+2Pos .*\| NLL Δ [+-][0-9.]+ \/ –/, /paper \(XL\) 35\.1/, /L_ins as 1 − cosine to the teacher/, /ins last/, /unknown experiment 'tagi-no-such-thing'\. Known experiments: /],
  },
  "06_compute": { minPngs: 3, html: /Plotly\.newPlot\(.*"type":"bar".*"name":"TAGI"/s, expect: [/Tk-Instruct \(full\)/, /tagi +[0-9.]+ TFLOP {2}x0\.\d\d/, /generate one adapter: [0-9.]+ s; train one teacher: [0-9.]+ s/, /cosine, own teacher/, /Generated vs teacher/] },
  "07_p3_heldout": { minPngs: 1, expect: [/No FT +P3 accuracy [0-9.]+ \(1 seed\) \| chance [0-9.]+ \(1 seed\) \| majority class [0-9.]+/, /Mean teacher adapter +P3 accuracy/, /rte/] },
};

describe("notebooks 01–07 at the tiny scale (tslab kernel)", function () {
  this.timeout(900_000);
  const prev = { scale: process.env.TAGI_SCALE, results: process.env.TAGI_RESULTS_DIR, runs: process.env.TAGI_RUNS_DIR };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-nb-results-"));

  before(function () {
    if (process.env.TAGI_SKIP_NOTEBOOKS === "1") {
      console.log("      (skipped: TAGI_SKIP_NOTEBOOKS=1)");
      this.skip();
    }
    process.env.TAGI_SCALE = "tiny";
    process.env.TAGI_RESULTS_DIR = tmp;
    process.env.TAGI_RUNS_DIR = path.join(tmp, "runs"); // experiment and loss-weight runs start empty
  });
  after(() => {
    for (const [k, v] of [["TAGI_SCALE", prev.scale], ["TAGI_RESULTS_DIR", prev.results], ["TAGI_RUNS_DIR", prev.runs]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const [name, check] of Object.entries(CHECKS)) {
    it(`${name}: every cell runs without error or stderr, and it shows what it claims`, () => {
      const run: NotebookRun = runNotebook(`notebooks/${name}.ipynb`, { timeoutMs: 840_000 });
      console.log(`      ${name}: ${run.summary.totalSeconds?.toFixed(1)} s`);
      assert.equal(run.summary.ok, true);
      for (const cell of run.executed.cells.filter((c) => c.cell_type === "code")) {
        assert.equal((cell.outputs ?? []).filter((o) => o.output_type === "error").length, 0, cellSource(cell));
        assert.equal(streamText(cell, "stderr"), "", `stderr of:\n${cellSource(cell)}`);
      }
      const text = allText(run.executed);
      assert.match(text, /scale: tiny/);
      for (const re of check.expect) assert.match(text, re);
      const pngs = run.executed.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.["image/png"]).length;
      assert.ok(pngs >= check.minPngs, `${name}: ${pngs} figures, expected at least ${check.minPngs}`);
      if (check.html) {
        const html = run.executed.cells.flatMap((c) => c.outputs ?? []).map((o) => o.data?.["text/html"]).filter(Boolean).map((h) => (Array.isArray(h) ? h.join("") : h)).join("");
        assert.match(html, check.html);
      }
    });
  }
});
