// Full-page screenshots of every notebook's committed outputs as Chromium shows them offline, for a person to
// look at, with what test/browser.test.ts checks printed per notebook.
//   npm run notebooks:screenshots                 -> scratch/notebook-screenshots/<name>.png
//   npm run notebooks:screenshots -- --out DIR    (notebooks may be named after the options)
import * as fs from "node:fs";
import * as path from "node:path";
import { inspectNotebooks } from "../test/helpers/notebook-browser";

const args = process.argv.slice(2);
const outAt = args.indexOf("--out");
const out = path.resolve(outAt >= 0 ? args[outAt + 1]! : "scratch/notebook-screenshots");
const named = args.filter((a, i) => a.endsWith(".ipynb") && (outAt < 0 || i !== outAt + 1));
const notebooks = named.length ? named.map((n) => path.resolve(n)) : fs.readdirSync("notebooks").filter((f) => f.endsWith(".ipynb")).sort().map((f) => path.resolve("notebooks", f));
void (async () => {
  const reports = await inspectNotebooks(notebooks, { htmlDir: path.join(out, "html"), screenshotDir: out });
  for (const r of reports) {
    console.log(`${path.basename(r.notebook)}: ${r.images} images, ${r.plotlyPlots} plotly, ${r.tables} tables${r.blockedRequests.length ? `, ${r.blockedRequests.length} network requests refused` : ""} -> ${path.relative(process.cwd(), r.screenshot!)}`);
    for (const p of r.problems) console.log(`  problem: ${p}`);
  }
  process.exitCode = reports.some((r) => r.problems.length) ? 1 : 0;
})();
