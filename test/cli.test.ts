/** The command line's front door: --version, an example under every command's --help, --print-config. */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildProgram, COMMAND_EXAMPLES } from "../src/cli";
import { fmtSeconds } from "../src/cli/args";

const root = join(__dirname, "..");
const cli = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: root, encoding: "utf8" });

describe("the tagi command line", function () {
  this.timeout(60_000);

  it("--version names the package and tfjs versions", () => {
    const r = cli("--version");
    assert.equal(r.status, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
    assert.equal(r.stdout.trim(), `tagi ${pkg.version} (@tensorflow/tfjs 4.22.0)`);
  });

  it("every command has examples in its --help, and each example uses only that command's options", () => {
    const program = buildProgram();
    const names = program.commands.map((c) => c.name()).sort();
    assert.deepEqual(Object.keys(COMMAND_EXAMPLES).sort(), names, "one entry per command");
    for (const c of program.commands) {
      const known = new Set(c.options.map((o) => o.long).filter((x): x is string => !!x));
      for (const line of COMMAND_EXAMPLES[c.name()]!) {
        const words = line.split("#")[0]!.trim().split(/\s+/);
        // `npm run tagi -- NAME ...`, `npm run experiment -- NAME ...` (the experiment command), `npm run results`
        const start = words.indexOf("--");
        if (start >= 0 && words[1] === "tagi") assert.equal(words[start + 1], c.name(), line);
        for (const w of words.filter((x) => /^--[a-z]/.test(x))) assert.ok(known.has(w), `${c.name()}: '${w}' in the example "${line}" is not an option`);
      }
    }
    const help = cli("finetune", "--help");
    assert.match(help.stdout, /Examples:\n {2}\$ npm run tagi -- finetune --config configs\/tiny\/finetune\.json --out runs\/tiny\/finetune/);
  });

  it("generate names the TAGI checkpoint --tagi, as evaluate and adapters do (--checkpoint still read, hidden)", () => {
    const r = cli("generate", "--instruction", "Translate.", "--out", "x", "--backend", "cpu");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /generate: give --tagi DIR/);
    const help = cli("generate", "--help").stdout;
    assert.match(help, /--tagi <dir>/);
    assert.doesNotMatch(help, /--checkpoint/);
    assert.match(cli("generate", "--checkpoint", "no-such-dir", "--instruction", "x", "--out", "y", "--backend", "cpu").stderr, /no-such-dir/);
  });

  it("demo --instances-per-task takes a positive number or 'all'; --rows names an unknown row before anything runs", () => {
    assert.match(cli("demo", "--scale", "small", "--instances-per-task", "0").stderr, /expected a positive integer or 'all', got '0'/);
    const r = cli("demo", "--scale", "small", "--instances-per-task", "all", "--rows", "hint");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /demo --rows: hint is not a row of configs\/small\/demo\.json/);
  });

  it("--print-config prints the merged, checked config and runs nothing; a bad --set is an error", () => {
    const r = cli("finetune", "--config", "configs/tiny/finetune.json", "--set", "losses.ins=0.5", "--print-config");
    assert.equal(r.status, 0, r.stderr);
    const c = JSON.parse(r.stdout) as { losses: { ins: number; kl: number }; train: { steps: number; optimizer: { kind: string } }; dev: { every: number } };
    assert.equal(c.losses.ins, 0.5);
    assert.equal(c.losses.kl, 1);
    assert.equal(c.dev.every, 10);
    assert.ok(c.train.optimizer.kind === "adamw" && c.train.steps === 20, "defaults merged");
    assert.doesNotMatch(r.stderr, /backend/, "no backend was started");
    const bad = cli("metatrain", "--config", "configs/tiny/metatrain.json", "--set", "train.steps=0", "--print-config");
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /train\.steps must be an integer >= 1, got 0/);
    const noOut = cli("metatrain", "--config", "configs/tiny/metatrain.json");
    assert.equal(noOut.status, 1);
    assert.match(noOut.stderr, /metatrain: required option '--out <dir>' not specified/);
  });

  it("durations: seconds below a minute, whole minutes and seconds above (rounded once: never 1m60s)", () => {
    assert.deepEqual([12.34, 59.94, 60, 119.6, 3599.7, NaN].map(fmtSeconds), ["12.3s", "59.9s", "1m0s", "2m0s", "60m0s", "?"]);
  });
});
