/**
 * Tk-Instruct's SNI prompt formats, string for string.
 *
 * Source: DataCollatorForNI.__call__ in github.com/yizhongw/Tk-Instruct, src/ni_collator.py, commit
 * d8184faa297caaef272044c92761cf618682d5fa (the file's last change; repo HEAD 7c0e4000901e7c148fbb8964042ebfc433f8d98e).
 * The TAGI repo (github.com/Xnhyacinth/TAGI, src/ni_collator.py, 8702b4eaaa21aac06890170be3b213a9a20a90a6)
 * vendors the same strings. Golden strings: reference/make_prompt_fixture.py -> test/fixtures/sni/prompts.json.
 *
 * The collator builds, with Python's `str.strip()` and "add '.' unless the text ends with a character of
 * Python's `string.punctuation`":
 *   task_name   = "<Task>. "                                     (add_task_name; off in the paper)
 *   definition  = "Definition: " + Definition[0].strip() [+ "."] + "\n\n"
 *   pos example = " Positive Example k -\nInput: " + input.strip() [+ "."] + "\n"
 *                 + " Output: " + output.strip() [+ "."] + "\n"
 *                 [+ " Explanation: " + explanation.strip() [+ "."] + "\n"]   (add_explanation; off)
 *                 + "\n"
 *   task_input  = "Now complete the following example -\nInput: " + input.strip() [+ "."] + "\nOutput: "
 *   source      = task_name + definition + "".join(pos examples) + task_input
 * "Def" uses no examples, "Def + 2 Pos" the first two positive examples (fewer when a task has fewer).
 *
 * Here `instruction` = task_name + definition + examples (what the hypernetwork reads) and `instance` =
 * task_input (what the base model reads); `full` = instruction + instance = the collator's `source`.
 */
import type { T5Tokenizer } from "./tokenizer";

export type PromptFormat = "def" | "def+2pos";

/** The fields a prompt needs (an SniTask fits). */
export interface PromptTask {
  name: string;
  definition: string;
  positiveExamples: readonly { input: string; output: string; explanation?: string }[];
}

export interface PromptInstance {
  input: string;
}

export interface PromptOptions {
  format: PromptFormat;
  /** Prefix "<task name>. " (the collator's add_task_name). Default false, as in the paper. */
  addTaskName?: boolean;
  /** Add " Explanation: ..." to each positive example (add_explanation). Default false, as in the paper. */
  addExplanation?: boolean;
}

export interface PromptParts {
  /** instruction + instance: what Tk-Instruct feeds the model. */
  full: string;
  /** Task name (if any) + definition + positive examples: what the hypernetwork reads. */
  instruction: string;
  /** "Now complete the following example -\nInput: ...\nOutput: ": what the base model reads. */
  instance: string;
  /** The pieces of `instruction`, for truncation. */
  taskName: string;
  definition: string;
  examples: string[];
}

/** Python's `string.punctuation`. */
export const PY_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/** The characters Python's `str.strip()` removes (str.isspace), as a regex class body. */
const PY_WS = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP = new RegExp(`^[${PY_WS}]+|[${PY_WS}]+$`, "g");

/** Python's `str.strip()` with no argument (JS `trim` differs: it strips U+FEFF and keeps U+001C-U+001F, U+0085). */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, "");
}

/** `if not s[-1] in string.punctuation: s += "."` (the collator never calls it on an empty string). */
function endWithPunct(s: string): string {
  const last = s[s.length - 1];
  return last !== undefined && PY_PUNCTUATION.includes(last) ? s : s + ".";
}

/** The collator's task_input for one instance. */
export function formatInstance(instance: PromptInstance): string {
  return endWithPunct("Now complete the following example -\n" + `Input: ${pyStrip(instance.input)}`) + "\n" + "Output: ";
}

/** The collator's definition block ("Definition: ...\n\n"). */
export function formatDefinition(definition: string): string {
  return endWithPunct("Definition: " + pyStrip(definition)) + "\n\n";
}

/** The collator's k-th (1-based) positive example block. */
export function formatPositiveExample(
  ex: { input: string; output: string; explanation?: string },
  k: number,
  addExplanation = false,
): string {
  let s = ` Positive Example ${k} -\n`;
  s = endWithPunct(s + `Input: ${pyStrip(ex.input)}`) + "\n";
  s = endWithPunct(s + ` Output: ${pyStrip(ex.output)}`) + "\n";
  if (addExplanation && ex.explanation !== undefined) {
    s = endWithPunct(s + ` Explanation: ${pyStrip(ex.explanation)}`) + "\n";
  }
  return s + "\n";
}

export function numPositiveExamples(format: PromptFormat): number {
  if (format === "def") return 0;
  if (format === "def+2pos") return 2;
  throw new Error(`prompt format must be "def" or "def+2pos", got ${String(format)}`);
}

