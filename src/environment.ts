/** What this process runs on, for result files and the first notebook cell. */
import { execSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import * as tf from "@tensorflow/tfjs-core";
import { currentBackend, type BackendInfo } from "./backend";

export interface EnvironmentReport {
  node: string;
  tfjs: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  backend: BackendInfo | null;
  commit: string | null;
}

export function environmentReport(): EnvironmentReport {
  let commit: string | null = null;
  try {
    commit = execSync("git rev-parse HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    commit = null; // not a git checkout
  }
  return {
    node: process.version,
    tfjs: tf.version_core,
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    backend: currentBackend(),
    commit,
  };
}
