// `npm run lab [-- JUPYTER_ARGS]`: opens notebooks/ in JupyterLab (or the classic Notebook where JupyterLab is
// not installed; scripts/setup.sh installs Debian's jupyter-notebook) with the project's TypeScript kernel.
// It sets JUPYTER_PATH to the project's kernel registry (.jupyter/, written by npm run kernel:install) and
// builds dist/ first when it is missing (notebooks `import * as tagi from "tagi"`, the built library).
// `--print-command` prints what it would run and exits.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { INSTALL_HINT, findJupyterPython, jupyterPath, root } from "./jupyter.mjs";

const args = process.argv.slice(2);
const printOnly = args.includes("--print-command");
const passThrough = args.filter((a) => a !== "--print-command");
if (!existsSync(join(jupyterPath, "kernels", "tslab", "kernel.json"))) {
  console.error(`[tagi] the TypeScript kernel is not registered in .jupyter/: run npm run kernel:install (or bash scripts/setup.sh).\n${INSTALL_HINT}`);
  process.exit(3);
}
let app = null;
for (const [module, name] of [["jupyterlab", "JupyterLab"], ["notebook", "Jupyter Notebook"]]) {
  const { python } = findJupyterPython([module]);
  if (python) {
    app = { python, module, name };
    break;
  }
}
if (!app) {
  console.error(
    "[tagi] neither JupyterLab nor the classic Notebook is installed for a Python this project finds.\n" +
      "  Debian/Ubuntu: sudo apt-get install jupyter-notebook   (scripts/setup.sh does)\n" +
      "  elsewhere:     python3 -m pip install jupyterlab\n" +
      "(set TAGI_JUPYTER_PYTHON=/path/to/python if it lives in another Python; see environment.md)",
  );
  process.exit(3);
}
// Jupyter refuses to start as root unless told; containers and CI machines often are root.
const asRoot = typeof process.getuid === "function" && process.getuid() === 0 && !passThrough.includes("--allow-root") ? ["--allow-root"] : [];
const command = [app.python, "-m", app.module, join(root, "notebooks"), ...asRoot, ...passThrough];
const env = { ...process.env, JUPYTER_PATH: [jupyterPath, process.env.JUPYTER_PATH].filter(Boolean).join(":") };
if (printOnly) {
  console.log(`JUPYTER_PATH=${env.JUPYTER_PATH} ${command.join(" ")}`);
  process.exit(0);
}
if (!existsSync(join(root, "dist", "index.js"))) {
  console.log("[tagi] dist/ is missing: building the library first (npm run build)");
  const b = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
console.log(`[tagi] starting ${app.name} on notebooks/ with the project's TypeScript kernel (tslab)`);
const child = spawn(command[0], command.slice(1), { cwd: root, stdio: "inherit", env });
// Ctrl-C or a kill of this process reaches the server too (it would otherwise outlive us on its port).
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
