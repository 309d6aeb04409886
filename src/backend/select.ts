/**
 * Choosing the tensor backend at start-up: the fastest one that works here, said out loud.
 *
 * Order for "auto": native TensorFlow (tfjs-node-gpu, then tfjs-node) when installed; else wasm (threaded
 * SIMD in Node, with the project's kernel overrides and, when it loads, the OpenBLAS GEMM add-on); else
 * the pure-JS cpu backend. `backend` in the options or TAGI_BACKEND forces one; TAGI_THREADS,
 * TAGI_NATIVE_GEMM=0 and TAGI_WASM_OVERRIDES=0 tune the wasm path (the last gives stock wasm, for
 * comparisons).
 */
import { availableParallelism } from "node:os";
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradients; the @tensorflow/tfjs bundle does (its CommonJS build, which plain
// Node and tslab can load: tfjs-core's own register_all_gradients is ES-module-only). Training needs them.
import "@tensorflow/tfjs";
import { registerGradientFixes } from "./gradients";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { installWasmOverrides, removeWasmOverrides } from "./kernels/register";
import { setNativeGemm } from "./kernels/matmul";
import { loadNativeGemm, type NativeGemmStatus } from "./native-gemm";
import { createThreadedWasmBackend, useWasmBackend } from "./wasm-node";
import { envPrecision, setMatMulPrecision, PRECISIONS, type Precision, type PrecisionStatus } from "./bf16-matmul";
import { enableFusedLoss, type FusedLossStatus } from "./fused-ce-kl";

registerGradientFixes(); // after @tensorflow/tfjs registered its own gradients

export const BACKENDS = ["tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = "auto" | BackendName;

export interface BackendOptions {
  /** "auto" (default), "tensorflow", "wasm" or "cpu". Env: TAGI_BACKEND. */
  backend?: string;
  /** Threads for wasm and OpenBLAS; default all cores. Env: TAGI_THREADS. */
  threads?: number;
  /** Use the OpenBLAS add-on for matMul on wasm when it loads (default true). Env: TAGI_NATIVE_GEMM=0|1. */
  nativeGemm?: boolean;
  /** Install the project's wasm kernel overrides (default true). Env: TAGI_WASM_OVERRIDES=0|1. */
  overrides?: boolean;
  /** Matrix products in float32 (default) or bf16 (tensorflow backend on a CPU with bf16 instructions; see bf16-matmul.ts). Env: TAGI_PRECISION. */
  precision?: Precision;
  /** Print the choice (default true). Env: TAGI_QUIET=1 silences. */
  log?: boolean;
}

export interface BackendInfo {
  backend: BackendName;
  /** Which build of it, e.g. "tfjs-node", "wasm threaded-simd", "wasm simd (single thread)". */
  variant: string;
  /** Why this backend, in words. */
  reason: string;
  threads: number;
  /** Kernels replaced on wasm (empty elsewhere). */
  overrides: string[];
  nativeGemm: NativeGemmStatus & { inUse: boolean };
  /** The precision of matrix products: requested, in use, and why. */
  precision: PrecisionStatus;
  /** Whether L_ce (and the cached L_kl) run as the fused TensorFlow ops (src/backend/fused-ce-kl.ts), and why. */
  fusedLoss: FusedLossStatus;
  /** Every option tried before this one and why it was not taken. */
  tried: string[];
}

let current: { key: string; info: BackendInfo } | null = null;

function envFlag(name: string): boolean | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  if (["1", "true", "yes", "on"].includes(v.toLowerCase())) return true;
  if (["0", "false", "no", "off"].includes(v.toLowerCase())) return false;
  throw new Error(`${name}=${v}: expected 0 or 1`);
}

function resolveOptions(options: BackendOptions) {
  const warnings: string[] = [];
  let requested = (options.backend ?? process.env.TAGI_BACKEND ?? "auto").toLowerCase();
  if (requested !== "auto" && !(BACKENDS as readonly string[]).includes(requested)) {
    const source = options.backend !== undefined ? "backend option" : "TAGI_BACKEND";
    warnings.push(`unknown backend '${requested}' (${source}); valid: auto, ${BACKENDS.join(", ")}. Falling back to auto.`);
    requested = "auto";
  }
  let threads = options.threads ?? (process.env.TAGI_THREADS ? Number(process.env.TAGI_THREADS) : availableParallelism());
  if (!Number.isInteger(threads) || threads < 1) {
    warnings.push(`invalid thread count '${options.threads ?? process.env.TAGI_THREADS}'; using ${availableParallelism()} (all cores)`);
    threads = availableParallelism();
  }
  const precision = options.precision ?? envPrecision() ?? "fp32";
  if (!(PRECISIONS as readonly string[]).includes(precision)) throw new Error(`unknown precision '${precision}'; valid: ${PRECISIONS.join(", ")}`);
  return {
    requested: requested as BackendChoice,
    precision,
    threads,
    nativeGemm: options.nativeGemm ?? envFlag("TAGI_NATIVE_GEMM") ?? true,
    overrides: options.overrides ?? envFlag("TAGI_WASM_OVERRIDES") ?? true,
    log: (options.log ?? true) && envFlag("TAGI_QUIET") !== true,
    warnings,
  };
}

/** The real tfjs-node(-gpu), not danfojs-node's alias of it to @tensorflow/tfjs. */
function nativeTensorflowPackage(name: string): string | null {
  try {
    const pkg = require(`${name}/package.json`) as { name?: string };
    return pkg.name === name ? name : null;
  } catch {
    return null;
  }
}

/**
 * TensorFlow reads its thread-pool sizes and log level from the environment once, when the library loads:
 * set them before the first require. Intra-op threads (the pool one kernel, e.g. a matMul, splits over) follow
 * TAGI_THREADS like wasm's and OpenBLAS's. Inter-op threads (independent ops at once) default to 1: eager
 * tfjs issues one op at a time, and a second pool only competes with the first for the cores (measured by
 * `npm run bench` on 2 cores, in three runs: the T5-small training step 1.45 / 1.47 / 1.51 s with 2 inter-op
 * threads against 1.33 / 1.32 / 1.41 s with 1, greedy decoding 162 / 156 / 149 against 185 / 200 / 160
 * tokens/s; plain GEMM at about half speed with 2 in two of the three). TF_NUM_*_THREADS set by the user win.
 * Informational logs (oneDNN, CPU features) are silenced unless TF_CPP_MIN_LOG_LEVEL is set: they go to
 * stderr, where a notebook cell counts them as output.
 */
function tensorflowEnvironment(threads: number): void {
  process.env.TF_NUM_INTRAOP_THREADS ??= String(threads);
  process.env.TF_NUM_INTEROP_THREADS ??= "1";
  process.env.TF_CPP_MIN_LOG_LEVEL ??= "2";
}

async function tryTensorflow(tried: string[], threads: number): Promise<string | null> {
  for (const name of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    if (!nativeTensorflowPackage(name)) {
      tried.push(`${name}: not installed`);
      continue;
    }
    try {
      tensorflowEnvironment(threads);
      require(name);
      if (await tf.setBackend("tensorflow")) return name;
      tried.push(`${name}: installed but the 'tensorflow' backend failed to initialise`);
    } catch (e) {
      tried.push(`${name}: failed to load (${(e as Error).message.split("\n")[0]})`);
    }
  }
  return null;
}

async function tryWasm(
  o: ReturnType<typeof resolveOptions>,
  tried: string[],
): Promise<Omit<BackendInfo, "backend" | "reason" | "tried" | "precision" | "fusedLoss"> | null> {
  let variant: string;
  let threads = 1;
  try {
    const threaded = await createThreadedWasmBackend(o.threads);
    await useWasmBackend(threaded.backend);
    threads = threaded.threads;
    variant = "wasm threaded-simd";
  } catch (e) {
    tried.push(`wasm with threads: ${(e as Error).message.split("\n")[0]}`);
    try {
      if (!(await tf.setBackend("wasm"))) throw new Error("tfjs could not initialise it");
      variant = "wasm simd (single thread, stock loader)";
    } catch (e2) {
      tried.push(`wasm: ${(e2 as Error).message.split("\n")[0]}`);
      return null;
    }
  }
  let overrides: string[] = [];
  if (o.overrides) overrides = installWasmOverrides();
  else removeWasmOverrides();
  const { gemm, status } = loadNativeGemm();
  const inUse = o.nativeGemm && o.overrides && gemm !== null;
  if (gemm) gemm.setThreads(o.threads);
  setNativeGemm(inUse ? gemm : null);
  if (!o.overrides) variant += " (stock kernels)";
  return { variant, threads, overrides, nativeGemm: { ...status, inUse } };
}

/**
 * Chooses and initialises the backend (once per distinct option set). Never throws for an unavailable
 * backend: it falls back and says why in `tried`.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  registerGradientFixes(); // again: a tfjs copy loaded since import (danfojs-node's) may have replaced it
  const o = resolveOptions(options);
  const key = JSON.stringify({ ...o, log: undefined, warnings: undefined });
  if (current && current.key === key && tf.getBackend() === current.info.backend) {
    if (o.warnings.length === 0) return current.info;
    // Same backend as before, but this call's own warnings (e.g. an unknown backend name) must still be
    // reported: they are not part of the cache key.
    const info = { ...current.info, tried: [...o.warnings, ...current.info.tried.filter((t) => !o.warnings.includes(t))] };
    if (o.log) console.log(describeBackend(info));
    return info;
  }
  const tried: string[] = [...o.warnings];
  const noNative: BackendInfo["nativeGemm"] = { loaded: false, inUse: false, reason: "not used on this backend" };
  let info: Omit<BackendInfo, "precision" | "fusedLoss"> | null = null;

  if (o.requested === "auto" || o.requested === "tensorflow") {
    const pkg = await tryTensorflow(tried, o.threads);
    if (pkg) {
      info = {
        backend: "tensorflow",
        variant: pkg.replace("@tensorflow/", ""),
        reason: o.requested === "tensorflow" ? "forced" : `native TensorFlow is installed (${pkg}): fastest`,
        threads: o.threads,
        overrides: [],
        nativeGemm: noNative,
        tried,
      };
    }
  }
  if (!info && (o.requested === "auto" || o.requested === "wasm" || o.requested === "tensorflow")) {
    const w = await tryWasm(o, tried);
    if (w) {
      const why =
        o.requested === "wasm" ? "forced" : o.requested === "tensorflow" ? "tensorflow was forced but is unavailable" : "native TensorFlow not installed";
      info = { backend: "wasm", reason: why, tried, ...w };
    }
  }
  if (!info) {
    await tf.setBackend("cpu");
    info = {
      backend: "cpu",
      variant: "cpu (pure JS)",
      reason: o.requested === "cpu" ? "forced" : "no faster backend could be initialised",
      threads: 1,
      overrides: [],
      nativeGemm: noNative,
      tried,
    };
  }
  await tf.ready();
  const full: BackendInfo = { ...info, precision: setMatMulPrecision(o.precision), fusedLoss: enableFusedLoss(info.threads) };
  current = { key, info: full };
  if (o.log) console.log(describeBackend(full));
  return full;
}

/** One line (plus the fallbacks) saying which backend runs and why. */
export function describeBackend(info: BackendInfo): string {
  const parts = [`[tagi] backend: ${info.backend} (${info.variant}, ${info.threads} thread${info.threads === 1 ? "" : "s"})`];
  if (info.overrides.length) parts.push(`overrides: ${info.overrides.join(", ")}`);
  if (info.backend === "wasm") parts.push(info.nativeGemm.inUse ? `native GEMM: ${info.nativeGemm.config ?? "OpenBLAS"}` : `native GEMM: off (${info.nativeGemm.reason})`);
  parts.push(`why: ${info.reason}`);
  if (info.precision.requested !== "fp32" || info.precision.inUse !== "fp32") parts.push(`matmul: ${info.precision.inUse} (${info.precision.reason})`);
  if (info.backend === "tensorflow") parts.push(`fused L_ce/L_kl: ${info.fusedLoss.inUse ? "on" : `off (${info.fusedLoss.reason})`}`);
  let line = parts.join("; ");
  if (info.tried.length) line += `\n[tagi]   not taken: ${info.tried.join(" | ")}`;
  return line;
}

export function currentBackend(): BackendInfo | null {
  return current?.info ?? null;
}
