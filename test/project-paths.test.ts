/** Provenance files hold project-relative paths (src/project-paths.ts), never this machine's absolute ones. */
import { strict as assert } from "node:assert";
import { projectRelative } from "../src/project-paths";

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
