/**
 * promptsource templates are untrusted input: no template may run code. Each payload below is a known way out
 * of a JavaScript template engine (nunjucks, used before, ran every one of them: a constructor reached from
 * any value is `Function`). Each must fail with an error naming the template, and leave no trace: no global
 * set, no file written, no prototype polluted. The same templates through the P3 evaluation's loader
 * (`--data-dir` with a hostile templates.yaml) are counted as failed templates, and nothing runs.
 */
import { strict as assert } from "node:assert";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { P3_DEFAULT_DIR, loadP3Templates, p3Coverage, renderTemplate, type P3Template } from "../src/data/p3";

const dir = mkdtempSync(join(tmpdir(), "tagi-sandbox-"));
const witness = join(dir, "pwned");
const w = JSON.stringify(witness);
/** JavaScript a payload tries to run: sets a global and writes a file. */
const code = `globalThis.__tagiPwned = 1; process.mainModule.require('fs').writeFileSync(${w}, 'x')`;
const codeStr = JSON.stringify(code);

const PAYLOADS: Record<string, string> = {
  "constructor chain through a string literal": `{{ "".constructor.constructor(${codeStr})() }}`,
  "constructor chain through a record string": `{{ premise.constructor.constructor(${codeStr})() }}`,
  "constructor chain through a list": `{{ [].constructor.constructor(${codeStr})() }}`,
  "constructor chain through a dict": `{{ {}.constructor.constructor(${codeStr})() }}`,
  "constructor chain through a number": `{{ (1).constructor.constructor(${codeStr})() }}`,
  "constructor chain through a method": `{{ premise.lower.constructor(${codeStr})() }}`,
  "range (a function)": `{{ range.constructor(${codeStr})() }}`,
  "a range's result": `{{ range(3).constructor.constructor(${codeStr})() }}`,
  "cycler (nunjucks global)": `{{ cycler.constructor(${codeStr})() }}`,
  "cycler instance": `{{ cycler(1, 2).next.constructor(${codeStr})() }}`,
  "joiner (nunjucks global)": `{{ joiner.constructor(${codeStr})() }}`,
  "joiner instance": `{{ joiner(",").constructor.constructor(${codeStr})() }}`,
  "__proto__ of a string": `{{ premise.__proto__.constructor.constructor(${codeStr})() }}`,
  "__proto__ pollution by set": `{% set x = premise.__proto__ %}{% set x.polluted = 1 %}{{ x }}`,
  "computed member access": `{{ premise["constructor"]["constructor"](${codeStr})() }}`,
  "string-built member name": `{{ premise["con" ~ "structor"]["con" ~ "structor"](${codeStr})() }}`,
  "process": `{{ process.mainModule.require("fs").writeFileSync(${w}, "x") }}`,
  "globalThis": `{{ globalThis.process.exit(3) }}`,
  "require": `{{ require("child_process").execSync("touch " ~ ${w}) }}`,
  "Python-style __class__ / __mro__": `{{ "".__class__.__mro__[1].__subclasses__() }}`,
  "Jinja2-style lipsum globals": `{{ lipsum.__globals__.os.popen("touch " ~ ${w}).read() }}`,
  "namespace object": `{% set ns = namespace(a=1) %}{{ ns.constructor.constructor(${codeStr})() }}`,
  "loop variable": `{% for x in [1] %}{{ loop.constructor.constructor(${codeStr})() }}{% endfor %}`,
  "macro": `{% macro m() %}x{% endmacro %}{{ m.constructor(${codeStr})() }}`,
  "filter result": `{{ (premise | upper).constructor.constructor(${codeStr})() }}`,
  "promptsource filter result": `{{ ([premise] | choice).constructor.constructor(${codeStr})() }}`,
};

const template = (name: string, jinja: string, answerChoices: string | null = null): P3Template => ({
  id: `id-${name.length}`,
  name,
  jinja,
  answerChoices,
  reference: "",
  metadata: { originalTask: null, choicesInPrompt: null, metrics: [], languages: [] },
});

