import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  devSplit,
  groupByCategory,
  loadSniFile,
  loadSniSplit,
  replacePythonConstants,
  sampleInstances,
  type SniLoadResult,
  type SniTask,
} from "../src/data/sni";
import { buildPrompt, pyStrip, truncatePrompt, type PromptFormat } from "../src/text/prompts";
import { T5Tokenizer } from "../src/text/tokenizer";

interface FixtureCase {
  task: string;
  instanceId: string;
  format: PromptFormat;
  maxSourceLength: number | null;
  addTaskName?: boolean;
  addExplanation?: boolean;
  source: string;
  instruction: string;
  instance: string;
  numPosExamples: number;
  numTokens: number;
  fits: boolean;
}
const fixture = JSON.parse(readFileSync(join(__dirname, "fixtures", "sni", "prompts.json"), "utf8")) as {
  tasks: string[];
  cases: FixtureCase[];
};

function taskLine(over: Record<string, unknown>): string {
  return JSON.stringify({
    task: "task_x",
    Categories: ["Cat A"],
    Definition: ["Do the thing"],
    "Positive Examples": [{ input: "a", output: "b", explanation: "c" }],
    "Negative Examples": [],
    Instances: [{ id: "x-1", input: "in", output: ["out"] }],
    "Instance License": ["MIT"],
    _num_instances_total: 1,
    ...over,
  });
}

