/**
 * The training commands' shared shape: `tagi <stage> --config FILE --out DIR [--resume] [--set k=v] ...`, one
 * process per output folder, `--print-config` for the merged config without a run.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Option, type Command } from "commander";
import { describeBackend, initBackend } from "../backend";
import type { StageOptions } from "../train/base-model";
import { STAGE_PARSERS } from "../experiments/runner";
import { withFolderLock } from "../train/folder-lock";
import { applySets } from "../train/config-sets";
import { intArg } from "./args";

interface TrainingOpts {
  config?: string;
  out?: string;
  printConfig?: boolean;
  resume?: boolean;
  set: string[];
  backend?: string;
  progress: boolean;
  stopAtStep?: number;
  allowChange: string[];
}

export function addTrainingCommand(
  program: Command,
  name: string,
  description: string,
  run: (raw: Record<string, unknown>, so: StageOptions) => Promise<void>,
): void {
  program
    .command(name)
    .description(description)
    .option("--config <file>", "JSON config (see configs/); omitted keys take the stage's defaults, unknown keys are errors")
    .option("--out <dir>", "output folder (model, log.jsonl, checkpoint/, run.json); required unless --print-config")
    .option("--print-config", "print the config this run would use (the file, --set overrides and the stage's defaults, checked) as JSON, and exit")
    .option("--resume", "continue the run in --out from its last checkpoint (same config required)")
    .option("--set <key=value>", "override a config value, e.g. --set train.steps=50 (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .addOption(new Option("--stop-at-step <n>", "stop with a checkpoint after step n (resume later with --resume)").argParser(intArg(1)))
    .option(
      "--allow-change <key>",
      "with --resume: accept this config key differing from the checkpoint's (train.schedule.lr, e.g. a lower rate after a non-finite loss; train.maxGradNorm, train.steps, ...); recorded in trainer_state.json (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--no-progress", "no progress bar or progress lines")
    .action(async (o: TrainingOpts) => {
      let raw: Record<string, unknown> = {};
      if (o.config) {
        if (!existsSync(o.config)) throw new Error(`${name}: config file not found: ${o.config}`);
        try {
          raw = JSON.parse(readFileSync(o.config, "utf8")) as Record<string, unknown>;
        } catch (e) {
          throw new Error(`${name}: cannot parse ${o.config} as JSON: ${(e as Error).message}`);
        }
        if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${name}: ${o.config} must hold a JSON object ({...}), got ${JSON.stringify(raw)}`);
      }
      raw = applySets(raw, o.set);
      if (o.printConfig) {
        // What the stage would run with: parsed (defaults merged, every check applied) without loading anything.
        console.log(JSON.stringify(STAGE_PARSERS[name]!(raw), null, 2));
        return;
      }
      if (!o.out) throw new Error(`${name}: required option '--out <dir>' not specified`);
      if (o.allowChange.length && !o.resume) throw new Error(`${name}: --allow-change applies to --resume only`);
      const backend = await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
      console.error(describeBackend(backend));
      const out = resolve(o.out);
      console.error(`[tagi] ${name}${o.config ? ` --config ${o.config}` : ""} -> ${out}${o.resume ? " (resume)" : ""}`);
      // One process per output folder: a second run into the same --out is refused, naming the first.
      await withFolderLock(out, { what: name }, () =>
        run(raw, {
          out,
          resume: o.resume ?? false,
          progress: o.progress ? "auto" : false,
          command: ["tagi", ...process.argv.slice(2)],
          stopAtStep: o.stopAtStep,
          allowChanges: o.allowChange,
        }),
      );
    });
}
