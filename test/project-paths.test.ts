/** Provenance files hold project-relative paths (src/project-paths.ts), never this machine's absolute ones. */
import { strict as assert } from "node:assert";
import { projectRelative } from "../src/project-paths";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

describe("project-relative provenance paths", () => {
  it("rewrites the project root and the data folder beside it, in every string of a JSON value; leaves other paths", () => {
    const root = "/home/u/proj/main";
    const v = {
      cwd: root,
      argv: ["/usr/bin/node", `${root}/src/cli.ts`, "--model", `${root}/runs/tiny/base/model`],
      tokenizer: "/home/u/proj/shared/data/t5/tokenizer.json",
      data: "/home/u/proj/shared",
      note: `loaded ${root}/native/build/Release/tagi_gemm.node`,
      other: ["/tmp/x", `${root}-old/y`, 3, null, true],
    };
    assert.deepEqual(projectRelative(v, root), {
      cwd: ".",
      argv: ["/usr/bin/node", "src/cli.ts", "--model", "runs/tiny/base/model"],
      tokenizer: "../shared/data/t5/tokenizer.json",
      data: "../shared",
      note: "loaded native/build/Release/tagi_gemm.node",
      other: ["/tmp/x", `${root}-old/y`, 3, null, true],
    });
  });
});

describe("the data folder: TAGI_DATA_DIR moves every default", function () {
  this.timeout(60_000);
  const run = (env: Record<string, string>, code: string) =>
    spawnSync(process.execPath, ["--import", "tsx", "-e", code], { cwd: join(__dirname, ".."), encoding: "utf8", env: { ...process.env, ...env } });
  const show = `const s = require("./src/data/sni"); const t = require("./src/text/tokenizer"); const p = require("./src/data/p3");
    console.log(JSON.stringify([s.DEFAULT_DATA_DIR, t.DEFAULT_T5_TOKENIZER_PATH, p.P3_DEFAULT_DIR]));`;

  it("SNI, P3 and the tokenizer all follow it, and the data read through it is the same", () => {
    const moved = mkdtempSync(join(tmpdir(), "tagi-data-"));
    const link = join(moved, "data");
    symlinkSync(resolve(__dirname, "..", "..", "shared", "data"), link);
    const r = run({ TAGI_DATA_DIR: link }, show);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), [link, join(link, "t5", "tokenizer.json"), join(link, "p3")]);
    const count = run({ TAGI_DATA_DIR: link }, `require("./src/data/sni").loadSniSplit("test", undefined, { warn: false }).then((r) => console.log(r.tasks.length))`);
    assert.equal(count.stdout.trim(), "103"); // the SNI-103 test tasks
    rmSync(moved, { recursive: true });
  });

  it("a wrong TAGI_DATA_DIR is named in the error", () => {
    const r = run({ TAGI_DATA_DIR: "/nonexistent/tagi-data" }, `require("./src/data/sni").loadSniSplit("test").catch((e) => { console.log(e.message); })`);
    assert.match(r.stdout, /SNI data file not found: \/nonexistent\/tagi-data\/sni\/sni_test\.jsonl\.gz\. The data folder is TAGI_DATA_DIR=\/nonexistent\/tagi-data/);
    const t = run({ TAGI_DATA_DIR: "/nonexistent/tagi-data" }, `try { require("./src/text/tokenizer").T5Tokenizer.fromFile(); } catch (e) { console.log(e.message); }`);
    assert.match(t.stdout, /tokenizer file not found: \/nonexistent\/tagi-data\/t5\/tokenizer\.json\. .*TAGI_DATA_DIR=\/nonexistent\/tagi-data/);
  });
});
