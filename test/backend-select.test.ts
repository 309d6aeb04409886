/**
 * initBackend: forced and unknown backends, the TAGI_* environment variables, thread counts, stock versus
 * overridden wasm kernels, and a missing native GEMM add-on. Ends on wasm with default options, as the
 * other test files expect.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import {
  BACKENDS,
  currentBackend,
  describeBackend,
  initBackend,
  loadNativeGemm,
  nativeGemmInUse,
  wasmOverridesInstalled,
  WASM_OVERRIDES,
  type BackendInfo,
} from "../src/backend";
import { crossCheck, Rng } from "./helpers/crosscheck";

const ENV_VARS = ["TAGI_BACKEND", "TAGI_THREADS", "TAGI_NATIVE_GEMM", "TAGI_WASM_OVERRIDES", "TAGI_QUIET", "TAGI_NATIVE_GEMM_PATH"];
const savedEnv = new Map<string, string | undefined>();
const addon = loadNativeGemm();

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const old = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return fn().finally(() => {
    for (const [k, v] of old) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

/** Captures console.log/console.warn output while `fn` runs. */
async function captureConsole<T>(fn: () => Promise<T>): Promise<{ result: T; output: string }> {
  const lines: string[] = [];
  const { log, warn } = console;
  console.log = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  console.warn = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    const result = await fn();
    return { result, output: lines.join("\n") };
  } finally {
    console.log = log;
    console.warn = warn;
  }
}

/** A transposed, batched matMul, a fused matMul, a rank-5 slice and a gather gradient, against cpu. */
async function smokeAgainstCpu(label: string, withGatherGrad = true): Promise<void> {
  const rng = new Rng(900);
  const av = rng.normals(3 * 9 * 5);
  const bv = rng.normals(3 * 4 * 5);
  const xv = rng.normals(2 * 3 * 4 * 5 * 6);
  const ev = rng.normals(10 * 4);
  const ids = rng.ints(12, 0, 4);
  await crossCheck(
    () => {
      const a = tf.tensor(av, [3, 9, 5]);
      const b = tf.tensor(bv, [3, 4, 5]);
      return [
        tf.matMul(a, b, false, true),
        tf.fused.matMul({ a, b, transposeB: true, bias: tf.ones([4]), activation: "relu" }),
        tf.slice(tf.tensor(xv, [2, 3, 4, 5, 6]), [1, 0, 1, 2, 0], [1, 3, 2, 2, -1]),
        ...(withGatherGrad ? tf.grads((e: tf.Tensor) => tf.gather(e, tf.tensor1d(ids, "int32")))([tf.tensor2d(ev, [10, 4])]) : []),
      ];
    },
    { label },
  );
}

