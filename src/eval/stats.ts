/**
 * The statistics every results table needs: a percentile bootstrap CI of a mean over instances, a paired
 * bootstrap and a paired t-test for the difference of two methods on the same instances (or seeds), and the
 * binomial tail for counts against chance. Seeded (mulberry32), so the same inputs give the same intervals.
 */
import { mulberry32 } from "../data/sni";

export interface Interval {
  mean: number;
  lo: number;
  hi: number;
  /** Values the interval is over. */
  n: number;
  level: number;
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}

function quantile(sorted: Float64Array, q: number): number {
  // Linear interpolation between order statistics (NumPy's default).
  const pos = (sorted.length - 1) * q;
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i]! * (1 - f) + sorted[i + 1]! * f : sorted[i]!;
}

/**
 * Percentile bootstrap CI of the mean of `xs` (resampling values with replacement, `resamples` times).
 * `groups`: resample whole groups (e.g. tasks) instead of values, for clustered data.
 */
export function bootstrapMean(xs: readonly number[], opts: { resamples?: number; level?: number; seed?: number; groups?: readonly (string | number)[] } = {}): Interval {
  const n = xs.length;
  const level = opts.level ?? 0.95;
  if (n === 0) return { mean: NaN, lo: NaN, hi: NaN, n: 0, level };
  const B = opts.resamples ?? 2000;
  const rand = mulberry32(opts.seed ?? 0);
  const means = new Float64Array(B);
  if (opts.groups) {
    if (opts.groups.length !== n) throw new Error(`bootstrapMean: ${opts.groups.length} group labels for ${n} values`);
    const byGroup = new Map<string | number, number[]>();
    opts.groups.forEach((g, i) => byGroup.set(g, [...(byGroup.get(g) ?? []), xs[i]!]));
    const gs = [...byGroup.values()].map((v) => ({ sum: v.reduce((a, b) => a + b, 0), count: v.length }));
    for (let b = 0; b < B; b++) {
      let s = 0;
      let c = 0;
      for (let k = 0; k < gs.length; k++) {
        const g = gs[Math.floor(rand() * gs.length)]!;
        s += g.sum;
        c += g.count;
      }
      means[b] = s / c;
    }
  } else {
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += xs[Math.floor(rand() * n)]!;
      means[b] = s / n;
    }
  }
  means.sort();
  const a = (1 - level) / 2;
  return { mean: mean(xs), lo: quantile(means, a), hi: quantile(means, 1 - a), n, level };
}

export interface PairedComparison {
  /** mean(a - b) with its bootstrap CI. */
  diff: Interval;
  /** Two-sided paired bootstrap p-value: how often the resampled mean difference crosses 0 (x2, capped at 1). */
  pBootstrap: number;
  /** Paired t statistic, degrees of freedom and two-sided p-value. */
  t: number;
  df: number;
  pT: number;
}

/** Method a minus method b on the same units (instances or seeds): bootstrap CI, bootstrap and t-test p. */
export function pairedComparison(a: readonly number[], b: readonly number[], opts: { resamples?: number; level?: number; seed?: number } = {}): PairedComparison {
  if (a.length !== b.length) throw new Error(`pairedComparison: ${a.length} and ${b.length} values; the units must be paired`);
  const d = a.map((x, i) => x - b[i]!);
  const n = d.length;
  const diff = bootstrapMean(d, opts);
  const B = opts.resamples ?? 2000;
  const rand = mulberry32((opts.seed ?? 0) + 1);
  let below = 0;
  let above = 0;
  for (let r = 0; r < B; r++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += d[Math.floor(rand() * n)]!;
    if (s <= 0) below++;
    if (s >= 0) above++;
  }
  const pBootstrap = n ? Math.min(1, (2 * Math.min(below, above)) / B) : NaN;
  const m = diff.mean;
  const sd = n > 1 ? Math.sqrt(d.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1)) : NaN;
  const t = sd > 0 ? m / (sd / Math.sqrt(n)) : m === 0 ? 0 : Math.sign(m) * Infinity;
  const df = n - 1;
  const pT = df > 0 ? (Number.isFinite(t) ? 2 * studentTUpper(Math.abs(t), df) : 0) : NaN;
  return { diff, pBootstrap, t, df, pT };
}

/** ln Γ(x) (Lanczos, g = 7), for x > 0. */
function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes' betacf). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  let f = 1;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < 1e-300) d = 1e-300;
  d = 1 / d;
  f = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = 1 + num / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    f *= d * c;
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = 1 + num / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const delta = d * c;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-14) break;
  }
  return (front * f) / a;
}

/** P(T > t) for Student's t with `df` degrees of freedom (t >= 0). */
export function studentTUpper(t: number, df: number): number {
  return 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

/** P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes against chance p. */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (!Number.isInteger(k) || !Number.isInteger(n) || n < 0 || k < 0) throw new Error(`binomialUpperTail: k and n must be integers >= 0, got ${k}, ${n}`);
  if (!(p >= 0 && p <= 1)) throw new Error(`binomialUpperTail: p must be in [0, 1], got ${p}`);
  if (k <= 0) return 1;
  if (k > n) return 0;
  // I_p(k, n - k + 1) = P(X >= k)
  if (p === 0) return 0;
  if (p === 1) return 1;
  return incompleteBeta(p, k, n - k + 1);
}
