/**
 * Optimizers over a named set of trainable variables, written out so that their state can be saved beside a
 * checkpoint and restored exactly, and so that each update is the one the reference implementation makes:
 *
 * - AdamW: torch.optim.AdamW (decoupled weight decay p -= lr·wd·p, then the bias-corrected Adam step with
 *   eps added to sqrt(v̂)).
 * - Adafactor: transformers.optimization.Adafactor (Shazeer & Stern, 2018) — factored second moments for
 *   matrices, update clipping by RMS, optional parameter-scale step size, optional first moment. T5's own
 *   optimizer for pretraining and finetuning.
 *
 * The learning rate is passed to every step (the schedule lives in the loop). Tests compare both against
 * fixtures produced by PyTorch and transformers (reference/make_optim_fixtures.py).
 */
import * as tf from "@tensorflow/tfjs-core";

export interface AdamWConfig {
  kind: "adamw";
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface AdafactorConfig {
  kind: "adafactor";
  /** eps1 is added to g² (regularises the second moment), eps2 floors the parameter scale. */
  eps1: number;
  eps2: number;
  /** Updates whose RMS exceeds this are scaled down to it. */
  clipThreshold: number;
  /** beta2_t = 1 - t^decayRate. */
  decayRate: number;
  /** First-moment coefficient, or null for none (T5's choice: no momentum, so no extra memory). */
  beta1: number | null;
  weightDecay: number;
  /** Step size relative to the parameter's RMS (max(eps2, RMS(p)) · lr), as Adafactor's paper proposes. */
  scaleParameter: boolean;
}

export type OptimizerConfig = AdamWConfig | AdafactorConfig;

export const ADAMW_DEFAULTS: AdamWConfig = { kind: "adamw", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
export const ADAFACTOR_DEFAULTS: AdafactorConfig = {
  kind: "adafactor",
  eps1: 1e-30,
  eps2: 1e-3,
  clipThreshold: 1.0,
  decayRate: -0.8,
  beta1: null,
  weightDecay: 0,
  scaleParameter: false,
};

export function validateOptimizerConfig(c: OptimizerConfig, where = "optimizer"): string[] {
  const p: string[] = [];
  const between = (name: string, v: number, lo: number, hi: number) => {
    if (!(v >= lo && v < hi)) p.push(`${where}.${name} must be in [${lo}, ${hi}), got ${v}`);
  };
  if (c.kind === "adamw") {
    between("beta1", c.beta1, 0, 1);
    between("beta2", c.beta2, 0, 1);
    if (!(c.eps > 0)) p.push(`${where}.eps must be > 0, got ${c.eps}`);
    if (!(c.weightDecay >= 0)) p.push(`${where}.weightDecay must be >= 0, got ${c.weightDecay}`);
  } else if (c.kind === "adafactor") {
    if (!(c.eps1 > 0) || !(c.eps2 > 0)) p.push(`${where}.eps1 and eps2 must be > 0, got ${c.eps1}, ${c.eps2}`);
    if (!(c.clipThreshold > 0)) p.push(`${where}.clipThreshold must be > 0, got ${c.clipThreshold}`);
    if (!(c.decayRate < 0)) p.push(`${where}.decayRate must be < 0, got ${c.decayRate}`);
    if (c.beta1 !== null) between("beta1", c.beta1, 0, 1);
    if (!(c.weightDecay >= 0)) p.push(`${where}.weightDecay must be >= 0, got ${c.weightDecay}`);
  } else {
    p.push(`${where}.kind must be "adamw" or "adafactor", got ${JSON.stringify((c as { kind: unknown }).kind)}`);
  }
  return p;
}

/**
 * An optimizer bound to trainable variables by name. `step(grads, lr)` updates every variable that has a
 * gradient (a variable without one keeps its value and its state). `state()` exposes the slot tensors by name
 * (`<param>/<slot>`) plus the step count, for checkpoints; `loadState` restores them.
 */
export interface Optimizer {
  readonly config: OptimizerConfig;
  readonly stepCount: number;
  step(grads: Map<string, tf.Tensor>, lr: number): void;
  state(): { step: number; slots: Map<string, tf.Tensor> };
  loadState(state: { step: number; slots: Map<string, tf.Tensor> }): void;
  dispose(): void;
}

export function createOptimizer(config: OptimizerConfig, variables: Map<string, tf.Variable>): Optimizer {
  const problems = validateOptimizerConfig(config);
  if (problems.length) throw new Error(`invalid optimizer config: ${problems.join("; ")}`);
  return config.kind === "adamw" ? new AdamW(config, variables) : new Adafactor(config, variables);
}

abstract class SlotOptimizer implements Optimizer {
  protected t = 0;
  protected readonly slots = new Map<string, tf.Variable>();
  constructor(
    readonly config: OptimizerConfig,
    protected readonly variables: Map<string, tf.Variable>,
  ) {}
  get stepCount(): number {
    return this.t;
  }
  /** The slot `<name>/<slot>`, created as zeros of `shape` on first use. */
  protected slot(name: string, slot: string, shape: number[]): tf.Variable {
    const key = `${name}/${slot}`;
    let v = this.slots.get(key);
    if (!v) {
      v = tf.tidy(() => tf.variable(tf.zeros(shape), false));
      this.slots.set(key, v);
    }
    return v;
  }
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`optimizer step: learning rate must be a finite number >= 0, got ${lr}`);
    for (const name of grads.keys()) {
      if (!this.variables.has(name)) throw new Error(`optimizer step: gradient for '${name}', which is not a trainable variable`);
    }
    this.t += 1;
    for (const [name, p] of this.variables) {
      const g = grads.get(name);
      if (!g) continue;
      if (g.shape.join() !== p.shape.join()) throw new Error(`optimizer step: gradient of '${name}' has shape [${g.shape}], parameter [${p.shape}]`);
      this.update(name, p, g, lr);
    }
  }
  protected abstract update(name: string, p: tf.Variable, g: tf.Tensor, lr: number): void;
  state(): { step: number; slots: Map<string, tf.Tensor> } {
    return { step: this.t, slots: new Map(this.slots) };
  }
  loadState(state: { step: number; slots: Map<string, tf.Tensor> }): void {
    for (const [key, t] of state.slots) {
      const name = key.slice(0, key.lastIndexOf("/"));
      if (!this.variables.has(name)) throw new Error(`optimizer state: slot '${key}' belongs to no trainable variable`);
    }
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
    for (const [key, t] of state.slots) this.slots.set(key, tf.tidy(() => tf.variable(t.clone(), false)));
    this.t = state.step;
  }
  dispose(): void {
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
  }
}

