// The second pass of `npm test`: the library tests (every test file but the notebooks' and the few that use
// no backend of their own process) on the backend the
// first pass did not use. The first pass runs on what `auto` picks: tensorflow where scripts/setup-tensorflow.sh
// installed tfjs-node, else wasm. So with tfjs-node installed this pass runs wasm and both backends are tested;
// without it there is no second backend: said plainly, and an error under CI (CI=true), where setup must have
// installed it.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const check = spawnSync(process.execPath, [join(root, "scripts", "check-tensorflow.mjs")], { encoding: "utf8" });
const ci = ["1", "true"].includes((process.env.CI ?? "").toLowerCase());
if (check.status !== 0) {
  const why = (check.stderr || check.stdout).trim();
  if (ci) {
    console.error(`[test] CI: the tensorflow backend must be tested, but ${why}\n[test] scripts/setup.sh runs scripts/setup-tensorflow.sh; see its output above`);
    process.exit(1);
  }
  console.log(`[test] tensorflow backend not installed (${why}): the tests ran on wasm only. bash scripts/setup-tensorflow.sh installs it.`);
  process.exit(0);
}
// Not again: tests that use no tensor backend of this process (rendered notebooks in a browser, the packed
// package in another folder, the Jupyter server), and the Slurm executor's cluster test (the scheduling does
// not depend on the backend, and the backends' equality is what the other tests check).
const BACKEND_FREE = new Set(["browser.test.ts", "package.test.ts", "lab.test.ts", "slurm.test.ts"]);
const files = readdirSync(join(root, "test"))
  .filter((f) => f.endsWith(".test.ts") && !f.startsWith("notebook") && !BACKEND_FREE.has(f))
  .sort()
  .map((f) => join("test", f));
console.log(`[test] second pass: ${files.length} library test files on the wasm backend (the first pass ran on tensorflow)`);
const r = spawnSync(join(root, "node_modules", ".bin", "mocha"), ["--no-config", "--node-option", "import=tsx", "--timeout", "120000", "--reporter", "dot", ...files], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, TAGI_BACKEND: "wasm" },
});
process.exit(r.status ?? 1);
