/**
 * Test helper: executes a notebook under its Jupyter kernel (tslab) with scripts/run-notebooks.mjs, into a
 * temporary copy, and returns the executed notebook for assertions. The committed notebook is not written;
 * the copy is deleted after a successful run and kept after a failed one.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";

export const projectRoot = resolve(__dirname, "..");

/** The parts of nbformat 4 the tests read. */
export interface NotebookOutput {
  output_type: "stream" | "display_data" | "execute_result" | "error";
  name?: "stdout" | "stderr";
  text?: string | string[];
  data?: Record<string, string | string[] | undefined>;
  ename?: string;
  evalue?: string;
}
export interface NotebookCell {
  cell_type: "code" | "markdown" | "raw";
  source: string | string[];
  outputs?: NotebookOutput[];
  execution_count?: number | null;
}
export interface Notebook {
  cells: NotebookCell[];
  metadata: { kernelspec?: { name?: string } };
}

/** What scripts/nbrun.py writes next to the executed copy. */
export interface RunSummary {
  ok: boolean;
  exitCode: number | null;
  kernel: string | null;
  kernelStartSeconds: number | null;
  totalSeconds: number | null;
  cells: { index: number; codeCell: number; seconds: number | null; status: string }[];
}

export interface NotebookRun {
  executed: Notebook;
  summary: RunSummary;
  /** Everything the runner printed (progress, and the kernel's own stderr). */
  log: string;
}

const joinText = (t: string | string[] | undefined): string => (Array.isArray(t) ? t.join("") : (t ?? ""));

export const cellSource = (cell: NotebookCell): string => joinText(cell.source);

/** The text a cell wrote to one stream. */
export function streamText(cell: NotebookCell, name: "stdout" | "stderr"): string {
  return (cell.outputs ?? [])
    .filter((o) => o.output_type === "stream" && o.name === name)
    .map((o) => joinText(o.text))
    .join("");
}

/** Text of every output of every code cell, in order (streams and text/plain results). */
export function allText(nb: Notebook): string {
  const parts: string[] = [];
  for (const cell of nb.cells) {
    for (const o of cell.outputs ?? []) {
      if (o.output_type === "stream") parts.push(joinText(o.text));
      else if (o.data) {
        parts.push(joinText(o.data["text/plain"]));
        // HTML tables (tagi.tableHtml) as their text, cells separated by " | " and rows by newlines
        const html = joinText(o.data["text/html"]);
        if (html && !html.includes("Plotly")) parts.push(html.replace(/<\/t[dh]>/g, " | ").replace(/<\/tr>|<caption[^>]*>|<\/caption>/g, "\n").replace(/<[^>]+>/g, ""));
      }
    }
  }
  return parts.join("");
}

/**
 * Runs `notebook` (a path relative to the project root) top to bottom. Throws with the runner's message when
 * Jupyter or the kernel is missing (exit 3, with install instructions) or when a cell fails (its source and
 * stderr: tslab reports TypeScript errors and stack traces there).
 */
export function runNotebook(notebook: string, options: { timeoutMs?: number } = {}): NotebookRun {
  const source = resolve(projectRoot, notebook);
  if (!existsSync(source)) throw new Error(`no such notebook: ${source}`);
  const outDir = mkdtempSync(join(tmpdir(), "tagi-nb-"));
  let keep = true; // a failed run's partial notebook stays in outDir for inspection (the message names it)
  try {
    const r = spawnSync(process.execPath, [join(projectRoot, "scripts", "run-notebooks.mjs"), "--output-dir", outDir, source], {
      cwd: projectRoot,
      encoding: "utf8",
      timeout: options.timeoutMs ?? 170_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const log = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
    if (r.error) throw new Error(`running ${notebook} failed: ${r.error.message}\n${log}`);
    if (r.status === 3) {
      keep = false;
      throw new Error(
        `Jupyter or the tslab kernel is not installed, so ${notebook} cannot run.\n${log}\n` +
          "(To skip notebook tests deliberately: TAGI_SKIP_NOTEBOOKS=1.)",
      );
    }
    if (r.status !== 0) throw new Error(`${notebook} did not run cleanly (runner exit ${r.status ?? r.signal}):\n${log}`);
    const name = basename(source, ".ipynb");
    const executed = JSON.parse(readFileSync(join(outDir, `${name}.ipynb`), "utf8")) as Notebook;
    const summary = JSON.parse(readFileSync(join(outDir, `${name}.summary.json`), "utf8")) as RunSummary;
    keep = false;
    return { executed, summary, log };
  } finally {
    if (!keep) rmSync(outDir, { recursive: true, force: true });
  }
}
