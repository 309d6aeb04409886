/**
 * The training loop every stage uses (base-model pretraining, meta-training, teachers, and later the
 * hypernetwork): a visible loop over optimizer steps, each accumulating gradients over micro-batches.
 *
 *   for step = s0+1 .. N:
 *     for micro = 1 .. accumulation:  loss_m, grads_m = d lossFn(batch_m) / d trainable
 *     g = mean_m grads_m;  clip g to maxGradNorm (global L2 norm);  optimizer.step(g, lr(step))
 *     log {step, loss, every loss term, lr, grad norm, tokens/s} to <out>/log.jsonl
 *     every checkpointEvery steps (and at the end): atomic checkpoint
 *
 * Only the variables in `trainable` get gradients and optimizer state; everything else the loss reads is
 * frozen. Repeatability: the data order is a function of (seed, epoch) and dropout seeds of (seed, step,
 * micro), so the same config gives the same losses on the same backend, and `resume` continues a killed run
 * along the same curve. A non-finite loss or gradient stops the run before any update is applied, keeping
 * the last good checkpoint.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { SingleBar } from "cli-progress";
import { BatchStream, padSeq2Seq, type ExampleSource, type PaddedBatch } from "../data/batching";
import { fnv1a } from "../data/sni";
import { createOptimizer, validateOptimizerConfig, type OptimizerConfig } from "./optimizer";
import { learningRate, validateScheduleConfig, type ScheduleConfig } from "./schedule";
import { HEAP_WARN_BYTES, wasmHeapBytes } from "../backend/memory";
import { matMulPrecision, setMatMulPrecision, PRECISIONS, type Precision, type PrecisionStatus } from "../backend/bf16-matmul";
import { findCheckpoint, loadCheckpoint, removeStaleTemps, saveCheckpoint, type ResumeOverride, type TrainerState } from "./checkpoint";
import { acceptedChanges, dataDifferences, dataFingerprint, RESUME_CHANGEABLE, stableJson } from "./resume";

export { configDifferences, dataDifferences, dataFingerprint, RESUME_CHANGEABLE } from "./resume";
import { lockFolder } from "./folder-lock";

export interface TrainConfig {
  /** Optimizer steps. */
  steps: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step (effective batch = batchSize × gradAccumulation). */
  gradAccumulation: number;
  /** Clip the global gradient L2 norm to this (null: no clipping). */
  maxGradNorm: number | null;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  seed: number;
  /** Steps between checkpoints (0: only at the end). */
  checkpointEvery: number;
  /** Steps between plain-text progress lines when stderr is not a terminal. */
  logEvery: number;
  /** Batches per length-sorting window (1: no bucketing). */
  bucketWindow: number;
  /**
   * Recompute each layer's activations in backprop instead of keeping them (passed to lossFn as
   * ctx.recompute). The wasm heap is capped at 4 GB and allocation near the cap stalls rather than failing:
   * a `small` step at 16 x 256 input and 64 target tokens peaks past it with dropout on, and runs in 5 s with
   * recomputation. Same gradients either way.
   */
  recompute: boolean;
  /**
   * Matrix products in "bf16" (bf16 inputs and products, float32 accumulation, float32 master weights and
   * optimizer state; src/backend/bf16-matmul.ts) or "fp32" for this run; null: what the process was started
   * with (TAGI_PRECISION, else fp32). Like the backend, it is how the same computation runs, not what the run
   * is: it stays out of the resume fingerprint, so a run may continue in the other precision; run.json and
   * the progress output say which was used.
   */
  precision: Precision | null;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, "steps" | "batchSize" | "optimizer" | "schedule"> = {
  gradAccumulation: 1,
  maxGradNorm: 1.0,
  seed: 0,
  checkpointEvery: 0,
  logEvery: 10,
  bucketWindow: 16,
  recompute: false,
  precision: null,
};

