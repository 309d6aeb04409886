"""Reference values for src/eval/stats.ts (test/stats.test.ts): SciPy's binomial upper tail, Student's t
upper tail and paired t-test on fixed inputs.

    python3 reference/make_stats_fixture.py   # writes test/fixtures/stats/stats.json (scipy 1.x)
"""
import json, os
import numpy as np
import scipy
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binom = [(k, n, p, float(stats.binom.sf(k - 1, n, p))) for k, n, p in [(33, 60, 0.5), (40, 60, 0.5), (60, 60, 0.5), (1, 60, 1 / 60), (5, 60, 1 / 60), (0, 10, 0.3), (7, 10, 0.3), (2, 3, 0.9), (500, 1000, 0.48)]]
tails = [(t, df, float(stats.t.sf(t, df))) for t, df in [(0.0, 2), (1.0, 2), (4.30, 2), (2.0, 5), (3.5, 9), (1.96, 1000), (10.0, 3), (0.5, 1)]]
rng = np.random.default_rng(0)
a = rng.normal(0.3, 1.0, 40).round(6)
b = (a - rng.normal(0.25, 0.5, 40)).round(6)
r = stats.ttest_rel(a, b)
paired = {"a": a.tolist(), "b": b.tolist(), "t": float(r.statistic), "p": float(r.pvalue), "df": 39}
out = {"generator": "reference/make_stats_fixture.py", "scipy": scipy.__version__, "binomialUpperTail": binom, "studentTUpper": tails, "pairedT": paired}
with open(os.path.join(ROOT, "test", "fixtures", "stats", "stats.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote", len(binom), "binomial and", len(tails), "t values")
