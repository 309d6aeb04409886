/**
 * Reports: per-task and per-category DataFrames (danfojs-node), CSV writing with RFC 4180 quoting, and the
 * category aggregation numbers.
 */
import { strict as assert } from "node:assert";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { batchMatMulGradConfig, initBackend } from "../src/backend";
import { categoryRows, categoryTable, csvField, dfd, parseCsv, recordsTable, taskTable, toCsvString, writeCsv, type TaskRow } from "../src/eval/report";

const rows: TaskRow[] = [
  { task: "task1_a", category: "Cat A", instances: 100, rougeL: 50, exactMatch: 10 },
  { task: "task2_b", category: "Cat A", instances: 50, rougeL: 20, exactMatch: 40 },
  { task: "task3_c", category: "Cat B", instances: 10, rougeL: 75.5, exactMatch: 0 },
];

describe("report tables", function () {
  let dir: string;
  before(async function () {
    await initBackend({ backend: "wasm", log: false });
    dir = mkdtempSync(join(tmpdir(), "tagi-report-"));
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it("importing danfojs leaves the project's BatchMatMul gradient and the backend in place", function () {
    assert.equal(tf.getGradient(tf.BatchMatMul), batchMatMulGradConfig);
    assert.equal(tf.getBackend(), "wasm");
    // danfojs computes on the active backend.
    const df = new dfd.DataFrame({ x: [1, 2, 3] });
    assert.equal(df.column("x").mean(), 2);
  });

  it("taskTable: one row per task with the given columns and values", function () {
    const df = taskTable(rows);
    assert.ok(df instanceof dfd.DataFrame);
    assert.deepEqual(df.columns, ["task", "category", "instances", "rougeL", "exactMatch"]);
    assert.deepEqual(df.shape, [3, 5]);
    assert.deepEqual(df.values, [
      ["task1_a", "Cat A", 100, 50, 10],
      ["task2_b", "Cat A", 50, 20, 40],
      ["task3_c", "Cat B", 10, 75.5, 0],
    ]);
    // A numeric-looking task name stays a string.
    const odd = taskTable([{ task: "123", category: "1", instances: 1, rougeL: 1 / 3 }]);
    assert.deepEqual(odd.values, [["123", "1", 1, 1 / 3]]);
    assert.throws(() => taskTable([...rows, rows[0] as TaskRow]), /appears twice/);
  });

  it("categoryTable: instance-weighted means (official) and task means", function () {
    const cats = categoryRows(rows);
    assert.equal(cats.length, 2);
    const a = cats[0]!;
    assert.equal(a.category, "Cat A");
    assert.equal(a.tasks, 2);
    assert.equal(a.instances, 150);
    assert.ok(Math.abs((a.rougeL as number) - (50 * 100 + 20 * 50) / 150) < 1e-12); // 40
    assert.ok(Math.abs((a.exactMatch as number) - (10 * 100 + 40 * 50) / 150) < 1e-12); // 20
    assert.equal(a.rougeL_taskMean, 35);
    assert.equal(a.exactMatch_taskMean, 25);
    const b = cats[1]!;
    assert.deepEqual([b.category, b.tasks, b.instances, b.rougeL, b.rougeL_taskMean], ["Cat B", 1, 10, 75.5, 75.5]);

    const df = categoryTable(rows);
    assert.deepEqual(df.columns, ["category", "tasks", "instances", "rougeL", "rougeL_taskMean", "exactMatch", "exactMatch_taskMean"]);
    const v = df.values as (string | number)[][];
    assert.equal(v[0]![3], 40);
    assert.equal(v[0]![5], 20);

    const byTasks = categoryRows(rows, { weighting: "tasks", metrics: ["rougeL"] });
    assert.equal(byTasks[0]!.rougeL, 35);
    assert.equal(byTasks[0]!.rougeL_instanceMean, 40);
    assert.equal(byTasks[0]!.exactMatch, undefined);
  });

  it("empty tables keep their columns", function () {
    const df = taskTable([]);
    assert.deepEqual(df.shape, [0, 3]);
    assert.equal(toCsvString(df), "task,category,instances\n");
  });

  it("csvField quotes commas, quotes, newlines and edge spaces", function () {
    assert.equal(csvField("plain"), "plain");
    assert.equal(csvField("a,b"), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField("two\nlines"), '"two\nlines"');
    assert.equal(csvField("cr\rx"), '"cr\rx"');
    assert.equal(csvField(" lead"), '" lead"');
    assert.equal(csvField(0.1 + 0.2), "0.30000000000000004");
    assert.equal(csvField(null), "");
    assert.equal(csvField(NaN), "NaN");
  });

  it("writeCsv round trip (own parser and danfojs' readCSV) with commas, quotes and newlines", async function () {
    const tricky: TaskRow[] = [
      { task: 'task,with "quotes"', category: "Line\nbreak, and comma", instances: 3, rougeL: 100 / 3, exactMatch: 0 },
      { task: "täsk_ünïcode ✓", category: "Cat \"B\"", instances: 1, rougeL: 1e-7, exactMatch: 100 },
      { task: "crlf\r\nin name", category: "", instances: 2, rougeL: 0, exactMatch: 50 },
    ];
    const df = taskTable(tricky);
    const path = join(dir, "sub", "per_task.csv");
    writeCsv(df, path);
    assert.ok(existsSync(path));
    assert.deepEqual(
      readdirSync(join(dir, "sub")).filter((f) => f.includes(".tmp-")),
      [],
      "no temporary file left behind",
    );
    const text = readFileSync(path, "utf8");
    const parsed = parseCsv(text);
    assert.deepEqual(parsed[0], ["task", "category", "instances", "rougeL", "exactMatch"]);
    assert.equal(parsed.length, 4);
    for (const [i, r] of tricky.entries()) {
      const p = parsed[i + 1]!;
      assert.deepEqual(p.slice(0, 2), [r.task, r.category]);
      assert.equal(Number(p[2]), r.instances);
      assert.equal(Number(p[3]), r.rougeL, "numbers round-trip exactly");
      assert.equal(Number(p[4]), r.exactMatch);
    }
    // An independent RFC 4180 reader (danfojs' readCSV, papaparse) reads the same cells.
    const back = await dfd.readCSV(path);
    assert.deepEqual(back.columns, ["task", "category", "instances", "rougeL", "exactMatch"]);
    assert.deepEqual(
      (back.values as unknown[][]).map((r) => r[0]),
      tricky.map((r) => r.task),
    );
    assert.deepEqual(
      (back.values as unknown[][]).map((r) => (r[1] === null ? "" : String(r[1]))), // danfojs reads an empty cell as null
      tricky.map((r) => r.category),
    );

    // Overwrite in place (atomic rename over the old file).
    writeCsv(taskTable(rows), path);
    assert.equal(parseCsv(readFileSync(path, "utf8")).length, 4);
    assert.equal(parseCsv(readFileSync(path, "utf8"))[1]![0], "task1_a");
  });

  it("recordsTable: columns in the given order, strings stay strings", function () {
    const df = recordsTable(
      [
        { task: "rte", template: "GPT-3 style, \"quoted\"", n: 4, accuracy: 0.75 },
        { task: "cb", template: "007", n: 2, accuracy: 0.5 },
      ],
      ["task", "template", "n", "accuracy"],
    );
    assert.deepEqual(df.values, [
      ["rte", 'GPT-3 style, "quoted"', 4, 0.75],
      ["cb", "007", 2, 0.5],
    ]);
    assert.deepEqual(parseCsv(toCsvString(df))[1], ["rte", 'GPT-3 style, "quoted"', "4", "0.75"]);
  });

  it("parseCsv handles CRLF, empty fields and a missing final newline; refuses an open quote", function () {
    assert.deepEqual(parseCsv('a,b\r\n1,\r\n"x ""y""",z'), [
      ["a", "b"],
      ["1", ""],
      ['x "y"', "z"],
    ]);
    assert.throws(() => parseCsv('a,"b\n'), /unterminated/);
  });
});
