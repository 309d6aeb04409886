/**
 * Differences between methods as paired tests over instances (the evaluation protocol of the design issue):
 * every experiment at a scale is evaluated on the same seeded instance sample, so a method and TAGI can be
 * compared instance by instance. Units are (TAGI seed, task, instance): a method with a record at the same
 * seed is paired with it; a method whose single record no seed changes (No FT, the mean adapter, the shared
 * Tk-Instruct model) is paired with every TAGI seed; a trained method's run is never paired with another seed. The difference gets a paired bootstrap CI and
 * paired t-test p (src/eval/stats.ts) from the evaluations' predictions.jsonl.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pairedComparison, studentTUpper, type PairedComparison } from "../eval/stats";
import type { ExperimentRecord } from "./runner";

/**
 * Per-instance ROUGE-L from an evaluation's predictions.jsonl (key "task|id"). A line that is not JSON or
 * lacks task, id or a numeric rougeL is an error naming the file and line; a key seen twice is one too (a
 * paired test must not count an instance twice).
 */
export function readInstanceRougeL(file: string): Map<string, number> {
  const out = new Map<string, number>();
  fs.readFileSync(file, "utf8").split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let p: { task?: unknown; id?: unknown; rougeL?: unknown };
    try {
      p = JSON.parse(line) as typeof p;
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    if (typeof p.task !== "string" || (typeof p.id !== "string" && typeof p.id !== "number") || typeof p.rougeL !== "number") {
      throw new Error(`${file}:${i + 1}: a prediction needs a string task, an id and a numeric rougeL`);
    }
    const key = `${p.task}|${p.id}`;
    if (out.has(key)) throw new Error(`${file}:${i + 1}: instance ${key} appears twice`);
    out.set(key, p.rougeL);
  });
  return out;
}

/** Per-instance ROUGE-L of one experiment's evaluation (key "task|id"), or null when its predictions are not there. */
export function instanceRougeL(resultsDir: string, rec: ExperimentRecord, format: string): Map<string, number> | null {
  const file = path.join(resultsDir, rec.experiment.name, rec.scale.scale, `seed-${rec.seed}`, `eval-${format.replace("+", "")}`, "predictions.jsonl");
  return fs.existsSync(file) ? readInstanceRougeL(file) : null;
}

/**
 * The instances two evaluations share, as aligned score arrays (a from `a`, b from `b`, in `b`'s order). A
 * key in only one of them is left out here; callers that need equal sets check the lengths.
 */
export function pairOnInstances(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): { a: number[]; b: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (const [k, v] of b) {
    const w = a.get(k);
    if (w === undefined) continue;
    x.push(w);
    y.push(v);
  }
  return { a: x, b: y };
}

/** Method minus TAGI on paired instances (see the module comment); null when nothing pairs. */
export function pairedVersusTagi(resultsDir: string, method: readonly ExperimentRecord[], tagi: readonly ExperimentRecord[], format: string): (PairedComparison & { units: number; seeds: number }) | null {
  const a: number[] = [];
  const b: number[] = [];
  let seeds = 0;
  for (const t of tagi) {
    // A method's run at another seed is not a pair: only a model that no seed changes (No FT, the mean
    // adapter, the shared Tk-Instruct model: no stage of its own) stands beside every TAGI seed.
    const m = method.find((r) => r.seed === t.seed) ?? (method.length === 1 && seedFree(method[0]!) ? method[0] : undefined);
    if (!m) continue;
    const ms = instanceRougeL(resultsDir, m, format);
    const ts = instanceRougeL(resultsDir, t, format);
    if (!ms || !ts) continue;
    const p = pairOnInstances(ms, ts);
    a.push(...p.a);
    b.push(...p.b);
    if (p.a.length) seeds++;
  }
  if (!a.length) return null;
  return { ...pairedComparison(a, b), units: a.length, seeds };
}

/** A record whose model no training seed changes: it trains nothing itself (no stage) and reads no trained experiment. */
function seedFree(r: ExperimentRecord): boolean {
  return !r.experiment.stage && !r.experiment.uses;
}

/** "+1.23 [0.51, 2.02], p = 0.003" for a table cell. */
export function formatPaired(c: PairedComparison | null): string {
  if (!c) return "–";
  const fp = (x: number) => (x < 1e-4 ? x.toExponential(0) : x < 0.01 ? x.toFixed(4) : x.toFixed(3));
  const sign = c.diff.mean >= 0 ? "+" : "";
  return `${sign}${c.diff.mean.toFixed(2)} [${c.diff.lo.toFixed(2)}, ${c.diff.hi.toFixed(2)}], p = ${fp(c.pT)}`;
}

