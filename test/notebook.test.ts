/**
 * notebooks/00_environment.ipynb runs top to bottom under the tslab kernel and prints what it should.
 *
 * Needs Jupyter (nbclient) and the kernel registered in the project (npm run kernel:install); without them
 * this test fails and says how to install them. TAGI_SKIP_NOTEBOOKS=1 skips it deliberately.
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BACKENDS } from "../src/backend";
import { allText, cellSource, projectRoot, runNotebook, streamText, type NotebookRun } from "./notebook-run";

const NOTEBOOK = "notebooks/00_environment.ipynb";

const sha256 = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

/** The JSON after `label = ` on a line of the notebook's output. */
function printedJson(text: string, label: string): unknown {
  const line = text.split("\n").find((l) => l.startsWith(`${label} = `));
  assert.ok(line !== undefined, `the notebook printed no line starting with '${label} = '`);
  return JSON.parse(line.slice(label.length + 3));
}

describe(`${NOTEBOOK} (tslab kernel)`, function () {
  this.timeout(180_000);
  let run: NotebookRun;
  let text = "";
  const committed = join(projectRoot, NOTEBOOK);
  let hashBefore = "";

  before(function () {
    if (process.env.TAGI_SKIP_NOTEBOOKS === "1") {
      console.log("      (skipped: TAGI_SKIP_NOTEBOOKS=1; unset it to run the notebooks under Jupyter)");
      this.skip();
    }
    hashBefore = sha256(committed);
    run = runNotebook(NOTEBOOK);
    text = allText(run.executed);
    const { kernelStartSeconds, totalSeconds } = run.summary;
    console.log(`      kernel start ${kernelStartSeconds?.toFixed(1)} s, whole notebook ${totalSeconds?.toFixed(1)} s`);
  });

  it("runs every code cell, with no error or stderr output", () => {
    assert.equal(run.summary.ok, true);
    assert.equal(run.summary.kernel, "tslab");
    const code = run.executed.cells.filter((c) => c.cell_type === "code");
    assert.ok(code.length >= 5, `expected at least 5 code cells, found ${code.length}`);
    assert.equal(run.summary.cells.length, code.length);
    for (const [i, cell] of code.entries()) {
      const where = `code cell ${i + 1}:\n${cellSource(cell)}`;
      assert.equal(run.summary.cells[i]?.status, "ok", `${where}\nstatus ${run.summary.cells[i]?.status}`);
      assert.equal(cell.execution_count, i + 1, `${where}\nwas not executed`);
      const errors = (cell.outputs ?? []).filter((o) => o.output_type === "error");
      assert.equal(errors.length, 0, `${where}\nhas error outputs: ${JSON.stringify(errors)}`);
      assert.equal(streamText(cell, "stderr"), "", `${where}\nwrote to stderr`);
    }
  });

  it("names a valid backend and says why", () => {
    const m = /^\[tagi\] backend: (\S+) \((.+?), (\d+) threads?\).*why: (.+)$/m.exec(text);
    assert.ok(m, `no '[tagi] backend: ...' line in the notebook's output:\n${text}`);
    const [, backend = "", , threads = ""] = m;
    assert.ok((BACKENDS as readonly string[]).includes(backend), `'${backend}' is not one of ${BACKENDS.join(", ")}`);
    assert.ok(Number(threads) >= 1);
    const forced = process.env.TAGI_BACKEND;
    if (forced && forced !== "auto" && forced !== "tensorflow") assert.equal(backend, forced);
    // The environment report names the same backend.
    assert.match(text, new RegExp(`"backend": "${backend} \\(`));
    assert.match(text, /"tfjs": "4\.22\.0"/);
  });

  it("computes the matMul and its gradient exactly", () => {
    assert.deepEqual(printedJson(text, "matMul(A, B)"), [
      [19, 22],
      [43, 50],
    ]);
    assert.deepEqual(printedJson(text, "dL/dA"), [
      [11, 15],
      [11, 15],
    ]);
    assert.deepEqual(printedJson(text, "dL/dB"), [
      [4, 4],
      [6, 6],
    ]);
    assert.match(text, /^leak check: ok$/m);
  });

  it("agrees with an independent computation on a larger product", () => {
    const m = /max relative error, diag\(X·Xᵀ\) vs rowsum\(X²\): (\S+)/.exec(text);
    assert.ok(m?.[1], "the larger check printed no relative error");
    const err = Number(m[1]);
    assert.ok(Number.isFinite(err) && err < 1e-4, `relative error ${m[1]} is not below 1e-4`);
  });

  it("prints the timing table", () => {
    for (const shape of ["[256×512]·[512×512]", "[256×512]·[512×2048]", "[256×2048]·[2048×512]"]) {
      assert.ok(text.includes(shape), `the table lacks the row ${shape}:\n${text}`);
    }
    assert.ok(text.includes("GFLOP/s"));
  });

  it("leaves the committed notebook untouched", () => {
    assert.equal(sha256(committed), hashBefore);
  });
});
