/**
 * Evaluation tables as plain data: per-task and per-category numbers, P3's per-template records, and CSV
 * files (RFC 4180 quoting). No DataFrame library here, so the command line and the library's evaluation path
 * load nothing beyond tfjs; src/eval/report.ts wraps these tables as danfojs-node DataFrames for notebooks.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, basename, join } from "node:path";

/** A table: column names, rows of values, and each column's dtype ("string", "int32", "float32"). */
export interface Table {
  columns: string[];
  rows: (string | number)[][];
  dtypes: string[];
}

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

/**
 * The per-task table: columns task, category, instances, then the metric columns in the rows' order, one row
 * per task, in the order given.
 */
export function taskTableData(rows: readonly TaskRow[]): Table {
  checkRows(rows, "taskTable");
  const metrics = numericColumns(rows);
  const columns = ["task", "category", "instances", ...metrics];
  const data = rows.map((r) => [r.task, r.category, r.instances, ...metrics.map((m) => numberOf(r, m, "taskTable"))]);
  return { columns, rows: data, dtypes: ["string", "string", "int32", ...metrics.map(() => "float32")] };
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
export function categoryTableData(rows: readonly TaskRow[], opts: CategoryTableOptions = {}): Table {
  const cats = categoryRows(rows, opts);
  const metrics = opts.metrics ?? numericColumns(rows);
  const suffix = (opts.weighting ?? "instances") === "instances" ? "_taskMean" : "_instanceMean";
  const metricCols = metrics.flatMap((m) => [m, `${m}${suffix}`]);
  const columns = ["category", "tasks", "instances", ...metricCols];
  const data = cats.map((c) => [c.category, c.tasks, c.instances, ...metricCols.map((m) => c[m] as number)]);
  return { columns, rows: data, dtypes: ["string", "int32", "int32", ...metricCols.map(() => "float32")] };
}

/**
 * A table from plain records (e.g. P3's per-template results), columns in the given order (default: the
 * first record's keys); string columns stay strings, numeric ones numbers.
 */
export function recordsTableData(records: readonly object[], columns?: string[]): Table {
  const recs = records as readonly Record<string, unknown>[];
  const cols = columns ?? Object.keys(recs[0] ?? {});
  const dtypes = cols.map((c) => (recs.length > 0 && recs.every((r) => typeof r[c] === "number") ? "float32" : "string"));
  const data = recs.map((r) =>
    cols.map((c, j) => {
      const v = r[c];
      return dtypes[j] === "float32" ? (v as number) : v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v);
    }),
  );
  return { columns: cols, rows: data, dtypes };
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
export function csvString(columns: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const lines = [columns.map(csvField).join(",")];
  for (const row of rows) lines.push(row.map(csvField).join(","));
  return lines.join("\n") + "\n";
}

/** Writes a table as CSV (see csvString), atomically. */
export function writeTableCsv(t: Table, path: string): void {
  writeFileAtomic(path, csvString(t.columns, t.rows));
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

