/**
 * T5Tokenizer versus Hugging Face on >= 2,000 real SNI strings (test/fixtures/tokenizer/sni_t5_ids.json.gz,
 * made by reference/make_tokenizer_fixture.py with transformers' T5TokenizerFast over the same
 * ../shared/data/t5/tokenizer.json). Every comparison is exact and every mismatch counts: ids with `</s>`,
 * truncation to 32, decode with and without special tokens, and decode with HF's clean-up of spaces.
 */
import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { loadSniSplit } from "../src/data/sni";
import { buildPrompt } from "../src/text/prompts";
import { DEFAULT_T5_TOKENIZER_PATH, T5Tokenizer, padBatch } from "../src/text/tokenizer";

const projectRoot = resolve(__dirname, "..");
const FIXTURE = join(projectRoot, "test", "fixtures", "tokenizer", "sni_t5_ids.json.gz");

interface Case {
  text: string;
  source: string;
  ids: number[];
  decoded: string;
  decoded_clean: string;
  decoded_special: string;
  trunc_ids?: number[];
  trunc_decoded?: string;
}
interface Fixture {
  meta: { n_cases: number; n_trunc: number; trunc_max_length: number; tokenizer_file: string };
  cases: Case[];
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Counts the cases where `check` is false and reports the first few, so a failure shows what differs. */
function mismatches(cases: readonly Case[], what: string, check: (c: Case) => string | null): void {
  const bad: string[] = [];
  for (const c of cases) {
    const diff = check(c);
    if (diff !== null) bad.push(`${c.source} ${JSON.stringify(c.text.slice(0, 120))}: ${diff}`);
  }
  assert.equal(bad.length, 0, `${what}: ${bad.length} of ${cases.length} cases differ from Hugging Face; first:\n${bad.slice(0, 5).join("\n")}`);
}

describe("T5Tokenizer (@huggingface/tokenizers over ../shared/data/t5/tokenizer.json)", function () {
  this.timeout(300_000);
  let tok: T5Tokenizer;
  let fx: Fixture;

  before(function () {
    if (!existsSync(DEFAULT_T5_TOKENIZER_PATH)) {
      throw new Error(`shared data missing: ${DEFAULT_T5_TOKENIZER_PATH} (the T5 vocabulary lives in ../shared/data/t5)`);
    }
    tok = T5Tokenizer.fromFile();
    fx = JSON.parse(gunzipSync(readFileSync(FIXTURE)).toString("utf8")) as Fixture;
  });

  it("fixture covers >= 2,000 strings, 300 truncations, and the awkward cases", function () {
    assert.equal(fx.cases.length, fx.meta.n_cases);
    assert.ok(fx.cases.length >= 2000, `${fx.cases.length} cases`);
    const real = fx.cases.filter((c) => c.source !== "synthetic");
    assert.ok(real.length >= 2000, `${real.length} real SNI strings`);
    assert.ok(real.some((c) => c.source.startsWith("train:")) && real.some((c) => c.source.startsWith("test:")));
    const trunc = fx.cases.filter((c) => c.trunc_ids !== undefined);
    assert.equal(trunc.length, fx.meta.n_trunc);
    assert.ok(trunc.length >= 300);
    assert.ok(trunc.filter((c) => c.ids.length > fx.meta.trunc_max_length).length >= 100, "truncation actually cuts");
    const count = (p: (s: string) => boolean) => real.filter((c) => p(c.text)).length;
    assert.ok(count((s) => /[^\x00-\x7f]/.test(s)) >= 150, "non-ASCII");
    assert.ok(count((s) => s.includes("\n")) >= 100, "newlines");
    assert.ok(count((s) => s.includes("  ")) >= 100, "multiple spaces");
    assert.ok(count((s) => /\d/.test(s)) >= 100, "digits");
    assert.ok(count((s) => s.length > 1000) >= 100, "long strings");
  });

  it("vocabulary and special ids", function () {
    assert.equal(tok.vocabSize, 32100);
    assert.equal(tok.padId, 0);
    assert.equal(tok.eosId, 1);
    assert.equal(tok.unkId, 2);
    assert.equal(tok.idToToken(1), "</s>");
    assert.equal(tok.idToToken(32099), "<extra_id_0>");
    assert.equal(tok.tokenToId("<extra_id_99>"), 32000);
    // The example from ../shared/data/t5/README.md.
    assert.deepEqual(tok.encode("Translate English to German: The house is wonderful."), [30355, 15, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1]);
  });

  it("ids equal Hugging Face's for every string (add_special_tokens=True: </s> appended)", function () {
    mismatches(fx.cases, "ids", (c) => {
      const ids = tok.encode(c.text);
      return sameIds(ids, c.ids) ? null : `ours ${JSON.stringify(ids.slice(0, 40))} hf ${JSON.stringify(c.ids.slice(0, 40))}`;
    });
  });

  it("the word cache changes nothing: encode equals the library's whole-string encoding on real prompts and on the cases that fall back", async function () {
    // Fixture strings already match Hugging Face through encode (above); here the full prompts the stages
    // tokenize (definition, two positive examples, instance), of train and test tasks, in both formats.
    const texts: string[] = [];
    for (const split of ["train", "test"] as const) {
      const tasks = (await loadSniSplit(split)).tasks;
      for (const [i, task] of tasks.entries()) {
        if (i % 3 !== 0) continue;
        for (const inst of task.instances.slice(0, 2)) for (const format of ["def", "def+2pos"] as const) texts.push(buildPrompt(task, inst, { format }).full);
      }
    }
    assert.ok(texts.length >= 800, `${texts.length} prompts`);
    // Cases the split must get right, and those where encodeWords falls back to the whole string.
    texts.push("a  b", "a \n b", "\n\nfoo  \n", " leading", "trailing  ", "tab\tin\t word", "ideographic\u3000space", "x \u3000y", "a \u2581b", "\u2581", "e \u0301e", "joiner \u200dx", "thumbs \u{1F44D}\u{1F3FD} up", "");
    const bad = texts.filter((t) => !sameIds(tok.encode(t), tok.encodeWhole(t)));
    assert.equal(bad.length, 0, `${bad.length} of ${texts.length} strings differ; first: ${JSON.stringify(bad[0]?.slice(0, 200))}`);
  });

  it("addEos: false drops exactly the trailing </s>", function () {
    mismatches(fx.cases.slice(0, 300), "ids without </s>", (c) => {
      const ids = tok.encode(c.text, { addEos: false });
      return sameIds(ids, c.ids.slice(0, -1)) ? null : `ours ${JSON.stringify(ids.slice(0, 40))}`;
    });
  });

  it("truncation to 32 equals Hugging Face's truncation=True, max_length=32", function () {
    const max = fx.meta.trunc_max_length;
    const trunc = fx.cases.filter((c) => c.trunc_ids !== undefined);
    mismatches(trunc, "truncated ids", (c) => {
      const ids = tok.encode(c.text, { maxLength: max, truncation: true });
      return sameIds(ids, c.trunc_ids ?? []) ? null : `ours ${JSON.stringify(ids)} hf ${JSON.stringify(c.trunc_ids)}`;
    });
    mismatches(trunc, "decode of truncated ids", (c) => {
      const d = tok.decode(tok.encode(c.text, { maxLength: max, truncation: true }));
      return d === c.trunc_decoded ? null : `ours ${JSON.stringify(d)} hf ${JSON.stringify(c.trunc_decoded)}`;
    });
  });

  it("decode equals Hugging Face's: skip_special_tokens true/false, clean_up_tokenization_spaces false/true", function () {
    mismatches(fx.cases, "decode", (c) => {
      const d = tok.decode(c.ids);
      return d === c.decoded ? null : `ours ${JSON.stringify(d)} hf ${JSON.stringify(c.decoded)}`;
    });
    mismatches(fx.cases, "decode keeping special tokens", (c) => {
      const d = tok.decode(c.ids, { skipSpecialTokens: false });
      return d === c.decoded_special ? null : `ours ${JSON.stringify(d)} hf ${JSON.stringify(c.decoded_special)}`;
    });
    mismatches(fx.cases, "decode with clean-up of spaces", (c) => {
      const d = tok.decode(c.ids, { cleanUpTokenizationSpaces: true });
      return d === c.decoded_clean ? null : `ours ${JSON.stringify(d)} hf ${JSON.stringify(c.decoded_clean)}`;
    });
    assert.equal(tok.decode([]), "");
  });

  it("too-long input without truncation: an error naming the length", function () {
    const text = "one two three four five six seven eight nine ten eleven twelve";
    const n = tok.encode(text).length;
    assert.ok(n > 8);
    assert.throws(() => tok.encode(text, { maxLength: 8 }), (e: Error) => e.message.includes(`${n} tokens`) && e.message.includes("maxLength 8"));
    assert.deepEqual(tok.encode(text, { maxLength: n }), tok.encode(text));
    const t = tok.encode(text, { maxLength: 8, truncation: true });
    assert.equal(t.length, 8);
    assert.equal(t[7], 1);
    assert.deepEqual(tok.encode(text, { maxLength: 8, truncation: true, addEos: false }), tok.encode(text, { addEos: false }).slice(0, 8));
  });

  it("encodeBatch and padBatch", function () {
    const texts = ["a short one", "", "a somewhat longer sentence with more tokens in it"];
    const ids = tok.encodeBatch(texts);
    assert.deepEqual(ids, texts.map((t) => tok.encode(t)));
    assert.deepEqual(ids[1], [1]);
    const { inputIds, attentionMask } = padBatch(ids);
    const L = Math.max(...ids.map((x) => x.length));
    ids.forEach((row, i) => {
      assert.equal(inputIds[i]?.length, L);
      assert.deepEqual(inputIds[i]?.slice(0, row.length), row);
      assert.ok(inputIds[i]?.slice(row.length).every((x) => x === 0));
      assert.deepEqual(attentionMask[i], [...new Array<number>(row.length).fill(1), ...new Array<number>(L - row.length).fill(0)]);
    });
    assert.deepEqual(padBatch([[7], [8, 9]], -1).inputIds, [[7, -1], [8, 9]]);
    assert.deepEqual(padBatch([]), { inputIds: [], attentionMask: [] });
  });

  it("bad input: missing file names the path and the shared data folder; out-of-range ids name the id", function () {
    const missing = join(projectRoot, "no", "such", "tokenizer.json");
    assert.throws(() => T5Tokenizer.fromFile(missing), (e: Error) => e.message.includes(missing) && e.message.includes("t5/ of the data folder, ../shared/data beside the project (the default; set TAGI_DATA_DIR to move it)"));
    assert.throws(() => tok.decode([5, 32100, 1]), (e: Error) => e.message.includes("32100") && e.message.includes("out of range"));
    assert.throws(() => tok.decode([-1]), (e: Error) => e.message.includes("-1"));
    assert.throws(() => tok.decode([1.5]), (e: Error) => e.message.includes("1.5"));
    assert.throws(() => tok.idToToken(40000), (e: Error) => e.message.includes("40000"));
  });
});
