// ROUGE-L, exact match and the Porter stemmer against rouge-score / nltk on real SNI pairs
// (fixture: reference/make_rouge_fixture.py -> test/fixtures/rouge/rouge_pairs.json.gz).
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join, resolve } from "node:path";
import { porterStem } from "../src/eval/porter";
import {
  aggregateScores,
  exactMatch,
  normalizeAnswer,
  rougeL,
  rougeTokenize,
  scoreInstance,
  sniRougeL,
  type InstanceScore,
} from "../src/eval/rouge";

interface Pair {
  prediction: string;
  references: string[];
  kind: string;
  source: string;
  rougeL: [number, number, number][];
  sniRougeL: number;
  exactMatch: number;
  normalized: string;
}
interface Fixture {
  versions: Record<string, string>;
  pairs: Pair[];
  stems: [string, string][];
}

const fixture = JSON.parse(
  gunzipSync(readFileSync(join(resolve(__dirname, ".."), "test", "fixtures", "rouge", "rouge_pairs.json.gz"))).toString("utf8"),
) as Fixture;

const TOL = 1e-6;

describe("SNI ROUGE-L and exact match (vs rouge-score / nltk)", () => {
  it("has enough fixture data", () => {
    assert.ok(fixture.pairs.length >= 1000, `${fixture.pairs.length} pairs`);
    assert.ok(fixture.stems.length >= 3000, `${fixture.stems.length} words`);
    for (const k of ["edge", "multi-", "long-", "nonascii-"]) {
      assert.ok(fixture.pairs.some((p) => p.kind.startsWith(k)), `no ${k} pairs`);
    }
  });

  it("stems every word exactly as nltk's PorterStemmer()", () => {
    const bad = fixture.stems.filter(([w, s]) => porterStem(w) !== s).map(([w, s]) => `${w}: ${porterStem(w)} != ${s}`);
    assert.deepEqual(bad.slice(0, 20), [], `${bad.length} of ${fixture.stems.length} words differ`);
  });

  it("rougeL precision/recall/fmeasure identical on every pair and reference (1e-6)", () => {
    const bad: string[] = [];
    let n = 0;
    for (const p of fixture.pairs) {
      p.references.forEach((ref, k) => {
        const want = p.rougeL[k];
        assert.ok(want);
        const got = rougeL(p.prediction, ref);
        n++;
        if (
          Math.abs(got.precision - want[0]) > TOL ||
          Math.abs(got.recall - want[1]) > TOL ||
          Math.abs(got.fmeasure - want[2]) > TOL
        ) {
          bad.push(`${p.source} (${p.kind}) ref ${k}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
        }
      });
    }
    assert.deepEqual(bad.slice(0, 10), [], `${bad.length} of ${n} scores differ`);
  });

  it("max over references and exact match identical on every pair", () => {
    const bad: string[] = [];
    for (const p of fixture.pairs) {
      const r = sniRougeL(p.prediction, p.references, p.source);
      const em = exactMatch(p.prediction, p.references, p.source);
      const norm = normalizeAnswer(p.prediction);
      if (Math.abs(r - p.sniRougeL) > TOL) bad.push(`${p.source}: rougeL ${r} != ${p.sniRougeL}`);
      if (em !== p.exactMatch) bad.push(`${p.source}: EM ${em} != ${p.exactMatch}`);
      if (norm !== p.normalized) bad.push(`${p.source}: normalized ${JSON.stringify(norm)} != ${JSON.stringify(p.normalized)}`);
      assert.ok(Number.isFinite(r));
    }
    assert.deepEqual(bad.slice(0, 10), [], `${bad.length} mismatches`);
  });

  it("tokenizes like rouge-score", () => {
    assert.deepEqual(rougeTokenize("The Cats' running-fast, 12.5%!"), ["the", "cat", "run", "fast", "12", "5"]);
    assert.deepEqual(rougeTokenize("café 北京 😀"), ["caf"]);
    assert.deepEqual(rougeTokenize(""), []);
    assert.deepEqual(rougeL("", "a b"), { precision: 0, recall: 0, fmeasure: 0 });
    assert.deepEqual(rougeL("...", "..."), { precision: 0, recall: 0, fmeasure: 0 });
  });

  it("exact match keeps articles (SNI's normalize_answer), SQuAD's variant on request", () => {
    assert.equal(exactMatch("The cat.", ["the cat"]), 1);
    assert.equal(exactMatch("The cat", ["cat"]), 0);
    assert.equal(exactMatch("The cat", ["cat"], undefined, { removeArticles: true }), 1);
  });

  it("an empty reference list throws, naming the task/instance", () => {
    assert.throws(() => sniRougeL("x", [], "task123_foo, instance task123-7"), /task123_foo, instance task123-7/);
    assert.throws(() => exactMatch("x", [], "task9"), /empty reference list for task9/);
    assert.throws(
      () => scoreInstance("x", [], { task: "task42_bar", category: "Title Generation", id: "task42-3" }),
      /task task42_bar, instance task42-3/,
    );
  });

  it("aggregates per task, per category and overall like compute_metrics", () => {
    const mk = (task: string, category: string, r: number, em: number): InstanceScore => ({ task, category, rougeL: r, exactMatch: em });
    const scores = [
      mk("t1", "A", 1, 1),
      mk("t1", "A", 0, 0),
      mk("t2", "A", 0.5, 0),
      mk("t3", "B", 0.25, 1),
    ];
    const agg = aggregateScores(scores);
    assert.equal(agg.perTask.get("t1")?.rougeL, 50);
    assert.equal(agg.perTask.get("t1")?.exactMatch, 50);
    assert.equal(agg.perTask.get("t2")?.rougeL, 50);
    // per category: mean over the category's instances (official), and the mean of task means
    const a = agg.perCategory.get("A");
    assert.ok(a);
    assert.equal(a.rougeL, 50);
    assert.equal(a.instances, 3);
    assert.equal(a.tasks, 2);
    assert.ok(Math.abs(a.exactMatch - 100 / 3) < 1e-12);
    assert.equal(a.exactMatchTaskMean, 25);
    // overall: mean over all instances
    assert.equal(agg.overall.rougeL, (100 * 1.75) / 4);
    assert.equal(agg.overall.exactMatch, 50);
    assert.equal(agg.overall.tasks, 3);
    assert.ok(Math.abs(agg.overall.rougeLTaskMean - (50 + 50 + 25) / 3) < 1e-12);
    assert.throws(() => aggregateScores([]), /no instances/);
    assert.throws(() => aggregateScores([mk("t1", "A", NaN, 0)]), /non-finite score for task t1/);
    assert.throws(() => aggregateScores([mk("t1", "A", 1, 0), mk("t1", "B", 1, 0)]), /two categories/);
    const s = scoreInstance("the cats ran", ["The cat runs."], { task: "t", category: "c", id: "i" });
    assert.ok(Math.abs(s.rougeL - 2 / 3) < 1e-12);
    assert.equal(s.exactMatch, 0);
  });
});
