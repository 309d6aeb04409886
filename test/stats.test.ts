/**
 * src/eval/stats.ts against SciPy (fixture from reference/make_stats_fixture.py): the binomial upper tail,
 * Student's t upper tail and the paired t-test; the bootstrap CI on known cases.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { binomialUpperTail, bootstrapMean, pairedComparison, studentTUpper } from "../src/eval/stats";

const FX = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "stats", "stats.json"), "utf8")) as {
  binomialUpperTail: [number, number, number, number][];
  studentTUpper: [number, number, number][];
  pairedT: { a: number[]; b: number[]; t: number; p: number; df: number };
};
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

describe("statistics (against SciPy)", () => {
  it("binomial upper tail P(X >= k) equals scipy.stats.binom.sf(k - 1, n, p)", () => {
    for (const [k, n, p, want] of FX.binomialUpperTail) assert.ok(rel(binomialUpperTail(k, n, p), want) < 1e-9, `${k}/${n} at ${p}: ${binomialUpperTail(k, n, p)} vs ${want}`);
    assert.throws(() => binomialUpperTail(1.5, 3, 0.5), /integers/);
  });

  it("Student's t upper tail equals scipy.stats.t.sf", () => {
    for (const [t, df, want] of FX.studentTUpper) assert.ok(rel(studentTUpper(t, df), want) < 1e-9, `t ${t} df ${df}: ${studentTUpper(t, df)} vs ${want}`);
  });

  it("paired t-test equals scipy.stats.ttest_rel; the bootstrap difference CI covers the mean difference", () => {
    const { a, b, t, p, df } = FX.pairedT;
    const r = pairedComparison(a, b);
    assert.ok(rel(r.t, t) < 1e-9 && rel(r.pT, p) < 1e-9 && r.df === df, JSON.stringify(r));
    assert.ok(r.diff.lo < r.diff.mean && r.diff.mean < r.diff.hi);
    assert.ok(r.pBootstrap >= 0 && r.pBootstrap <= 1);
    assert.throws(() => pairedComparison([1, 2], [1]), /must be paired/);
  });

  it("bootstrap CI: a constant sample has a zero-width interval; a large normal sample gives mean ± 1.96·sd/√n", () => {
    const c = bootstrapMean([3, 3, 3, 3]);
    assert.deepEqual([c.mean, c.lo, c.hi, c.n], [3, 3, 3, 4]);
    // 0..999 uniform: sd = 288.8, se = 9.13, so the 95% interval is about mean ± 17.9
    const xs = Array.from({ length: 1000 }, (_, i) => i);
    const ci = bootstrapMean(xs, { resamples: 4000, seed: 3 });
    assert.equal(ci.mean, 499.5);
    assert.ok(Math.abs(ci.hi - ci.lo - 2 * 17.9) < 3, `${ci.lo} ${ci.hi}`);
    assert.deepEqual(bootstrapMean(xs, { seed: 3 }), bootstrapMean(xs, { seed: 3 }), "seeded");
    // grouped: resampling 2 groups of very different means widens the interval far beyond the value-level one
    const g = bootstrapMean([0, 0, 0, 10, 10, 10], { groups: ["a", "a", "a", "b", "b", "b"] });
    assert.ok(g.lo <= 0.01 && g.hi >= 9.99, JSON.stringify(g));
    assert.ok(Number.isNaN(bootstrapMean([]).mean));
  });
});
