// Registers the tslab TypeScript kernel (and its JavaScript twin, "jslab") inside the project, in
// .jupyter/share/jupyter/kernels/, never in the user's home. The kernel spec holds the absolute path of
// node_modules/.bin/tslab, so run this again after moving or re-cloning the checkout (CI does it each run).
// Then: JUPYTER_PATH="$PWD/.jupyter/share/jupyter" jupyter lab   (or npm run notebooks, which sets it).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { INSTALL_HINT, NEEDS, findJupyterPython, jupyterPath, jupyterPrefix, root, tslabBinary } from "./jupyter.mjs";

if (!existsSync(tslabBinary)) {
  console.error(`[tagi] ${relative(root, tslabBinary)} is missing: run npm ci first.`);
  process.exit(3);
}
const { python, tried } = findJupyterPython(NEEDS.install);
if (!python) {
  console.error(`[tagi] no Python with ${NEEDS.install.join(" + ")} found (tried: ${tried.join("; ")}).\n${INSTALL_HINT}`);
  process.exit(3);
}
const tslabCli = join(root, "node_modules", "tslab", "bin", "tslab");
const r = spawnSync(
  process.execPath,
  [tslabCli, "install", `--python=${python}`, `--binary=${tslabBinary}`, `--prefix=${jupyterPrefix}`],
  { cwd: root, encoding: "utf8" },
);
const log = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
const spec = join(jupyterPath, "kernels", "tslab", "kernel.json");
if (r.status !== 0 || !existsSync(spec)) {
  console.error(`[tagi] tslab install failed (exit ${r.status}):\n${log}`);
  process.exit(1);
}
const argv = JSON.parse(readFileSync(spec, "utf8")).argv;
console.log(`[tagi] registered Jupyter kernel 'tslab' (TypeScript) with ${python}: ${relative(root, spec)}`);
console.log(`[tagi]   starts: ${argv.join(" ")}`);
console.log(`[tagi]   use it: JUPYTER_PATH="${jupyterPath}" jupyter lab   (npm run notebooks sets it itself)`);
