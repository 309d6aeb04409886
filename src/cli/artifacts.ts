/** `tagi publish` and `tagi artifacts`: committing trained models once, and checking what is committed. */
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { artifactsIndex, publishArtifact, verifyArtifacts } from "../artifacts/publish";
import { PROJECT_DIR } from "../project-paths";

export function addArtifactCommands(program: Command): void {
  program
    .command("publish")
    .description("copy a finished stage's model (or teachers) into an artifact folder to commit: bf16 weights where frozen, artifact.json with sha256, command, commit and dev curve")
    .requiredOption("--run <dir>", "the stage's output folder (run.json, model/ or the teachers' manifest.json)")
    .requiredOption("--out <dir>", "the artifact folder, e.g. artifacts/small/base")
    .addOption(new Option("--dtype <dtype>", "how float32 weights are stored: bf16 for what later stages keep frozen, f32 for what they train further").choices(["bf16", "f32"]).makeOptionMandatory())
    .option(
      "--earlier <name=dir>",
      "an earlier run this one continued (its run.json and log.jsonl are kept under <name>/, e.g. span=runs/small/base-span); repeatable",
      (v: string, prev: { name: string; run: string }[]) => {
        const i = v.indexOf("=");
        if (i <= 0 || i === v.length - 1) throw new InvalidArgumentError(`expected name=dir, got '${v}'`);
        return [...prev, { name: v.slice(0, i), run: resolve(v.slice(i + 1)) }];
      },
      [] as { name: string; run: string }[],
    )
    .action((o: { run: string; out: string; dtype: "bf16" | "f32"; earlier: { name: string; run: string }[] }) => {
      const m = publishArtifact({ run: resolve(o.run), out: resolve(o.out), dtype: o.dtype, command: ["tagi", ...process.argv.slice(2)], ...(o.earlier.length ? { earlier: o.earlier } : {}) });
      const root = dirname(dirname(resolve(o.out))); // artifacts/<scale>/<name>
      writeFileSync(join(root, "README.md"), artifactsIndex(root));
      console.error(`[tagi] published ${m.artifact}: ${m.files.length} files, ${(m.bytes / 1e6).toFixed(1)} MB, ${(m.parameters / 1e6).toFixed(2)}M parameters as ${m.dtype}; ${join(root, "README.md")} updated`);
    });
  program
    .command("artifacts")
    .description("check every published artifact (artifacts/<scale>/<name>/artifact.json): each file's size and sha256, nothing missing or extra")
    .option("--root <dir>", "the artifacts folder", join(PROJECT_DIR, "artifacts"))
    .action((o: { root: string }) => {
      const r = verifyArtifacts(resolve(o.root));
      if (r.problems.length) throw new Error(`artifacts: ${r.problems.length} problem(s):\n  - ${r.problems.join("\n  - ")}`);
      console.log(`artifacts: ${r.artifacts} artifact(s), ${(r.bytes / 1e6).toFixed(1)} MB, every file matches its artifact.json`);
    });
}
