/**
 * The shared stages of a scale (`tagi prepare`, and what `npm run experiment` runs first): the base model,
 * meta-trained models, teachers, logit caches and stage-1 generator of configs/<scale>/experiments.json's
 * `prepare` list, each run as the project's CLI in a child process, rebuilt when its config changed, and
 * published artifacts checked (sha256, config) before anything trains.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { artifactsIndex, publishArtifact, verifyArtifact } from "../artifacts/publish";
import { configDifferences } from "../train/loop";
import { applySets } from "../train/config-sets";
import { parsePretrainBaseConfig } from "../train/base-model";
import { parseMetatrainConfig } from "../train/metatrain";
import { parseTeachersConfig } from "../train/teachers";
import { parseFinetuneConfig, parsePretrainHyperConfig } from "../tagi/train";
import type { PromptFormat } from "../text/prompts";
import { PROJECT_ROOT, type PrepareStage, type ScaleSettings } from "./spec";

/**
 * The command line of the same build as this module: dist/cli.js when the runner runs from dist/ (an installed
 * package, notebooks), src/cli.ts under tsx when it runs from the sources (a checkout's `npm run experiment`).
 */
export function cliCommand(): string[] {
  return __filename.endsWith(".ts") ? ["--import", "tsx", path.join(__dirname, "..", "cli.ts")] : [path.join(__dirname, "..", "cli.js")];
}

/**
 * Which of a stage's output lines the runner repeats on its console (all of them go to the stage's log file): the
 * progress (not a terminal: a line every logEvery steps, every ~10% of an evaluation), results, problems, and the
 * backend and matrix-product precision each stage runs in, so that a fallback (e.g. bf16 asked for on a CPU
 * without AVX512_BF16, trained in float32) is seen where the run is watched, not only in the stage log.
 */
export function isConsoleLine(line: string): boolean {
  return /step \d+\/|\d+\/\d+ instances|ROUGE-L|wrote|error|Error|warning|^\[tagi\] backend: |^\[tagi\] .*: matrix products in /.test(line);
}

/** Runs the project's CLI (cliCommand) with ARGS from the project root; its output goes to `logFile` and `log`. */
export function runCli(args: string[], logFile: string, log: (line: string) => void): Promise<number> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.createWriteStream(logFile);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliCommand(), ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let pending = "";
    const onData = (chunk: Buffer) => {
      out.write(chunk);
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const l of lines) if (isConsoleLine(l)) log(`  ${l}`);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) => {
      out.end();
      if (pending && /error|Error/.test(pending)) log(`  ${pending}`);
      resolve(code ?? 1);
    });
  });
}

/** Config overrides as the CLI's --set takes them: key=value, strings bare, the rest as JSON. */
export function setStrings(sets: Record<string, unknown>): string[] {
  return Object.entries(sets).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
}

export function gitCommit(): string | null {
  try {
    const head = fs.readFileSync(path.join(PROJECT_ROOT, ".git", "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    const loose = path.join(PROJECT_ROOT, ".git", ref);
    if (fs.existsSync(loose)) return fs.readFileSync(loose, "utf8").trim();
    const packed = fs.readFileSync(path.join(PROJECT_ROOT, ".git", "packed-refs"), "utf8");
    return packed.split("\n").find((l) => l.endsWith(` ${ref}`))?.split(" ")[0] ?? null;
  } catch {
    return null;
  }
}

/** The stage parsers of the prepare stages, for comparing a finished stage's config with the current one. */
export const STAGE_PARSERS: Record<string, (raw: Record<string, unknown>) => unknown> = {
  "pretrain-base": parsePretrainBaseConfig,
  metatrain: parseMetatrainConfig,
  teachers: parseTeachersConfig,
  "pretrain-hyper": parsePretrainHyperConfig,
  finetune: parseFinetuneConfig,
};

/**
 * How a finished prepare stage's config (its run.json) differs from the current config file's, parsed the same
 * way (defaults merged); [] when equal or when there is nothing to compare (no run.json, an unknown stage).
 */
export function preparedConfigChanges(p: PrepareStage, scale: string): string[] {
  const runFile = path.join(PROJECT_ROOT, p.publish?.to ?? p.out, "run.json");
  const parse = STAGE_PARSERS[p.command];
  if (!parse || !fs.existsSync(runFile)) return [];
  const recorded = (JSON.parse(fs.readFileSync(runFile, "utf8")) as { config?: unknown }).config;
  if (recorded === undefined) return [];
  const raw = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale, p.config), "utf8")) as Record<string, unknown>;
  const current = parse(applySets(raw, setStrings(p.set ?? {})));
  // train.precision is how a run computes, not what it is (TrainConfig.precision): not a change of config
  return configDifferences(recorded, JSON.parse(JSON.stringify(current)) as unknown)
    .filter((d) => !/(^|\.)train\.precision$/.test(d.key))
    .map((d) => `${d.key}: ${d.from} -> ${d.to}`);
}

