/** What this process runs on, for result files and the first notebook cell. */
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import * as tf from "@tensorflow/tfjs-core";
import { currentBackend, matMulPrecision, type BackendInfo } from "./backend";

export interface EnvironmentReport {
  node: string;
  tfjs: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  backend: BackendInfo | null;
  commit: string | null;
  /** Tracked files that differed from `commit` when the process started ([] when clean; null outside git). */
  uncommitted: string[] | null;
}

/**
 * The checkout's commit and its uncommitted tracked files, read once when this module loads: a run that lasts
 * an hour records the code it started with, not whatever was committed while it ran.
 */
const STARTED_AT_COMMIT = ((): { commit: string | null; uncommitted: string[] | null } => {
  try {
    const git = (args: string) => execSync(`git ${args}`, { cwd: __dirname, stdio: ["ignore", "pipe", "ignore"] }).toString();
    const commit = git("rev-parse HEAD").trim();
    const uncommitted = git("status --porcelain --untracked-files=no")
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => l.slice(3));
    return { commit, uncommitted };
  } catch {
    return { commit: null, uncommitted: null }; // not a git checkout (an installed package)
  }
})();

export function environmentReport(): EnvironmentReport {
  const { commit, uncommitted } = STARTED_AT_COMMIT;
  return {
    node: process.version,
    tfjs: tf.version_core,
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    // The precision as it is now: a training config's train.precision may have changed it since start-up.
    backend: ((b) => (b ? { ...b, precision: matMulPrecision() } : null))(currentBackend()),
    commit,
    uncommitted,
  };
}

/** Peak resident memory of this process so far (VmHWM), in bytes; null where /proc is missing. */
export function peakRssBytes(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
