// Shared by scripts/register-kernel.mjs and scripts/run-notebooks.mjs: where the project keeps its Jupyter
// kernel registry, and which Python has the Jupyter parts.
//
// Why a search for Python: `python3` on PATH may be another interpreter (pyenv, conda, a venv) than the
// one Jupyter is installed in (on Debian: /usr/bin/python3 with the python3-nbclient etc. packages).
// TAGI_JUPYTER_PYTHON names it explicitly.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The project's own Jupyter data dir; kernel specs go to <this>/kernels/<name>. Gitignored. */
export const jupyterPrefix = join(root, ".jupyter");
export const jupyterPath = join(jupyterPrefix, "share", "jupyter");
export const tslabBinary = join(root, "node_modules", ".bin", "tslab");

export const INSTALL_HINT = [
  "Install Jupyter's headless parts, then register the TypeScript kernel inside the project:",
  "  Debian/Ubuntu: sudo apt-get install jupyter-nbconvert python3-nbclient jupyter-client jupyter-core python3-ipython python3-ipykernel",
  "  elsewhere:     python3 -m pip install jupyter nbclient",
  "  then:          npm run kernel:install",
  "(set TAGI_JUPYTER_PYTHON=/path/to/python if Jupyter lives in another Python; see environment.md)",
].join("\n");

/** Modules each task needs: tslab's installer uses jupyter_client + IPython; the runner uses nbclient. */
export const NEEDS = {
  install: ["jupyter_client", "IPython"],
  run: ["nbclient", "nbformat", "jupyter_client"],
};

/**
 * The first Python that imports `modules`: $TAGI_JUPYTER_PYTHON if set (only that one), else
 * /usr/bin/python3, python3, python. Returns { python, tried } with python null when none does.
 */
export function findJupyterPython(modules) {
  const forced = process.env.TAGI_JUPYTER_PYTHON;
  const candidates = forced ? [forced] : ["/usr/bin/python3", "python3", "python"];
  const tried = [];
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", `import ${modules.join(", ")}`], { encoding: "utf8" });
    if (r.error) {
      tried.push(`${python}: ${r.error.code === "ENOENT" ? "not found" : r.error.message}`);
      continue;
    }
    if (r.status === 0) return { python, tried };
    const last = (r.stderr || "").trim().split("\n").pop() || `exit ${r.status}`;
    tried.push(`${python}: ${last}`);
  }
  return { python: null, tried };
}
