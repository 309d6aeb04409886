/**
 * The T0 training mixture (P3's training prompts), which is not available in this environment, read from a
 * JSONL layout that users who have it can produce (for example from the P3 TFRecords on the Hugging Face Hub,
 * or by rendering promptsource templates over the training datasets).
 *
 * Layout: one directory, one file per (dataset, template):
 *
 *     <dir>/<dataset>__<template>.jsonl
 *
 * - `<dataset>` is the promptsource dataset, with a subset joined by "_" or "/" replaced by "_"
 *   (e.g. `super_glue_boolq`, `ag_news`); `<template>` is the template name with characters other than
 *   [A-Za-z0-9_.-] replaced by "_". The file name is split at the first "__": the dataset name must not
 *   contain "__", the template name may.
 * - each non-blank line is a JSON object `{"inputs": string, "targets": string}` with an optional
 *   `"answer_choices": string[]` (for rank classification); other keys are ignored.
 * - UTF-8; blank lines are ignored.
 *
 * Bad input: a line that is not valid JSON (a truncated file) or not an object throws an error naming the
 * file and line. A line with a missing or non-string `inputs`/`targets`, an empty `inputs` or `targets`, or
 * `answer_choices` that is not a list of strings is skipped and counted per file and reason (P3 drops
 * empty renders the same way); the counts come back with the data, never silently.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface T0Example {
  inputs: string;
  targets: string;
  answerChoices?: string[];
}

export interface T0TemplateFile {
  dataset: string;
  template: string;
  file: string;
  examples: T0Example[];
  /** skipped lines by reason */
  skipped: Record<string, number>;
}

export interface T0Mixture {
  files: T0TemplateFile[];
  totals: { files: number; examples: number; skipped: number };
}

export const T0_FILE_RE = /^(.+?)__(.+)\.jsonl$/;

/** Parse one template file's text (`file` names it in errors). */
export function parseT0File(text: string, file: string): { examples: T0Example[]; skipped: Record<string, number> } {
  const examples: T0Example[] = [];
  const skipped: Record<string, number> = {};
  const skip = (reason: string): void => {
    skipped[reason] = (skipped[reason] ?? 0) + 1;
  };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: malformed JSON line (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${file}:${i + 1}: expected a JSON object`);
    const o = v as Record<string, unknown>;
    if (typeof o.inputs !== "string" || typeof o.targets !== "string") {
      skip("missing or non-string inputs/targets");
      continue;
    }
    if (o.inputs.trim() === "" || o.targets.trim() === "") {
      skip("empty inputs or targets");
      continue;
    }
    const ex: T0Example = { inputs: o.inputs, targets: o.targets };
    if (o.answer_choices !== undefined && o.answer_choices !== null) {
      if (!Array.isArray(o.answer_choices) || !o.answer_choices.every((c) => typeof c === "string")) {
        skip("answer_choices not a list of strings");
        continue;
      }
      ex.answerChoices = o.answer_choices as string[];
    }
    examples.push(ex);
  }
  return { examples, skipped };
}

/**
 * Read every `<dataset>__<template>.jsonl` under `dir` (sorted by file name). `datasets` keeps only those
 * datasets; `maxPerTemplate` keeps the first N examples of each file (T0 caps each dataset's examples).
 */
export function loadT0Mixture(dir: string, opts: { datasets?: readonly string[]; maxPerTemplate?: number } = {}): T0Mixture {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`T0 mixture directory not found: ${dir}`);
  const names = readdirSync(dir).filter((n) => n.endsWith(".jsonl")).sort();
  const files: T0TemplateFile[] = [];
  for (const name of names) {
    const m = T0_FILE_RE.exec(name);
    if (!m) throw new Error(`${join(dir, name)}: file name is not <dataset>__<template>.jsonl`);
    const dataset = m[1]!;
    if (opts.datasets && !opts.datasets.includes(dataset)) continue;
    const file = join(dir, name);
    const { examples, skipped } = parseT0File(readFileSync(file, "utf8"), file);
    files.push({ dataset, template: m[2]!, file, examples: opts.maxPerTemplate !== undefined ? examples.slice(0, opts.maxPerTemplate) : examples, skipped });
  }
  if (files.length === 0) throw new Error(`no <dataset>__<template>.jsonl files in ${dir}${opts.datasets ? ` for ${opts.datasets.join(", ")}` : ""}`);
  return {
    files,
    totals: {
      files: files.length,
      examples: files.reduce((a, f) => a + f.examples.length, 0),
      skipped: files.reduce((a, f) => a + Object.values(f.skipped).reduce((b, x) => b + x, 0), 0),
    },
  };
}
