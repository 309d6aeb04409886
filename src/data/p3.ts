/**
 * T0 / P3 held-out evaluation data from `../shared/data/p3` (see its README): the raw validation sets turned
 * into rows shaped like Hugging Face `datasets` rows, the promptsource `templates.yaml` files, and template
 * rendering that reproduces promptsource's `Template.apply` (Jinja2) in a sandbox (./promptsource-jinja.ts).
 *
 * Records (label mappings and renames from the data README):
 * - RTE `entailment`→0, `not_entailment`→1; CB `entailment`→0, `contradiction`→1, `neutral`→2;
 *   WiC / WSC `false`→0, `true`→1; COPA already 0/1; Winogrande `answer` stays the string "1"/"2".
 * - ANLI: `context` renamed to `premise`, `label` e/n/c → 0/1/2.
 * - WSC: the raw `target` object is flattened to `span1_index`, `span2_index`, `span1_text`, `span2_text`, and
 *   HF's `wsc.fixed` span-text fix (`_fix_wst` in HF `datasets`' super_glue.py) is applied: a span text that
 *   is not a substring of `text` gets its first letter's case matched to the word at its index, a trailing "."
 *   removed and newlines replaced by spaces (8 validation rows: "The table" → "the table", ...).
 * - HellaSwag (llama.cpp text format, bz2, 6 lines per item): `activity_label` and `ctx` split at the first
 *   ": " of line 1, `label` is the gold index as a string (HF's type), `endings` the 4 endings. `ctx_a`,
 *   `ctx_b`, `ind`, `source_id`, `split`, `split_type` do not exist in this format; templates that use them are
 *   reported as not renderable (never approximated).
 *
 * Rendering (promptsource `Template.apply`): the record's string values get "|||" replaced by a protector;
 * `answer_choices` is rendered first and split on "|||" (each choice stripped); the template is rendered with
 * the record plus `answer_choices`, split on "|||", every part stripped. The part before the first "|||" is
 * the input, the second the target. promptsource's `| string | truncate(N)` appended to every `}}` is a no-op
 * at these lengths and is not applied.
 *
 * The template engine is sandboxed (templates are untrusted files: they must never run code); its
 * differences from Jinja2 are listed in ./promptsource-jinja.ts. The one that matters here: printing an
 * undefined or null value is an error naming it (Jinja would print "" or "None"), so missing fields are
 * counted as render failures, never rendered as blanks.
 */
