/**
 * The dev split every stage shares: a stratified share of SNI train tasks held out of training, on which
 * learning curves are drawn and choices are made (never on test tasks). A module of its own, with no training
 * imports, so that the evaluation CLI and configs can name it without loading (and cycling through) a stage.
 */
import { devSplit, sampleInstances, type SniTrainTask } from "../data/sni";

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

/**
 * The "seen" check: the training tasks (train minus the dev split). With `exclude` (the per-task training
 * sample: sampleInstances(task, instancesPerTask, seed)), each task keeps only the instances outside it, which
 * exist where a task has more instances than the sample (the full SNI); without it every instance is kept,
 * some of which training has read. Either way the score is on the tasks training fitted, so beside the dev
 * split's it separates a model that has not learned its tasks from one that does not carry them to new ones.
 * Tasks left with no instance are counted, not evaluated.
 */
export function seenTasks(
  tasks: SniTrainTask[],
  exclude: { instancesPerTask: number; seed: number } | null,
  dev: DevConfig = DEV_DEFAULTS,
): { tasks: SniTrainTask[]; fullyTrained: string[] } {
  const out: SniTrainTask[] = [];
  const fullyTrained: string[] = [];
  for (const task of trainAndDevTasks(tasks, dev).train) {
    const used = new Set(exclude ? sampleInstances(task, exclude.instancesPerTask, exclude.seed).map((i) => i.id) : []);
    const rest = task.instances.filter((i) => !used.has(i.id));
    if (rest.length === 0) fullyTrained.push(task.name);
    else out.push({ ...task, instances: rest });
  }
  return { tasks: out, fullyTrained };
}