/**
 * Runs the scale's prepare stages that are not done, in order (e.g. on a fresh clone at the tiny scale: the
 * base model, meta-trained teacher, LoRA teachers and stage-1 generator, about a minute). A done stage whose config has changed since (the design
 * moved, e.g. where teachers sit) is rebuilt, and so is every stage after it (they read its outputs); the
 * log says why. `formats`: only the stages of these prompt formats (and the shared ones); `logitCaches`: only
 * the logit caches of these formats (null or absent: every cache of `formats`).
 */
export async function ensurePrepared(
  scale: ScaleSettings,
  log: (line: string) => void = (l) => console.log(l),
  opts: { through?: string; formats?: readonly PromptFormat[] | null; logitCaches?: readonly PromptFormat[] | null } = {},
): Promise<void> {
  const through = opts.through === undefined ? null : path.normalize(opts.through);
  if (through !== null && !scale.prepare.some((p) => [p.out, p.publish?.to].includes(through))) {
    throw new Error(`prepare --through ${opts.through}: no stage of the ${scale.scale} scale writes it (${scale.prepare.map((p) => p.publish?.to ?? p.out).join(", ")})`);
  }
  // A published artifact is committed and costly to retrain: one that no longer matches its config (or what it
  // was made from) is refused, before anything trains, never replaced behind the user's back.
  const refusePublished = (p: PrepareStage, why: string[]) =>
    new Error(
      `${p.publish!.to} (a published artifact) was made with another config than configs/${scale.scale}/${p.config} gives now (${why.slice(0, 6).join("; ")}${why.length > 6 ? "; ..." : ""}); ` +
        `restore the config, or delete ${p.publish!.to} and rerun to train and publish it again`,
    );
  const isDone = (p: PrepareStage) => fs.existsSync(path.join(PROJECT_ROOT, p.done));
  for (const p of scale.prepare) {
    if (!p.publish || !isDone(p)) continue;
    // every file as published (sha256): a damaged or half-fetched artifact is an error naming the file
    const damaged = verifyArtifact(path.join(PROJECT_ROOT, p.publish.to)).problems;
    if (damaged.length) throw new Error(`the published artifact ${p.publish.to} does not match its artifact.json:\n  - ${damaged.join("\n  - ")}\nrestore it (git checkout -- ${p.publish.to}) or delete it to train it again`);
    const changes = preparedConfigChanges(p, scale.scale);
    if (changes.length) throw refusePublished(p, changes);
  }
  // Which stage reads which: a stage reads another when its config (or its --set values) names the other's
  // output folder or artifact.
  const readsFrom = (j: PrepareStage, i: PrepareStage) => {
    const text = fs.readFileSync(path.join(PROJECT_ROOT, "configs", scale.scale, j.config), "utf8") + JSON.stringify(j.set ?? {});
    // the folder as a whole path ("runs/small/base" must not match "runs/small/base-span")
    const names = (folder: string) => new RegExp(`${folder.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=["/\\s,}]|$)`).test(text);
    return names(i.out) || (i.publish !== undefined && names(i.publish.to));
  };
  const rebuilt: PrepareStage[] = [];
  for (const [index, p] of scale.prepare.entries()) {
    const done = isDone(p);
    // A stage of one prompt format (its meta-trained model, its logit cache) waits until a run needs that format.
    const stageFormat = p.set?.["format"];
    if (opts.formats && typeof stageFormat === "string" && !opts.formats.includes(stageFormat as PromptFormat)) {
      if (!done) log(`[experiment] ${p.publish?.to ?? p.out}: not prepared now (a ${stageFormat} stage; this run evaluates ${opts.formats.join(", ")})`);
      continue;
    }
    // A logit cache (a teacher-logits stage) waits until a run reads it: one with L_kl off never does.
    if (opts.logitCaches && p.command === "teacher-logits" && typeof stageFormat === "string" && !opts.logitCaches.includes(stageFormat as PromptFormat)) {
      if (!done) log(`[experiment] ${p.out}: not prepared now (no training here reads the ${stageFormat} logit cache: L_kl off, or no logit teacher)`);
      continue;
    }
    // An unpublished intermediate (the span-corruption phase the published base continued) is needed only to
    // build what reads it: when every later stage that reads it is done and unchanged, it is not rebuilt
    // (a fresh checkout with the artifacts committed lacks it, and needs nothing from it).
    const readers = scale.prepare.slice(index + 1).filter((j) => readsFrom(j, p));
    if (!done && !p.publish && readers.length > 0 && readers.every((j) => isDone(j) && preparedConfigChanges(j, scale.scale).length === 0 && !rebuilt.some((r) => readsFrom(j, r)))) {
      log(`[experiment] ${p.out}: not here, and not needed (${readers.map((j) => j.publish?.to ?? j.out).join(", ")} ${readers.length > 1 ? "are" : "is"} done from it)`);
      continue;
    }
    const stale = rebuilt.filter((r) => readsFrom(p, r)).map((r) => `${r.out} was rebuilt`);
    const changes = !done ? [] : stale.length ? stale : preparedConfigChanges(p, scale.scale);
    if (changes.length && p.publish) throw refusePublished(p, changes);
    if (changes.length) {
      log(`[experiment] ${p.out} was made with another config (${changes.slice(0, 6).join("; ")}${changes.length > 6 ? "; ..." : ""}): rebuilding it`);
      fs.rmSync(path.join(PROJECT_ROOT, p.out), { recursive: true, force: true });
    }
    if (!done || changes.length) {
      rebuilt.push(p); // stages that read this one's outputs are rebuilt too
      const logFile = path.join(PROJECT_ROOT, p.out + ".log");
      const resumable = p.command !== "teacher-logits"; // a cache is built whole (it takes no --resume)
      const args = [p.command, "--config", path.join("configs", scale.scale, p.config), "--out", p.out, ...(resumable ? ["--resume"] : []), ...setStrings(p.set ?? {}).flatMap((x) => ["--set", x])];
      log(`[experiment] preparing the ${scale.scale} scale: tagi ${args.join(" ")} (log: ${path.relative(PROJECT_ROOT, logFile)})`);
      const code = await runCli(args, logFile, log);
      if (code !== 0) throw new Error(`preparing the ${scale.scale} scale: 'tagi ${args.join(" ")}' failed (exit ${code}); see ${path.relative(PROJECT_ROOT, logFile)}`);
      if (p.publish) {
        const earlier = Object.entries(p.publish.earlier ?? {}).map(([name, run]) => ({ name, run: path.join(PROJECT_ROOT, run) }));
        const m = publishArtifact({ run: path.join(PROJECT_ROOT, p.out), out: path.join(PROJECT_ROOT, p.publish.to), dtype: p.publish.dtype, command: ["tagi", "prepare", "--scale", scale.scale], earlier });
        const root = path.dirname(path.dirname(path.join(PROJECT_ROOT, p.publish.to))); // artifacts/<scale>/<name>
        fs.writeFileSync(path.join(root, "README.md"), artifactsIndex(root));
        log(`[experiment] published ${m.artifact} (${(m.bytes / 1e6).toFixed(1)} MB, ${m.dtype}): commit it; later stages read it`);
      }
    }
    if (through !== null && [p.out, p.publish?.to].includes(through)) return;
  }
}