/** The untruncated Tk-Instruct prompt for (task, instance), split into instruction and instance parts. */
export function buildPrompt(task: PromptTask, instance: PromptInstance, opts: PromptOptions): PromptParts {
  const nPos = numPositiveExamples(opts.format);
  const taskName = opts.addTaskName ? task.name + ". " : "";
  const definition = formatDefinition(task.definition);
  const examples = task.positiveExamples.slice(0, nPos).map((ex, i) => formatPositiveExample(ex, i + 1, opts.addExplanation ?? false));
  const inst = formatInstance(instance);
  const instruction = taskName + definition + examples.join("");
  return { full: instruction + inst, instruction, instance: inst, taskName, definition, examples };
}

export interface TruncateOptions {
  /**
   * What to do when definition + kept examples + instance still exceed maxTokens:
   * - "keep-instance" (default): shorten the definition (token-wise, from its end) so the instance stays whole;
   * - "collator": exactly Tk-Instruct: keep the first maxTokens tokens of the whole source (which cuts the
   *   instance's end, "Output: " included) and decode them.
   */
  strategy?: "keep-instance" | "collator";
}

export interface TruncatedPrompt extends PromptParts {
  /** Anything was changed. */
  truncated: boolean;
  /** Positive examples dropped by the collator's rule. */
  droppedExamples: number;
  definitionTruncated: boolean;
  /** Only when even an empty instruction leaves no room (or with strategy "collator"). */
  instanceTruncated: boolean;
  /** Tokens of `full`, `</s>` included. */
  numTokens: number;
  /** What happened, in words (empty when nothing was truncated). */
  notes: string[];
}

/**
 * Fits a prompt into `maxTokens` tokens (`</s>` included, like the collator's `max_source_length`).
 *
 * 1. Positive examples, as the collator adds them: in order, example k is kept when
 *    len(tok(definition + " ".join(kept) + example_k + instance)) <= maxTokens, and the first that does not fit
 *    stops the loop (the collator's " ".join in the check, and its leaving the task name out of it, are kept).
 * 2. If task name + definition + kept examples + instance still exceed maxTokens, the collator cuts the whole
 *    source's token list at maxTokens (losing the instance's end); by default this function instead shortens the
 *    definition token-wise from its end so the instance stays whole, and reports it.
 */
export function truncatePrompt(parts: PromptParts, tokenizer: T5Tokenizer, maxTokens: number, opts: TruncateOptions = {}): TruncatedPrompt {
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new Error(`truncatePrompt: maxTokens must be an integer >= 1, got ${maxTokens}`);
  const len = (s: string): number => tokenizer.encode(s).length;
  const notes: string[] = [];
  const kept: string[] = [];
  for (const ex of parts.examples) {
    if (len(parts.definition + kept.join(" ") + ex + parts.instance) <= maxTokens) kept.push(ex);
    else break;
  }
  const droppedExamples = parts.examples.length - kept.length;
  if (droppedExamples > 0) notes.push(`dropped ${droppedExamples} of ${parts.examples.length} positive example(s)`);
  const make = (definition: string, extra: Partial<TruncatedPrompt>): TruncatedPrompt => {
    const instruction = parts.taskName + definition + kept.join("");
    const full = instruction + parts.instance;
    const r: TruncatedPrompt = {
      full,
      instruction,
      instance: parts.instance,
      taskName: parts.taskName,
      definition,
      examples: kept,
      truncated: notes.length > 0,
      droppedExamples,
      definitionTruncated: false,
      instanceTruncated: false,
      numTokens: len(full),
      notes,
      ...extra,
    };
    r.truncated = notes.length > 0;
    return r;
  };
  const whole = make(parts.definition, {});
  if (whole.numTokens <= maxTokens) return whole;

  if (opts.strategy === "collator") {
    const ids = tokenizer.encode(whole.full).slice(0, maxTokens);
    const full = tokenizer.decode(ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: true });
    notes.push(`cut the source at ${maxTokens} tokens as the collator does (the instance is no longer whole)`);
    return { ...whole, full, instruction: "", instance: "", truncated: true, instanceTruncated: true, numTokens: maxTokens, notes };
  }

  // Shorten the definition's text ("Definition: ..." without its "\n\n"), keeping the largest token prefix that fits.
  const body = parts.definition.endsWith("\n\n") ? parts.definition.slice(0, -2) : parts.definition;
  const defIds = tokenizer.encode(body, { addEos: false });
  const withDef = (k: number): string => (k === 0 ? "" : tokenizer.decode(defIds.slice(0, k), { skipSpecialTokens: true }) + "\n\n");
  const fits = (k: number): boolean => len(parts.taskName + withDef(k) + kept.join("") + parts.instance) <= maxTokens;
  if (!fits(0)) {
    notes.push(
      `the instance alone (${len(parts.taskName + kept.join("") + parts.instance)} tokens with task name and kept examples) exceeds ` +
        `${maxTokens} tokens: the definition was removed and the instance could not be kept whole`,
    );
    const ids = tokenizer.encode(parts.taskName + kept.join("") + parts.instance).slice(0, maxTokens);
    const full = tokenizer.decode(ids, { skipSpecialTokens: true });
    return { ...make("", { definitionTruncated: true, instanceTruncated: true }), full, numTokens: ids.length };
  }
  let lo = 0;
  let hi = defIds.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  notes.push(`truncated the definition from ${defIds.length} to ${lo} tokens to keep the instance whole`);
  return make(withDef(lo), { definitionTruncated: true });
}
