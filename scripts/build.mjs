// Compiles src/ to dist/ (CommonJS + .d.ts) with the project's own pinned TypeScript.
// Why a build at all: notebooks run under tslab, which compiles cells with its own settings and cannot
// compile the library's sources; it imports the built package "tagi" instead (see scripts/link-self.mjs).
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit", cwd: root });
if (r.status !== 0) {
  console.error("[tagi] build failed: TypeScript errors above (tsc -p tsconfig.build.json)");
  process.exit(r.status ?? 1);
}
// `npm install <pkg>` prunes the node_modules/tagi link that notebooks import through: restore it here,
// since every notebook run and test run builds first.
await import("./link-self.mjs");
