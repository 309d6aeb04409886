/**
 * Sanity floors (src/eval/floors.ts) on a hand-made task whose scores follow from the definitions: copying
 * the input, the first demonstration's output, and the most frequent demonstration output, each scored with
 * the official ROUGE-L / exact match on exactly the instances given.
 */
import { strict as assert } from "node:assert";
import type { SniTestTask } from "../src/data/sni";
import { floorPredictions, sanityFloors } from "../src/eval/floors";

const task = (name: string, outputs: string[], instances: { id: string; input: string; outputs: string[] }[]): SniTestTask =>
  ({
    split: "test",
    name,
    definition: "Answer yes or no.",
    categories: ["Misc"],
    reasoning: [],
    domains: [],
    source: [],
    positiveExamples: outputs.map((o, i) => ({ input: `example ${i}`, output: o, explanation: "" })),
    negativeExamples: [],
    instances,
  }) as unknown as SniTestTask;

describe("sanity floors", () => {
  const labels = task("t1_labels", ["no", "yes", "yes"], [
    { id: "a", input: "is the sky green", outputs: ["no"] },
    { id: "b", input: "is grass green", outputs: ["yes"] },
    { id: "c", input: "is snow white", outputs: ["yes"] },
    { id: "d", input: "is coal white", outputs: ["no"] },
  ]);
  const copy = task("t2_copy", [], [{ id: "x", input: "the cat sat", outputs: ["the cat sat"] }]);

  it("floor predictions: the input, the first demonstration's output, the most frequent one (ties: the first)", () => {
    assert.deepEqual(floorPredictions(labels, "q"), { "copy instance input": "q", "copy first demonstration output": "no", "most frequent demonstration output": "yes" });
    assert.deepEqual(floorPredictions(task("t", ["b", "a", "a", "b"], []), "q")["most frequent demonstration output"], "b");
    assert.deepEqual(floorPredictions(copy, "q")["copy first demonstration output"], "");
  });

  it("scores on exactly the instances given, x 100, with a bootstrap CI", () => {
    const f = sanityFloors([labels, copy], [
      { task: "t1_labels", id: "a" },
      { task: "t1_labels", id: "b" },
      { task: "t1_labels", id: "c" },
      { task: "t1_labels", id: "d" },
      { task: "t2_copy", id: "x" },
    ]);
    const by = new Map(f.map((x) => [x.name, x]));
    // copy input: only the copy task's instance matches (100); the label instances share no token with "no"/"yes" -> 0
    assert.deepEqual(by.get("copy instance input")!.perInstance, [0, 0, 0, 0, 100]);
    assert.equal(by.get("copy instance input")!.rougeL, 20);
    assert.equal(by.get("copy instance input")!.exactMatch, 20);
    // first demonstration "no": a and d right; the copy task has none -> ""
    assert.deepEqual(by.get("copy first demonstration output")!.perInstance, [100, 0, 0, 100, 0]);
    // most frequent "yes": b and c
    assert.deepEqual(by.get("most frequent demonstration output")!.perInstance, [0, 100, 100, 0, 0]);
    const ci = by.get("copy first demonstration output")!.rougeLCi;
    assert.ok(ci.lo <= 40 && 40 <= ci.hi && ci.n === 5);
    assert.throws(() => sanityFloors([labels], [{ task: "t1_labels", id: "zz" }]), /no instance zz of task t1_labels/);
  });
});
