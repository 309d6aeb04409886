/** `tagi loss-grid`: λ1 (L_kl), λ2 (L_ins) and T chosen on the dev split (src/experiments/loss-grid.ts). */
import { Option, type Command } from "commander";
import type { PromptFormat } from "../text/prompts";
import { defaultScale } from "../experiments/runner";
import { runLossGrid } from "../experiments/loss-grid";
import { intArg, numberListArg } from "./args";

export function addLossGridCommand(program: Command): void {
  program
    .command("loss-grid")
    .description("train the tagi experiment's stage 2 once per setting of λ1 (kl), λ2 (ins) and T (the config's own weights always among them), score each on the dev split and compare it with the config's weights paired over dev instances; writes results/loss-grid/<scale>/<format>/{grid.json, README.md}. Finished settings are read back; a stopped one resumes")
    .option("--scale <scale>", "configs/<scale>/ (default $TAGI_SCALE, else tiny)")
    .addOption(new Option("--format <format>", "prompt format of the runs (their logit teacher and cache follow it)").choices(["def", "def+2pos"]).default("def+2pos"))
    .option("--kl <list>", "λ1 values (weight of L_kl)", numberListArg, [0, 0.5, 1, 2])
    .option("--ins <list>", "λ2 values (weight of L_ins)", numberListArg, [1])
    .option("--temperature <list>", "distillation temperatures T (one other than the logit cache's builds its own cache first)", numberListArg, [2])
    .option("--seed <n>", "training seed of every setting", intArg(0), 0)
    .option("--steps <n>", "training steps of every setting (default: the stage config's)", intArg(1))
    .option("--parallel <n>", "settings at a time, each with cores/n threads", intArg(1), 1)
    .option("--dev-instances-per-task <n>", "dev-split instances of each dev task to score", intArg(1), 32)
    .action(async (o: { scale?: string; format: PromptFormat; kl: number[]; ins: number[]; temperature: number[]; seed: number; steps?: number; parallel: number; devInstancesPerTask: number }) => {
      await runLossGrid({
        scale: o.scale ?? defaultScale(),
        format: o.format,
        kl: o.kl,
        ins: o.ins,
        temperature: o.temperature,
        seed: o.seed,
        steps: o.steps ?? null,
        parallel: o.parallel,
        devInstancesPerTask: o.devInstancesPerTask,
        command: `npm run tagi -- ${process.argv.slice(2).join(" ")}`,
      });
    });
}