describe("backend selection (initBackend)", function () {
  before(() => {
    for (const k of ENV_VARS) {
      savedEnv.set(k, process.env[k]);
      delete process.env[k];
    }
  });

  after(async () => {
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    // Leave the process on the default backend for the test files that follow.
    const info = await initBackend({ log: false });
    assert.equal(tf.getBackend(), info.backend);
  });

  it("default (auto) picks the fastest backend available and says why", async () => {
    const info = await initBackend({ log: false });
    assert.ok((BACKENDS as readonly string[]).includes(info.backend));
    assert.equal(tf.getBackend(), info.backend);
    assert.notEqual(info.reason, "forced");
    assert.equal(currentBackend(), info);
    if (info.backend === "wasm") {
      // tfjs-node is not installed here: both packages are listed as tried.
      assert.ok(info.tried.some((t) => t.includes("@tensorflow/tfjs-node")), info.tried.join(" | "));
      assert.equal(info.reason, "native TensorFlow not installed");
      assert.ok(wasmOverridesInstalled());
      assert.deepEqual(info.overrides, WASM_OVERRIDES.map((c) => c.kernelName));
      assert.equal(info.nativeGemm.loaded, addon.status.loaded);
      assert.equal(info.nativeGemm.inUse, addon.status.loaded);
      assert.equal(nativeGemmInUse(), addon.status.loaded);
    }
  });

  it("unknown backend 'tpu': warns naming the value, falls back to auto, does not throw", async () => {
    const auto = await initBackend({ log: false });
    const { result: info, output } = await captureConsole(() => initBackend({ backend: "tpu" }));
    assert.equal(info.backend, auto.backend);
    assert.equal(tf.getBackend(), auto.backend);
    assert.notEqual(info.reason, "forced");
    const warning = info.tried.find((t) => t.includes("'tpu'"));
    assert.ok(warning, `no message naming 'tpu' in tried: ${info.tried.join(" | ")}`);
    assert.match(warning, /unknown backend 'tpu' \(backend option\); valid: auto, tensorflow, wasm, cpu/);
    assert.match(output, /unknown backend 'tpu'/, "the warning is printed when logging is on");
    // The warning belongs to that call only.
    const again = await initBackend({ log: false });
    assert.ok(!again.tried.some((t) => t.includes("'tpu'")));
  });

  it("backend 'cpu' forced: reports cpu, reason \"forced\"", async () => {
    const info = await initBackend({ backend: "cpu", log: false });
    assert.equal(info.backend, "cpu");
    assert.equal(info.reason, "forced");
    assert.equal(info.variant, "cpu (pure JS)");
    assert.equal(info.threads, 1);
    assert.deepEqual(info.overrides, []);
    assert.deepEqual(info.tried, []);
    assert.equal(info.nativeGemm.inUse, false);
    assert.equal(tf.getBackend(), "cpu");
    assert.match(describeBackend(info), /backend: cpu .*why: forced/);
    const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
    assert.deepEqual(Array.from(y.dataSync()), [3, 3, 3, 3]);
    y.dispose();
  });

  it("names are case-insensitive ('CPU')", async () => {
    const info = await initBackend({ backend: "CPU", log: false });
    assert.equal(info.backend, "cpu");
    assert.equal(info.reason, "forced");
  });

  it("TAGI_BACKEND is honoured, the backend option overrides it, and a bad value warns (from a fresh start)", async () => {
    await withEnv({ TAGI_BACKEND: "cpu" }, async () => {
      const info = await initBackend({ log: false });
      assert.equal(info.backend, "cpu");
      assert.equal(info.reason, "forced");
    });
    await withEnv({ TAGI_BACKEND: "wasm" }, async () => {
      const info = await initBackend({ backend: "cpu", log: false });
      assert.equal(info.backend, "cpu");
    });
    // The current backend is cpu, so this initialises the fallback for real (no cached result).
    await withEnv({ TAGI_BACKEND: "TPU" }, async () => {
      const info = await initBackend({ log: false });
      assert.notEqual(info.backend, "cpu");
      assert.equal(tf.getBackend(), info.backend);
      assert.ok(info.tried.some((t) => t.includes("unknown backend 'tpu' (TAGI_BACKEND)")), info.tried.join(" | "));
    });
  });

  it("TAGI_WASM_OVERRIDES=0 leaves the stock kernels, and they compute correctly", async () => {
    await withEnv({ TAGI_WASM_OVERRIDES: "0" }, async () => {
      const info = await initBackend({ backend: "wasm", log: false });
      assert.equal(info.backend, "wasm");
      assert.deepEqual(info.overrides, []);
      assert.match(info.variant, /stock kernels/);
      assert.equal(info.nativeGemm.inUse, false, "native GEMM goes through the overridden matMul only");
      assert.equal(nativeGemmInUse(), false);
      assert.equal(wasmOverridesInstalled(), false);
      for (const c of WASM_OVERRIDES) assert.notEqual(tf.getKernel(c.kernelName, "wasm"), c, `${c.kernelName} still overridden`);
      assert.equal(tf.getKernel(tf.UnsortedSegmentSum, "wasm"), undefined, "stock wasm has no UnsortedSegmentSum");
      // The stock kernels run on this (new) wasm module: straight away, with no backend switch first.
      // (No gather gradient: stock wasm has no UnsortedSegmentSum.)
      await smokeAgainstCpu("stock wasm kernels", false);
    });
  });

  it("re-enabling the overrides (TAGI_WASM_OVERRIDES=1, then unset) restores them", async () => {
    assert.equal(wasmOverridesInstalled(), false, "the previous test left stock kernels");
    await withEnv({ TAGI_WASM_OVERRIDES: "1" }, async () => {
      const info = await initBackend({ backend: "wasm", log: false });
      assert.equal(info.backend, "wasm");
      assert.ok(wasmOverridesInstalled());
      assert.deepEqual(info.overrides, WASM_OVERRIDES.map((c) => c.kernelName));
      assert.doesNotMatch(info.variant, /stock/);
      assert.equal(info.nativeGemm.inUse, addon.status.loaded);
      await smokeAgainstCpu("overridden kernels after re-enabling");
    });
    const info = await initBackend({ backend: "wasm", log: false });
    assert.ok(wasmOverridesInstalled());
    assert.equal(info.nativeGemm.inUse, addon.status.loaded);
  });

  it("an invalid TAGI_WASM_OVERRIDES value is an error that names it", async () => {
    await withEnv({ TAGI_WASM_OVERRIDES: "maybe" }, async () => {
      await assert.rejects(initBackend({ backend: "wasm", log: false }), /TAGI_WASM_OVERRIDES=maybe: expected 0 or 1/);
    });
  });

  it("the threads option is applied and reported (1 and 2), TAGI_THREADS too; an invalid count warns", async () => {
    const internalsThreads = () => (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } }).wasm.tfjs.getThreadsCount();
    for (const threads of [1, 2]) {
      const info = await initBackend({ backend: "wasm", threads, log: false });
      assert.equal(info.threads, threads);
      assert.equal(internalsThreads(), threads);
      assert.equal(info.variant, "wasm threaded-simd");
      assert.ok(describeBackend(info).includes(`(wasm threaded-simd, ${threads} thread${threads === 1 ? "" : "s"})`), describeBackend(info));
      if (addon.gemm) assert.equal(addon.gemm.getThreads(), threads, "OpenBLAS thread count");
      await smokeAgainstCpu(`wasm with ${threads} thread(s)`);
      if (threads === 1) {
        await withEnv({ TAGI_THREADS: "1" }, async () => {
          // Would re-initialise with all cores if TAGI_THREADS were ignored.
          const viaEnv = await initBackend({ backend: "wasm", log: false });
          assert.equal(viaEnv.threads, 1);
          assert.equal(internalsThreads(), 1);
        });
      }
    }
    const invalid = await initBackend({ backend: "wasm", threads: 0, log: false });
    assert.ok(invalid.tried.some((t) => t.includes("invalid thread count '0'")), invalid.tried.join(" | "));
    assert.equal(invalid.threads, Math.min(availableParallelism(), 8));
  });

  it("nativeGemm: false (and TAGI_NATIVE_GEMM=0) keep the add-on out; the wasm path works", async () => {
    const info = await initBackend({ backend: "wasm", nativeGemm: false, log: false });
    assert.equal(info.nativeGemm.inUse, false);
    assert.equal(info.nativeGemm.loaded, addon.status.loaded);
    assert.equal(nativeGemmInUse(), false);
    assert.ok(wasmOverridesInstalled());
    await smokeAgainstCpu("overrides without native GEMM");
    await withEnv({ TAGI_NATIVE_GEMM: "0" }, async () => {
      const viaEnv = await initBackend({ backend: "wasm", log: false });
      assert.equal(viaEnv.nativeGemm.inUse, false);
      assert.equal(nativeGemmInUse(), false);
    });
  });

  it("native GEMM add-on, when it loads, is reported with its path and OpenBLAS config", function () {
    if (!addon.gemm) {
      console.log(`      skipped: native GEMM add-on not loadable here (${addon.status.reason})`);
      this.skip();
    }
    assert.equal(addon.status.loaded, true);
    assert.match(addon.status.reason, /^loaded /);
    assert.ok(addon.status.path?.endsWith("tagi_gemm.node"));
    assert.match(addon.status.config ?? "", /OpenBLAS/);
  });

  it("a missing add-on gives nativeGemm.loaded=false with a reason, and wasm still works (child process)", async function () {
    this.timeout(60000);
    const dir = mkdtempSync(join(tmpdir(), "tagi-no-addon-"));
    const bogus = join(dir, "tagi_gemm.node");
    writeFileSync(bogus, "this is not a shared object\n");
    try {
      const child = join(__dirname, "helpers", "no-addon-child.ts");
      const env: NodeJS.ProcessEnv = { ...process.env, TAGI_NATIVE_GEMM_PATH: bogus };
      for (const k of ["TAGI_BACKEND", "TAGI_WASM_OVERRIDES", "TAGI_NATIVE_GEMM", "TAGI_THREADS"]) delete env[k];
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", child], {
        env,
        cwd: join(__dirname, ".."),
        maxBuffer: 16 * 1024 * 1024,
      });
      const line = stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
      assert.ok(line, `no JSON from the child; stdout:\n${stdout}`);
      const out = JSON.parse(line) as {
        info: BackendInfo;
        described: string;
        maxErr: number;
        overridesInstalled: boolean;
        nativeGemmInUse: boolean;
        defaultAddon: string;
      };
      assert.equal(out.info.backend, "wasm");
      assert.equal(out.info.nativeGemm.loaded, false);
      assert.equal(out.info.nativeGemm.inUse, false);
      assert.equal(out.nativeGemmInUse, false);
      const reason = out.info.nativeGemm.reason;
      assert.match(reason, /native GEMM add-on unavailable/);
      assert.ok(reason.includes(`${bogus} (failed to load`), reason);
      assert.ok(reason.includes(`${out.defaultAddon} (not built)`), reason);
      assert.match(reason, /npm run build:native/);
      assert.match(out.described, /native GEMM: off \(native GEMM add-on unavailable/);
      assert.ok(out.overridesInstalled);
      assert.ok(out.maxErr <= 1e-4, `matMul on the wasm path: max error ${out.maxErr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("ends on wasm with default options (for the files that follow)", async () => {
    const info = await initBackend({ log: false });
    assert.equal(tf.getBackend(), info.backend);
    if (info.backend === "wasm") assert.ok(wasmOverridesInstalled());
  });
});