describe("SNI data", function () {
  let train: SniLoadResult<"train">;
  let test: SniLoadResult<"test">;
  let tmp: string;

  before(async function () {
    tmp = mkdtempSync(join(tmpdir(), "sni-test-"));
    [train, test] = await Promise.all([loadSniSplit("train"), loadSniSplit("test")]);
  });
  after(function () {
    rmSync(tmp, { recursive: true, force: true });
  });

  it("counts match the data README (103 / 10,210 test; 687 / 68,417 train), nothing skipped", function () {
    assert.equal(test.tasks.length, 103);
    assert.equal(test.numInstances, 10210);
    assert.equal(train.tasks.length, 687);
    assert.equal(train.numInstances, 68417);
    assert.deepEqual(test.skipped, []);
    assert.deepEqual(train.skipped, []);
    // Python's json.dumps wrote "URL": [NaN] for 97 tasks; read as null and counted
    assert.equal(test.pythonConstantLines + train.pythonConstantLines, 97);
    assert.deepEqual(replacePythonConstants('{"a": [NaN, -Infinity], "b": "NaN \\" Infinity"}'), {
      text: '{"a": [null, null], "b": "NaN \\" Infinity"}',
      count: 2,
    });
    assert.ok(test.tasks.every((t) => t.split === "test"));
    assert.ok(train.tasks.every((t) => t.split === "train"));
    // the split lists agree
    const listed = new Set(readFileSync(join(__dirname, "..", "..", "shared", "data", "sni", "splits_default_test_tasks.txt"), "utf8").split(/\s+/));
    assert.ok(test.tasks.every((t) => listed.has(t.name)));
    assert.ok(train.tasks.every((t) => !listed.has(t.name)));
    const t0 = test.tasks[0] as SniTask<"test">;
    assert.equal(t0.name, "task893_gap_fill_the_blank_coreference_resolution");
    assert.deepEqual(t0.categories, ["Coreference Resolution"]);
    assert.ok(t0.definition.startsWith("Read the passage"));
    assert.ok(t0.instances.every((i) => i.outputs.length > 0));
  });

  it("groups by category; every task has one category", function () {
    const g = groupByCategory(train.tasks);
    assert.equal([...g.values()].reduce((s, x) => s + x.length, 0), train.tasks.length);
    assert.ok(g.size > 30, `${g.size} train categories`);
    const gt = groupByCategory(test.tasks);
    assert.ok(gt.size >= 10);
  });

  it("samples instances deterministically", function () {
    const t = train.tasks[5] as SniTask;
    const a = sampleInstances(t, 10, 1);
    const b = sampleInstances(t, 10, 1);
    const c = sampleInstances(t, 10, 2);
    assert.deepEqual(a.map((x) => x.id), b.map((x) => x.id));
    assert.notDeepEqual(a.map((x) => x.id), c.map((x) => x.id));
    assert.equal(new Set(a.map((x) => x.id)).size, 10);
    // original order, subset
    const pos = a.map((x) => t.instances.indexOf(x));
    assert.ok(pos.every((p, i) => p >= 0 && (i === 0 || p > (pos[i - 1] as number))));
    assert.equal(sampleInstances(t, 10_000, 1).length, t.instances.length);
    // a fixed value (mulberry32 seeded with 42 ^ fnv1a("k")), so a change of PRNG is noticed
    const ten = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => ({ id: String(i), input: "", outputs: ["o"] }));
    assert.deepEqual(sampleInstances({ name: "k", instances: ten }, 3, 42).map((x) => x.id), ["5", "6", "8"]);
  });

  it("dev split: deterministic, only train tasks, stratified by category, refuses test tasks", function () {
    const a = devSplit(train.tasks, { fraction: 0.1, seed: 0, stratifyByCategory: true });
    const b = devSplit(train.tasks, { fraction: 0.1, seed: 0, stratifyByCategory: true });
    const c = devSplit(train.tasks, { fraction: 0.1, seed: 1, stratifyByCategory: true });
    assert.deepEqual(a.dev.map((t) => t.name), b.dev.map((t) => t.name));
    assert.notDeepEqual(a.dev.map((t) => t.name), c.dev.map((t) => t.name));
    assert.equal(a.dev.length, Math.round(0.1 * 687));
    assert.equal(a.dev.length + a.train.length, 687);
    const testNames = new Set(test.tasks.map((t) => t.name));
    assert.ok(a.dev.every((t) => t.split === "train" && !testNames.has(t.name)));
    const devNames = new Set(a.dev.map((t) => t.name));
    assert.ok(a.train.every((t) => !devNames.has(t.name)));
    // stratification: every category with >= 10 tasks contributes about 10%
    for (const [cat, g] of groupByCategory(train.tasks)) {
      const k = a.dev.filter((t) => t.categories[0] === cat).length;
      assert.ok(Math.abs(k - 0.1 * g.length) < 1, `${cat}: ${k} of ${g.length}`);
    }
    const d = devSplit(train.tasks, { count: 50, seed: 3 });
    assert.equal(d.dev.length, 50);
    assert.deepEqual(d.dev.map((t) => t.name), devSplit(train.tasks, { count: 50, seed: 3 }).dev.map((t) => t.name));
    // test tasks: a type error, and refused at run time
    // @ts-expect-error test tasks are not train tasks
    assert.throws(() => devSplit(test.tasks, { count: 5, seed: 0 }), /only train tasks/);
    const mixed = [...train.tasks, ...(test.tasks as unknown as SniTask<"train">[])];
    assert.throws(() => devSplit(mixed, { count: 5, seed: 0 }), /only train tasks.*task893/);
  });

  it("malformed JSON names the file and line", async function () {
    const f = join(tmp, "broken.jsonl.gz");
    writeFileSync(f, gzipSync([taskLine({}), taskLine({ task: "task_y" }), '{"task": "task_z", "Defin', taskLine({ task: "w" })].join("\n") + "\n"));
    await assert.rejects(loadSniFile(f, "train"), (e: Error) => e.message.includes(f) && /:3: malformed JSON/.test(e.message));
  });

  it("a truncated gzip file names the file and line", async function () {
    const f = join(tmp, "trunc.jsonl.gz");
    const lines = Array.from({ length: 200 }, (_, i) => taskLine({ task: `t${i}`, Definition: [`Definition number ${i} ${"x".repeat(i)}`] }));
    const gz = gzipSync(lines.join("\n") + "\n");
    writeFileSync(f, gz.subarray(0, Math.floor(gz.length * 0.6)));
    await assert.rejects(loadSniFile(f, "train"), (e: Error) => e.message.includes(f) && /truncated or corrupt gzip stream after line \d+ \(reading line \d+\)/.test(e.message));
    // a plain JSONL file cut mid-line
    const g = join(tmp, "trunc.jsonl");
    const text = lines.slice(0, 3).join("\n");
    writeFileSync(g, text.slice(0, text.length - 10));
    await assert.rejects(loadSniFile(g, "train"), (e: Error) => e.message.includes(`${g}:3: malformed JSON`));
  });

  it("counts and reports tasks missing Definition/Instances and instances with empty outputs; strict throws", async function () {
    const f = join(tmp, "bad.jsonl.gz");
    const body = [
      taskLine({ task: "ok_task" }),
      taskLine({ task: "no_def", Definition: undefined }),
      taskLine({ task: "empty_def", Definition: [" "] }),
      taskLine({ task: "no_inst", Instances: undefined }),
      taskLine({
        task: "some_empty",
        Instances: [
          { id: "s-1", input: "i", output: [] },
          { id: "s-2", input: "i", output: ["o"] },
        ],
      }),
      taskLine({ task: "all_empty", Instances: [{ id: "a-1", input: "i", output: [] }] }),
    ].join("\n");
    writeFileSync(f, gzipSync(body));
    const r = await loadSniFile(f, "train", { warn: false });
    assert.deepEqual(r.tasks.map((t) => t.name), ["ok_task", "some_empty"]);
    assert.equal(r.tasks[1]?.instances.length, 1);
    const summary = r.skipped.map((s) => `${s.task}|${s.instanceId ?? ""}|${s.line}|${s.reason}`);
    assert.deepEqual(summary, [
      "no_def||2|missing or empty Definition",
      "empty_def||3|missing or empty Definition",
      "no_inst||4|missing Instances",
      "some_empty|s-1|5|empty output (reference) list",
      "all_empty|a-1|6|empty output (reference) list",
      "all_empty||6|no valid instances left",
    ]);
    assert.match(r.report, /2 tasks, 2 instances; skipped 4 task\(s\) and 2 instance\(s\)/);
    assert.match(r.report, /no_def: missing or empty Definition/);
    await assert.rejects(loadSniFile(f, "train", { strict: true }), /bad\.jsonl\.gz:2: task no_def: missing or empty Definition/);
  });
});

