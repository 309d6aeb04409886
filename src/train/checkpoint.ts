/**
 * Training checkpoints: one folder `<out>/checkpoint/` holding
 *   - the stage's model files (a Hugging Face T5 folder, or a PEFT adapter: whatever `saveModel` writes),
 *   - `optimizer.safetensors`: every optimizer slot by `<param>/<slot>`,
 *   - `trainable.safetensors`: the trainable tensors by the loop's names (what resuming restores),
 *   - `trainer_state.json`: step, data-order state, optimizer step count, config fingerprint, losses so far.
 *
 * The folder is replaced atomically: everything is written to `checkpoint.tmp-<pid>/`, then the old folder
 * is renamed to `checkpoint.old`, the new one to `checkpoint`, and the old one removed. A kill at any point
 * leaves either the previous or the new checkpoint complete (`findCheckpoint` also accepts a lone
 * `checkpoint.old`, the state between the two renames).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { readSafetensors, writeJsonAtomic, writeSafetensors } from "../model/safetensors";
import { processAlive } from "./folder-lock";

export { writeJsonAtomic };
import type { DataOrderState } from "../data/batching";

/** What the run trained on, so that resuming on changed data is refused with what changed. */
export interface DataFingerprint {
  /** Data files by path: size in bytes and sha256. */
  files: Record<string, { size: number; sha256: string }>;
  /** Names of the tasks (or groups) trained on. */
  tasks: string[];
  /** Number of training examples and a hash of their lengths and a seeded sample of their token ids. */
  examples: number;
  exampleHash: string;
}

/** A configuration change accepted on resume (`allowChanges`), kept in the state for the record. */
export interface ResumeOverride {
  atStep: number;
  key: string;
  from: unknown;
  to: unknown;
  at: string;
}

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  totalSteps: number;
  data: DataOrderState;
  optimizerStep: number;
  /** A hash of the training config: resuming with a different config is refused. */
  configHash: string;
  /** The fingerprinted configuration itself, so a refusal can say which keys differ. */
  configSnapshot?: unknown;
  dataFingerprint?: DataFingerprint;
  /** Changes accepted on resume (e.g. a lower learning rate after a non-finite stop), oldest first. */
  overrides?: ResumeOverride[];
  seed: number;
  /** Wall seconds spent training so far (over all runs). */
  seconds: number;
  tokens: number;
  savedAt: string;
}

export interface CheckpointContents {
  state: TrainerState;
  trainable: Map<string, tf.Tensor>;
  optimizer: Map<string, tf.Tensor>;
  dir: string;
}

export function checkpointDir(out: string): string {
  return path.join(out, "checkpoint");
}

/** Writes the checkpoint folder atomically (see the module comment). */
export function saveCheckpoint(
  out: string,
  contents: { state: TrainerState; trainable: Map<string, tf.Tensor>; optimizer: Map<string, tf.Tensor> },
  saveModel: (dir: string) => void,
): string {
  const final = checkpointDir(out);
  const tmp = `${final}.tmp-${process.pid}`;
  const old = `${final}.old`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    saveModel(tmp);
    writeSafetensors(path.join(tmp, "trainable.safetensors"), contents.trainable, { format: "tagi-trainable" });
    if (contents.optimizer.size) writeSafetensors(path.join(tmp, "optimizer.safetensors"), contents.optimizer, { format: "tagi-optimizer" });
    writeJsonAtomic(path.join(tmp, "trainer_state.json"), contents.state);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(final)) fs.renameSync(final, old);
  fs.renameSync(tmp, final);
  fs.rmSync(old, { recursive: true, force: true });
  return final;
}

/** The complete checkpoint folder under `out`, or null when there is none. */
export function findCheckpoint(out: string): string | null {
  for (const dir of [checkpointDir(out), `${checkpointDir(out)}.old`]) {
    if (fs.existsSync(path.join(dir, "trainer_state.json"))) return dir;
  }
  return null;
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, "trainer_state.json");
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`checkpoint ${dir}: cannot read trainer_state.json: ${(e as Error).message}`);
  }
  const s = raw as TrainerState;
  if (!Number.isInteger(s.step) || !s.data || !Number.isInteger(s.data.epoch) || typeof s.configHash !== "string") {
    throw new Error(`checkpoint ${dir}: trainer_state.json is not a trainer state (step, data, configHash missing)`);
  }
  return s;
}

/** Reads a checkpoint; NaN or Inf in any tensor is an error naming it (readSafetensors checks every value). */
export function loadCheckpoint(dir: string): CheckpointContents {
  const state = readTrainerState(dir);
  const trainableFile = path.join(dir, "trainable.safetensors");
  if (!fs.existsSync(trainableFile)) throw new Error(`checkpoint ${dir}: trainable.safetensors is missing`);
  const trainable = readSafetensors(trainableFile).tensors;
  const optFile = path.join(dir, "optimizer.safetensors");
  let optimizer: Map<string, tf.Tensor>;
  try {
    optimizer = fs.existsSync(optFile) ? readSafetensors(optFile).tensors : new Map<string, tf.Tensor>();
  } catch (e) {
    for (const t of trainable.values()) t.dispose();
    throw e;
  }
  return { state, trainable, optimizer, dir };
}

const TEMP_NAME = /\.tmp-(\d+)(?:-[a-z0-9]+)?$/;

/**
 * Removes what a killed write left under `dir` (depth 3): `*.tmp-<pid>` files and folders of atomic writes
 * (checkpoint.tmp-<pid>/, model.safetensors.tmp-<pid>, .per_task.csv.tmp-<pid>-<x>) whose process is gone, and
 * a `checkpoint.old` beside a complete `checkpoint`. Call it holding the folder's lock. Returns what it removed
 * (relative paths) and says so through `log`.
 */
export function removeStaleTemps(dir: string, log: (line: string) => void = (l) => process.stderr.write(l + "\n"), depth = 3): string[] {
  const removed: string[] = [];
  const visit = (d: string, level: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = path.join(d, e.name);
      const m = TEMP_NAME.exec(e.name);
      const stale = m && !e.name.startsWith(".tagi.lock") && (Number(m[1]) === process.pid || !processAlive(Number(m[1])));
      const leftOld = e.name === "checkpoint.old" && fs.existsSync(path.join(d, "checkpoint", "trainer_state.json"));
      if (stale || leftOld) {
        fs.rmSync(full, { recursive: true, force: true });
        removed.push(path.relative(dir, full));
      } else if (e.isDirectory() && level < depth) visit(full, level + 1);
    }
  };
  visit(dir, 1);
  if (removed.length) log(`[tagi] removed ${removed.length} leftover(s) of an interrupted write in ${dir}: ${removed.join(", ")}`);
  return removed;
}
