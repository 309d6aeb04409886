/**
 * Tables for notebooks as HTML (`tslab.display.html(tagi.tableHtml(rows))`): a danfojs-node DataFrame of the
 * rows (the design card's DataFrame library) rendered as a compact HTML table that scrolls inside the output
 * instead of wrapping into unreadable boxes, numbers right-aligned and rounded, every cell escaped.
 */
function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export interface TableHtmlOptions {
  /** Shown above the table. */
  caption?: string;
  /** Decimals for non-integer numbers (default 3). */
  digits?: number;
  /** At most this many rows, with a line saying how many were left out (default all). */
  maxRows?: number;
}

/** Rows (objects with the same keys) as an HTML table, through a danfojs DataFrame. */
export function tableHtml(rows: readonly object[], opts: TableHtmlOptions = {}): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { dfd } = require("../eval/report") as typeof import("../eval/report");
  if (rows.length === 0) return `<p><em>${escapeHtml(opts.caption ? `${opts.caption}: ` : "")}no rows</em></p>`;
  const df = new dfd.DataFrame(rows.map((r) => ({ ...r })) as Record<string, unknown>[] as never);
  const columns = df.columns;
  const values = df.values as unknown[][];
  const digits = opts.digits ?? 3;
  const shown = opts.maxRows !== undefined ? values.slice(0, opts.maxRows) : values;
  const cell = (v: unknown) => {
    if (typeof v === "number") return `<td style="text-align:right;padding:2px 8px">${Number.isInteger(v) ? v : Number.isFinite(v) ? v.toFixed(digits) : ""}</td>`;
    return `<td style="text-align:left;padding:2px 8px">${escapeHtml(v === null || v === undefined ? "" : String(v))}</td>`;
  };
  return [
    `<div style="max-width:100%;overflow-x:auto">`,
    `<table style="border-collapse:collapse;font-size:12px;white-space:nowrap">`,
    opts.caption ? `<caption style="text-align:left;font-weight:bold;padding:4px 0">${escapeHtml(opts.caption)}</caption>` : "",
    `<thead><tr>${columns.map((c) => `<th style="text-align:left;border-bottom:1px solid #888;padding:2px 8px">${escapeHtml(c)}</th>`).join("")}</tr></thead>`,
    `<tbody>${shown.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("")}</tbody>`,
    `</table>`,
    shown.length < values.length ? `<p><em>${values.length - shown.length} more rows not shown</em></p>` : "",
    `</div>`,
  ].join("");
}