/** A method's comparisons seed by seed (seed → method at that seed minus TAGI at that seed). */
export interface SeedBySeedRow {
  name: string;
  cells: Map<number, PairedComparison & { units: number }>;
}

/**
 * Seed by seed, so that a mean over seeds does not hide a sign that flips: for each trained method in
 * `names`, its run at each seed minus TAGI's at the same seed; for TAGI itself, each seed minus its lowest
 * seed (the seed-to-seed spread every single-seed delta has to beat). Seed-free methods (No FT, the mean
 * adapter, the shared Tk-Instruct) have nothing per seed and are left out. Null when no row has a cell.
 */
export function seedBySeed(resultsDir: string, byName: ReadonlyMap<string, readonly ExperimentRecord[]>, names: readonly string[], format: string): { seeds: number[]; rows: SeedBySeedRow[]; tagiBaseSeed: number | null } | null {
  const tagi = [...(byName.get("tagi") ?? [])].sort((x, y) => x.seed - y.seed);
  // Each run's predictions are read once: TAGI's are compared with every method's.
  const read = new Map<ExperimentRecord, Map<string, number> | null>();
  const scores = (r: ExperimentRecord) => {
    if (!read.has(r)) read.set(r, instanceRougeL(resultsDir, r, format));
    return read.get(r)!;
  };
  const compare = (a: ExperimentRecord, b: ExperimentRecord): (PairedComparison & { units: number }) | null => {
    const as = scores(a);
    const bs = scores(b);
    if (!as || !bs) return null;
    const p = pairOnInstances(as, bs);
    return p.a.length ? { ...pairedComparison(p.a, p.b), units: p.a.length } : null;
  };
  const first = tagi.find((t) => scores(t) !== null);
  const rows: SeedBySeedRow[] = [];
  for (const name of names) {
    const recs = byName.get(name) ?? [];
    const cells = new Map<number, PairedComparison & { units: number }>();
    if (name === "tagi") {
      for (const t of tagi) {
        if (!first || t === first) continue;
        const c = compare(t, first);
        if (c) cells.set(t.seed, c);
      }
    } else if (!(recs.length === 1 && seedFree(recs[0]!))) {
      for (const r of recs) {
        const t = tagi.find((x) => x.seed === r.seed);
        const c = t ? compare(r, t) : null;
        if (c) cells.set(r.seed, c);
      }
    }
    if (cells.size) rows.push({ name, cells });
  }
  if (!rows.length) return null;
  const seeds = [...new Set(rows.flatMap((r) => [...r.cells.keys()]))].sort((x, y) => x - y);
  return { seeds, rows, tagiBaseSeed: first?.seed ?? null };
}

/**
 * The seed-level test: a variant's per-seed values minus its reference's at the same seeds (seeds that both
 * have), mean ± std of those differences and the paired t-test's p over seeds (df = seeds - 1). Unlike the
 * instance-paired interval, whose units are seed × instance, this one counts training noise: with two seeds
 * its p is rarely small. Null when no seed pairs.
 */
export function seedLevelDelta(own: ReadonlyMap<number, number>, reference: ReadonlyMap<number, number>): { mean: number; std: number | null; n: number; pT: number | null } | null {
  const seeds = [...own.keys()].filter((s) => reference.has(s)).sort((a, b) => a - b);
  if (!seeds.length) return null;
  const d = seeds.map((s) => own.get(s)! - reference.get(s)!);
  const n = d.length;
  const mean = d.reduce((a, x) => a + x, 0) / n;
  if (n === 1) return { mean, std: null, n, pT: null };
  const std = Math.sqrt(d.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const t = std > 0 ? mean / (std / Math.sqrt(n)) : mean === 0 ? 0 : Infinity;
  return { mean, std, n, pT: Number.isFinite(t) ? 2 * studentTUpper(Math.abs(t), n - 1) : 0 };
}

/** "+0.123 (1 paired)" or "-0.440 ± 0.747 (2 paired, seed-level p = 0.56)" for a table cell. */
export function formatSeedLevel(x: ReturnType<typeof seedLevelDelta>, digits = 3): string {
  if (!x) return "–";
  const sign = x.mean >= 0 ? "+" : "";
  if (x.std === null) return `${sign}${x.mean.toFixed(digits)} (1 paired)`;
  const p = x.pT === null ? "–" : x.pT < 0.001 ? x.pT.toExponential(0) : x.pT < 0.01 ? x.pT.toFixed(3) : x.pT.toFixed(2);
  return `${sign}${x.mean.toFixed(digits)} ± ${x.std.toFixed(digits)} (${x.n} paired, seed-level p = ${p})`;
}
