/**
 * Evaluation reports: per-task and per-category tables as danfojs-node DataFrames (what the notebooks show)
 * and CSV files.
 *
 * danfojs-node 1.2.0 notes (checked under the project's wasm backend):
 * - It requires `@tensorflow/tfjs-node`, which package.json's overrides map to a second copy of
 *   `@tensorflow/tfjs` 4.22 (node_modules/@tensorflow/tfjs-node). Loading that copy re-runs tfjs's
 *   "register all gradients" on the *global* gradient registry and so silently replaces the project's
 *   BatchMatMul gradient fix (src/backend/gradients.ts) with tfjs's stock one, which fails on broadcast batch
 *   dims. This module re-registers the fix right after importing danfojs; code that imports danfojs-node
 *   directly must call `registerGradientFixes()` afterwards (initBackend also calls it). Kernels and the active backend
 *   are not affected (the copy shares tfjs-core's engine and the wasm kernels).
 * - Its `toCSV` does not quote fields: a comma, quote or newline in a value (task names, predictions) breaks
 *   the file. `toCsvString` / `writeCsv` here quote as RFC 4180 does.
 * - Values are kept as JS numbers (float64) even where `dtypes` says "float32"; tables here pass explicit
 *   dtypes so that a task name such as "123" stays a string.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import * as dfd from "danfojs-node";
import { registerGradientFixes } from "../backend/gradients";

// Undo danfojs's side effect on the global gradient registry (see above).
registerGradientFixes();

export { dfd };

/** One task's numbers: metric columns are x 100 means over the task's instances. */
export interface TaskRow {
  task: string;
  category: string;
  instances: number;
  /** Metric columns, e.g. rougeL and exactMatch (x 100), plus any other numeric column (e.g. truncated). */
  [column: string]: string | number;
}

export interface CategoryTableOptions {
  /** Metric columns to aggregate. Default: every numeric column of the rows except `instances`. */
  metrics?: string[];
  /**
   * "instances" (default; SNI's official compute_grouped_metrics): the category number is the mean over the
   * category's instances, i.e. the instance-weighted mean of its task numbers. "tasks": the plain mean of
   * its task numbers. Both are given either way: the other one as `<metric>_taskMean` / `<metric>_instanceMean`.
   */
  weighting?: "instances" | "tasks";
}

function numericColumns(rows: readonly TaskRow[]): string[] {
  const cols: string[] = [];
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (k === "instances" || k === "task" || k === "category") continue;
      if (typeof v === "number" && !cols.includes(k)) cols.push(k);
    }
  }
  return cols;
}

function checkRows(rows: readonly TaskRow[], fn: string): void {
  const seen = new Set<string>();
  for (const r of rows) {
    if (typeof r.task !== "string" || typeof r.category !== "string") throw new Error(`${fn}: every row needs string task and category`);
    if (!Number.isInteger(r.instances) || r.instances < 0) throw new Error(`${fn}: task ${r.task}: instances must be an integer >= 0, got ${String(r.instances)}`);
    if (seen.has(r.task)) throw new Error(`${fn}: task ${r.task} appears twice`);
    seen.add(r.task);
  }
}

function frame(columns: string[], rows: (string | number)[][], dtypes: string[]): dfd.DataFrame {
  return new dfd.DataFrame(rows, { columns, dtypes });
}

/**
 * The per-task table: columns task, category, instances, then the metric columns in the rows' order, one row
 * per task, in the order given.
 */
export function taskTable(rows: readonly TaskRow[]): dfd.DataFrame {
  checkRows(rows, "taskTable");
  const metrics = numericColumns(rows);
  const columns = ["task", "category", "instances", ...metrics];
  const data = rows.map((r) => [r.task, r.category, r.instances, ...metrics.map((m) => numberOf(r, m, "taskTable"))]);
  return frame(columns, data, ["string", "string", "int32", ...metrics.map(() => "float32")]);
}

function numberOf(r: TaskRow, m: string, fn: string): number {
  const v = r[m];
  if (typeof v !== "number") throw new Error(`${fn}: task ${r.task} has no number in column ${m}`);
  return v;
}

export interface CategoryRow {
  category: string;
  tasks: number;
  instances: number;
  [metric: string]: string | number;
}

