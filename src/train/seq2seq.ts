/**
 * Pieces every T5 training stage shares: which tensors train, the label cross-entropy of a batch, loading a
 * base model (preset, or a Hugging Face checkpoint folder), and the run record written beside the results.
 */
import { projectRelative } from "../project-paths";
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { batchTensors, type PaddedBatch } from "../data/batching";
import { crossEntropyLoss, forward, type RunOptions, type T5Model } from "../model/t5";
import { loadT5Checkpoint } from "../model/weights";
import { initT5Params } from "../model/init";
import { parseT5Config, t5ParameterShapes, type T5Config } from "../model/config";
import { countParameters, presetConfig } from "../model/presets";
import { environmentReport } from "../environment";
import type { LogRecord, LossOutput, TrainResult } from "./loop";
import { writeJsonAtomic } from "./checkpoint";

/**
 * Makes the model's parameters whose names match `select` trainable: each becomes a tf.Variable in the model
 * (forward reads it unchanged) and is returned by name; the rest stay constant tensors.
 */
export function makeTrainable(model: T5Model, select: (name: string) => boolean = () => true): Map<string, tf.Variable> {
  const out = liftToVariables(model.params, select);
  if (out.size === 0) throw new Error("makeTrainable: the selection matches no parameter");
  return out;
}

/**
 * Replaces the tensors of `params` that `select` names by trainable variables (in place, so code reading the
 * map sees them) and returns them keyed `prefix + name`.
 */
export function liftToVariables(params: Map<string, tf.Tensor>, select: (name: string) => boolean, prefix = ""): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const [name, t] of params) {
    if (!select(name)) continue;
    const v = t instanceof tf.Variable ? t : tf.variable(t, true);
    if (v !== t) t.dispose();
    params.set(name, v);
    out.set(prefix + name, v);
  }
  return out;
}

/** Mean token cross-entropy of the model on a padded batch (`ce` is also logged as a term). */
export function seq2seqLoss(model: T5Model, batch: PaddedBatch, opts: RunOptions): LossOutput {
  // Called inside the gradient tape: the batch tensors are needed by the backward pass and are released
  // with the tape's other intermediates (tf.variableGrads runs the loss in a tidy scope).
  const t = batchTensors(batch);
  const logits = forward(model, { inputIds: t.inputIds, attentionMask: t.attentionMask, decoderInputIds: t.decoderInputIds }, opts);
  const loss = crossEntropyLoss(logits, t.labels);
  return { loss, terms: { ce: loss } };
}

/** A model from a preset name ("tiny", "small"), an object of T5 config fields (random init), or a checkpoint folder. */
export function loadOrInitModel(spec: string | Record<string, unknown>, seed: number): { model: T5Model; source: Record<string, unknown> } {
  if (typeof spec === "string" && !spec.includes("/") && !spec.includes("\\") && !fs.existsSync(spec)) {
    const config = presetConfig(spec);
    return { model: { config, params: initT5Params(config, seed) }, source: { kind: "preset", preset: spec, initSeed: seed } };
  }
  if (typeof spec === "string") return { model: loadBaseModel(spec), source: { kind: "checkpoint", path: path.resolve(spec) } };
  const config = parseT5Config(spec, "config.model");
  return { model: { config, params: initT5Params(config, seed) }, source: { kind: "config", initSeed: seed } };
}

/** A Hugging Face T5 folder, with an error that says what a base model folder is when it is missing. */
export function loadBaseModel(dir: string): T5Model {
  if (!fs.existsSync(dir)) {
    throw new Error(`base model folder not found: ${dir} (a Hugging Face T5 folder: config.json + model.safetensors, e.g. the model/ folder a pretrain-base or metatrain run writes)`);
  }
  const { config, params } = loadT5Checkpoint(dir);
  return { config, params };
}

/**
 * The content of a Hugging Face T5 folder as one sha256 (config.json and every *.safetensors file, by name):
 * what "the same base model" means when a run checks where adapters sit, whatever the folder is called.
 */
export function modelFolderFingerprint(dir: string): string {
  if (!fs.existsSync(path.join(dir, "config.json"))) throw new Error(`modelFolderFingerprint: ${dir} has no config.json (not a model folder)`);
  const h = createHash("sha256");
  const files = ["config.json", ...fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort()];
  for (const f of files) {
    h.update(f + "\0");
    h.update(fs.readFileSync(path.join(dir, f)));
  }
  return h.digest("hex");
}

