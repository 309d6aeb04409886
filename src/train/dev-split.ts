/**
 * The dev split every stage shares: a stratified share of SNI train tasks held out of training, on which
 * learning curves are drawn and choices are made (never on test tasks). A module of its own, with no training
 * imports, so that the evaluation CLI and configs can name it without loading (and cycling through) a stage.
 */
import { devSplit, type SniTrainTask } from "../data/sni";

export interface DevConfig {
  /** Share of train tasks held out (stratified by category); null: none. */
  fraction: number | null;
  seed: number;
  /** Steps between dev-loss points (src/train/dev-loss.ts), and after the last step; 0: no dev curve. */
  every: number;
  /** Instances of each dev task in the dev loss (a fixed sample). */
  instancesPerTask: number;
}

/** The dev split's defaults: 5% of train tasks, no dev curve unless a config asks for one. */
export const DEV_DEFAULTS: DevConfig = { fraction: 0.05, seed: 0, every: 0, instancesPerTask: 8 };

/** Train tasks minus the dev split (deterministic in dev.seed), and the dev tasks. */
export function trainAndDevTasks(tasks: SniTrainTask[], dev: DevConfig, maxTasks: number | null = null): { train: SniTrainTask[]; dev: SniTrainTask[] } {
  const split = dev.fraction === null ? { train: tasks, dev: [] } : devSplit(tasks, { fraction: dev.fraction, seed: dev.seed, stratifyByCategory: true });
  return maxTasks === null ? split : { train: split.train.slice(0, maxTasks), dev: split.dev };
}
