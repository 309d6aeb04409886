/**
 * promptsource templates rendered in a sandbox. Templates come from files users download (promptsource's
 * `templates.yaml`, or any `--data-dir`), so they are untrusted: a template must never run code.
 *
 * Engine: `@huggingface/jinja`, a Jinja interpreter that evaluates a template over its own value types
 * (strings, numbers, booleans, arrays, maps, functions it defines). Member access reads only those values'
 * fixed built-ins (`.lower()`, `.split()`, `.items()`, ...) and a map's own keys, so no expression reaches a
 * JavaScript object, a constructor, a prototype, `process` or `require`. nunjucks, used before, compiles
 * templates to JavaScript and has no sandbox: `"".constructor.constructor("...")()` ran arbitrary code.
 *
 * What the sandbox adds to the library, all at the level of its values (never JavaScript callbacks that
 * would hand a template real objects):
 * - promptsource's filters `choice` (seeded: mulberry32 of the seed, so renders are reproducible;
 *   promptsource uses Python's unseeded `random.choice`), `most_frequent` and `highlight`, and the global
 *   `zip`: the library has no custom filter API, so `Interpreter.evaluate` is extended for exactly these
 *   names; their operands are evaluated by the library.
 * - Strict output: a printed expression that is undefined or null is an error naming the expression (Jinja2
 *   prints "" or "None"), so a field the record lacks is counted as a render failure, never a blank prompt.
 * - `Interpreter` over `parse(tokenize(src))`, not the library's `Template` class, which forces
 *   `trim_blocks`/`lstrip_blocks`; promptsource's Jinja2 Environment has both off.
 *
 * Equality with Python Jinja2 (promptsource's `Template.apply`) on 222 renders of the held-out templates is
 * tested in test/p3.test.ts; escape payloads are tested in test/template-sandbox.test.ts.
 */
import { mulberry32 } from "./sni"; // the same seeded PRNG as SNI sampling

// The package is an ES module with a CommonJS build (its "require" export). Its declarations do not resolve
// under this project's node16 resolution (extensionless relative imports), so the part used here is typed here.
interface Value {
  type: string;
  value: unknown;
  toString(): string;
}
interface Node {
  type: string;
}
type Program = Node & { body: Node[] };
interface Environment {
  set(name: string, value: unknown): unknown;
  lookupVariable(name: string): Value;
}
interface InterpreterApi {
  evaluate(node: Node | undefined, scope: Environment): Value;
  run(program: Program): Value;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Environment, Interpreter, parse, tokenize } = require("@huggingface/jinja") as {
  Environment: new () => Environment;
  Interpreter: new (env?: Environment) => InterpreterApi;
  tokenize(src: string, options?: { trim_blocks?: boolean; lstrip_blocks?: boolean }): unknown[];
  parse(tokens: unknown[]): Program;
};
type Scope = Environment;

/** The library's values are classes it does not export; a value's own constructor builds another of its kind. */
function sameKind(like: Value, payload: unknown): Value {
  return new (like.constructor as new (v: unknown) => Value)(payload);
}

/** A JavaScript primitive as a library value (through the library's own conversion). */
function fromPrimitive(v: string | number | boolean | null): Value {
  const env = new Environment();
  env.set("v", v);
  return env.lookupVariable("v");
}

const STATEMENTS = new Set(["Program", "If", "For", "Break", "Continue", "Set", "Macro", "Comment", "FilterStatement", "CallStatement"]);
const PROMPTSOURCE_FILTERS = new Set(["choice", "most_frequent", "highlight"]);

/** Jinja-like text of a (small) expression, for error messages: `answer_choices[label]`, `record.x`. */
function describe(n: unknown): string {
  const node = n as { type?: string; value?: unknown; object?: unknown; property?: unknown; computed?: boolean; operand?: unknown; filter?: unknown; callee?: unknown };
  switch (node.type) {
    case "Identifier":
      return String(node.value);
    case "StringLiteral":
      return JSON.stringify(node.value);
    case "IntegerLiteral":
    case "FloatLiteral":
      return String(node.value);
    case "MemberExpression":
      return node.computed ? `${describe(node.object)}[${describe(node.property)}]` : `${describe(node.object)}.${describe(node.property)}`;
    case "FilterExpression":
      return `${describe(node.operand)} | ${describe(node.filter)}`;
    case "CallExpression":
      return `${describe(node.callee)}(...)`;
    default:
      return `<${node.type ?? "expression"}>`;
  }
}

/** The expressions a template prints: the non-statement entries of every statement list in the tree. */
function printedExpressions(program: Program): WeakSet<object> {
  const printed = new WeakSet<object>();
  const seen = new Set<object>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== "object" || seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    if (v instanceof Map) {
      for (const [k, x] of v) {
        walk(k);
        walk(x);
      }
      return;
    }
    const rec = v as Record<string, unknown>;
    for (const key of ["body", "alternate", "defaultBlock"]) {
      const list = rec[key];
      if (Array.isArray(list)) for (const s of list) if (s && typeof s === "object" && !STATEMENTS.has((s as Node).type)) printed.add(s);
    }
    for (const x of Object.values(rec)) walk(x);
  };
  walk(program);
  return printed;
}

