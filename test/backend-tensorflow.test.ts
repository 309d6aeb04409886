/**
 * The native TensorFlow backend (tfjs-node built by scripts/setup-tensorflow.sh): what initBackend does that
 * only applies there. The rest of the suite runs on it in `npm test`'s first pass (auto picks it when
 * installed), so model numerics, LoRA, TAGI, both stages and the notebooks are covered on it by the same tests
 * as on wasm. Where tfjs-node is not installed these tests say so and are skipped, except under CI=true, where
 * setup must have installed it.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = join(__dirname, "..");

function installed(): boolean {
  return spawnSync(process.execPath, [join(root, "scripts", "check-tensorflow.mjs")], { encoding: "utf8" }).status === 0;
}

/** Starts a fresh process that initialises the backend and prints what TensorFlow was given. */
function probe(env: Record<string, string>): { info: { backend: string; variant: string; threads: number }; tfEnv: Record<string, string | undefined>; stderr: string } {
  const code = `
    const { initBackend } = require("./src/backend");
    initBackend({ log: false }).then((info) => {
      const tfEnv = Object.fromEntries(["TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_CPP_MIN_LOG_LEVEL"].map((k) => [k, process.env[k]]));
      const tf = require("@tensorflow/tfjs-core");
      const s = tf.sum(tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]))).dataSync()[0];
      console.log(JSON.stringify({ info, tfEnv, s }));
    });`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TF_") && !k.startsWith("TAGI_")));
  const r = spawnSync(process.execPath, ["--import", "tsx", "-e", code], { cwd: root, encoding: "utf8", env: { ...clean, ...env } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { info: { backend: string; variant: string; threads: number }; tfEnv: Record<string, string | undefined>; s: number };
  assert.equal(out.s, 64 * 64 * 64, "a matMul on the backend");
  return { ...out, stderr: r.stderr };
}

describe("the native TensorFlow backend (tfjs-node)", function () {
  this.timeout(120_000);
  before(function () {
    if (installed()) return;
    if (["1", "true"].includes((process.env.CI ?? "").toLowerCase())) assert.fail("CI: tfjs-node is not installed (scripts/setup-tensorflow.sh must have built it)");
    console.log("      (tfjs-node not installed: bash scripts/setup-tensorflow.sh; skipped)");
    this.skip();
  });

  it("auto picks it; TensorFlow's intra-op pool follows TAGI_THREADS, inter-op is 1, its info logs stay off stderr", () => {
    const p = probe({ TAGI_THREADS: "3" });
    assert.equal(p.info.backend, "tensorflow");
    assert.equal(p.info.variant, "tfjs-node");
    assert.deepEqual(p.tfEnv, { TF_NUM_INTRAOP_THREADS: "3", TF_NUM_INTEROP_THREADS: "1", TF_CPP_MIN_LOG_LEVEL: "2" });
    // without the log level, TensorFlow 2.16 prints its oneDNN and CPU-feature notices here
    assert.doesNotMatch(p.stderr, /oneDNN|cpu_feature_guard/);
  });

  it("TensorFlow's own variables, set by the user, are kept", () => {
    const p = probe({ TAGI_THREADS: "2", TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "2", TF_CPP_MIN_LOG_LEVEL: "0" });
    assert.deepEqual(p.tfEnv, { TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "2", TF_CPP_MIN_LOG_LEVEL: "0" });
    assert.match(p.stderr, /oneDNN|cpu_feature_guard/, "log level 0 lets TensorFlow's notices through");
  });

  it("the binding runs the pinned TensorFlow (2.16.2, without the int32 round bug of 2.17)", () => {
    const r = spawnSync(process.execPath, [join(root, "scripts", "check-tensorflow.mjs"), "@tensorflow/tfjs-node", "2.16.2"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /works: @tensorflow\/tfjs-node 4\.22\.0 on TensorFlow 2\.16\.2/);
    const wrong = spawnSync(process.execPath, [join(root, "scripts", "check-tensorflow.mjs"), "@tensorflow/tfjs-node", "2.17.0"], { encoding: "utf8" });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /runs TensorFlow 2\.16\.2, not the pinned 2\.17\.0/);
  });
});

describe("scripts/setup-gpu.sh without an NVIDIA driver", function () {
  this.timeout(60_000);
  it("stops with a clear message and installs nothing", function () {
    if (existsSync("/proc/driver/nvidia/version")) this.skip(); // a GPU machine: the real install is not a unit test
    const r = spawnSync("bash", [join(root, "scripts", "setup-gpu.sh")], { cwd: root, encoding: "utf8", env: { ...process.env, TAGI_CACHE: join(root, "node_modules", ".cache-never-written") } });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /tfjs-node-gpu NOT installed: no NVIDIA CUDA driver on this machine/);
    assert.match(r.stdout, /use bash scripts\/setup-tensorflow\.sh \(CPU\)/);
    assert.ok(!existsSync(join(root, "node_modules", "@tensorflow", "tfjs-node-gpu")), "nothing installed");
    assert.ok(!existsSync(join(root, "node_modules", ".cache-never-written")), "nothing downloaded");
  });
});
