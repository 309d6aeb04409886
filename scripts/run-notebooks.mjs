// Runs notebooks top to bottom under their Jupyter kernel (tslab), headlessly, and saves their outputs.
//
//   node scripts/run-notebooks.mjs                       every notebooks/*.ipynb, outputs saved in place
//   node scripts/run-notebooks.mjs notebooks/00_x.ipynb  only those named
//   node scripts/run-notebooks.mjs --output-dir DIR      executed copies (and <name>.summary.json) in DIR;
//                                                        the originals stay untouched
//   --timeout SECONDS                                    per cell (default 600)
//
// Each notebook runs with its kernel's working directory in notebooks/ (also for copies), so `import ...
// from "tagi"` resolves the same way. Build the library first (npm run build): notebooks import dist/.
// Exit status: 0 all ran; 1 a cell failed; 3 Jupyter or the kernel is not installed (message says how).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { INSTALL_HINT, NEEDS, findJupyterPython, root } from "./jupyter.mjs";

const args = process.argv.slice(2);
let outputDir = null;
let timeout = null;
const notebooks = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--output-dir") outputDir = resolve(args[++i] ?? "");
  else if (a === "--timeout") timeout = args[++i];
  else if (a === "-h" || a === "--help") {
    console.log("usage: node scripts/run-notebooks.mjs [--output-dir DIR] [--timeout SECONDS] [NOTEBOOK.ipynb ...]");
    process.exit(0);
  } else if (a.startsWith("-")) {
    console.error(`[tagi] unknown option ${a}`);
    process.exit(2);
  } else notebooks.push(resolve(a));
}
if (notebooks.length === 0) {
  const dir = join(root, "notebooks");
  notebooks.push(...readdirSync(dir).filter((f) => f.endsWith(".ipynb")).sort().map((f) => join(dir, f)));
}
for (const nb of notebooks) {
  if (!existsSync(nb)) {
    console.error(`[tagi] no such notebook: ${nb}`);
    process.exit(2);
  }
}
if (!existsSync(join(root, "dist", "index.js"))) {
  console.error("[tagi] dist/ is missing: run npm run build first (notebooks import the built package \"tagi\").");
  process.exit(1);
}
const { python, tried } = findJupyterPython(NEEDS.run);
if (!python) {
  console.error(`[tagi] no Python with ${NEEDS.run.join(" + ")} found (tried: ${tried.join("; ")}).\n${INSTALL_HINT}`);
  process.exit(3);
}
if (outputDir) mkdirSync(outputDir, { recursive: true });

const failed = [];
let worst = 0;
for (const nb of notebooks) {
  const name = basename(nb, ".ipynb");
  const pyArgs = [join(root, "scripts", "nbrun.py"), nb, "--cwd", dirname(nb)];
  if (outputDir) pyArgs.push("--output", join(outputDir, `${name}.ipynb`), "--summary", join(outputDir, `${name}.summary.json`));
  if (timeout) pyArgs.push("--timeout", timeout);
  console.log(`[tagi] running ${relative(root, nb)}`);
  const r = spawnSync(python, pyArgs, { cwd: root, stdio: "inherit" });
  const code = r.status ?? 4;
  if (code !== 0) {
    failed.push(`${relative(root, nb)} (exit ${code})`);
    if (worst === 0 || code === 3) worst = code;
    if (code === 3) break; // no Jupyter or no kernel: the others would fail the same way
  }
}
if (failed.length) {
  console.error(`[tagi] notebooks failed: ${failed.join(", ")}`);
  process.exit(worst);
}
console.log(`[tagi] ${notebooks.length} notebook${notebooks.length === 1 ? "" : "s"} ran without errors`);