/**
 * The prompt format a model folder was trained on, from the run record beside it (`<dir>/../run.json` of a
 * metatrain or finetune run); null when nothing says (a base model, a checkpoint from elsewhere).
 */
export function trainedFormat(modelDir: string): { format: string; record: string } | null {
  const record = path.join(path.dirname(path.resolve(modelDir)), "run.json");
  if (!fs.existsSync(record)) return null;
  const run = JSON.parse(fs.readFileSync(record, "utf8")) as { stage?: string; config?: { format?: unknown } };
  const format = run.config?.format;
  return (run.stage === "metatrain" || run.stage === "finetune") && typeof format === "string" ? { format, record } : null;
}

export function modelSummary(config: T5Config): Record<string, unknown> {
  const shapes = t5ParameterShapes(config);
  const total = countParameters(shapes);
  const embed = (shapes.get("shared.weight") ?? [0]).reduce((a, b) => a * b, 1) + (shapes.get("lm_head.weight") ?? [0]).reduce((a, b) => a * b, 1);
  return { parameters: total, embeddingParameters: embed, nonEmbeddingParameters: total - embed, config };
}

export function disposeModel(model: T5Model): void {
  for (const t of model.params.values()) t.dispose();
}

/** The run record (`run.json`): what produced the folder, so every number in it can be regenerated. */
export function writeRunRecord(
  out: string,
  fields: { stage: string; command: string[] | null; config: unknown; seed: number; started: Date; result?: TrainResult; extra?: Record<string, unknown> },
): void {
  const env = environmentReport();
  const finished = new Date();
  const r = fields.result;
  const record = {
    stage: fields.stage,
    command: fields.command ? fields.command.join(" ") : null,
    cwd: process.cwd(),
    config: fields.config,
    seed: fields.seed,
    commit: env.commit,
    ...(env.uncommitted?.length ? { uncommitted: env.uncommitted } : {}),
    backend: env.backend,
    environment: { node: env.node, tfjs: env.tfjs, cpu: env.cpu, cores: env.cores, memoryGiB: env.memoryGiB },
    startedAt: fields.started.toISOString(),
    finishedAt: finished.toISOString(),
    wallSeconds: (finished.getTime() - fields.started.getTime()) / 1000,
    ...(r
      ? {
          training: {
            steps: r.state.step,
            resumedFrom: r.resumedFrom,
            precision: r.precision.inUse,
            trainSeconds: r.state.seconds,
            tokens: r.state.tokens,
            finalLoss: r.log.at(-1)?.loss ?? null,
            meanLossLast10: r.log.length ? r.log.slice(-10).reduce((s, x) => s + x.loss, 0) / Math.min(10, r.log.length) : null,
          },
        }
      : {}),
    ...(fields.extra ?? {}),
  };
  fs.mkdirSync(out, { recursive: true });
  writeJsonAtomic(path.join(out, "run.json"), projectRelative(record));
}

export interface StageOptions {
  out: string;
  resume?: boolean;
  progress?: boolean | "auto";
  onLog?: (r: LogRecord) => void;
  /** The command line, for run.json (null when called from a notebook). */
  command?: string[] | null;
  /** Stop after this step with a checkpoint (tests; time-boxed runs). */
  stopAtStep?: number;
  /** Config keys a resume may change (see RESUME_CHANGEABLE in loop.ts), e.g. ["train.schedule.lr"]. */
  allowChanges?: string[];
}

export interface StageResult {
  out: string;
  /** The trained model's folder (Hugging Face T5) or adapter folder (PEFT). */
  model: string;
  result: TrainResult;
}

/** The loop options every stage passes through from its StageOptions. */
export function loopOptions(opts: StageOptions): { resume?: boolean; progress?: boolean | "auto"; onLog?: (r: LogRecord) => void; stopAtStep?: number; allowChanges?: string[] } {
  return { resume: opts.resume, progress: opts.progress, onLog: opts.onLog, stopAtStep: opts.stopAtStep, allowChanges: opts.allowChanges };
}

/** Writes a stage's run.json (see writeRunRecord) with its command, config and seed. */
export function recordStage(
  stage: string,
  opts: StageOptions,
  config: { train: { seed: number } },
  started: Date,
  result: TrainResult | undefined,
  extra: Record<string, unknown>,
): void {
  writeRunRecord(opts.out, { stage, command: opts.command ?? null, config, seed: config.train.seed, started, result, extra });
}
