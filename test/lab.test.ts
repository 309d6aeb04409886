/**
 * `npm run lab`, the README's notebook command: it starts a Jupyter server on notebooks/ that offers the
 * project's TypeScript kernel (the notebooks themselves are executed under that kernel by the notebook tests).
 * Skipped, saying so, where neither JupyterLab nor the classic Notebook is installed, except under CI=true
 * (scripts/setup.sh installs Debian's jupyter-notebook).
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";

const root = join(__dirname, "..");

describe("npm run lab", function () {
  this.timeout(90_000);
  before(function () {
    const r = spawnSync(process.execPath, [join(root, "scripts", "lab.mjs"), "--print-command"], { cwd: root, encoding: "utf8" });
    if (r.status === 0) return;
    if (["1", "true"].includes((process.env.CI ?? "").toLowerCase())) assert.fail(`CI: npm run lab cannot start: ${r.stderr}`);
    console.log(`      (no Jupyter server here: ${r.stderr.split("\n")[0]}; skipped)`);
    this.skip();
  });

  it("serves notebooks/ with the project's tslab kernel registered", async () => {
    const port = 20000 + (process.pid % 20000);
    const token = `tagi${process.pid}`;
    const child = spawn(process.execPath, [join(root, "scripts", "lab.mjs"), "--no-browser", `--port=${port}`, `--ServerApp.token=${token}`, `--NotebookApp.token=${token}`], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group: the server is stopped with it
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    try {
      let specs: { kernelspecs: Record<string, unknown> } | null = null;
      for (let i = 0; i < 60 && !specs; i++) {
        await new Promise((r) => setTimeout(r, 500));
        try {
          const res = await fetch(`http://127.0.0.1:${port}/api/kernelspecs?token=${token}`);
          if (res.ok) specs = (await res.json()) as { kernelspecs: Record<string, unknown> };
        } catch {
          /* not listening yet */
        }
      }
      assert.ok(specs, `no server on port ${port}:\n${output}`);
      assert.ok("tslab" in specs.kernelspecs, `kernels: ${Object.keys(specs.kernelspecs).join(", ")}`);
      const list = (await (await fetch(`http://127.0.0.1:${port}/api/contents?token=${token}`)).json()) as { content: { name: string }[] };
      assert.ok(list.content.some((f) => f.name === "04_finetune_distillation.ipynb"), "the server's root is notebooks/");
      assert.match(output, /starting (JupyterLab|Jupyter Notebook) on notebooks\//);
    } finally {
      process.kill(-child.pid!, "SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });
});