describe("Tk-Instruct prompts", function () {
  let tok: T5Tokenizer;
  let tasks: Map<string, SniTask>;

  before(async function () {
    tok = T5Tokenizer.fromFile();
    const test = await loadSniSplit("test");
    tasks = new Map(test.tasks.map((t) => [t.name, t]));
  });

  it("equal the collator's strings (golden fixture from reference/make_prompt_fixture.py)", function () {
    assert.equal(fixture.tasks.length, 3);
    let n = 0;
    for (const c of fixture.cases) {
      const task = tasks.get(c.task);
      assert.ok(task, c.task);
      const inst = task.instances.find((i) => i.id === c.instanceId);
      assert.ok(inst, c.instanceId);
      const p = buildPrompt(task, inst, { format: c.format, addTaskName: c.addTaskName ?? false, addExplanation: c.addExplanation ?? false });
      const what = `${c.task} ${c.instanceId} ${c.format} max=${c.maxSourceLength}`;
      if (c.maxSourceLength === null) {
        assert.equal(p.full, c.source, what);
        assert.equal(p.instruction, c.instruction, what);
        assert.equal(p.instance, c.instance, what);
        assert.equal(p.full, p.instruction + p.instance);
        assert.equal(tok.encode(p.full).length, c.numTokens, what);
      } else {
        const t = truncatePrompt(p, tok, c.maxSourceLength);
        assert.equal(t.full, c.source, what);
        assert.equal(t.instruction, c.instruction, what);
        assert.equal(t.instance, c.instance, what);
        assert.equal(t.examples.length, c.numPosExamples, what);
        assert.equal(t.droppedExamples, 2 - c.numPosExamples);
        assert.equal(t.truncated, c.numPosExamples < 2);
        assert.equal(t.numTokens, c.numTokens);
        assert.ok(!t.definitionTruncated && !t.instanceTruncated);
      }
      n++;
    }
    assert.equal(n, fixture.cases.length);
  });

  it("formats exactly: whitespace, the '.' rule, Python strip", function () {
    const task = { name: "t", definition: "  Say hi\n", positiveExamples: [{ input: "x?", output: "y" }, { input: " a ", output: "b!" }, { input: "z", output: "z" }] };
    const p = buildPrompt(task, { input: "\u0085q\u001f" }, { format: "def+2pos" });
    assert.equal(
      p.full,
      "Definition: Say hi.\n\n Positive Example 1 -\nInput: x?\n Output: y.\n\n Positive Example 2 -\nInput: a.\n Output: b!\n\n" +
        "Now complete the following example -\nInput: q.\nOutput: ",
    );
    assert.equal(buildPrompt(task, { input: "" }, { format: "def" }).full, "Definition: Say hi.\n\nNow complete the following example -\nInput: .\nOutput: ");
    assert.equal(pyStrip("\ufeffa "), "\ufeffa");
  });

  it("truncation keeps the instance whole and reports it", function () {
    const task = tasks.get(fixture.tasks[0] as string) as SniTask;
    const inst = task.instances[0] as SniTask["instances"][number];
    const p = buildPrompt(task, inst, { format: "def+2pos" });
    const instTokens = tok.encode(p.instance).length;
    // no truncation needed
    const same = truncatePrompt(p, tok, 1024);
    assert.equal(same.full, p.full);
    assert.equal(same.truncated, false);
    assert.deepEqual(same.notes, []);
    // the definition must shrink
    const max = instTokens + 20;
    const t = truncatePrompt(p, tok, max);
    assert.ok(t.truncated && t.definitionTruncated && !t.instanceTruncated);
    assert.equal(t.droppedExamples, 2);
    assert.ok(t.full.endsWith(p.instance));
    assert.equal(t.instance, p.instance);
    assert.ok(t.instruction.startsWith("Definition: Read the passage"));
    assert.ok(t.numTokens <= max, `${t.numTokens} <= ${max}`);
    assert.equal(tok.encode(t.full).length, t.numTokens);
    assert.ok(t.notes.some((n) => /truncated the definition/.test(n)));
    // the collator's own cut loses the instance's end
    const c = truncatePrompt(p, tok, max, { strategy: "collator" });
    assert.ok(c.instanceTruncated && !c.full.endsWith("Output: "));
    // too small even for the instance
    const u = truncatePrompt(p, tok, 10);
    assert.ok(u.instanceTruncated);
    assert.ok(u.notes.some((n) => /could not be kept whole/.test(n)));
  });
});
