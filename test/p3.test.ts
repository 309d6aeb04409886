/**
 * P3 held-out data and evaluation (src/data/p3.ts, src/eval/p3-eval.ts) and the T0 mixture loader
 * (src/data/t0-mixture.ts): label mappings, template parsing, sandboxed renders equal to promptsource's Jinja2
 * renders (fixture from reference/make_p3_fixture.py), exact coverage counts over every held-out template and
 * example, rank classification on a tiny random T5, and the JSONL loader's errors and counted skips.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { parseT5Config } from "../src/model/config";
import { initT5Params } from "../src/model/init";
import type { T5Model } from "../src/model/t5";
import { T5Tokenizer } from "../src/text/tokenizer";
import {
  P3_HELDOUT_TASKS,
  fixWscSpans,
  loadP3Records,
  loadP3Templates,
  p3Coverage,
  parseHellaswagText,
  parseTemplatesYaml,
  renderTemplate,
  renderTemplateOver,
  type P3Task,
  type P3Template,
} from "../src/data/p3";
import { MTEST10_NAME, evaluateP3, majorityShare, median, rankClassify, sampleUsable } from "../src/eval/p3-eval";
import { loadT0Mixture, parseT0File } from "../src/data/t0-mixture";

interface FixtureRender {
  task: P3Task;
  template: string;
  row: number;
  input: string;
  target: string;
  answerChoices: string[];
}

function template(task: P3Task, name: string): P3Template {
  const t = loadP3Templates(task).find((x) => x.name === name);
  if (!t) throw new Error(`no template ${name} for ${task}`);
  return t;
}

describe("P3 raw records (label mappings, renames)", () => {
  it("counts and label mappings", () => {
    const expected: Record<P3Task, number> = { rte: 277, cb: 56, copa: 100, wic: 638, wsc: 104, winogrande: 1267, anli_r1: 1000, anli_r2: 1000, anli_r3: 1200, hellaswag: 10042 };
    for (const task of P3_HELDOUT_TASKS) assert.equal(loadP3Records(task).length, expected[task], task);
    const rte = loadP3Records("rte");
    assert.equal(rte[0]!.label, 1); // "not_entailment"
    assert.deepEqual(new Set(rte.map((r) => r.label)), new Set([0, 1]));
    const cb = loadP3Records("cb");
    assert.equal(cb[0]!.label, 1); // "contradiction"
    assert.deepEqual(new Set(cb.map((r) => r.label)), new Set([0, 1, 2]));
    assert.equal(loadP3Records("wic")[0]!.label, 0); // false
    const wsc = loadP3Records("wsc");
    assert.equal(wsc[0]!.label, 0);
    assert.equal(wsc[0]!.span1_text, "anyone");
    assert.equal(wsc[0]!.span2_index, 47);
    assert.equal(loadP3Records("copa")[0]!.label, 1);
    const wg = loadP3Records("winogrande");
    assert.equal(wg[0]!.answer, "2");
    const anli = loadP3Records("anli_r1");
    assert.ok(typeof anli[0]!.premise === "string" && !("context" in anli[0]!));
    assert.deepEqual(new Set(anli.map((r) => r.label)), new Set([0, 1, 2]));
    const hs = loadP3Records("hellaswag");
    assert.deepEqual(hs[0], {
      activity_label: "Roof shingle removal",
      ctx: "A man is sitting on a roof. he",
      endings: ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
      label: "3",
    });
  });

  it("ANLI e/n/c -> 0/1/2 and WSC span fix (HF wsc.fixed)", () => {
    const raw = readFileSync(join(__dirname, "..", "..", "shared", "data", "p3", "raw", "anli", "R1", "dev.jsonl"), "utf8").split("\n")[0]!;
    const lab = (JSON.parse(raw) as { label: string }).label;
    assert.equal(loadP3Records("anli_r1")[0]!.label, { e: 0, n: 1, c: 2 }[lab]);
    const wsc = loadP3Records("wsc");
    assert.equal(wsc.find((r) => r.idx === 5)!.span1_text, "the table");
    for (const r of wsc) assert.ok((r.text as string).includes(r.span1_text as string) && (r.text as string).includes(r.span2_text as string), `wsc ${r.idx}`);
    const ex = { text: "I saw the cat.", span1_index: 2, span2_index: 0, span1_text: "The cat.", span2_text: "I" };
    fixWscSpans(ex);
    assert.equal(ex.span1_text, "the cat");
  });

  it("HellaSwag text format errors", () => {
    assert.throws(() => parseHellaswagText("a: b\n1\nx\ny\nz\n", "hs"), /not a multiple of 6/);
    assert.throws(() => parseHellaswagText("a: b\n7\nw\nx\ny\nz\n", "hs"), /hs:2: gold index/);
  });
});

describe("promptsource templates", () => {
  it("parses the !Template / !TemplateMetadata tags; counts per dataset", () => {
    const counts: Record<string, [number, number]> = {};
    for (const task of P3_HELDOUT_TASKS) {
      const ts = loadP3Templates(task);
      counts[task] = [ts.length, ts.filter((t) => t.metadata.originalTask === true).length];
    }
    assert.deepEqual(counts, {
      rte: [10, 10], cb: [15, 15], copa: [12, 12], wic: [10, 10], wsc: [10, 10], winogrande: [6, 5],
      anli_r1: [15, 15], anli_r2: [15, 15], anli_r3: [15, 15], hellaswag: [11, 4],
    });
    const t = parseTemplatesYaml(
      "dataset: d\nsubset: s\ntemplates:\n  abc: !Template\n    answer_choices: Yes ||| No\n    id: abc\n    jinja: '{{x}} ||| {{answer_choices[label]}}'\n    metadata: !TemplateMetadata\n      original_task: true\n      metrics:\n      - Accuracy\n    name: n1\n    reference: ''\n",
    );
    assert.equal(t.subset, "s");
    assert.deepEqual(t.templates[0]!.metadata.metrics, ["Accuracy"]);
    assert.deepEqual(renderTemplate(t.templates[0]!, { x: "a ||| b", label: 1 }), { input: "a ||| b", target: "No", answerChoices: ["Yes", "No"] });
  });

  it("renders equal Python Jinja2's (promptsource Template.apply) on the committed fixture", () => {
    const fx = JSON.parse(readFileSync(join(__dirname, "fixtures", "p3", "renders.json"), "utf8")) as { renders: FixtureRender[] };
    assert.equal(fx.renders.length, 222);
    const recs = new Map<P3Task, ReturnType<typeof loadP3Records>>();
    const seen = new Set<string>();
    for (const r of fx.renders) {
      if (!recs.has(r.task)) recs.set(r.task, loadP3Records(r.task));
      const out = renderTemplate(template(r.task, r.template), recs.get(r.task)![r.row]!);
      assert.deepEqual(out, { input: r.input, target: r.target, answerChoices: r.answerChoices }, `${r.task} / ${r.template} / row ${r.row}`);
      seen.add(`${r.task}/${r.template}`);
    }
    // 119 templates less 3 needing ctx_a/ctx_b and 1 using the random `choice` filter
    assert.equal(seen.size, 115);
  });

  it("spot checks: COPA cause/effect, WSC slice + .lower(), Winogrande", () => {
    const copa = loadP3Records("copa");
    const r0 = renderTemplate(template("copa", "best_option"), copa[0]!);
    assert.equal(r0.input, "The man turned on the faucet. \n\nWhat's the best option?\n- The toilet filled with water.\n- Water flowed from the spout.\n\nWe are looking for  an effect");
    assert.equal(r0.target, "Water flowed from the spout.");
    // "…What could happen next" applies to effect questions only: a cause row renders empty (counted skip).
    const cause = copa.findIndex((r) => r.question === "cause");
    assert.deepEqual(renderTemplate(template("copa", "\u2026What could happen next, C1 or C2?"), copa[cause]!).input, "");
    const wsc = loadP3Records("wsc");
    const w = renderTemplate(template("wsc", "I think they mean"), wsc[0]!);
    assert.equal(
      w.input,
      "Bernard , who had not told the government official that he was less than 21 when he filed for a homestead claim, did not consider that he had done anything dishonest. Still, anyone who knew that he was 19 years old could take his claim away from him . I think they mean \"anyone .\" Yes or no?",
    );
    assert.equal(w.target, "No");
    const wg = renderTemplate(template("winogrande", "underscore refer to"), loadP3Records("winogrande")[0]!);
    assert.equal(wg.input, "Sarah was a much better surgeon than Maria so _ always got the easier cases.\nWhat does the _ in the above sentence refer to? Sarah or Maria?");
    assert.equal(wg.target, "Maria");
  });

  it("Jinja as Python: string methods, trailing list comma, seeded choice, strict output", () => {
    const t: P3Template = { id: "x", name: "x", jinja: "{{ s.lower() }}|{{ s.split() | join(',') }}|{{ s.split(' ')[1:] | join('+') }}|||{{ s.upper() }}", answerChoices: null, reference: "", metadata: { originalTask: null, choicesInPrompt: null, metrics: [], languages: [] } };
    assert.deepEqual(renderTemplate(t, { s: " Ab  Cd " }), { input: "ab  cd |Ab,Cd|Ab++Cd+", target: "AB  CD", answerChoices: [] });
    const rnd: P3Template = { ...t, jinja: "{% set p = ['a', 'b', 'c', 'd',] %}{{ p | choice }} ||| x" };
    assert.equal(renderTemplate(rnd, {}, 7).input, renderTemplate(rnd, {}, 7).input);
    const missing: P3Template = { ...t, jinja: "{{ nope }} ||| x" };
    assert.throws(() => renderTemplate(missing, { s: "a" }), /undefined|null/);
  });

  it("coverage: every held-out template on every example, exact counts", function () {
    this.timeout(120000);
    const report = p3Coverage();
    const got = Object.fromEntries(
      report.datasets.map((d) => [d.task, { examples: d.examples, templates: d.templatesTotal, renderedOk: d.renderedOk, failed: d.failedTemplates.map((f) => f.template), skipped: d.skippedExamples }]),
    );
    assert.deepEqual(got, {
      rte: { examples: 277, templates: 10, renderedOk: 10, failed: [], skipped: 0 },
      cb: { examples: 56, templates: 15, renderedOk: 15, failed: [], skipped: 0 },
      anli_r1: { examples: 1000, templates: 15, renderedOk: 15, failed: [], skipped: 0 },
      anli_r2: { examples: 1000, templates: 15, renderedOk: 15, failed: [], skipped: 0 },
      anli_r3: { examples: 1200, templates: 15, renderedOk: 15, failed: [], skipped: 0 },
      // 4 templates apply to one question type only: 52 + 52 (effect-only) + 48 + 48 (cause-only) empty renders
      copa: { examples: 100, templates: 12, renderedOk: 12, failed: [], skipped: 200 },
      // ctx_a/ctx_b templates are not renderable from the text format; 3 topic templates have no answer choices
      hellaswag: {
        examples: 10042,
        templates: 11,
        renderedOk: 8,
        failed: ["complete_first_then", "Appropriate continuation - Yes or No", "Reversed appropriate continuation - Yes or No"],
        skipped: 30126,
      },
      wsc: { examples: 104, templates: 10, renderedOk: 10, failed: [], skipped: 0 },
      winogrande: { examples: 1267, templates: 6, renderedOk: 6, failed: [], skipped: 0 },
      wic: { examples: 638, templates: 10, renderedOk: 10, failed: [], skipped: 0 },
    });
    for (const d of report.datasets) for (const f of d.failedTemplates) assert.match(f.error, /ctx_a, ctx_b: the raw HellaSwag text format/);
    assert.deepEqual(report.totals, { templates: 119, renderedOk: 116, failed: 3, skippedExamples: 30326 });
    const hs = report.datasets.find((d) => d.task === "hellaswag")!;
    assert.deepEqual(hs.templates.filter((t) => t.skipped["no answer choices"]).map((t) => t.skipped["no answer choices"]), [10042, 10042, 10042]);
    // promptsource appends `| string | truncate(2048)` to every `}}`: a no-op only if no field is longer.
    for (const task of P3_HELDOUT_TASKS) for (const r of loadP3Records(task)) for (const v of Object.values(r)) if (typeof v === "string") assert.ok(v.length <= 2048, task);
  });

  it("a label outside the answer choices is counted (render error or skip), never dropped", () => {
    const t = template("rte", "does this imply");
    const { usable, coverage } = renderTemplateOver("rte", t, [{ premise: "p", hypothesis: "h", idx: 0, label: 5 }, { premise: "p", hypothesis: "h", idx: 1, label: 0 }]);
    assert.equal(usable.length, 1);
    assert.equal(usable[0]!.gold, 0);
    // answer_choices[5] is undefined: with throwOnUndefined it is a counted render failure naming the row
    assert.equal(coverage.failed, 1);
    assert.match(coverage.firstError ?? "", /^row 0: .*(undefined|null)/);
    assert.deepEqual(coverage.skipped, {});
    const bad: P3Template = { ...t, jinja: "{{premise}} ||| Maybe" };
    const r2 = renderTemplateOver("rte", bad, [{ premise: "p", hypothesis: "h", idx: 0, label: 0 }]);
    assert.deepEqual(r2.coverage.skipped, { "target not among answer choices": 1 });
  });
});

describe("P3 rank classification (tiny random T5)", () => {
  let model: T5Model;
  let tok: T5Tokenizer;
  before(async () => {
    await initBackend({ log: false });
    const config = parseT5Config({ vocab_size: 32128, d_model: 32, d_kv: 8, d_ff: 64, num_layers: 1, num_decoder_layers: 1, num_heads: 4, feed_forward_proj: "gated-gelu", tie_word_embeddings: false });
    model = { config, params: initT5Params(config, 0) };
    tok = T5Tokenizer.fromFile();
  });
  after(() => {
    tf.dispose([...model.params.values()]);
  });

  it("median", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
  });

  it("majority share; seeded row sample: balanced on ANLI R3 (whose first rows share one label), same rows across templates", () => {
    assert.equal(majorityShare([0, 1, 1, 2]), 0.5);
    assert.equal(majorityShare([2]), 1);
    assert.throws(() => majorityShare([]), /empty/);
    const records = loadP3Records("anli_r3");
    const templates = loadP3Templates("anli_r3").filter((t) => t.metadata.originalTask);
    const [a, b] = templates.map((t) => renderTemplateOver("anli_r3", t, records).usable);
    // The file's first 10 rows are all entailment: the old first-N choice gave a one-label sample.
    assert.equal(majorityShare(a!.slice(0, 10).map((e) => e.gold)), 1);
    const sa = sampleUsable(a!, records.length, 30, 0, "anli_r3");
    const sb = sampleUsable(b!, records.length, 30, 0, "anli_r3");
    assert.equal(sa.length, 30);
    assert.deepEqual(sa.map((e) => e.row), sb.map((e) => e.row), "templates of a task draw the same rows");
    assert.deepEqual(sampleUsable(a!, records.length, 30, 0, "anli_r3").map((e) => e.row), sa.map((e) => e.row), "deterministic");
    assert.notDeepEqual(sampleUsable(a!, records.length, 30, 1, "anli_r3").map((e) => e.row), sa.map((e) => e.row), "the seed matters");
    const labels = new Set(sa.map((e) => e.gold));
    assert.equal(labels.size, 3, "all three labels in a 30-row sample");
    assert.ok(majorityShare(sa.map((e) => e.gold)) < 0.6);
    assert.equal(new Set(sa.map((e) => e.row)).size, 30, "no row twice");
  });

  it("picks the highest token-averaged log-likelihood, batched = unbatched", () => {
    const ex = [
      { input: "Is the sky blue?", answerChoices: ["yes", "no", "maybe not at all"] },
      { input: "A longer input sentence that goes on for a while.", answerChoices: ["first", "second"] },
    ];
    const a = rankClassify(model, tok, ex, { batchSize: 1 });
    const b = rankClassify(model, tok, ex, { batchSize: 16 });
    assert.deepEqual(a, b);
    assert.ok(a[0]! >= 0 && a[0]! < 3 && a[1]! >= 0 && a[1]! < 2);
  });

  it("evaluateP3 on 2 tasks: accuracies in [0,1], counts, aggregation", async () => {
    let last = [0, 0];
    const res = await evaluateP3(model, tok, { tasks: ["cb", "copa"], maxExamplesPerTemplate: 4, templatesPerTask: 3, batchSize: 8, onProgress: (d, t) => (last = [d, t]) });
    assert.equal(res.perTemplate.length, 6);
    for (const r of res.perTemplate) {
      assert.equal(r.n, 4);
      assert.ok(r.accuracy >= 0 && r.accuracy <= 1 && Number.isFinite(r.accuracy));
      assert.ok(r.majorityAccuracy >= 0.25 && r.majorityAccuracy <= 1);
      assert.equal(r.chanceAccuracy, r.task === "cb" ? 1 / 3 : 1 / 2);
    }
    assert.deepEqual(res.sample, { kind: "seeded", seed: 0, perTemplate: 4 });
    // cb: 3 choices x 4 examples x 3 templates; copa: 2 x 4 x 3
    assert.deepEqual(last, [60, 60]);
    assert.deepEqual(res.perTask.map((p) => [p.task, p.templates]), [["cb", 3], ["copa", 3]]);
    for (const p of res.perTask) {
      const accs = res.perTemplate.filter((r) => r.task === p.task).map((r) => r.accuracy);
      assert.ok(Math.abs(p.meanAccuracy - accs.reduce((a, x) => a + x, 0) / 3) < 1e-12);
      assert.equal(p.medianAccuracy, median(accs));
      const maj = res.perTemplate.filter((r) => r.task === p.task).map((r) => r.majorityAccuracy);
      assert.ok(Math.abs(p.majorityAccuracy - maj.reduce((a, x) => a + x, 0) / 3) < 1e-12);
    }
    assert.equal(res.average.name, "P3 held-out subset (cb, copa)");
    assert.notEqual(res.average.name, MTEST10_NAME);
    assert.ok(Math.abs(res.average.accuracy - (res.perTask[0]!.meanAccuracy + res.perTask[1]!.meanAccuracy) / 2) < 1e-12);
    assert.deepEqual(res.coverage.totals, { templates: 27, renderedOk: 27, failed: 0, skippedExamples: 200 });
    await assert.rejects(evaluateP3(model, tok, { tasks: ["storycloze"] }), /unknown P3 held-out task "storycloze"/);
  });
});

describe("T0 training-mixture loader (JSONL layout)", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "t0mix-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads <dataset>__<template>.jsonl with counted skips", () => {
    writeFileSync(
      join(dir, "ag_news__classify_question_first.jsonl"),
      [
        JSON.stringify({ inputs: "What label? World news", targets: "World", answer_choices: ["World", "Sports"] }),
        "",
        JSON.stringify({ inputs: "x", targets: "" }),
        JSON.stringify({ inputs: "y" }),
        JSON.stringify({ inputs: "z", targets: "t", answer_choices: "World" }),
        JSON.stringify({ inputs: "q", targets: "a" }),
      ].join("\n") + "\n",
    );
    writeFileSync(join(dir, "super_glue_boolq__I_wonder__x.jsonl"), JSON.stringify({ inputs: "i", targets: "t" }) + "\n");
    const m = loadT0Mixture(dir);
    assert.deepEqual(m.totals, { files: 2, examples: 3, skipped: 3 });
    assert.equal(m.files[0]!.dataset, "ag_news");
    assert.equal(m.files[0]!.template, "classify_question_first");
    assert.deepEqual(m.files[0]!.examples[0], { inputs: "What label? World news", targets: "World", answerChoices: ["World", "Sports"] });
    assert.deepEqual(m.files[0]!.skipped, { "empty inputs or targets": 1, "missing or non-string inputs/targets": 1, "answer_choices not a list of strings": 1 });
    assert.equal(m.files[1]!.dataset, "super_glue_boolq");
    assert.equal(m.files[1]!.template, "I_wonder__x");
    assert.equal(loadT0Mixture(dir, { datasets: ["ag_news"], maxPerTemplate: 1 }).totals.examples, 1);
  });

  it("malformed line: error names file and line; bad names and empty dirs are errors", () => {
    assert.throws(() => parseT0File('{"inputs": "a", "targets": "b"}\n{"inputs": "a", "tar', "f.jsonl"), /f\.jsonl:2: malformed JSON line/);
    assert.throws(() => parseT0File("[1]\n", "g.jsonl"), /g\.jsonl:1: expected a JSON object/);
    const d2 = mkdtempSync(join(tmpdir(), "t0mix-"));
    try {
      assert.throws(() => loadT0Mixture(d2), /no <dataset>__<template>\.jsonl files/);
      writeFileSync(join(d2, "nodoubleunderscore.jsonl"), "");
      assert.throws(() => loadT0Mixture(d2), /nodoubleunderscore\.jsonl: file name is not/);
    } finally {
      rmSync(d2, { recursive: true, force: true });
    }
    assert.throws(() => loadT0Mixture(join(dir, "missing")), /not found/);
  });
});
