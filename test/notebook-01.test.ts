/**
 * notebooks/01b_t5_and_lora.ipynb runs top to bottom under tslab and shows what it claims: greedy decoding equal
 * to transformers, LoRA (unmerged, merged, per-example) equal to PEFT, a LoRA teacher whose loss falls.
 * Same requirements and TAGI_SKIP_NOTEBOOKS switch as test/notebook.test.ts.
 */
import { strict as assert } from "node:assert";
import { allText, cellSource, runNotebook, streamText, type NotebookRun } from "./notebook-run";

const NOTEBOOK = "notebooks/01b_t5_and_lora.ipynb";

describe(`${NOTEBOOK} (tslab kernel)`, function () {
  this.timeout(180_000);
  let run: NotebookRun;
  let text = "";

  before(function () {
    if (process.env.TAGI_SKIP_NOTEBOOKS === "1") {
      console.log("      (skipped: TAGI_SKIP_NOTEBOOKS=1)");
      this.skip();
    }
    run = runNotebook(NOTEBOOK);
    text = allText(run.executed);
  });

  it("runs every code cell without errors or stderr", () => {
    assert.equal(run.summary.ok, true);
    for (const cell of run.executed.cells.filter((c) => c.cell_type === "code")) {
      assert.equal((cell.outputs ?? []).filter((o) => o.output_type === "error").length, 0, cellSource(cell));
      assert.equal(streamText(cell, "stderr"), "", cellSource(cell));
    }
  });

  it("decodes greedily exactly as transformers.generate", () => {
    assert.match(text, /equal to transformers\.generate: true/);
  });

  it("applies LoRA unmerged, merged and per-example with PEFT's logits (max |Δ| < 1e-4)", () => {
    const diffs = [...text.matchAll(/│\s*\d\s*│\s*'[^']+'\s*│\s*([0-9.e-]+)\s*│/g)].map((m) => Number(m[1]));
    assert.equal(diffs.length, 3, `three rows in the table, got: ${text}`);
    for (const d of diffs) assert.ok(d < 1e-4, `logit difference ${d}`);
  });

  it("trains a LoRA teacher whose loss falls", () => {
    const line = text.split("\n").find((l) => l.startsWith("teacher losses = "));
    assert.ok(line, "teacher losses printed");
    const losses = JSON.parse(line.slice("teacher losses = ".length)) as number[];
    assert.equal(losses.length, 20);
    assert.ok(losses[19]! < losses[0]! - 1, `loss ${losses[0]} -> ${losses[19]}`);
  });
});