function assertNothingRan(): void {
  assert.equal((globalThis as Record<string, unknown>).__tagiPwned, undefined, "a global was set");
  assert.equal(existsSync(witness), false, "a file was written");
  assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype was polluted");
  assert.equal(("" as unknown as Record<string, unknown>).polluted, undefined, "String.prototype was polluted");
}

describe("template sandbox: untrusted promptsource templates never run code", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [what, jinja] of Object.entries(PAYLOADS)) {
    it(`refuses ${what}`, () => {
      const name = `evil: ${what}`;
      assert.throws(
        () => renderTemplate(template(name, `${jinja} ||| x`), { premise: "p", label: 0 }),
        (e: Error) => e.message.includes(`template '${name}'`),
      );
      assertNothingRan();
      // in answer_choices too (rendered first, with the record)
      assert.throws(
        () => renderTemplate(template(name, "{{ premise }} ||| {{ answer_choices[label] }}", jinja), { premise: "p", label: 0 }),
        (e: Error) => e.message.includes(`template '${name}'`) && e.message.includes("answer_choices"),
      );
      assertNothingRan();
    });
  }

  it("record values are data: a record key named __proto__ or constructor is just a key", () => {
    const rec = JSON.parse('{"__proto__": "a", "constructor": "b", "label": 0}') as Record<string, string | number>;
    const out = renderTemplate(template("keys", "{{ __proto__ }} {{ constructor }} ||| x"), rec);
    assert.equal(out.input, "a b");
    assertNothingRan();
  });

  it("a hostile templates.yaml in --data-dir: every payload a counted failed template, nothing runs", () => {
    const data = join(dir, "p3");
    mkdirSync(join(data, "raw", "super_glue", "rte"), { recursive: true });
    copyFileSync(join(P3_DEFAULT_DIR, "raw", "super_glue", "rte", "val.jsonl"), join(data, "raw", "super_glue", "rte", "val.jsonl"));
    const tdir = join(data, "promptsource_templates", "super_glue", "rte");
    mkdirSync(tdir, { recursive: true });
    const entries = Object.entries(PAYLOADS).map(([what, jinja], i) =>
      [`  t${i}: !Template`, `    answer_choices: Yes ||| No`, `    id: t${i}`, `    jinja: ${JSON.stringify(`${jinja} ||| {{ answer_choices[label] }}`)}`, `    name: ${JSON.stringify(what)}`, `    reference: ''`].join("\n"),
    );
    writeFileSync(join(tdir, "templates.yaml"), `dataset: super_glue\nsubset: rte\ntemplates:\n${entries.join("\n")}\n`);
    assert.equal(loadP3Templates("rte", data).length, Object.keys(PAYLOADS).length);
    const report = p3Coverage({ tasks: ["rte"], dataDir: data, maxExamples: 3 });
    assert.deepEqual(report.totals, { templates: Object.keys(PAYLOADS).length, renderedOk: 0, failed: Object.keys(PAYLOADS).length, skippedExamples: 0 });
    for (const f of report.datasets[0]!.failedTemplates) assert.match(f.error, /^row 0: template '/);
    assertNothingRan();
  });

  it("YAML tags cannot construct code (a !!js/function tag is an error, not a function)", () => {
    const data = join(dir, "yaml");
    const tdir = join(data, "promptsource_templates", "super_glue", "rte");
    mkdirSync(tdir, { recursive: true });
    writeFileSync(join(tdir, "templates.yaml"), `dataset: super_glue\ntemplates:\n  a: !Template\n    id: a\n    name: n\n    jinja: !!js/function "function () { globalThis.__tagiPwned = 1 }"\n`);
    assert.throws(() => loadP3Templates("rte", data), /templates\.yaml: YAML error: .*js\/function/);
    assertNothingRan();
  });
});
