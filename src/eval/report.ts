/**
 * Evaluation reports as danfojs-node DataFrames, for notebooks: the tables of src/eval/tables.ts (per task, per
 * category, P3 records) and their CSV form. The command line and the library's evaluation path use tables.ts
 * directly and never load danfojs-node (an optional peer dependency: `npm install danfojs-node` where
 * DataFrames are wanted).
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
import * as dfd from "danfojs-node";
import { registerGradientFixes } from "../backend/gradients";
import { categoryTableData, csvString, recordsTableData, taskTableData, writeFileAtomic, type CategoryTableOptions, type Table, type TaskRow } from "./tables";

// Undo danfojs's side effect on the global gradient registry (see above).
registerGradientFixes();

export { dfd };
export * from "./tables";

function frame(t: Table): dfd.DataFrame {
  return new dfd.DataFrame(t.rows, { columns: t.columns, dtypes: t.dtypes });
}

/** The per-task table (tables.ts's taskTableData) as a DataFrame. */
export function taskTable(rows: readonly TaskRow[]): dfd.DataFrame {
  return frame(taskTableData(rows));
}

/** The per-category table (tables.ts's categoryTableData) as a DataFrame. */
export function categoryTable(rows: readonly TaskRow[], opts: CategoryTableOptions = {}): dfd.DataFrame {
  return frame(categoryTableData(rows, opts));
}

/** Plain records (tables.ts's recordsTableData) as a DataFrame. */
export function recordsTable(rows: readonly object[], columns?: string[]): dfd.DataFrame {
  return frame(recordsTableData(rows, columns));
}

/** A DataFrame as CSV (RFC 4180 quoting, unlike danfojs's own toCSV). */
export function toCsvString(df: dfd.DataFrame): string {
  return csvString(df.columns, df.values as unknown[][]);
}

/** Writes a DataFrame as CSV (see `toCsvString`), atomically. */
export function writeCsv(df: dfd.DataFrame, path: string): void {
  writeFileAtomic(path, toCsvString(df));
}