/** The numbers of `categoryTable` as plain rows (categories in order of first appearance). */
export function categoryRows(rows: readonly TaskRow[], opts: CategoryTableOptions = {}): CategoryRow[] {
  checkRows(rows, "categoryTable");
  const metrics = opts.metrics ?? numericColumns(rows);
  const weighting = opts.weighting ?? "instances";
  const groups = new Map<string, TaskRow[]>();
  for (const r of rows) {
    const g = groups.get(r.category);
    if (g) g.push(r);
    else groups.set(r.category, [r]);
  }
  const out: CategoryRow[] = [];
  for (const [category, g] of groups) {
    const n = g.reduce((s, r) => s + r.instances, 0);
    const row: CategoryRow = { category, tasks: g.length, instances: n };
    for (const m of metrics) {
      const vals = g.map((r) => numberOf(r, m, "categoryTable"));
      const taskMean = vals.reduce((s, v) => s + v, 0) / vals.length;
      const instMean = n > 0 ? g.reduce((s, r, i) => s + (vals[i] as number) * r.instances, 0) / n : taskMean;
      if (weighting === "instances") {
        row[m] = instMean;
        row[`${m}_taskMean`] = taskMean;
      } else {
        row[m] = taskMean;
        row[`${m}_instanceMean`] = instMean;
      }
    }
    out.push(row);
  }
  return out;
}

/**
 * The per-category table: category, tasks, instances, then each metric (instance-weighted by default, as
 * SNI's official script) and its other average (`_taskMean`, or `_instanceMean` with weighting "tasks").
 */
export function categoryTable(rows: readonly TaskRow[], opts: CategoryTableOptions = {}): dfd.DataFrame {
  const cats = categoryRows(rows, opts);
  const metrics = opts.metrics ?? numericColumns(rows);
  const suffix = (opts.weighting ?? "instances") === "instances" ? "_taskMean" : "_instanceMean";
  const metricCols = metrics.flatMap((m) => [m, `${m}${suffix}`]);
  const columns = ["category", "tasks", "instances", ...metricCols];
  const data = cats.map((c) => [c.category, c.tasks, c.instances, ...metricCols.map((m) => c[m] as number)]);
  return frame(columns, data, ["string", "int32", "int32", ...metricCols.map(() => "float32")]);
}

// ---------------------------------------------------------------------------------------------------------
// CSV

/** One CSV field: quoted (quotes doubled) when it holds a comma, quote, CR or LF, or starts/ends with a space. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return "";
  let s: string;
  if (typeof v === "number") s = Number.isNaN(v) ? "NaN" : String(v);
  else if (typeof v === "string") s = v;
  else if (typeof v === "boolean" || typeof v === "bigint") s = String(v);
  else s = JSON.stringify(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A header line and one line per row, "\n"-terminated (RFC 4180 quoting; numbers in JS's shortest round-trip form). */
export function toCsvString(df: dfd.DataFrame): string {
  const lines = [df.columns.map(csvField).join(",")];
  for (const row of df.values as unknown[][]) lines.push(row.map(csvField).join(","));
  return lines.join("\n") + "\n";
}

/** Parses RFC 4180 CSV (quoted fields may hold commas, doubled quotes, CR and LF) into rows of strings. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let any = false;
  while (i < text.length) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === "") {
      quoted = true;
      any = true;
      i++;
    } else if (c === ",") {
      row.push(field);
      field = "";
      any = true;
      i++;
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      any = false;
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
    } else {
      field += c;
      any = true;
      i++;
    }
  }
  if (quoted) throw new Error("parseCsv: unterminated quoted field");
  if (any || field !== "") {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Writes `text` to `path` atomically: a temporary file in the same folder, then a rename. Creates the folder. */
export function writeFileAtomic(path: string, text: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes a DataFrame as CSV (see `toCsvString`), atomically. */
export function writeCsv(df: dfd.DataFrame, path: string): void {
  writeFileAtomic(path, toCsvString(df));
}

/**
 * A DataFrame from plain records (e.g. P3's per-template results), columns in the given order (default: the
 * first record's keys); string columns stay strings, numeric ones numbers.
 */
export function recordsTable(rows: readonly object[], columns?: string[]): dfd.DataFrame {
  const records = rows as readonly Record<string, unknown>[];
  const cols = columns ?? Object.keys(records[0] ?? {});
  const dtypes = cols.map((c) => (records.length > 0 && records.every((r) => typeof r[c] === "number") ? "float32" : "string"));
  const data = records.map((r) =>
    cols.map((c, j) => {
      const v = r[c];
      return dtypes[j] === "float32" ? (v as number) : v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v);
    }),
  );
  return frame(cols, data, dtypes);
}
