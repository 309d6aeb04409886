// Builds the fused L_ce + L_kl TensorFlow ops (native/src/ce-kl.c -> native/tf-ops/build/Release/tagi_tf_ops.node)
// against the TensorFlow C library that scripts/setup-tensorflow.sh unpacked into tfjs-node's deps/ (the same
// libtensorflow_framework.so.2 the backend loads, so the ops land in its registry).
// Without tfjs-node there is nothing to build against: it says so and exits 0 (the composed losses are used).
// `--required` (CI, TAGI_REQUIRE_TENSORFLOW=1) makes a failed build an error.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const required = process.argv.includes("--required") || process.env.TAGI_REQUIRE_TENSORFLOW === "1";
const require = createRequire(import.meta.url);

function stop(msg, isFailure) {
  if (isFailure && required) {
    console.error(`[tagi] fused loss ops: build failed: ${msg}`);
    process.exit(1);
  }
  console.warn(`[tagi] fused loss ops not built: ${msg}\n[tagi] (L_ce and L_kl run as composed TensorFlow ops instead)`);
  process.exit(0);
}

const deps = ["tfjs-node", "tfjs-node-gpu"].map((p) => join(root, "node_modules", "@tensorflow", p, "deps")).find((d) => existsSync(join(d, "include", "tensorflow", "c", "kernels.h")));
if (!deps) stop("no tfjs-node with TensorFlow's C headers in node_modules (bash scripts/setup-tensorflow.sh installs it)", false);

let gyp = null;
try {
  gyp = require.resolve("node-gyp/bin/node-gyp.js");
} catch {
  stop("node-gyp not found (npm ci installs it)", true);
}
const args = [gyp, "rebuild"];
if (existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
const r = spawnSync(process.execPath, args, { cwd: join(here, "tf-ops"), encoding: "utf8", env: { ...process.env, TAGI_TF_DEPS: deps } });
if (r.status !== 0) {
  const tail = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-12).join("\n");
  stop(`node-gyp exited with ${r.status}\n${tail}`, true);
}
console.log(`[tagi] fused loss ops built: ${join(here, "tf-ops", "build", "Release", "tagi_tf_ops.node")} (against ${deps})`);
