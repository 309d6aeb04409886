/**
 * `npm run bench [-- --json FILE] [--markdown FILE] [--quick] [--layers N] [--only a,b] [--full-eval]
 * [--full-eval-model DIR] [--full-eval-precision fp32,bf16]`: speed of the tensor backends here, and with
 * `--full-eval` the whole SNI-103 evaluation (bench/full-eval.ts; about 10 minutes per precision).
 *
 * A benchmark, not a test. Each configuration runs in its own process (backend, thread count and kernels
 * are fixed per process); the machine's native fp32 GEMM peak is measured in the same run through OpenBLAS
 * (the add-on), and PyTorch runs the same problems side by side when it is installed. Every figure is
 * reported as GFLOP/s and as ratios: against native GEMM, against plain GEMM on the same backend, and
 * against PyTorch.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadNativeGemm } from "../src/backend/native-gemm";
import { BATCH, D_FF, D_MODEL, HEADS, SEQ, blockFlops, gemmCases } from "./shapes";
import { CAMPAIGN_BENCH, CAMPAIGN_SHAPE, T5_BENCH, T5_SMALL_SHAPE } from "./t5";
import { t5TrainStepFlops } from "../src/compute/flops";
import { TAGI_STEP_BENCH, TAGI_STEP_CONFIG } from "./tagi-step";
import { FULL_EVAL, fullEvalRows, parseFullEvalPrecisions, runFullEval } from "./full-eval";

interface WorkerResult {
  backend: string;
  variant: string;
  threads: number;
  nativeGemm: boolean;
  gemm: Record<string, { gflops: number; seconds: number; reps: number }>;
  blockStep: { seconds: number; gflops: number; layers: number; reps: number; peakBytes: number } | null;
  t5: {
    t5SmallStep: { seconds: number; gflops: number; reps: number; activationBytes: number };
    t5SmallStepRecompute: { seconds: number; gflops: number; reps: number; activationBytes: number };
    decode: { tokensPerSecond: number; seconds: number };
    generateAdapter?: { seconds: number; parameters: number };
    teacherLoraStep?: { seconds: number };
  } | null;
  t5Base?: { parameters: number; seconds: number; reps: number; peakRssBytes: number | null; tensorBytesAfter: number } | null;
  campaignStep?: { seconds: number; gflops: number; reps: number; activationBytes: number } | null;
  tagiStep?: { seconds: number; reps: number; activationBytes: number; trainableParameters: number } | null;
  /** Peak resident memory of each workload group's process (bytes). */
  peakRss?: { main: number | null; t5?: number | null; campaign?: number | null; tagi?: number | null };
  peakRssBytes?: number | null;
}