export function validateTrainConfig(c: TrainConfig, where = "train"): string[] {
  const p: string[] = [];
  const posInt = (name: keyof TrainConfig, min = 1) => {
    const v = c[name] as number;
    if (!Number.isInteger(v) || v < min) p.push(`${where}.${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  };
  posInt("steps");
  posInt("batchSize");
  posInt("gradAccumulation");
  posInt("checkpointEvery", 0);
  posInt("logEvery");
  posInt("bucketWindow");
  if (typeof c.recompute !== "boolean") p.push(`${where}.recompute must be true or false, got ${JSON.stringify(c.recompute)}`);
  if (c.precision !== null && !(PRECISIONS as readonly unknown[]).includes(c.precision)) p.push(`${where}.precision must be ${PRECISIONS.map((x) => `"${x}"`).join(" or ")} or null, got ${JSON.stringify(c.precision)}`);
  if (!Number.isInteger(c.seed) || c.seed < 0) p.push(`${where}.seed must be an integer >= 0, got ${JSON.stringify(c.seed)}`);
  if (c.maxGradNorm !== null && !(c.maxGradNorm > 0)) p.push(`${where}.maxGradNorm must be > 0 or null, got ${c.maxGradNorm}`);
  p.push(...validateOptimizerConfig(c.optimizer, `${where}.optimizer`));
  p.push(...validateScheduleConfig(c.schedule, c.steps, `${where}.schedule`));
  return p;
}

/** One line of log.jsonl. */
export interface LogRecord {
  step: number;
  epoch: number;
  /** Mean total loss over the step's micro-batches. */
  loss: number;
  /** Each loss term (mean over micro-batches), e.g. {ce, kl, ins}. */
  terms: Record<string, number>;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  tokensPerSec: number;
  /** Real (non-padding) tokens read in this step. */
  tokens: number;
  stepSeconds: number;
  /** Extra metrics from the `evaluate` hook, on the steps it ran. */
  eval?: Record<string, number>;
}

export interface LossOutput {
  /** The scalar to minimise. */
  loss: tf.Scalar;
  /** Named terms to log (each a scalar; they need not sum to `loss`). */
  terms?: Record<string, tf.Scalar>;
}

export interface TrainRun {
  /** Stage name shown in progress and errors, e.g. "pretrain-base". */
  label: string;
  out: string;
  config: TrainConfig;
  /** The variables to train, by name (checkpoint key). */
  trainable: Map<string, tf.Variable>;
  source: ExampleSource;
  /** Loss of one micro-batch; called inside the gradient tape. `seed` is for dropout. */
  lossFn: (batch: PaddedBatch, ctx: { step: number; micro: number; seed: number; recompute: boolean; constants: Map<string, tf.Tensor> }) => LossOutput;
  /**
   * Computed before the gradient tape for each micro-batch (e.g. a teacher's logits): tensors that need no
   * gradient, passed to lossFn as ctx.constants and disposed after the micro-step.
   */
  constants?: (batch: PaddedBatch, ctx: { step: number; micro: number; seed: number }) => Map<string, tf.Tensor>;
  /** Writes the stage's model files into a checkpoint folder (HF T5 folder, PEFT adapter, ...). */
  saveModel: (dir: string) => void;
  /** Continue from `<out>/checkpoint` if present (error if the config differs). */
  resume?: boolean;
  /** Progress bar on stderr: true, false, or "auto" (when stderr is a terminal). Default "auto". */
  progress?: boolean | "auto";
  /** Called with every log record (notebooks plot these live). */
  onLog?: (r: LogRecord) => void;
  /** Runs every `every` steps (and after the last); its numbers go into that step's log record. */
  evaluate?: { every: number; fn: (step: number) => Record<string, number> };
  /** Stop (with a checkpoint) after this step, as if killed there cleanly; for tests and time-boxed runs. */
  stopAtStep?: number;
  /** Extra fields for the config fingerprint (e.g. the model config), so resuming a different run is refused. */
  fingerprint?: unknown;
  /**
   * What the examples came from (data files, task names): with the examples themselves they make the data
   * fingerprint, so resuming on changed data is refused with what changed.
   */
  data?: { files?: string[]; tasks?: string[] };
  /**
   * Config keys that may differ from the checkpoint's on resume (only RESUME_CHANGEABLE ones), e.g.
   * "train.schedule.lr" to continue a run that stopped on a non-finite loss at a lower learning rate. Each
   * accepted change is printed and kept in trainer_state.json (`overrides`).
   */
  allowChanges?: string[];
}

export interface TrainResult {
  log: LogRecord[];
  state: TrainerState;
  checkpoint: string;
  resumedFrom: number | null;
  /** Wall seconds of this process's part of the run. */
  seconds: number;
  /** The precision of matrix products in this process's part of the run (TrainConfig.precision). */
  precision: PrecisionStatus;
}

export class NonFiniteLossError extends Error {}

export function configHash(v: unknown): string {
  return fnv1a(stableJson(v)).toString(16).padStart(8, "0");
}

function readLog(file: string, upToStep: number): LogRecord[] {
  if (!fs.existsSync(file)) return [];
  const out: LogRecord[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as LogRecord;
      if (r.step <= upToStep) out.push(r);
    } catch {
      // A line cut by a kill mid-write: everything after the checkpoint is rewritten anyway.
    }
  }
  return out;
}

function fmtEta(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}

/** Dropout seed of (run seed, step, micro-batch): distinct per micro-batch, identical on a resumed run. */
function microSeed(seed: number, step: number, micro: number): number {
  return fnv1a(`${seed}:${step}:${micro}`) % 2_000_000_000;
}

/**
 * Runs the training loop (see the module comment). Holds the lock of `run.out` while it runs (a second run into
 * the same folder is refused, naming this one) and first removes leftovers of interrupted writes there.
 */
export async function train(run: TrainRun): Promise<TrainResult> {
  const lock = lockFolder(run.out, { what: run.label });
  const before = matMulPrecision().requested;
  const wanted = run.config.precision;
  try {
    removeStaleTemps(run.out);
    if (wanted !== null && (PRECISIONS as readonly unknown[]).includes(wanted) && wanted !== before) setMatMulPrecision(wanted);
    const p = matMulPrecision();
    if (p.requested !== "fp32") process.stderr.write(`[tagi] ${run.label}: matrix products in ${p.inUse} (${p.reason})\n`);
    return { ...(await trainLocked(run)), precision: p };
  } finally {
    if (matMulPrecision().requested !== before) setMatMulPrecision(before);
    lock.release();
  }
}

/** The fingerprinted config without train.precision at any depth (see TrainConfig.precision). */
function withoutPrecision(v: unknown, inTrain = false): unknown {
  if (Array.isArray(v)) return v.map((x) => withoutPrecision(x));
  if (!v || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (!(inTrain && k === "precision")) out[k] = withoutPrecision(x, k === "train");
  return out;
}

async function trainLocked(run: TrainRun): Promise<Omit<TrainResult, "precision">> {
  const { config: c, out, label } = run;
  const problems = validateTrainConfig(c);
  if (problems.length) throw new Error(`${label}: invalid training config:\n  - ${problems.join("\n  - ")}`);
  if (run.trainable.size === 0) throw new Error(`${label}: no trainable parameters`);
  fs.mkdirSync(out, { recursive: true });
  const snapshot = withoutPrecision(JSON.parse(JSON.stringify({ train: c, label, extra: run.fingerprint ?? null })));
  const hash = configHash(snapshot);
  const dataPrint = dataFingerprint(run.source, run.data);
  let overrides: ResumeOverride[] = [];
  for (const k of run.allowChanges ?? []) {
    if (!(RESUME_CHANGEABLE as readonly string[]).includes(k)) throw new Error(`${label}: '${k}' cannot be changed on resume (changeable: ${RESUME_CHANGEABLE.join(", ")})`);
  }
  const stream = new BatchStream(run.source, { batchSize: c.batchSize, seed: c.seed, bucketWindow: c.bucketWindow });
  const optimizer = createOptimizer(c.optimizer, run.trainable);
  const logFile = path.join(out, "log.jsonl");

  let step = 0;
  let priorSeconds = 0;
  let priorTokens = 0;
  let resumedFrom: number | null = null;
  let heapWarned = false;
  const existing = findCheckpoint(out);
  if (existing && !run.resume) {
    throw new Error(`${label}: ${out} already holds a checkpoint (${existing}); pass --resume to continue it, or choose another --out`);
  }
  if (run.resume && existing) {
    const ck = loadCheckpoint(existing);
    try {
      overrides = [...(ck.state.overrides ?? [])];
      if (ck.state.configHash !== hash) overrides.push(...acceptedChanges(label, existing, ck.state, snapshot, run.allowChanges ?? [], hash));
      if (ck.state.dataFingerprint) {
        const changed = dataDifferences(ck.state.dataFingerprint, dataPrint);
        if (changed.length) throw new Error(`${label}: cannot resume ${existing}: the training data changed since it was written:\n  - ${changed.join("\n  - ")}\nRestore the data, or start a new run in another --out`);
      }
      const missing = [...run.trainable.keys()].filter((k) => !ck.trainable.has(k));
      const extra = [...ck.trainable.keys()].filter((k) => !run.trainable.has(k));
      if (missing.length || extra.length) {
        throw new Error(`${label}: checkpoint ${existing} does not hold this run's trainable tensors (missing: ${missing.slice(0, 5).join(", ") || "none"}; unexpected: ${extra.slice(0, 5).join(", ") || "none"})`);
      }
      for (const [k, v] of run.trainable) {
        const t = ck.trainable.get(k)!;
        if (t.shape.join() !== v.shape.join()) throw new Error(`${label}: checkpoint tensor '${k}' has shape [${t.shape}], the model [${v.shape}]`);
        v.assign(t);
      }
      optimizer.loadState({ step: ck.state.optimizerStep, slots: ck.optimizer });
    } finally {
      for (const t of ck.trainable.values()) t.dispose();
      for (const t of ck.optimizer.values()) t.dispose();
    }
    step = ck.state.step;
    stream.state = { ...ck.state.data };
    priorSeconds = ck.state.seconds;
    priorTokens = ck.state.tokens;
    resumedFrom = step;
  } else if (fs.existsSync(logFile)) {
    fs.rmSync(logFile); // a run that died before its first checkpoint starts over
  }

  // The log holds exactly the steps up to the checkpoint; later lines (written after it, before a kill) go.
  const log = readLog(logFile, step);
  fs.writeFileSync(logFile, log.map((r) => JSON.stringify(r) + "\n").join(""));

  const state = (): TrainerState => ({
    step,
    totalSteps: c.steps,
    data: { ...stream.state },
    optimizerStep: optimizer.stepCount,
    configHash: hash,
    configSnapshot: snapshot,
    dataFingerprint: dataPrint,
    ...(overrides.length ? { overrides } : {}),
    seed: c.seed,
    seconds: priorSeconds + (performance.now() - t0) / 1000,
    tokens: priorTokens + tokensThisRun,
    savedAt: new Date().toISOString(),
  });
  const checkpoint = (): string => {
    for (const [k, v] of run.trainable) {
      const finite = tf.tidy(() => tf.all(tf.isFinite(v)).dataSync()[0]);
      if (!finite) throw new NonFiniteLossError(`${label}: parameter '${k}' is not finite at step ${step}; no checkpoint written`);
    }
    return saveCheckpoint(out, { state: state(), trainable: run.trainable, optimizer: optimizer.state().slots }, run.saveModel);
  };

  const t0 = performance.now();
  let tokensThisRun = 0;
  const stderrTty = Boolean(process.stderr.isTTY);
  const showBar = run.progress === true || ((run.progress ?? "auto") === "auto" && stderrTty);
  const bar = showBar
    ? new SingleBar({
        format: `${label} |{bar}| {value}/{total} | loss {loss} | {tps} tok/s | {elapsed} | ETA {etaText}`,
        hideCursor: true,
        stream: process.stderr,
      })
    : null;
  bar?.start(c.steps, step, { loss: "-", tps: "-", etaText: "?", elapsed: "0s" });
  const printLines = run.progress !== false && !showBar;
  const variables = [...run.trainable.values()];
  const names = [...run.trainable.keys()];
  const stopAt = Math.min(c.steps, run.stopAtStep ?? c.steps);
  let lastCheckpoint = run.resume && existing ? existing : "";
  let lastCheckpointStep = step;

  try {
    while (step < stopAt) {
      const stepNo = step + 1;
      const tStep = performance.now();
      let acc: tf.Tensor[] | null = null;
      let lossSum = 0;
      const termSums: Record<string, number> = {};
      let tokens = 0;
      let epoch = stream.state.epoch;
      for (let micro = 0; micro < c.gradAccumulation; micro++) {
        const b = stream.next();
        epoch = b.epoch;
        const batch = padSeq2Seq(b.examples);
        tokens += batch.inputTokens + batch.targetTokens;
        const seed = microSeed(c.seed, stepNo, micro);
        let terms: Record<string, tf.Scalar> = {};
        const constants = run.constants ? run.constants(batch, { step: stepNo, micro, seed }) : new Map<string, tf.Tensor>();
        const { value, grads } = tf.variableGrads(() => {
          const r = run.lossFn(batch, { step: stepNo, micro, seed, recompute: c.recompute, constants });
          terms = {};
          for (const [k, t] of Object.entries(r.terms ?? {})) terms[k] = tf.keep(t);
          return r.loss;
        }, variables);
        for (const t of constants.values()) t.dispose();
        const lossValue = (await value.data())[0]!;
        const termValues = Object.fromEntries(Object.entries(terms).map(([k, t]) => [k, t.dataSync()[0]!]));
        // A term may be the loss tensor itself (e.g. ce when it is the only term): dispose each tensor once.
        for (const t of new Set<tf.Tensor>([value, ...Object.values(terms)])) t.dispose();
        if (!Number.isFinite(lossValue)) {
          for (const g of Object.values(grads)) g.dispose();
          acc?.forEach((t) => t.dispose());
          throw new NonFiniteLossError(
            `${label}: the loss is ${lossValue} at step ${stepNo} (micro-batch ${micro + 1}, epoch ${b.epoch}, batch ${b.batch}); ` +
              `stopped before updating. ${lastCheckpoint ? `The last good checkpoint (step ${lastCheckpointStep}) is kept in ${lastCheckpoint}.` : "No checkpoint had been written yet."} ` +
              `Lower the learning rate or check the data.`,
          );
        }
        lossSum += lossValue;
        for (const [k, v] of Object.entries(termValues)) termSums[k] = (termSums[k] ?? 0) + v;
        const gs = names.map((n, i) => grads[variables[i]!.name] ?? missingGrad(label, n));
        if (acc === null) acc = gs;
        else {
          const prev: tf.Tensor[] = acc;
          acc = prev.map((a, i) => tf.add(a, gs[i]!));
          prev.forEach((t) => t.dispose());
          gs.forEach((t) => t.dispose());
        }
      }
      const k = c.gradAccumulation;
      const { mean, norm } = tf.tidy(() => {
        const mean = k > 1 ? acc!.map((g) => tf.div(g, k)) : acc!.map((g) => tf.clone(g));
        const norm = tf.sqrt(tf.addN(mean.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
        return { mean, norm };
      });
      acc!.forEach((t) => t.dispose());
      const gradNorm = (await norm.data())[0]!;
      norm.dispose();
      if (!Number.isFinite(gradNorm)) {
        mean.forEach((t) => t.dispose());
        throw new NonFiniteLossError(
          `${label}: the gradient norm is ${gradNorm} at step ${stepNo}; stopped before updating.${lastCheckpoint ? ` The last good checkpoint (step ${lastCheckpointStep}) is kept in ${lastCheckpoint}.` : ""}`,
        );
      }
      const clipScale = clipScaleFor(gradNorm, c.maxGradNorm);
      const gradMap = new Map<string, tf.Tensor>();
      names.forEach((n, i) => gradMap.set(n, clipScale < 1 ? tf.tidy(() => tf.mul(mean[i]!, clipScale)) : mean[i]!));
      const lr = learningRate(c.schedule, stepNo, c.steps);
      optimizer.step(gradMap, lr);
      if (clipScale < 1) mean.forEach((t) => t.dispose());
      for (const t of gradMap.values()) t.dispose();

      step = stepNo;
      tokensThisRun += tokens;
      if (!heapWarned) heapWarned = warnIfHeapNearCap(label, step, c.recompute);
      const stepSeconds = (performance.now() - tStep) / 1000;
      const record: LogRecord = {
        step,
        epoch,
        loss: lossSum / k,
        terms: Object.fromEntries(Object.entries(termSums).map(([n, v]) => [n, v / k])),
        lr,
        gradNorm,
        tokensPerSec: tokens / stepSeconds,
        tokens,
        stepSeconds,
      };
      if (run.evaluate && (step % run.evaluate.every === 0 || step === c.steps)) record.eval = run.evaluate.fn(step);
      log.push(record);
      fs.appendFileSync(logFile, JSON.stringify(record) + "\n");
      run.onLog?.(record);

      const elapsed = (performance.now() - t0) / 1000;
      const eta = ((c.steps - step) * elapsed) / Math.max(1, step - (resumedFrom ?? 0));
      const recent = log.slice(-10);
      const tps = recent.reduce((s, r) => s + r.tokens, 0) / recent.reduce((s, r) => s + r.stepSeconds, 0);
      bar?.update(step, { loss: record.loss.toFixed(4), tps: tps.toFixed(0), etaText: fmtEta(eta), elapsed: fmtEta(elapsed) });
      if (record.eval && (printLines || bar)) {
        // A dev point is rare and is what a run is judged by: always a line of its own (above a bar too).
        const evalText = Object.entries(record.eval).map(([n, v]) => `${n} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(" ");
        if (bar) bar.stop();
        process.stderr.write(`${label} step ${step}/${c.steps} ${evalText}\n`);
        if (bar) bar.start(c.steps, step, { loss: record.loss.toFixed(4), tps: tps.toFixed(0), etaText: fmtEta(eta), elapsed: fmtEta(elapsed) });
      }
      if (printLines && (step % c.logEvery === 0 || step === stopAt)) {
        const termText = Object.entries(record.terms)
          .map(([n, v]) => ` ${n} ${v.toFixed(4)}`)
          .join("");
        process.stderr.write(
          `${label} step ${step}/${c.steps} loss ${record.loss.toFixed(4)}${termText} lr ${lr.toExponential(2)} |g| ${gradNorm.toFixed(3)} ${tps.toFixed(0)} tok/s elapsed ${fmtEta(elapsed)} ETA ${fmtEta(eta)}\n`,
        );
      }
      if ((c.checkpointEvery > 0 && step % c.checkpointEvery === 0) || step === stopAt) {
        lastCheckpoint = checkpoint();
        lastCheckpointStep = step;
      }
    }
  } finally {
    bar?.stop();
    optimizer.dispose();
  }
  return { log, state: state(), checkpoint: lastCheckpoint, resumedFrom, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The factor that clips a gradient of global L2 norm `norm` to `maxNorm` (torch.nn.utils.clip_grad_norm_:
 * maxNorm / (norm + 1e-6), at most 1); 1 when maxNorm is null.
 */
export function clipScaleFor(norm: number, maxNorm: number | null): number {
  return maxNorm === null ? 1 : Math.min(1, maxNorm / (norm + 1e-6));
}

/** The global L2 norm of a set of gradients (as one number). */
export function globalNorm(grads: readonly tf.Tensor[]): number {
  return tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))).dataSync()[0]!);
}

/**
 * The wasm heap only grows, so its size after a step is the run's high-water mark. Near wasm32's 4 GB cap
 * allocation does not fail cleanly: the step stalls at 100% of one core. Say so once, with the remedy.
 */
function warnIfHeapNearCap(label: string, step: number, recompute: boolean): boolean {
  const bytes = wasmHeapBytes();
  if (bytes === null || bytes < HEAP_WARN_BYTES) return false;
  process.stderr.write(
    `${label}: warning: after step ${step} the wasm heap is ${(bytes / 2 ** 30).toFixed(2)} GiB of its 4 GiB cap; ` +
      `near the cap a step stalls instead of failing. ${recompute ? "Lower train.batchSize or the token limits." : "Set train.recompute to true (same gradients, a fraction of the memory) or lower train.batchSize."}\n`,
  );
  return true;
}

function missingGrad(label: string, name: string): never {
  throw new Error(`${label}: the loss does not depend on trainable parameter '${name}' (no gradient); freeze it or fix the loss`);
}
