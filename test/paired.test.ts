/**
 * Paired comparisons against TAGI over instances (src/experiments/paired.ts) on fabricated records: units are
 * (TAGI seed, instance); a method run at the same seed pairs with it, a single run of an untrained method with
 * every seed, a trained method's run with its own seed only.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { formatPaired, formatSeedLevel, pairedVersusTagi, pairOnInstances, readInstanceRougeL, seedBySeed, seedLevelDelta } from "../src/experiments/paired";
import type { ExperimentRecord } from "../src/experiments/runner";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-paired-"));
function record(name: string, seed: number, scores: number[], trained = false): ExperimentRecord {
  const evalDir = path.join(dir, name, "tiny", `seed-${seed}`, "eval-def");
  fs.mkdirSync(evalDir, { recursive: true });
  fs.writeFileSync(path.join(evalDir, "predictions.jsonl"), scores.map((r, i) => JSON.stringify({ task: "t", id: `i${i}`, rougeL: r })).join("\n") + "\n");
  return { experiment: { name, stage: trained ? { command: "finetune", config: "finetune.json", set: {} } : null, uses: null }, scale: { scale: "tiny" }, seed } as unknown as ExperimentRecord;
}

describe("paired comparisons against TAGI", () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("pairs by seed and instance; a single run of an untrained method pairs with every TAGI seed, a trained one with its own seed", () => {
    const tagi = [record("tagi", 0, [10, 20, 30, 40]), record("tagi", 1, [12, 18, 33, 41])];
    const same = [record("m", 0, [11, 21, 31, 41]), record("m", 1, [13, 19, 34, 42])];
    const c = pairedVersusTagi(dir, same, tagi, "def")!;
    assert.equal(c.units, 8);
    assert.equal(c.seeds, 2);
    assert.equal(c.diff.mean, 1); // every instance +1
    assert.equal(formatPaired(c), "+1.00 [1.00, 1.00], p = 0e+0");
    const single = [record("noft", 0, [0, 0, 0, 0])];
    const d = pairedVersusTagi(dir, single, tagi, "def")!;
    assert.equal(d.units, 8);
    assert.ok(Math.abs(d.diff.mean - -25.5) < 1e-9 && d.pT < 0.01 && d.diff.hi < 0);
    assert.equal(pairedVersusTagi(dir, [record("other", 5, [1]), record("other", 6, [1])], tagi, "def"), null); // other seeds only
    // A trained method run at one seed pairs with TAGI's run at that seed only, never with another seed's model.
    const oneSeed = pairedVersusTagi(dir, [record("hint", 0, [11, 21, 31, 41], true)], tagi, "def")!;
    assert.deepEqual([oneSeed.units, oneSeed.seeds, oneSeed.diff.mean], [4, 1, 1]);
    assert.equal(pairedVersusTagi(dir, [record("hint2", 5, [11, 21, 31, 41], true)], tagi, "def"), null);
    assert.equal(formatPaired(null), "–");
  });

  it("seed by seed: each trained run minus TAGI at its own seed, TAGI minus its first seed; seed-free rows left out", () => {
    const tagi = [record("sb-tagi", 1, [12, 18, 33, 41]), record("sb-tagi", 0, [10, 20, 30, 40])];
    const byName = new Map([
      ["tagi", tagi],
      ["abl", [record("sb-abl", 0, [9, 19, 29, 39], true), record("sb-abl", 1, [14, 20, 35, 43], true), record("sb-abl", 2, [1, 1, 1, 1], true)]],
      ["noft", [record("sb-noft", 0, [0, 0, 0, 0])]],
    ]);
    const sb = seedBySeed(dir, byName, ["tagi", "noft", "abl"], "def")!;
    assert.equal(sb.tagiBaseSeed, 0);
    assert.deepEqual(sb.seeds, [0, 1]); // seed 2 of abl has no TAGI run to pair with
    assert.deepEqual(sb.rows.map((r) => r.name), ["tagi", "abl"]);
    const tg = sb.rows[0]!.cells;
    assert.deepEqual([...tg.keys()], [1]);
    assert.equal(tg.get(1)!.diff.mean, 1); // (2 - 2 + 3 + 1) / 4
    const abl = sb.rows[1]!.cells;
    assert.equal(abl.get(0)!.diff.mean, -1); // the sign flips between seeds, which a mean would hide
    assert.equal(abl.get(1)!.diff.mean, 2);
    assert.equal(abl.get(1)!.units, 4);
    assert.equal(seedBySeed(dir, new Map([["tagi", [tagi[1]!]]]), ["tagi"], "def"), null); // one TAGI seed: nothing to show
    assert.deepEqual(pairOnInstances(new Map([["a", 1], ["b", 2]]), new Map([["b", 5], ["c", 6]])), { a: [2], b: [5] });
  });

  it("the seed-level test: per-seed differences on shared seeds, their std and the t-test over seeds", () => {
    assert.equal(seedLevelDelta(new Map([[5, 1]]), new Map([[0, 1]])), null);
    assert.equal(formatSeedLevel(seedLevelDelta(new Map([[0, 8.23]]), new Map([[0, 8.14], [1, 9.04]]))), "+0.090 (1 paired)");
    // w/o L_kl against TAGI at seeds 0 and 1: +0.09 and -0.97 -> mean -0.44, std 0.75, t = -0.83 on 1 df.
    const two = seedLevelDelta(new Map([[0, 8.23], [1, 8.07]]), new Map([[0, 8.14], [1, 9.04], [2, 9]]))!;
    assert.equal(two.n, 2);
    assert.ok(Math.abs(two.mean - -0.44) < 1e-9 && Math.abs(two.std! - Math.sqrt(2 * 0.53 ** 2)) < 1e-9);
    // t with 1 df is Cauchy: p = 1 - (2/π)·atan(|t|)
    const t = -0.44 / (two.std! / Math.SQRT2);
    assert.ok(Math.abs(two.pT! - (1 - (2 / Math.PI) * Math.atan(Math.abs(t)))) < 1e-6, `${two.pT}`);
    assert.equal(formatSeedLevel(two), `-0.440 ± 0.750 (2 paired, seed-level p = ${two.pT!.toFixed(2)})`);
    assert.equal(seedLevelDelta(new Map([[0, 2], [1, 3]]), new Map([[0, 1], [1, 2]]))!.pT, 0, "identical differences: no spread");
    // w/o fusion at seeds 0-2 (deltas -3.416, -3.749, -4.178): p = 0.0034 is printed as 0.003, not rounded to 0.00
    const three = seedLevelDelta(new Map([[0, 4.722], [1, 5.29], [2, 4.733]]), new Map([[0, 8.138], [1, 9.039], [2, 8.911]]))!;
    assert.match(formatSeedLevel(three), /^-3\.781 ± 0\.382 \(3 paired, seed-level p = 0\.003\)$/);
  });

  it("reads predictions.jsonl strictly: a bad line or an instance seen twice names the file and line", () => {
    const file = path.join(dir, "predictions.jsonl");
    fs.writeFileSync(file, '{"task":"t1","id":"a","rougeL":50}\n\n{"task":"t1","id":"b","rougeL":0}\n');
    assert.deepEqual([...readInstanceRougeL(file)], [["t1|a", 50], ["t1|b", 0]]);
    fs.writeFileSync(file, '{"task":"t1","id":"a","rougeL":50}\n{"task":"t1","id":"b"\n');
    assert.throws(() => readInstanceRougeL(file), (e: Error) => e.message.startsWith(`${file}:2: not JSON`));
    fs.writeFileSync(file, '{"task":"t1","id":"a","rougeL":"50"}\n');
    assert.throws(() => readInstanceRougeL(file), (e: Error) => e.message === `${file}:1: a prediction needs a string task, an id and a numeric rougeL`);
    fs.writeFileSync(file, '{"task":"t1","id":"a","rougeL":50}\n{"task":"t1","id":"a","rougeL":40}\n');
    assert.throws(() => readInstanceRougeL(file), (e: Error) => e.message === `${file}:2: instance t1|a appears twice`);
  });
});