interface Config {
  name: string;
  what: string;
  env: Record<string, string>;
  block: boolean;
  /** Also run the T5-small-shaped training step and decoding. */
  t5?: boolean;
  /** Also a T5-Base-shaped training step with AdamW (backends without wasm's 4 GiB heap cap). */
  t5Base?: boolean;
  /** Also the campaign's step: the small preset at batch 16, 512 / 64 tokens (CAMPAIGN_BENCH). */
  campaign?: boolean;
  /** Also TAGI's stage-2 step on the small preset (bench/tagi-step.ts). */
  tagi?: boolean;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const root = resolve(__dirname, "..");
const quick = process.argv.includes("--quick");
const layers = Number(arg("--layers") ?? 2);
const jsonPath = arg("--json");
const markdownPath = arg("--markdown");
const only = arg("--only")?.split(",");
const withT5 = !process.argv.includes("--no-t5");
const fullEval = process.argv.includes("--full-eval");
const fullEvalModel = arg("--full-eval-model") ?? "artifacts/small/metatrain-def2pos/model";
const fullEvalPrecisions = parseFullEvalPrecisions(arg("--full-eval-precision") ?? "fp32,bf16");
const threads = availableParallelism();
const started = Date.now();

function git(args: string[]): string | null {
  const r = spawnSync("git", args, { cwd: root, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

function hasTensorflowNode(): boolean {
  for (const name of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      if ((require(`${name}/package.json`) as { name: string }).name === name) return true;
    } catch {
      /* not installed */
    }
  }
  return false;
}

// Whether the measured code differs from the commit, taken before this run writes its own result files.
const dirtyAtStart = (git(["status", "--porcelain", "--", ".", ":(exclude)results"]) ?? "") !== "";
const native = loadNativeGemm();
const configs: Config[] = [
  { name: "cpu", what: "pure-JS cpu backend", env: { TAGI_BACKEND: "cpu" }, block: false },
  {
    name: "wasm-stock",
    what: "stock tfjs wasm kernels, 1 thread (what tfjs gives in Node)",
    env: { TAGI_BACKEND: "wasm", TAGI_WASM_OVERRIDES: "0", TAGI_THREADS: "1" },
    block: !quick,
  },
  {
    name: "wasm-patched-1t",
    what: "project kernel overrides, wasm GEMM, 1 thread",
    env: { TAGI_BACKEND: "wasm", TAGI_NATIVE_GEMM: "0", TAGI_THREADS: "1" },
    block: true,
  },
  {
    name: "wasm-patched",
    what: `project kernel overrides, wasm GEMM, ${threads} threads`,
    env: { TAGI_BACKEND: "wasm", TAGI_NATIVE_GEMM: "0", TAGI_THREADS: String(threads) },
    block: true,
    t5: true,
  },
];
if (native.gemm) {
  configs.push({
    name: "wasm-native",
    what: `overrides + OpenBLAS add-on on the wasm heap, ${threads} threads`,
    env: { TAGI_BACKEND: "wasm", TAGI_NATIVE_GEMM: "1", TAGI_THREADS: String(threads) },
    block: true,
    t5: true,
  });
}
if (hasTensorflowNode()) {
  // TensorFlow's two thread pools: intra-op (one kernel split over threads; initBackend sets it to the cores,
  // as TAGI_THREADS does for wasm) and inter-op (independent kernels at once; initBackend sets 1).
  configs.push({ name: "tensorflow", what: `tfjs-node (libtensorflow 2.16.2), intra-op ${threads} threads, inter-op 1 (initBackend's default)`, env: { TAGI_BACKEND: "tensorflow", TAGI_THREADS: String(threads) }, block: true, t5: true, t5Base: true, campaign: true, tagi: true });
  configs.push({ name: "tensorflow-inter" + threads, what: `tfjs-node, intra-op and inter-op ${threads} threads`, env: { TAGI_BACKEND: "tensorflow", TAGI_THREADS: String(threads), TF_NUM_INTEROP_THREADS: String(threads) }, block: true, t5: true });
  // bf16 matrix products (src/backend/bf16-matmul.ts), compared with PyTorch's CPU autocast to bf16.
  configs.push({ name: "tensorflow-bf16", what: `tfjs-node, bf16 matrix products (TAGI_PRECISION=bf16), intra-op ${threads} threads, inter-op 1`, env: { TAGI_BACKEND: "tensorflow", TAGI_THREADS: String(threads), TAGI_PRECISION: "bf16" }, block: true, t5: true, campaign: true, tagi: true });
  // A/B of the fused L_ce + L_kl ops (src/backend/fused-ce-kl.ts): the same steps with the composed losses.
  configs.push({ name: "tensorflow-composed-loss", what: `tfjs-node as \`tensorflow\`, L_ce and L_kl as composed TensorFlow ops instead of the fused ones (TAGI_FUSED_LOSS=0)`, env: { TAGI_BACKEND: "tensorflow", TAGI_THREADS: String(threads), TAGI_FUSED_LOSS: "0" }, block: false, t5: true, campaign: true, tagi: true });
  configs.push({ name: "tensorflow-1t", what: "tfjs-node, intra-op and inter-op 1 thread", env: { TAGI_BACKEND: "tensorflow", TAGI_THREADS: "1" }, block: true });
}

function spawnWorker(c: Config, extra: Record<string, string>, label: string): WorkerResult | { error: string } {
  const env = {
    ...process.env,
    ...c.env,
    TAGI_QUIET: "1",
    TAGI_BENCH_LAYERS: String(layers),
    TAGI_BENCH_QUICK: quick ? "1" : "0",
    ...extra,
  };
  process.stderr.write(`[bench] ${c.name}${label}: ${c.what} ...`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ["--import", "tsx", join(__dirname, "worker.ts")], { cwd: root, env, encoding: "utf8" });
  process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const line = r.stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
  if (r.status !== 0 || !line) return { error: `exit ${r.status}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}` };
  return JSON.parse(line.slice("BENCH_RESULT ".length)) as WorkerResult;
}

/**
 * GEMM and block step in one process, the T5 workloads in a fresh one: the T5 step needs ~4 GB of the wasm
 * heap, and a heap already grown and fragmented by the other measurements made it measurably slower.
 */
function runWorker(c: Config): WorkerResult | { error: string } {
  const main = spawnWorker(c, { TAGI_BENCH_BLOCK: c.block ? "1" : "0", TAGI_BENCH_T5: "0" }, "");
  if ("error" in main) return main;
  let out: WorkerResult = { ...main, peakRss: { main: main.peakRssBytes ?? null } };
  if (c.t5 && withT5) {
    const t5 = spawnWorker(c, { TAGI_BENCH_GEMM: "0", TAGI_BENCH_BLOCK: "0", TAGI_BENCH_T5: "1" }, " (T5)");
    if ("error" in t5) return { error: `T5 workloads: ${t5.error}` };
    out = { ...out, t5: t5.t5, peakRss: { ...out.peakRss!, t5: t5.peakRssBytes ?? null } };
  }
  if (c.campaign && withT5) {
    const cs = spawnWorker(c, { TAGI_BENCH_GEMM: "0", TAGI_BENCH_BLOCK: "0", TAGI_BENCH_T5: "0", TAGI_BENCH_CAMPAIGN: "1" }, " (campaign step)");
    out = { ...out, campaignStep: "error" in cs ? null : cs.campaignStep, peakRss: { ...out.peakRss!, campaign: "error" in cs ? null : (cs.peakRssBytes ?? null) } };
  }
  if (c.tagi && withT5) {
    const ts = spawnWorker(c, { TAGI_BENCH_GEMM: "0", TAGI_BENCH_BLOCK: "0", TAGI_BENCH_T5: "0", TAGI_BENCH_TAGI: "1" }, " (TAGI stage-2 step)");
    out = { ...out, tagiStep: "error" in ts ? null : ts.tagiStep, peakRss: { ...out.peakRss!, tagi: "error" in ts ? null : (ts.peakRssBytes ?? null) } };
  }
  if (c.t5Base && !quick && withT5) {
    const base = spawnWorker(c, { TAGI_BENCH_GEMM: "0", TAGI_BENCH_BLOCK: "0", TAGI_BENCH_T5: "0", TAGI_BENCH_T5BASE: "1" }, " (T5-Base step)");
    out = { ...out, t5Base: "error" in base ? null : base.t5Base };
  }
  return out;
}

function runTorch(): Record<string, unknown> | { error: string } {
  const python = process.env.PYTHON ?? "python3";
  const probe = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" });
  if (probe.status !== 0) return { error: `PyTorch not importable by ${python} (pip install torch==2.13.0 to compare)` };
  const dir = mkdtempSync(join(tmpdir(), "tagi-bench-"));
  const spec = join(dir, "spec.json");
  writeFileSync(
    spec,
    JSON.stringify({
      threads,
      quick,
      gemm: gemmCases(),
      block: { batch: BATCH, seq: SEQ, heads: HEADS, d_model: D_MODEL, d_ff: D_FF, layers, flops: blockFlops(layers) },
      t5: withT5 ? { config: T5_SMALL_SHAPE, ...T5_BENCH, flops: t5TrainStepFlops(T5_SMALL_SHAPE, T5_BENCH) } : null,
      campaign: withT5 && configs.some((c) => c.campaign) ? { config: CAMPAIGN_SHAPE, ...CAMPAIGN_BENCH, flops: t5TrainStepFlops(CAMPAIGN_SHAPE, CAMPAIGN_BENCH) } : null,
      tagi: withT5 && configs.some((c) => c.tagi) ? { config: CAMPAIGN_SHAPE, ...TAGI_STEP_BENCH, ...TAGI_STEP_CONFIG.hypernetwork } : null,
    }),
  );
  process.stderr.write(`[bench] pytorch: same problems, ${threads} threads ...`);
  const t0 = Date.now();
  const r = spawnSync(python, [join(root, "reference", "bench_torch.py"), spec], { encoding: "utf8" });
  process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (r.status !== 0) return { error: `bench_torch.py failed: ${r.stderr.trim().split("\n").slice(-2).join(" | ")}` };
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
}

function memLine(m: WorkerResult["peakRss"]): string {
  const g = (x: number | null | undefined) => (x === null || x === undefined ? "-" : (x / 2 ** 30).toFixed(2));
  return m ? `main ${g(m.main)}${m.t5 !== undefined ? `, T5 ${g(m.t5)}` : ""}${m.campaign !== undefined ? `, campaign ${g(m.campaign)}` : ""}${m.tagi !== undefined ? `, TAGI step ${g(m.tagi)}` : ""}` : "-";
}

/**
 * A training step measured on tensorflow in fp32 and bf16 against PyTorch's fp32 and autocast-bf16 steps on
 * the same shapes: seconds and ratios (null where a side did not run). `ours` picks the step from a worker's
 * result, `theirs` the key of bench_torch.py's output.
 */
function stepSummary(
  results: Record<string, WorkerResult | { error: string }>,
  torch: Record<string, unknown> | { error: string },
  ours: (r: WorkerResult) => number | null | undefined,
  theirs: "campaign" | "tagi",
  title: string,
) {
  const get = (n: string) => {
    const r = results[n];
    return r && !("error" in r) ? (ours(r) ?? null) : null;
  };
  const t = "error" in torch ? null : ((torch as Record<string, { stepSeconds: number; stepBf16Seconds: number } | null | undefined>)[theirs] ?? null);
  const json = { fp32: get("tensorflow"), bf16: get("tensorflow-bf16"), composedLossFp32: get("tensorflow-composed-loss"), pytorchFp32: t?.stepSeconds ?? null, pytorchBf16: t?.stepBf16Seconds ?? null };
  if (json.fp32 === null && json.bf16 === null) return null;
  const f = (x: number | null) => (x === null ? "-" : `${x.toFixed(2)} s`);
  const r = (x: number | null, y: number | null) => (x !== null && y !== null ? `${(x / y).toFixed(2)}x` : "-");
  return {
    json: { ...json, ratioFp32ToPytorch: json.fp32 !== null && json.pytorchFp32 !== null ? json.fp32 / json.pytorchFp32 : null, ratioBf16ToPytorchBf16: json.bf16 !== null && json.pytorchBf16 !== null ? json.bf16 / json.pytorchBf16 : null },
    line:
      `${title}: tensorflow fp32 ${f(json.fp32)} (PyTorch fp32 ${f(json.pytorchFp32)}: ratio ${r(json.fp32, json.pytorchFp32)}); ` +
      `bf16 ${f(json.bf16)} (PyTorch autocast-bf16 ${f(json.pytorchBf16)}: ratio ${r(json.bf16, json.pytorchBf16)}; ${r(json.fp32, json.bf16)} faster than our fp32)` +
      (json.composedLossFp32 !== null ? `; fp32 with the composed losses (TAGI_FUSED_LOSS=0) ${f(json.composedLossFp32)}: the fused ops ${r(json.composedLossFp32, json.fp32)} faster` : ""),
  };
}

/** The campaign's step (small preset, batch 16, 512 / 64). */
function campaignSummary(results: Record<string, WorkerResult | { error: string }>, torch: Record<string, unknown> | { error: string }) {
  const b = CAMPAIGN_BENCH;
  return stepSummary(results, torch, (r) => r.campaignStep?.seconds, "campaign", `Campaign step (the small preset, 24.3M parameters, all trained; batch ${b.batch}, ${b.inputLength} input / ${b.targetLength} target tokens)`);
}

/** TAGI's stage-2 step (bench/tagi-step.ts). */
function tagiStepSummary(results: Record<string, WorkerResult | { error: string }>, torch: Record<string, unknown> | { error: string }) {
  const b = TAGI_STEP_BENCH;
  return stepSummary(
    results,
    torch,
    (r) => r.tagiStep?.seconds,
    "tagi",
    `TAGI stage-2 step (frozen small base; generator and fusion trained, 14.0M parameters; batch ${b.batch} of ${b.inputLength}-token instances and ${b.targetLength} target tokens, ${b.instructionLength}-token instructions encoded beforehand as in the run; L_ce + top-${b.topK} cached L_kl + L_ins)`,
  );
}

/**
 * The bf16 path against float32 on the same backend and against PyTorch's autocast-bf16 step on the same
 * shapes: block step and T5-small step, seconds and ratios (null when either side did not run).
 */
function bf16Summary(results: Record<string, WorkerResult | { error: string }>, torch: Record<string, unknown> | { error: string }) {
  const b = results["tensorflow-bf16"];
  const f = results.tensorflow;
  if (!b || "error" in b || !f || "error" in f) return null;
  const t = "error" in torch ? null : (torch as { blockStepBf16?: { seconds: number }; t5?: { t5SmallStepBf16Seconds?: number } | null });
  const json = {
    blockStep: { bf16: b.blockStep?.seconds ?? null, fp32: f.blockStep?.seconds ?? null, pytorchBf16: t?.blockStepBf16?.seconds ?? null },
    t5SmallStep: { bf16: b.t5?.t5SmallStep.seconds ?? null, fp32: f.t5?.t5SmallStep.seconds ?? null, pytorchBf16: t?.t5?.t5SmallStepBf16Seconds ?? null },
  };
  const r = (x: number | null, y: number | null) => (x !== null && y !== null ? (x / y).toFixed(2) : "-");
  const part = (name: string, v: { bf16: number | null; fp32: number | null; pytorchBf16: number | null }) =>
    `${name} ${v.bf16?.toFixed(3) ?? "-"} s (fp32 ${v.fp32?.toFixed(3) ?? "-"} s: ${r(v.fp32, v.bf16)}x faster; PyTorch autocast-bf16 ${v.pytorchBf16?.toFixed(3) ?? "-"} s: ratio ${r(v.bf16, v.pytorchBf16)})`;
  return { json, line: `bf16 matrix products (tensorflow-bf16): ${part("block step", json.blockStep)}; ${part("T5-small step", json.t5SmallStep)}` };
}

function main() {
  let nativeGemmGflops: number | null = null;
  let nativeGemm1Thread: number | null = null;
  if (native.gemm) {
    process.stderr.write(`[bench] native GEMM peak (OpenBLAS sgemm 2048^3, ${threads} threads) ...\n`);
    native.gemm.setThreads(1);
    nativeGemm1Thread = native.gemm.peakGflops(1024, 3);
    native.gemm.setThreads(threads);
    nativeGemmGflops = native.gemm.peakGflops(2048, quick ? 3 : 5);
  }
  const results: Record<string, WorkerResult | { error: string }> = {};
  for (const c of configs) if (!only || only.includes(c.name)) results[c.name] = runWorker(c);
  const torch = only && !only.includes("pytorch") ? { error: "not requested" } : runTorch();
  // Last, alone on the machine like every workload here; on native TensorFlow where it is installed.
  const evals = fullEval ? fullEvalPrecisions.map((precision) => runFullEval({ root, model: fullEvalModel, precision, threads, env: hasTensorflowNode() ? { TAGI_BACKEND: "tensorflow" } : {}, instancesPerTask: quick ? 2 : undefined })) : [];
  const evalRows = fullEvalRows(evals, !quick);
  const evalTitle = `${quick ? "SNI-103 evaluation, --quick: 2 instances per task, not the full one" : "Full SNI-103 evaluation"} (\`tagi evaluate\` of ${fullEvalModel}: ${quick ? "206" : "all 10,210"} test instances, ${FULL_EVAL.format}, up to ${FULL_EVAL.maxInputTokens} input / ${FULL_EVAL.maxNewTokens} new tokens, greedy with continuous batching, batch ${FULL_EVAL.batchSize}, reference NLL included; target <= 10 min):`;

  const ok = Object.entries(results).filter((e): e is [string, WorkerResult] => !("error" in e[1]));
  const torchOk = "error" in torch ? null : (torch as { gemm: WorkerResult["gemm"]; blockStep: { seconds: number; gflops: number } });
  // The default backend: what initBackend() picks here with default options.
  const defaultName = results.tensorflow && !("error" in results.tensorflow) ? "tensorflow" : native.gemm ? "wasm-native" : "wasm-patched";
  const def = results[defaultName];
  const defOk = def && !("error" in def) ? def : null;

  const names = gemmCases().map((c) => c.name);
  const fmt = (x: number | null | undefined, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
  const rows: string[][] = [["config", ...names.map((n) => `${n} GF/s`), "worst/plain", "block s", "block GF/s", "% native", "vs torch"]];
  for (const [name, r] of ok) {
    const plain = r.gemm.plain?.gflops ?? NaN;
    const worst = Math.min(...names.filter((n) => n !== "batchedAttention").map((n) => r.gemm[n]?.gflops ?? NaN));
    rows.push([
      name,
      ...names.map((n) => fmt(r.gemm[n]?.gflops)),
      fmt(worst / plain, 2),
      fmt(r.blockStep?.seconds, 3),
      fmt(r.blockStep?.gflops),
      r.blockStep && nativeGemmGflops ? `${fmt((100 * r.blockStep.gflops) / nativeGemmGflops, 0)}%` : "-",
      r.blockStep && torchOk ? `${fmt(r.blockStep.seconds / torchOk.blockStep.seconds, 2)}x` : "-",
    ]);
  }
  if (torchOk) {
    rows.push(["pytorch", ...names.map((n) => fmt(torchOk.gemm[n]?.gflops)), "-", fmt(torchOk.blockStep.seconds, 3), fmt(torchOk.blockStep.gflops), nativeGemmGflops ? `${fmt((100 * torchOk.blockStep.gflops) / nativeGemmGflops, 0)}%` : "-", "1.00x"]);
  }
  const torchT5 = torchOk ? ((torch as { t5?: { t5SmallStepSeconds: number; decodeTokensPerSecond: number } | null }).t5 ?? null) : null;
  const t5Rows: string[][] = [["config", "t5SmallStep s", "GF/s", "% native", "vs torch", "activations GB", "recompute s", "activations GB", "decode tok/s", "vs torch"]];
  for (const [name, r] of ok) {
    if (!r.t5) continue;
    const st = r.t5.t5SmallStep;
    t5Rows.push([
      name,
      fmt(st.seconds, 2),
      fmt(st.gflops),
      nativeGemmGflops ? `${fmt((100 * st.gflops) / nativeGemmGflops, 0)}%` : "-",
      torchT5 ? `${fmt(st.seconds / torchT5.t5SmallStepSeconds, 2)}x` : "-",
      fmt(st.activationBytes / 1e9, 2),
      fmt(r.t5.t5SmallStepRecompute.seconds, 2),
      fmt(r.t5.t5SmallStepRecompute.activationBytes / 1e9, 2),
      fmt(r.t5.decode.tokensPerSecond),
      torchT5 ? `${fmt(r.t5.decode.tokensPerSecond / torchT5.decodeTokensPerSecond, 2)}x` : "-",
    ]);
  }
  if (torchT5) t5Rows.push(["pytorch", fmt(torchT5.t5SmallStepSeconds, 2), fmt(t5TrainStepFlops(T5_SMALL_SHAPE, T5_BENCH) / torchT5.t5SmallStepSeconds / 1e9), "-", "1.00x", "-", "-", "-", fmt(torchT5.decodeTokensPerSecond), "1.00x"]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(`\nmachine: ${cpus()[0]?.model ?? "?"}, ${threads} threads; native GEMM peak (OpenBLAS, fp32): ${fmt(nativeGemmGflops)} GFLOP/s (${fmt(nativeGemm1Thread)} on 1 thread)`);
  console.log(`block step: forward + backward of ${layers} T5-shaped encoder blocks (batch ${BATCH} x ${SEQ} tokens, d_model ${D_MODEL}, ${HEADS} heads, gated-GELU d_ff ${D_FF}), ${fmt(blockFlops(layers) / 1e9, 1)} GFLOP of matMul\n`);
  console.log(line(rows[0]!));
  for (const r of rows.slice(1)) console.log(line(r));
  if (t5Rows.length > 1) {
    const w5 = t5Rows[0]!.map((_, i) => Math.max(...t5Rows.map((r) => r[i]!.length)));
    console.log(`\nT5-small-shaped training step (6+6 layers, d_model 512, 8 heads, gated-GELU d_ff 1024, vocab 32128, batch ${T5_BENCH.batch}, ${T5_BENCH.inputLength} input / ${T5_BENCH.targetLength} target tokens; ${fmt(t5TrainStepFlops(T5_SMALL_SHAPE, T5_BENCH) / 1e9)} GFLOP of matMul) and greedy decoding (batch ${T5_BENCH.batch}, ${T5_BENCH.decodeTokens} tokens):`);
    for (const r of t5Rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(w5[i]!) : c.padStart(w5[i]!))).join("  "));
  }
  const tagiLine = defOk?.t5?.generateAdapter && defOk.t5.teacherLoraStep
    ? `TAGI vs instance training (${defaultName}, T5-small shape): generateAdapter.seconds ${fmt(defOk.t5.generateAdapter.seconds, 3)} (one 256-token instruction, ${fmt(defOk.t5.generateAdapter.parameters / 1e6, 2)}M LoRA parameters) vs teacher LoRA ${fmt(defOk.t5.teacherLoraStep.seconds, 3)} s per step, ${fmt((1000 * defOk.t5.teacherLoraStep.seconds) / 60, 1)} min per 1,000 steps (the paper's teachers: 10,000 steps)`
    : null;
  if (tagiLine) console.log(`\n${tagiLine}`);
  const campaign = campaignSummary(results, torch);
  if (campaign) console.log(`\n${campaign.line}`);
  const tagiStep = tagiStepSummary(results, torch);
  if (tagiStep) console.log(`\n${tagiStep.line}`);
  const bf16 = bf16Summary(results, torch);
  if (bf16) console.log(`\n${bf16.line}`);
  const baseRun = ok.find(([, r]) => r.t5Base);
  const baseLine = baseRun
    ? `T5-Base-shaped training step (12+12 layers, d_model 768, 12 heads, gated-GELU d_ff 2048; ${fmt(baseRun[1].t5Base!.parameters / 1e6, 1)}M parameters; the bench batch; AdamW) on ${baseRun[0]}: ${fmt(baseRun[1].t5Base!.seconds, 2)} s, peak resident memory ${fmt((baseRun[1].t5Base!.peakRssBytes ?? NaN) / 2 ** 30, 1)} GiB. wasm cannot run it: parameters, gradients and Adam's two moments alone take 16 bytes per parameter, ${fmt((16 * baseRun[1].t5Base!.parameters) / 2 ** 30, 2)} GiB, at wasm32's 4 GiB heap cap before any activation`
    : null;
  if (baseLine) console.log(`\n${baseLine}`);
  if (evals.length) {
    const we = evalRows[0]!.map((_, i) => Math.max(...evalRows.map((r) => r[i]!.length)));
    console.log(`\n${evalTitle}`);
    for (const r of evalRows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(we[i]!) : c.padStart(we[i]!))).join("  "));
  }
  for (const [name, r] of Object.entries(results)) if ("error" in r) console.log(`${name}: failed: ${r.error}`);
  if ("error" in torch) console.log(`pytorch: ${torch.error}`);

  const json = {
    command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
    commit: git(["rev-parse", "HEAD"]),
    dirty: dirtyAtStart,
    date: new Date().toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
    machine: { cpu: cpus()[0]?.model ?? null, threads },
    backend: defaultName,
    threads,
    nativeGemmGflops,
    nativeGemmGflops1Thread: nativeGemm1Thread,
    nativeGemmConfig: native.status.config ?? native.status.reason,
    gemm: Object.fromEntries(ok.map(([n, r]) => [n, Object.fromEntries(Object.entries(r.gemm).map(([k, v]) => [k, v.gflops]))])),
    gemmRatioToPlain: Object.fromEntries(
      ok.map(([n, r]) => [n, Object.fromEntries(Object.entries(r.gemm).map(([k, v]) => [k, v.gflops / (r.gemm.plain?.gflops ?? NaN)]))]),
    ),
    blockStep: defOk?.blockStep
      ? {
          seconds: defOk.blockStep.seconds,
          gflops: defOk.blockStep.gflops,
          fractionOfNativePeak: nativeGemmGflops ? defOk.blockStep.gflops / nativeGemmGflops : null,
          ratioToPytorch: torchOk ? defOk.blockStep.seconds / torchOk.blockStep.seconds : null,
          layers,
          peakBytes: defOk.blockStep.peakBytes,
        }
      : null,
    blockStepByConfig: Object.fromEntries(
      ok.filter(([, r]) => r.blockStep).map(([n, r]) => [n, { ...r.blockStep!, fractionOfNativePeak: nativeGemmGflops ? r.blockStep!.gflops / nativeGemmGflops : null }]),
    ),
    t5SmallStep: defOk?.t5
      ? {
          seconds: defOk.t5.t5SmallStep.seconds,
          gflops: defOk.t5.t5SmallStep.gflops,
          fractionOfNativePeak: nativeGemmGflops ? defOk.t5.t5SmallStep.gflops / nativeGemmGflops : null,
          activationBytes: defOk.t5.t5SmallStep.activationBytes,
          recompute: defOk.t5.t5SmallStepRecompute,
        }
      : null,
    decode: defOk?.t5 ? { tokensPerSecond: defOk.t5.decode.tokensPerSecond } : null,
    // TAGI's per-task cost against instance training, T5-small shape: one adapter generation (256-token
    // instruction, rank 32) versus one optimizer step of a rank-32 teacher LoRA (a teacher takes thousands).
    generateAdapter: defOk?.t5?.generateAdapter ?? null,
    teacherLoraStep: defOk?.t5?.teacherLoraStep ?? null,
    t5ByConfig: Object.fromEntries(ok.filter(([, r]) => r.t5).map(([n, r]) => [n, r.t5])),
    t5BaseStep: baseRun ? { config: baseRun[0], ...baseRun[1].t5Base! } : null,
    bf16: bf16?.json ?? null,
    campaignStep: campaign?.json ?? null,
    tagiStep: tagiStep?.json ?? null,
    fullEval: evals.length ? { protocol: { ...FULL_EVAL, model: fullEvalModel }, runs: evals } : null,
    peakRss: Object.fromEntries(ok.map(([n, r]) => [n, r.peakRss ?? null])),
    torch: torchT5,
    configs: Object.fromEntries(configs.map((c) => [c.name, { what: c.what, env: c.env }])),
    pytorch: torch,
    errors: Object.fromEntries(Object.entries(results).filter(([, r]) => "error" in r)),
  };
  if (markdownPath) {
    const md = [
      "# Backend benchmark",
      "",
      `Made by \`${json.command}\` at commit ${json.commit ?? "?"}${json.dirty ? " (with uncommitted changes)" : ""}, ${json.date}, wall time ${json.wallSeconds.toFixed(0)} s.`,
      "",
      `Machine: ${json.machine.cpu}, ${threads} threads. Native GEMM peak (OpenBLAS sgemm, fp32, 2048^3): ${fmt(nativeGemmGflops)} GFLOP/s (${fmt(nativeGemm1Thread)} on one thread).`,
      "",
      `Block step: forward + backward of ${layers} T5-shaped encoder blocks (batch ${BATCH} x ${SEQ} tokens, d_model ${D_MODEL}, ${HEADS} heads, gated-GELU d_ff ${D_FF}); ${fmt(blockFlops(layers) / 1e9, 1)} GFLOP of matMul per step. GEMM shapes: plain [1024,512]x[512,1024]; transposeA and transposeB the same product with one operand stored transposed (the two matMul gradients); batched 8 x [128,512]x[512,1024]; batchedAttention 64 x [128,64]x[64,128]^T.`,
      "",
      "| " + rows[0]!.join(" | ") + " |",
      "|" + rows[0]!.map((_, i) => (i === 0 ? "---" : "---:")).join("|") + "|",
      ...rows.slice(1).map((r) => "| " + r.join(" | ") + " |"),
      "",
      ...(t5Rows.length > 1
        ? [
            `T5-small-shaped training step (6+6 layers, d_model 512, 8 heads, gated-GELU d_ff 1024, vocab 32128, batch ${T5_BENCH.batch}, ${T5_BENCH.inputLength} input / ${T5_BENCH.targetLength} target tokens, gradients for every parameter; ${fmt(t5TrainStepFlops(T5_SMALL_SHAPE, T5_BENCH) / 1e9)} GFLOP of matMul) and greedy decoding (batch ${T5_BENCH.batch}, ${T5_BENCH.decodeTokens} new tokens, KV cache):`,
            "",
            "| " + t5Rows[0]!.join(" | ") + " |",
            "|" + t5Rows[0]!.map((_, i) => (i === 0 ? "---" : "---:")).join("|") + "|",
            ...t5Rows.slice(1).map((r) => "| " + r.join(" | ") + " |"),
            "",
          ]
        : []),
      ...(tagiLine ? [tagiLine + ".", ""] : []),
      ...(campaign ? [campaign.line, ""] : []),
      ...(tagiStep ? [tagiStep.line, ""] : []),
      ...(bf16 ? [bf16.line, ""] : []),
      ...(evals.length
        ? [evalTitle, "", "| " + evalRows[0]!.join(" | ") + " |", "|" + evalRows[0]!.map((_, i) => (i === 0 ? "---" : "---:")).join("|") + "|", ...evalRows.slice(1).map((r) => "| " + r.join(" | ") + " |"), ""]
        : []),
      `Peak resident memory per workload group (GiB; each group runs in its own process): ${ok.map(([n, r]) => `${n} ${memLine(r.peakRss)}`).join("; ")}.`,
      "",
      ...(baseLine ? [baseLine + ".", ""] : []),
      "Configurations:",
      ...configs.map((c) => `- \`${c.name}\`: ${c.what} (${Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join(" ")})`),
      `- \`pytorch\`: ${"error" in torch ? torch.error : `torch ${(torch as { torch?: string }).torch ?? "?"}, same shapes, ${threads} threads (reference/bench_torch.py)`}`,
      "",
      "`activations GB`: bytes of tensors held when the forward pass ends (what backprop keeps), plain and with per-block recomputation (\`recompute: true\`). `worst/plain` is the slowest of transposeA, transposeB and batched relative to plain GEMM on the same backend; `% native` is the block step's matMul GFLOP/s over the native GEMM peak; `vs torch` is block-step time over PyTorch's.",
      "",
    ].join("\n");
    writeFileSync(markdownPath, md);
    console.log(`wrote ${markdownPath}`);
  }
  if (jsonPath) {
    writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
    console.log(`\nwrote ${jsonPath}`);
  }
}

main();