class AdamW extends SlotOptimizer {
  declare readonly config: AdamWConfig;
  protected update(name: string, p: tf.Variable, g: tf.Tensor, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.config;
    const m = this.slot(name, "exp_avg", p.shape);
    const v = this.slot(name, "exp_avg_sq", p.shape);
    const bc1 = 1 - Math.pow(beta1, this.t);
    const bc2 = 1 - Math.pow(beta2, this.t);
    tf.tidy(() => {
      const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
      const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
      const decayed = weightDecay > 0 ? tf.mul(p, 1 - lr * weightDecay) : p;
      const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(bc2)), eps);
      p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), lr / bc1)));
      m.assign(m1);
      v.assign(v1);
    });
  }
}

function rms(x: tf.Tensor): tf.Scalar {
  return tf.sqrt(tf.mean(tf.square(x))) as tf.Scalar;
}

class Adafactor extends SlotOptimizer {
  declare readonly config: AdafactorConfig;
  protected update(name: string, p: tf.Variable, g: tf.Tensor, lr: number): void {
    const { eps1, eps2, clipThreshold, decayRate, beta1, weightDecay, scaleParameter } = this.config;
    const factored = p.rank >= 2;
    const beta2t = 1 - Math.pow(this.t, decayRate);
    const rows = p.shape.slice(0, -1);
    const cols = [...p.shape.slice(0, -2), p.shape[p.rank - 1]!];
    const r = factored ? this.slot(name, "exp_avg_sq_row", rows) : null;
    const c = factored ? this.slot(name, "exp_avg_sq_col", cols) : null;
    const v = factored ? null : this.slot(name, "exp_avg_sq", p.shape);
    const m = beta1 !== null ? this.slot(name, "exp_avg", p.shape) : null;
    tf.tidy(() => {
      const stepSize = scaleParameter ? tf.mul(tf.maximum(rms(p), eps2), lr) : tf.scalar(lr);
      const g2 = tf.add(tf.square(g), eps1);
      let update: tf.Tensor;
      if (r && c) {
        const r1 = tf.add(tf.mul(r, beta2t), tf.mul(tf.mean(g2, -1), 1 - beta2t));
        const c1 = tf.add(tf.mul(c, beta2t), tf.mul(tf.mean(g2, -2), 1 - beta2t));
        // v̂ ≈ (r ⊗ c) / mean(r): the rank-1 reconstruction of the second moment; update = g / sqrt(v̂).
        const rFactor = tf.expandDims(tf.rsqrt(tf.div(r1, tf.mean(r1, -1, true))), -1);
        const cFactor = tf.expandDims(tf.rsqrt(c1), -2);
        update = tf.mul(tf.mul(rFactor, cFactor), g);
        r.assign(r1);
        c.assign(c1);
      } else {
        const v1 = tf.add(tf.mul(v!, beta2t), tf.mul(g2, 1 - beta2t));
        update = tf.mul(tf.rsqrt(v1), g);
        v!.assign(v1);
      }
      update = tf.div(update, tf.maximum(tf.div(rms(update), clipThreshold), 1));
      update = tf.mul(update, stepSize);
      if (m && beta1 !== null) {
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(update, 1 - beta1));
        m.assign(m1);
        update = m1;
      }
      const decayed = weightDecay > 0 ? tf.sub(p, tf.mul(p, tf.mul(stepSize, weightDecay))) : p;
      p.assign(tf.sub(decayed, update));
    });
  }
}