import { dataDir } from "./data-dir";
import { readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { renderJinja } from "./promptsource-jinja";
import { mulberry32 } from "./sni";
import { parseDocument, type Tags, type CollectionTag } from "yaml";

// seek-bzip (pure JS bzip2 decoder) ships no type declarations: the one function used, typed here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Bunzip = require("seek-bzip") as { decode(input: Buffer, output?: Buffer): Buffer };

export type P3Value = string | number | boolean | null | P3Value[] | { [k: string]: P3Value };
export type P3Record = Record<string, P3Value>;

export const P3_DEFAULT_DIR = join(dataDir(), "p3");

/** The T0 held-out tasks available here (StoryCloze is not obtainable). */
export const P3_HELDOUT_TASKS = ["rte", "cb", "anli_r1", "anli_r2", "anli_r3", "copa", "hellaswag", "wsc", "winogrande", "wic"] as const;
export type P3Task = (typeof P3_HELDOUT_TASKS)[number];

export interface P3TaskSpec {
  task: P3Task;
  /** promptsource dataset / subset, e.g. super_glue / wsc.fixed */
  dataset: string;
  subset?: string;
  /** raw file relative to `<dataDir>/raw` */
  file: string;
  /** fields HF rows have but these raw files lack (templates using them are not renderable) */
  missingFields?: { fields: string[]; reason: string };
}

export const P3_TASK_SPECS: Record<P3Task, P3TaskSpec> = {
  rte: { task: "rte", dataset: "super_glue", subset: "rte", file: "super_glue/rte/val.jsonl" },
  cb: { task: "cb", dataset: "super_glue", subset: "cb", file: "super_glue/cb/val.jsonl" },
  copa: { task: "copa", dataset: "super_glue", subset: "copa", file: "super_glue/copa/val.jsonl" },
  wic: { task: "wic", dataset: "super_glue", subset: "wic", file: "super_glue/wic/val.jsonl" },
  wsc: { task: "wsc", dataset: "super_glue", subset: "wsc.fixed", file: "super_glue/wsc/val.jsonl" },
  winogrande: { task: "winogrande", dataset: "winogrande", subset: "winogrande_xl", file: "winogrande/dev.jsonl" },
  anli_r1: { task: "anli_r1", dataset: "anli", file: "anli/R1/dev.jsonl" },
  anli_r2: { task: "anli_r2", dataset: "anli", file: "anli/R2/dev.jsonl" },
  anli_r3: { task: "anli_r3", dataset: "anli", file: "anli/R3/dev.jsonl" },
  hellaswag: {
    task: "hellaswag",
    dataset: "hellaswag",
    file: "hellaswag/hellaswag_val_full.txt.bz2",
    missingFields: {
      fields: ["ctx_a", "ctx_b", "ind", "source_id", "split", "split_type"],
      reason:
        "the raw HellaSwag text format (llama.cpp) has only activity_label + ctx, the label and 4 endings; ctx_a/ctx_b are not separated (data README)",
    },
  },
};

// ---------------------------------------------------------------------------------------------------------
// Raw records

function readJsonl(path: string): { line: number; value: Record<string, unknown> }[] {
  if (!existsSync(path)) throw new Error(`P3 raw file not found: ${path}`);
  const out: { line: number; value: Record<string, unknown> }[] = [];
  const lines = readFileSync(path, "utf8").split("\n");
  lines.forEach((text, i) => {
    if (text.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: malformed JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${path}:${i + 1}: expected a JSON object`);
    out.push({ line: i + 1, value: v as Record<string, unknown> });
  });
  return out;
}

function mapLabel(path: string, line: number, raw: unknown, mapping: Record<string, number>): number {
  const key = String(raw);
  const v = mapping[key];
  if (v === undefined) throw new Error(`${path}:${line}: label ${JSON.stringify(raw)} not in ${JSON.stringify(Object.keys(mapping))}`);
  return v;
}

const LABELS: Record<string, Record<string, number>> = {
  rte: { entailment: 0, not_entailment: 1 },
  cb: { entailment: 0, contradiction: 1, neutral: 2 },
  bool: { false: 0, true: 1 },
  copa: { "0": 0, "1": 1 },
  anli: { e: 0, n: 1, c: 2 },
};

/** HF `datasets` super_glue.py `_fix_wst` (wsc.fixed), applied to span texts not found in `text`. */
export function fixWscSpans(ex: { text: string; span1_index: number; span2_index: number; span1_text: string; span2_text: string }): void {
  for (const k of ["span1", "span2"] as const) {
    let text = ex[`${k}_text`];
    const index = ex[`${k}_index`];
    if (ex.text.includes(text)) continue;
    if (text === "Kamenev and Zinoviev" || text === "Kamenev, Zinoviev, and Stalin") continue;
    if (text.includes("theyscold")) ex.span2_index = 10; // HF also calls text.replace(...) and drops the result
    const firstWord = ex.text.split(/\s+/).filter((w) => w !== "")[index] ?? "";
    const c0 = firstWord[0] ?? "";
    const isLower = c0 !== "" && c0 === c0.toLowerCase() && c0 !== c0.toUpperCase();
    text = (isLower ? text.slice(0, 1).toLowerCase() : text.slice(0, 1).toUpperCase()) + text.slice(1);
    text = text.replace(/\.+$/, "").replace(/\n/g, " ");
    ex[`${k}_text`] = text;
  }
}

function str(path: string, line: number, v: Record<string, unknown>, key: string): string {
  const x = v[key];
  if (typeof x !== "string") throw new Error(`${path}:${line}: field "${key}" missing or not a string`);
  return x;
}

/** HellaSwag from the bz2 llama.cpp text format (6 lines per item). */
export function parseHellaswagText(text: string, source = "hellaswag"): P3Record[] {
  const lines = text.split("\n");
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  if (lines.length % 6 !== 0) throw new Error(`${source}: ${lines.length} lines, not a multiple of 6 (truncated file?)`);
  const out: P3Record[] = [];
  for (let i = 0; i < lines.length; i += 6) {
    const head = lines[i]!;
    const sep = head.indexOf(": ");
    if (sep < 0) throw new Error(`${source}:${i + 1}: no "activity_label: ctx" separator`);
    const label = lines[i + 1]!.trim();
    if (!/^[0-3]$/.test(label)) throw new Error(`${source}:${i + 2}: gold index ${JSON.stringify(label)} not in 0..3`);
    out.push({
      activity_label: head.slice(0, sep),
      ctx: head.slice(sep + 2),
      endings: lines.slice(i + 2, i + 6),
      label,
    });
  }
  return out;
}

/** The rows of one held-out task, shaped like HF `datasets` rows. */
export function loadP3Records(task: P3Task, dataDir = P3_DEFAULT_DIR): P3Record[] {
  const spec = P3_TASK_SPECS[task];
  const path = join(dataDir, "raw", spec.file);
  if (task === "hellaswag") {
    if (!existsSync(path)) throw new Error(`P3 raw file not found: ${path}`);
    const buf = Bunzip.decode(readFileSync(path));
    return parseHellaswagText(Buffer.from(buf).toString("utf8"), path);
  }
  return readJsonl(path).map(({ line, value: v }): P3Record => {
    switch (task) {
      case "rte":
        return { premise: str(path, line, v, "premise"), hypothesis: str(path, line, v, "hypothesis"), idx: Number(v.idx), label: mapLabel(path, line, v.label, LABELS.rte!) };
      case "cb":
        return { premise: str(path, line, v, "premise"), hypothesis: str(path, line, v, "hypothesis"), idx: Number(v.idx), label: mapLabel(path, line, v.label, LABELS.cb!) };
      case "copa":
        return {
          premise: str(path, line, v, "premise"),
          choice1: str(path, line, v, "choice1"),
          choice2: str(path, line, v, "choice2"),
          question: str(path, line, v, "question"),
          idx: Number(v.idx),
          label: mapLabel(path, line, v.label, LABELS.copa!),
        };
      case "wic":
        return {
          word: str(path, line, v, "word"),
          sentence1: str(path, line, v, "sentence1"),
          sentence2: str(path, line, v, "sentence2"),
          start1: Number(v.start1),
          start2: Number(v.start2),
          end1: Number(v.end1),
          end2: Number(v.end2),
          idx: Number(v.idx),
          label: mapLabel(path, line, v.label, LABELS.bool!),
        };
      case "wsc": {
        const t = v.target as Record<string, unknown> | undefined;
        if (typeof t !== "object" || t === null) throw new Error(`${path}:${line}: field "target" missing`);
        const ex = {
          text: str(path, line, v, "text"),
          span1_index: Number(t.span1_index),
          span2_index: Number(t.span2_index),
          span1_text: str(path, line, t, "span1_text"),
          span2_text: str(path, line, t, "span2_text"),
        };
        fixWscSpans(ex);
        return { ...ex, idx: Number(v.idx), label: mapLabel(path, line, v.label, LABELS.bool!) };
      }
      case "winogrande": {
        const answer = str(path, line, v, "answer");
        if (answer !== "1" && answer !== "2") throw new Error(`${path}:${line}: answer ${JSON.stringify(answer)} not "1"/"2"`);
        return { sentence: str(path, line, v, "sentence"), option1: str(path, line, v, "option1"), option2: str(path, line, v, "option2"), answer };
      }
      case "anli_r1":
      case "anli_r2":
      case "anli_r3":
        return {
          uid: str(path, line, v, "uid"),
          premise: str(path, line, v, "context"),
          hypothesis: str(path, line, v, "hypothesis"),
          label: mapLabel(path, line, v.label, LABELS.anli!),
          reason: typeof v.reason === "string" ? v.reason : "",
        };
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Templates

export interface P3Template {
  id: string;
  name: string;
  jinja: string;
  answerChoices: string | null;
  reference: string;
  metadata: { originalTask: boolean | null; choicesInPrompt: boolean | null; metrics: string[]; languages: string[] };
}

/** promptsource's custom YAML tags: `!Template` and `!TemplateMetadata` are plain mappings. */
const PROMPTSOURCE_TAGS: Tags = [
  { tag: "!Template", collection: "map", resolve: (v: unknown) => v } as unknown as CollectionTag,
  { tag: "!TemplateMetadata", collection: "map", resolve: (v: unknown) => v } as unknown as CollectionTag,
];

function asStr(v: unknown, what: string): string {
  if (typeof v !== "string") throw new Error(`${what}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** Parse one promptsource templates.yaml (text) into templates, in file order. */
export function parseTemplatesYaml(text: string, source = "templates.yaml"): { dataset: string; subset?: string; templates: P3Template[] } {
  let doc: unknown;
  try {
    // Only plain YAML plus promptsource's two tags: any other tag (e.g. `!!js/function`) is an error, never a
    // value built by a constructor (the yaml library would take it as a plain string with a warning).
    const parsed = parseDocument(text, { customTags: PROMPTSOURCE_TAGS, prettyErrors: false });
    const problem = parsed.errors[0] ?? parsed.warnings[0];
    if (problem) throw problem;
    doc = parsed.toJS({ mapAsMap: false });
  } catch (e) {
    throw new Error(`${source}: YAML error: ${(e as Error).message}`);
  }
  const d = doc as { dataset?: unknown; subset?: unknown; templates?: unknown };
  if (typeof d !== "object" || d === null || typeof d.templates !== "object" || d.templates === null) throw new Error(`${source}: no "templates" mapping`);
  const templates: P3Template[] = [];
  for (const [id, raw] of Object.entries(d.templates as Record<string, unknown>)) {
    const t = raw as Record<string, unknown>;
    const m = (t.metadata ?? {}) as Record<string, unknown>;
    const what = `${source} template ${id}`;
    templates.push({
      id: typeof t.id === "string" ? t.id : id,
      name: asStr(t.name, `${what} name`),
      jinja: asStr(t.jinja, `${what} jinja`),
      answerChoices: t.answer_choices === null || t.answer_choices === undefined ? null : asStr(t.answer_choices, `${what} answer_choices`),
      reference: typeof t.reference === "string" ? t.reference : "",
      metadata: {
        originalTask: typeof m.original_task === "boolean" ? m.original_task : null,
        choicesInPrompt: typeof m.choices_in_prompt === "boolean" ? m.choices_in_prompt : null,
        metrics: Array.isArray(m.metrics) ? m.metrics.map(String) : [],
        languages: Array.isArray(m.languages) ? m.languages.map(String) : [],
      },
    });
  }
  return { dataset: asStr(d.dataset, `${source} dataset`), ...(typeof d.subset === "string" ? { subset: d.subset } : {}), templates };
}

/** The templates of a held-out task (promptsource order: file order; names are unique per dataset). */
export function loadP3Templates(task: P3Task, dataDir = P3_DEFAULT_DIR): P3Template[] {
  const spec = P3_TASK_SPECS[task];
  const path = join(dataDir, "promptsource_templates", spec.dataset, ...(spec.subset ? [spec.subset] : []), "templates.yaml");
  if (!existsSync(path)) throw new Error(`promptsource templates not found: ${path}`);
  return parseTemplatesYaml(readFileSync(path, "utf8"), path).templates;
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

const PIPE_PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0";

export interface RenderedExample {
  input: string;
  target: string;
  /** [] when the template has no answer_choices */
  answerChoices: string[];
}

function protect(record: P3Record): Record<string, unknown> {
  // fromEntries defines own properties: a key named "__proto__" stays a key (an assignment would set the prototype)
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, typeof v === "string" ? v.split("|||").join(PIPE_PROTECTOR) : v]));
}
const unprotect = (s: string): string => s.split(PIPE_PROTECTOR).join("|||");

/**
 * promptsource's `Template.apply`: input and target (the parts around the first "|||", stripped) and the
 * answer choices. `seed` seeds the `choice` filter (the same seed gives the same render). Throws on a
 * render error; a render without "|||" gives target "".
 */
export function renderTemplate(template: P3Template, record: P3Record, seed = 0): RenderedExample {
  if ("answer_choices" in record) throw new Error("Example contains the restricted key 'answer_choices'.");
  const ctx = protect(record);
  const rng = mulberry32(seed); // one stream for both renders, answer choices first
  const render = (part: string, src: string, context: Record<string, unknown>): string => {
    try {
      return renderJinja(src, context, rng);
    } catch (e) {
      throw new Error(`template '${template.name}' (${template.id}), ${part}: ${(e as Error).message}`);
    }
  };
  let answerChoices: string[] | null = null;
  if (template.answerChoices !== null) {
    answerChoices = render("answer_choices", template.answerChoices, ctx).split("|||").map((c) => unprotect(c.trim()));
  }
  const parts = render("jinja", template.jinja, { ...ctx, answer_choices: answerChoices })
    .split("|||")
    .map((p) => unprotect(p).trim());
  return { input: parts[0] ?? "", target: parts[1] ?? "", answerChoices: answerChoices ?? [] };
}

// ---------------------------------------------------------------------------------------------------------
// Coverage

export type SkipReason = "empty input or target (template not applicable)" | "target not among answer choices" | "no answer choices";

export interface TemplateCoverage {
  task: P3Task;
  template: string;
  originalTask: boolean | null;
  examples: number;
  rendered: number;
  /** render errors (count and the first message) */
  failed: number;
  firstError?: string;
  /** renderable but not usable for rank classification, by reason */
  skipped: Partial<Record<SkipReason, number>>;
  /** set when the template cannot be rendered from these raw files at all (then every example fails) */
  notRenderable?: string;
}

export interface DatasetCoverage {
  task: P3Task;
  examples: number;
  templatesTotal: number;
  /** templates rendered without error on every example */
  renderedOk: number;
  failedTemplates: { template: string; error: string }[];
  skippedExamples: number;
  templates: TemplateCoverage[];
}

export interface CoverageReport {
  datasets: DatasetCoverage[];
  totals: { templates: number; renderedOk: number; failed: number; skippedExamples: number };
}

/** Why a template cannot run on this task's raw rows (it uses a field they lack), or undefined. */
export function notRenderableReason(task: P3Task, template: P3Template): string | undefined {
  const miss = P3_TASK_SPECS[task].missingFields;
  if (!miss) return undefined;
  const src = `${template.jinja}\n${template.answerChoices ?? ""}`;
  const used = miss.fields.filter((f) => new RegExp(`\\b${f}\\b`).test(src));
  return used.length > 0 ? `uses ${used.join(", ")}: ${miss.reason}` : undefined;
}

export interface UsableExample extends RenderedExample {
  /** index of the target among answerChoices */
  gold: number;
  row: number;
}

/**
 * Render one template over rows: the rank-classification-usable examples and the template's coverage
 * (errors counted with the first message; inapplicable examples counted by reason).
 */
export function renderTemplateOver(task: P3Task, template: P3Template, records: readonly P3Record[], seed = 0): { usable: UsableExample[]; coverage: TemplateCoverage } {
  const cov: TemplateCoverage = { task, template: template.name, originalTask: template.metadata.originalTask, examples: records.length, rendered: 0, failed: 0, skipped: {} };
  const usable: UsableExample[] = [];
  const reason = notRenderableReason(task, template);
  if (reason) {
    cov.notRenderable = reason;
    cov.failed = records.length;
    cov.firstError = reason;
    return { usable, coverage: cov };
  }
  const skip = (r: SkipReason): void => {
    cov.skipped[r] = (cov.skipped[r] ?? 0) + 1;
  };
  records.forEach((rec, row) => {
    let r: RenderedExample;
    try {
      r = renderTemplate(template, rec, seed + row);
    } catch (e) {
      cov.failed++;
      cov.firstError ??= `row ${row}: ${(e as Error).message.split("\n").join(" ")}`;
      return;
    }
    cov.rendered++;
    if (r.input === "" || r.target === "") return skip("empty input or target (template not applicable)");
    if (template.answerChoices === null) return skip("no answer choices");
    const gold = r.answerChoices.indexOf(r.target);
    if (gold < 0) return skip("target not among answer choices");
    usable.push({ ...r, gold, row });
  });
  return { usable, coverage: cov };
}

export function datasetCoverage(task: P3Task, templates: TemplateCoverage[], examples: number): DatasetCoverage {
  return {
    task,
    examples,
    templatesTotal: templates.length,
    renderedOk: templates.filter((t) => t.failed === 0).length,
    failedTemplates: templates.filter((t) => t.failed > 0).map((t) => ({ template: t.template, error: t.firstError ?? "" })),
    skippedExamples: templates.reduce((a, t) => a + Object.values(t.skipped).reduce((b, x) => b + (x ?? 0), 0), 0),
    templates,
  };
}

export function summarizeCoverage(datasets: DatasetCoverage[]): CoverageReport {
  return {
    datasets,
    totals: {
      templates: datasets.reduce((a, d) => a + d.templatesTotal, 0),
      renderedOk: datasets.reduce((a, d) => a + d.renderedOk, 0),
      failed: datasets.reduce((a, d) => a + d.failedTemplates.length, 0),
      skippedExamples: datasets.reduce((a, d) => a + d.skippedExamples, 0),
    },
  };
}

/** Render every template of the given tasks over every example (or the first `maxExamples`). */
export function p3Coverage(opts: { tasks?: readonly P3Task[]; dataDir?: string; maxExamples?: number } = {}): CoverageReport {
  const tasks = opts.tasks ?? P3_HELDOUT_TASKS;
  return summarizeCoverage(
    tasks.map((task) => {
      const all = loadP3Records(task, opts.dataDir);
      const recs = opts.maxExamples !== undefined ? all.slice(0, opts.maxExamples) : all;
      const templates = loadP3Templates(task, opts.dataDir);
      return datasetCoverage(task, templates.map((t) => renderTemplateOver(task, t, recs).coverage), recs.length);
    }),
  );
}

/** Plain-text table of a coverage report. */
export function formatCoverage(report: CoverageReport): string {
  const lines = ["task         examples  templates  rendered-ok  failed  skipped-examples"];
  for (const d of report.datasets) {
    lines.push(`${d.task.padEnd(12)} ${String(d.examples).padStart(8)}  ${String(d.templatesTotal).padStart(9)}  ${String(d.renderedOk).padStart(11)}  ${String(d.failedTemplates.length).padStart(6)}  ${String(d.skippedExamples).padStart(16)}`);
    for (const f of d.failedTemplates) lines.push(`  failed: ${f.template}: ${f.error}`);
  }
  const t = report.totals;
  lines.push(`total: ${t.templates} templates, ${t.renderedOk} rendered on every example, ${t.failed} failed, ${t.skippedExamples} examples skipped`);
  return lines.join("\n");
}
