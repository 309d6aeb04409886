/**
 * Learning-rate schedules: linear warmup, then constant, linear decay towards 0, or inverse square root
 * (T5 pretraining: lr · sqrt(warmup / step)). Steps count optimizer updates from 1, so no update is spent at
 * lr 0: warmup gives lr·s/W at step s (reaching lr at s = W) and linear decay lr·(N - s + 1)/(N - W), the
 * last step N getting lr/(N - W). HF's get_linear_schedule_with_warmup is the same curve shifted by one step.
 */
export type ScheduleKind = "constant" | "linear" | "inverse-sqrt";

export interface ScheduleConfig {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
}

export function validateScheduleConfig(s: ScheduleConfig, totalSteps: number, where = "schedule"): string[] {
  const p: string[] = [];
  if (!["constant", "linear", "inverse-sqrt"].includes(s.kind)) p.push(`${where}.kind must be constant, linear or inverse-sqrt, got ${JSON.stringify(s.kind)}`);
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) p.push(`${where}.lr must be a finite number > 0, got ${s.lr}`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0) p.push(`${where}.warmupSteps must be an integer >= 0, got ${s.warmupSteps}`);
  else if (s.warmupSteps > totalSteps) p.push(`${where}.warmupSteps (${s.warmupSteps}) exceeds the number of steps (${totalSteps})`);
  return p;
}

/** The learning rate of optimizer step `step` (1-based) out of `totalSteps`. */
export function learningRate(s: ScheduleConfig, step: number, totalSteps: number): number {
  if (s.warmupSteps > 0 && step <= s.warmupSteps) return (s.lr * step) / s.warmupSteps;
  switch (s.kind) {
    case "constant":
      return s.lr;
    case "linear":
      return (s.lr * Math.max(0, totalSteps - step + 1)) / Math.max(1, totalSteps - s.warmupSteps);
    case "inverse-sqrt":
      return s.lr * Math.sqrt(Math.max(1, s.warmupSteps) / step);
  }
}
