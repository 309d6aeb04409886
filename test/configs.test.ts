/**
 * Every committed stage config parses under its stage's strict parser (no unknown keys, valid values), and
 * TAGI's stage-1 a|b|c split covers its segment exactly.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { parsePretrainBaseConfig } from "../src/train/base-model";
import { parseMetatrainConfig } from "../src/train/metatrain";
import { parseTeachersConfig } from "../src/train/teachers";
import { parseFinetuneConfig, parsePretrainHyperConfig, splitSegment } from "../src/tagi/train";
import { mulberry32 } from "../src/data/sni";
import { loadScale, parseScaleSettings, tokenBudgetProblems } from "../src/experiments/runner";
import { demoSettingsWith, loadDemoSettings, parseDemoSettings } from "../src/experiments/demo";
import { parseSlurmProfile } from "../src/experiments/slurm";

const CONFIGS = path.join(__dirname, "..", "configs");
const parsers: [RegExp, (raw: Record<string, unknown>) => unknown][] = [
  [/^pretrain-base/, parsePretrainBaseConfig],
  [/^metatrain/, parseMetatrainConfig],
  [/^teachers/, parseTeachersConfig],
  [/^pretrain-hyper/, parsePretrainHyperConfig],
  [/^finetune/, parseFinetuneConfig],
  [/^experiments\.json$/, (raw) => parseScaleSettings(raw, "test")],
  [/^demo\.json$/, (raw) => parseDemoSettings(raw)],
];

describe("committed configs", () => {
  for (const scale of fs.readdirSync(CONFIGS)) {
    for (const file of fs.readdirSync(path.join(CONFIGS, scale))) {
      it(`configs/${scale}/${file} parses`, () => {
        // configs/slurm/ holds the Slurm executor's resource profiles, not a scale
        const parse = scale === "slurm" ? (raw: Record<string, unknown>) => parseSlurmProfile(raw, file) : parsers.find(([re]) => re.test(file))?.[1];
        assert.ok(parse, `no stage parser for ${file}`);
        parse(JSON.parse(fs.readFileSync(path.join(CONFIGS, scale, file), "utf8")) as Record<string, unknown>);
      });
    }
  }

  it("scale settings: unknown keys and bad values are listed together", () => {
    const raw = JSON.parse(fs.readFileSync(path.join(CONFIGS, "tiny", "experiments.json"), "utf8")) as Record<string, unknown>;
    assert.throws(
      () => parseScaleSettings({ ...raw, stepz: 3, seeds: [], eval: { ...(raw["eval"] as object), batchSize: 0 } }, "tiny"),
      (e: Error) => /unknown key 'stepz'/.test(e.message) && /seeds must be/.test(e.message) && /eval\.batchSize must be/.test(e.message),
    );
  });

  it("equal token budgets: every full-prompt limit equals TAGI's instruction + instance limits, or the scale says why not", () => {
    for (const scale of ["tiny", "small"]) {
      const settings = loadScale(scale);
      assert.deepEqual(tokenBudgetProblems(settings, path.join(CONFIGS, scale)), [], scale);
    }
    const tiny = loadScale("tiny");
    const cut = { ...tiny, eval: { ...tiny.eval, maxInputTokens: { def: 128, "def+2pos": 384 } } };
    const p = tokenBudgetProblems(cut, path.join(CONFIGS, "tiny"));
    assert.deepEqual(p, ["eval.maxInputTokens.def is 128, TAGI reads 256 instruction + 128 instance = 384 tokens"]);
    const raw = JSON.parse(fs.readFileSync(path.join(CONFIGS, "tiny", "experiments.json"), "utf8")) as Record<string, any>;
    assert.throws(() => parseScaleSettings({ ...raw, eval: { ...raw["eval"], unequalBudgets: "" } }, "tiny"), /unequalBudgets must be a non-empty string/);
  });

  it("stage 1's a | b | c split: a 25-50% of the segment, c at least 2 tokens, together the whole segment", () => {
    const rand = mulberry32(3);
    for (let k = 0; k < 50; k++) {
      const seg = Array.from({ length: 64 }, (_, i) => 100 + i);
      const e = splitSegment(seg, rand, 1);
      const [a, b, c] = [e.instruction!.slice(0, -1), e.input.slice(0, -1), e.target.slice(0, -1)];
      assert.deepEqual([...a, ...b, ...c], seg);
      assert.ok(a.length >= 16 && a.length <= 32 && c.length >= 2 && b.length >= 1, `${a.length} ${b.length} ${c.length}`);
      assert.equal(e.instruction!.at(-1), 1);
    }
  });

  it("the demo's command-line changes: every instance (null), a subset of rows that always keeps TAGI, an unknown row named", () => {
    const small = loadDemoSettings("small");
    assert.equal(small.instancesPerTask, 3);
    const full = demoSettingsWith(small, { instancesPerTask: null, rows: ["tk-instruct"] });
    assert.equal(full.instancesPerTask, null);
    assert.deepEqual(full.rows.map((r) => r.name), ["tk-instruct", "tagi"]);
    assert.deepEqual(demoSettingsWith(small, {}), small);
    assert.throws(() => demoSettingsWith(small, { rows: ["tk-instruct", "hint"] }, "configs/small/demo.json"), /demo --rows: hint is not a row of configs\/small\/demo\.json \(rows: no-ft, tk-instruct, tagi\)/);
  });
});