class PromptsourceInterpreter extends Interpreter {
  constructor(
    env: Environment,
    private readonly printed: WeakSet<object>,
    private readonly rng: () => number,
  ) {
    super(env);
  }

  override evaluate(node: Node | undefined, scope: Scope): Value {
    if (node?.type === "FilterExpression") {
      const f = (node as unknown as { filter: { type: string; value?: string; callee?: { value?: string } } }).filter;
      const name = f.type === "Identifier" ? f.value! : f.callee?.value;
      if (name !== undefined && PROMPTSOURCE_FILTERS.has(name)) {
        if (f.type !== "Identifier") throw new Error(`filter '${name}' takes no arguments`);
        return this.promptsourceFilter(name, super.evaluate((node as unknown as { operand: Node }).operand, scope));
      }
    } else if (node?.type === "CallExpression") {
      const c = node as unknown as { callee: { type: string; value?: string }; args: Node[] };
      if (c.callee.type === "Identifier" && c.callee.value === "zip") return this.zip(c.args.map((a) => this.evaluate(a, scope)));
    }
    const v = super.evaluate(node, scope);
    if (node && this.printed.has(node) && (v.type === "UndefinedValue" || v.type === "NullValue")) {
      throw new Error(`'${describe(node)}' is ${v.type === "NullValue" ? "null" : "undefined"} (printed by the template)`);
    }
    return v;
  }

  private promptsourceFilter(name: string, operand: Value): Value {
    if (name === "highlight") return fromPrimitive(`<span style='color: #F08080'>${operand.toString()}</span>`);
    if (operand.type !== "ArrayValue" && operand.type !== "TupleValue") throw new Error(`filter '${name}' expects a list, got ${operand.type}`);
    const items = operand.value as Value[];
    if (name === "choice") {
      if (items.length === 0) throw new Error("filter 'choice': the list is empty");
      return items[Math.floor(this.rng() * items.length)]!;
    }
    // most_frequent: the most common items, in first-seen order (Python's Counter.most_common keeps insertion order on ties)
    if (items.length === 0) return fromPrimitive(null); // promptsource returns None
    const counts = new Map<unknown, { item: Value; n: number }>();
    for (const it of items) {
      const key = `${it.type}:${String(it.value)}`;
      const c = counts.get(key);
      if (c) c.n++;
      else counts.set(key, { item: it, n: 1 });
    }
    const max = Math.max(...[...counts.values()].map((c) => c.n));
    return sameKind(operand, [...counts.values()].filter((c) => c.n === max).map((c) => c.item));
  }

  /** Python's zip over lists: a list of tuples (lists here), as long as the shortest argument. */
  private zip(lists: Value[]): Value {
    if (lists.length === 0) throw new Error("zip() needs at least one list");
    for (const l of lists) if (l.type !== "ArrayValue" && l.type !== "TupleValue") throw new Error(`zip() expects lists, got ${l.type}`);
    const arrays = lists.map((l) => l.value as Value[]);
    const n = Math.min(...arrays.map((a) => a.length));
    return sameKind(lists[0]!, Array.from({ length: n }, (_, i) => sameKind(lists[0]!, arrays.map((a) => a[i]!))));
  }
}

/** Python's range(stop) / range(start, stop[, step]) over integers. */
function pyRange(a: unknown, b?: unknown, c?: unknown): number[] {
  const [start, stop, step] = b === undefined ? [0, a, 1] : [a, b, c ?? 1];
  for (const x of [start, stop, step]) if (!Number.isInteger(x)) throw new Error(`range() expects integers, got ${JSON.stringify(x)}`);
  if (step === 0) throw new Error("range() step must not be zero");
  const out: number[] = [];
  const s = step as number;
  for (let i = start as number; s > 0 ? i < (stop as number) : i > (stop as number); i += s) {
    out.push(i);
    if (out.length > 1_000_000) throw new Error("range() longer than 1,000,000 items");
  }
  return out;
}

/** Jinja's constants (lower and title case, as Jinja accepts both) and range; what the library's Template sets up. */
const GLOBALS: Record<string, unknown> = { true: true, false: false, none: null, True: true, False: false, None: null, range: pyRange };

const parsed = new Map<string, { program: Program; printed: WeakSet<object> }>();

function compile(src: string): { program: Program; printed: WeakSet<object> } {
  let c = parsed.get(src);
  if (!c) {
    const program = parse(tokenize(src));
    c = { program, printed: printedExpressions(program) };
    parsed.set(src, c);
  }
  return c;
}

/**
 * Renders Jinja source `src` over `context` (JSON-like values) in the sandbox; `choice` draws from `rng`.
 * Throws on a syntax error, an unknown filter or method, or a printed undefined/null value.
 */
export function renderJinja(src: string, context: Record<string, unknown>, rng: () => number = mulberry32(0)): string {
  const { program, printed } = compile(src);
  const env = new Environment();
  for (const [k, v] of Object.entries(context)) env.set(k, v);
  // As in Jinja2, the render context hides a global of the same name.
  for (const [k, v] of Object.entries(GLOBALS)) if (!Object.prototype.hasOwnProperty.call(context, k)) env.set(k, v);
  const out = new PromptsourceInterpreter(env, printed, rng).run(program);
  return out.toString();
}
