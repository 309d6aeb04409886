// Builds the optional native GEMM add-on (native/build/Release/tagi_gemm.node) with node-gyp against OpenBLAS.
// `--optional` never fails: when OpenBLAS or a compiler is missing,
// it says so and the library falls back to the wasm GEMM path at run time.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const optional = process.argv.includes("--optional");
const require = createRequire(import.meta.url);

function fail(msg) {
  if (optional) {
    console.warn(`[tagi] native GEMM add-on not built: ${msg}\n[tagi] (optional: the wasm GEMM path is used instead)`);
    process.exit(0);
  }
  console.error(`[tagi] native GEMM add-on build failed: ${msg}`);
  process.exit(1);
}

if (process.env.TAGI_SKIP_NATIVE === "1") fail("TAGI_SKIP_NATIVE=1");
const headers = ["/usr/include/x86_64-linux-gnu/cblas.h", "/usr/include/cblas.h", "/usr/include/openblas/cblas.h"];
if (!headers.some((h) => existsSync(h))) {
  fail("OpenBLAS headers not found (Debian/Ubuntu: apt-get install libopenblas-dev)");
}

let gyp = null;
for (const candidate of [
  () => require.resolve("node-gyp/bin/node-gyp.js"),
  () => join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
]) {
  try {
    const p = candidate();
    if (existsSync(p)) {
      gyp = p;
      break;
    }
  } catch {
    /* try the next location */
  }
}
if (!gyp) fail("node-gyp not found");

// Node's headers: use the system's copy when present, because node-gyp would otherwise download them.
const args = [gyp, "rebuild"];
if (existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
const r = spawnSync(process.execPath, args, { cwd: here, stdio: optional ? "pipe" : "inherit", encoding: "utf8" });
if (r.status !== 0) {
  const tail = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-8).join("\n");
  fail(`node-gyp exited with ${r.status}${tail ? `\n${tail}` : ""}`);
}
console.log(`[tagi] native GEMM add-on built: ${join(here, "build", "Release", "tagi_gemm.node")}`);
