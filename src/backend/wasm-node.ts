/**
 * The wasm backend with threads, in Node.
 *
 * Stock tfjs-backend-wasm reports no thread support under Node (its pthread worker is handed over as a
 * `blob:` URL, which Node's Worker rejects) and otherwise sizes the pool at half the logical cores. Here the
 * threaded SIMD build is instantiated directly: the worker source is written to a file Node can start, the
 * main script is passed by path, and the thread count is ours to set. The result is the stock BackendWasm
 * class, registered under the name "wasm", so every stock wasm kernel (and our overrides) applies.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { BackendWasm, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";

type Factory = (config: Record<string, unknown>) => Promise<Record<string, unknown>>;

function wasmOutDir(): string {
  const pkg = require.resolve("@tensorflow/tfjs-backend-wasm/package.json");
  return join(dirname(pkg), "wasm-out");
}

/** Writes the pthread worker source once per content hash (atomic rename) and returns its path. */
function workerFile(source: string): string {
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), "tagi-wasm");
  const path = join(dir, `tfjs-wasm-worker-${hash}.js`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, source);
    renameSync(tmp, path);
  }
  return path;
}

export interface ThreadedWasm {
  backend: BackendWasm;
  threads: number;
}

/** Instantiates the threaded SIMD wasm module with `threads` threads (>= 1) and wraps it in BackendWasm. */
export async function createThreadedWasmBackend(threads: number): Promise<ThreadedWasm> {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`tagi backend: threads must be a positive integer, got ${threads}`);
  const dir = wasmOutDir();
  const factoryPath = join(dir, "tfjs-backend-wasm-threaded-simd.js");
  const wasmPath = join(dir, "tfjs-backend-wasm-threaded-simd.wasm");
  for (const f of [factoryPath, wasmPath]) {
    if (!existsSync(f)) throw new Error(`tagi backend: wasm file missing: ${f} (reinstall @tensorflow/tfjs-backend-wasm)`);
  }
  const { wasmWorkerContents } = require(join(dir, "tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };
  // The source holds "\n" escapes that became real newlines inside a template literal; escape them back,
  // as tfjs does before making its Blob.
  const worker = workerFile(wasmWorkerContents.replace(/\n/g, "\\n"));
  const factory = require(factoryPath) as Factory;
  // The C++ side caps the pool at min(requested, logical cores / 2, 8), reading the core count from
  // os.cpus() once, during static initialisation. Report 2x the requested threads for that moment only,
  // so the cap is the caller's choice (the pool has 8 pre-spawned workers, hence the upper bound).
  const wanted = Math.min(threads, 8);
  const os = require("node:os") as { cpus: () => unknown[] }; // the mutable CommonJS module object
  const realCpus = os.cpus;
  os.cpus = () => Array.from({ length: 2 * wanted }, (_, i) => realCpus()[i % realCpus().length]!);
  let wasm: Record<string, unknown>;
  try {
    wasm = await factory({
    locateFile: (path: string, prefix: string) => {
      if (path.endsWith(".worker.js")) return worker;
      if (path.endsWith(".wasm")) return wasmPath;
      return prefix + path;
    },
    // A path, not a Blob: the worker evaluates this file to get the module factory.
    mainScriptUrlOrBlob: factoryPath,
    wasmBinary: readFileSync(wasmPath),
  });
  } finally {
    os.cpus = realCpus;
  }
  const cwrap = wasm.cwrap as (n: string, r: string | null, a: string[]) => unknown;
  wasm.tfjs = {
    init: cwrap("init", null, []),
    initWithThreadsCount: cwrap("init_with_threads_count", null, ["number"]),
    getThreadsCount: cwrap("get_threads_count", "number", []),
    registerTensor: cwrap("register_tensor", null, ["number", "number", "number"]),
    disposeData: cwrap("dispose_data", null, ["number"]),
    dispose: cwrap("dispose", null, []),
  };
  setThreadsCount(wanted);
  const backend = new BackendWasm(wasm as never);
  const actual = (wasm.tfjs as { getThreadsCount: () => number }).getThreadsCount();
  // The pool's pthreads (started just now, by the constructor's init) are ref'd Node workers: they would
  // keep the process alive forever after the script's work is done (a test runner or script never exits).
  // They only serve kernels the main thread waits for synchronously, so they need not hold the event loop.
  const pthread = wasm.PThread as { runningWorkers?: { unref?: () => void }[] } | undefined;
  for (const w of pthread?.runningWorkers ?? []) w.unref?.();
  return { backend, threads: actual };
}

/** Registers `backend` as tfjs's "wasm" backend (replacing the stock factory) and makes it current. */
export async function useWasmBackend(backend: BackendWasm, priority = 3): Promise<void> {
  // findBackendFactory, not findBackend: findBackend would start initialising the stock wasm factory (a
  // second, single-threaded module) whose pending promise later lands in tfjs's registry under "wasm".
  if (tf.findBackendFactory("wasm")) tf.removeBackend("wasm");
  tf.registerBackend("wasm", () => backend, priority);
  if (!(await tf.setBackend("wasm"))) throw new Error("tagi backend: tfjs refused the threaded wasm backend");
}
