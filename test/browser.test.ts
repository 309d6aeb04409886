/**
 * Every notebook's committed outputs, rendered by nbconvert and opened in headless Chromium with the network
 * refused (test/helpers/notebook-browser.ts): no error output, no image that fails to load or shows no data,
 * every plotly plot drawn offline, nothing wider than the page, no absolute path of the machine that ran it.
 * Needs Debian's `chromium` (scripts/setup.sh installs it); skipped without it, except under CI=true.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chromiumPath, inspectNotebooks } from "./helpers/notebook-browser";
import { PROJECT_DIR } from "../src/project-paths";

describe("notebooks in a real browser (committed outputs, offline)", function () {
  this.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-browser-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("every notebook renders without errors, empty figures, undrawn plots, overflow or machine paths", async function () {
    if (!chromiumPath()) {
      if (process.env.CI === "true") assert.fail("no Chromium: scripts/setup.sh installs Debian's chromium");
      this.skip();
    }
    const notebooks = fs.readdirSync(path.join(PROJECT_DIR, "notebooks")).filter((f) => f.endsWith(".ipynb")).sort().map((f) => path.join(PROJECT_DIR, "notebooks", f));
    const reports = await inspectNotebooks(notebooks, { htmlDir: tmp });
    assert.equal(reports.length, notebooks.length);
    const problems = reports.flatMap((r) => r.problems.map((p) => `${path.basename(r.notebook)}: ${p}`));
    assert.deepEqual(problems, []);
    // the plotly notebook really draws (offline) and tables really are tables
    assert.ok(reports.some((r) => r.plotlyPlots > 0), "no notebook has a plotly plot to check");
    assert.ok(reports.some((r) => r.tables > 0), "no notebook has an HTML table to check");
  });
});
