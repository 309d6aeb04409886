/**
 * The package as others install it: `npm pack` (package.json's `files`), then `npm install` of the tarball into
 * an empty project (from the registry, preferring the npm cache that installing this project filled), with no overrides and
 * no danfojs-node (an optional peer). The installed package is imported by name and by its `exports`
 * subpaths, runs a forward pass of a random tiny T5 and the SNI ROUGE-L, and its `tagi` command answers.
 * Needs dist/ (npm test builds it first).
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PROJECT_DIR } from "../src/project-paths";

function run(cmd: string, args: string[], cwd: string, timeout = 300_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe("the packed package, installed into an empty project", function () {
  this.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-package-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("packs only what a user needs, installs without overrides or danfojs, imports, runs a forward pass and the CLI", function () {
    if (!fs.existsSync(path.join(PROJECT_DIR, "dist", "index.js"))) this.skip(); // `npm test` builds dist/ first
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", tmp], PROJECT_DIR)) as { filename: string; size: number; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ["dist/index.js", "dist/cli.js", "package.json", "README.md", "configs/tiny/experiments.json", "experiments/tagi.json"]) assert.ok(files.includes(f), `the tarball lacks ${f}`);
    const stray = files.filter((f) => /^(test|results|notebooks|src|native|bench|runs|artifacts|reference|scratch)\//.test(f));
    assert.deepEqual(stray, [], "the tarball carries files a user does not need");
    assert.ok(packed[0]!.size < 3e6, `tarball ${packed[0]!.size} bytes`);

    const consumer = path.join(tmp, "consumer");
    fs.mkdirSync(consumer);
    fs.writeFileSync(path.join(consumer, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
    run("npm", ["install", "--prefer-offline", "--no-package-lock", path.join(tmp, packed[0]!.filename)], consumer);
    assert.ok(!fs.existsSync(path.join(consumer, "node_modules", "danfojs-node")), "danfojs-node is an optional peer, not installed");
    assert.ok(!fs.existsSync(path.join(consumer, "node_modules", "@tensorflow", "tfjs-node")), "no tfjs-node pulled in");

    const script = `
      const tagi = require("tagi");
      const { evaluateSni } = require("tagi/eval/sni-eval");
      const { csvString } = require("tagi/eval/tables");
      (async () => {
        await tagi.initBackend({ backend: "cpu", log: false });
        const m = tagi.randomTinyT5(0);
        const tf = tagi.tf;
        const ids = tf.tensor2d([[5, 6, 7, 1]], undefined, "int32");
        const logits = tagi.forward(m, { inputIds: ids, decoderInputIds: tf.tensor2d([[0, 5]], undefined, "int32") });
        const r = tagi.scoreInstance("the cat sat", ["the cat sat down"], { task: "t", category: "c" });
        console.log(JSON.stringify({ shape: logits.shape, finite: logits.dataSync().every(Number.isFinite), rougeL: r.rougeL, csv: csvString(["a"], [["x,y"]]), evaluateSni: typeof evaluateSni }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const out = JSON.parse(run(process.execPath, ["-e", script], consumer).trim().split("\n").at(-1)!) as { shape: number[]; finite: boolean; rougeL: number; csv: string; evaluateSni: string };
    assert.deepEqual(out.shape, [1, 2, 32128]);
    assert.ok(out.finite);
    assert.ok(Math.abs(out.rougeL - (2 * 0.75 * 1) / 1.75) < 1e-6, `ROUGE-L ${out.rougeL}`); // P 3/3, R 3/4
    assert.equal(out.evaluateSni, "function");
    assert.equal(out.csv, 'a\n"x,y"\n');
    // deep paths outside `exports` are closed
    const deep = spawnSync(process.execPath, ["-e", 'require("tagi/dist/train/loop")'], { cwd: consumer, encoding: "utf8" });
    assert.notEqual(deep.status, 0);
    assert.match(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
    assert.match(run(path.join(consumer, "node_modules", ".bin", "tagi"), ["--version"], consumer), /^tagi \d+\.\d+\.\d+ \(@tensorflow\/tfjs 4\.22\.0\)/);
  });
});
