#!/usr/bin/env node
/**
 * `tagi`: the project's command line. `tagi --help`, `tagi evaluate --help`. The commands live in src/cli/
 * (evaluate.ts, training.ts, artifacts.ts, examples.ts); this file assembles them and is the `bin` entry.
 *
 *   tagi evaluate --random-tiny --benchmark sni --max-instances-per-task 5
 *   tagi evaluate --model /path/to/t5-base-lm-adapt --benchmark sni --format def+2pos --out results/eval/tk-base
 *
 * From a checkout: `npm run tagi -- evaluate ...` (runs src/cli.ts under tsx) or, after `npm run build`,
 * `node dist/cli.js evaluate ...`.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { describeBackend, initBackend } from "./backend";
import { parsePretrainBaseConfig, pretrainBase } from "./train/base-model";
import { metatrain, parseMetatrainConfig } from "./train/metatrain";
import { parseTeachersConfig, trainTeachers } from "./train/teachers";
import { trainingReport } from "./experiments/training-report";
import { loadTagiParams, readTagiConfig } from "./tagi/model";
import { defaultScale, ensurePrepared, listExperiments, loadExperiment, loadScale, parseEvaluationParts, runExperiment } from "./experiments/runner";
import { writeResultsReport } from "./experiments/results-report";
import { environmentReport } from "./environment";
import { demoSettingsWith, loadDemoSettings, runDemo } from "./experiments/demo";
import { runGridLocal } from "./experiments/grid";
import { arrayTaskCell, formatStatus, gridStatus, loadSlurmProfile, submitGrid } from "./experiments/slurm";
import { adapterSimilarity, formatPrecondition, similarityPrecondition, generationVersusTeacherTime, taskInstruction, INSTRUCTION_PROBES } from "./tagi/probes";
import { finetuneTagi, parseFinetuneConfig, parsePretrainHyperConfig, pretrainHyper, disposeTagi } from "./tagi/train";
import { writeGeneratedAdapter } from "./tagi/generate-adapter";
import { loadBaseModel } from "./train/seq2seq";
import { groupByCategory, loadSniSplit } from "./data/sni";
import { writeJsonAtomic } from "./train/checkpoint";
import { readUtf8File } from "./data/utf8";
import { T5Tokenizer } from "./text/tokenizer";
import { intArg, parseFormatList } from "./cli/args";
import type { PromptFormat } from "./text/prompts";
import { evaluateCommand, type EvaluateOpts } from "./cli/evaluate";
import { addTrainingCommand } from "./cli/training";
import { addArtifactCommands } from "./cli/artifacts";
import { addLossGridCommand } from "./cli/loss-grid";
import { COMMAND_EXAMPLES } from "./cli/examples";
import { applySets } from "./train/config-sets";
import { withFolderLock } from "./train/folder-lock";
import { buildTeacherLogits } from "./tagi/teacher-logits-stage";
export { applySets } from "./train/config-sets";
export { COMMAND_EXAMPLES } from "./cli/examples";

const PACKAGE_VERSION = (JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8")) as { version: string }).version;
const TFJS_VERSION = (JSON.parse(readFileSync(require.resolve("@tensorflow/tfjs-core/package.json"), "utf8")) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("tagi")
    .version(`tagi ${PACKAGE_VERSION} (@tensorflow/tfjs ${TFJS_VERSION})`, "-V, --version", "print the version")
    .description("TAGI in TypeScript: training stages and evaluation from the command line")
    .showHelpAfterError("(add --help for usage)");

  program
    .command("evaluate")
    .alias("eval")
    .description("evaluate a T5 checkpoint (or an untrained tiny T5) on a benchmark and write tables and a summary")
    .addOption(new Option("--model <dir>", "Hugging Face T5 checkpoint folder (config.json + model.safetensors)").conflicts("randomTiny"))
    .addOption(new Option("--random-tiny", "an untrained tiny T5 with the real vocabulary (smoke tests)").conflicts("model"))
    .option("--adapter <dir>", "a PEFT LoRA adapter folder applied to the model (e.g. a LoRA metatrain run's adapter/)")
    .option("--mean-adapter <teachers>", "the mean-adapter baseline: merge the mean update of all LoRA teachers in this folder (manifest.json) into the model they were trained on (their base; --model must be it if given), reading what they read (--input overrides)")
    .addOption(
      new Option("--instructions <probe>", "TAGI: each task's own instruction, another test task's (a derangement), or its own words shuffled").choices([...INSTRUCTION_PROBES]).default("own"),
    )
    .option("--tagi <dir>", "a TAGI checkpoint (tagi_config.json + tagi.safetensors): instances only, the instruction through the generated adapter and fusion")
    .option("--seed <n>", "seed for --random-tiny's parameters and the instance sample (SNI instances per task; P3 rows per template)", intArg(0), 0)
    .addOption(new Option("--benchmark <name>", "benchmark").choices(["sni", "p3"]).makeOptionMandatory())
    .addOption(new Option("--format <format>", "SNI prompt format").choices(["def", "def+2pos"]).default("def+2pos"))
    .addOption(new Option("--input <part>", "what the model reads: the full prompt or the instance part only").choices(["full", "instance"]).default("full"))
    .option("--max-input-tokens <n>", "source length limit, </s> included (P3: evaluateP3's default unless given)", intArg(1), 1024)
    .option("--max-new-tokens <n>", "generation length limit", intArg(0), 128)
    .option("--batch-size <n>", "SNI: instances per decoding batch; P3: (example, choice) pairs per pass (evaluateP3's default unless given)", intArg(1), 8)
    .addOption(
      new Option("--decoding <mode>", "SNI: continuous (a finished row's place in the batch is refilled) or batched (fixed batches, each until its last row finishes)")
        .choices(["continuous", "batched"])
        .default("continuous"),
    )
    .option("--max-instances-per-task <n>", "evaluate a seeded sample of at most n instances per task", intArg(1))
    .addOption(
      new Option(
        "--split <split>",
        "SNI: the 103 test tasks; the dev split (the 5% of train tasks every stage holds out, stratified by category, seed 0) for choices made before testing; or seen: the training tasks themselves (the dev split left out)",
      )
        .choices(["test", "dev", "seen"])
        .default("test"),
    )
    .option("--exclude-train-sample <n>", "--split seen: leave out each task's training sample of n instances (seed 0), keeping only instances training never read (where tasks have more than n)", intArg(1))
    .option("--tasks <names>", "comma-separated task names of the split (default: all)", (v: string) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    )
    .option("--max-examples-per-template <n>", "P3: at most n examples per template", intArg(1))
    .option("--data-dir <dir>", "data folder holding sni/ and p3/ (default: $TAGI_DATA_DIR, else ../shared/data)")
    .option("--tokenizer <file>", "tokenizer.json (default: <model>/tokenizer.json if present, else t5/tokenizer.json in the data folder)")
    .option("--out <dir>", "output folder (default results/eval/<benchmark>-<timestamp>/)")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .option("--no-progress", "no progress bar")
    .option("--cross-format", "evaluate a model trained on one prompt format (its run.json says which) on the other; refused without it")
    .action(async (opts: EvaluateOpts, cmd: Command) =>
      evaluateCommand(
        {
          ...opts,
          maxInputTokensGiven: cmd.getOptionValueSource("maxInputTokens") === "cli",
          batchSizeGiven: cmd.getOptionValueSource("batchSize") === "cli",
          inputGiven: cmd.getOptionValueSource("input") === "cli",
        },
        cmd,
      ),
    );
  addTrainingCommand(program, "pretrain-base", "stage 0: pretrain a T5 base model from scratch on SNI train-task text (span corruption / prefix LM)", async (raw, so) => {
    const r = await pretrainBase(parsePretrainBaseConfig(raw), so);
    console.error(`[tagi] base model: ${r.model}`);
  });
  addTrainingCommand(program, "metatrain", "meta-train (Tk-Instruct style) a base model on SNI train tasks with the instruction in every input (full or LoRA)", async (raw, so) => {
    const r = await metatrain(parseMetatrainConfig(raw), so);
    console.error(`[tagi] meta-trained ${r.model.endsWith("adapter") ? "adapter" : "model"}: ${r.model}`);
  });
  addTrainingCommand(program, "teachers", "train the parameter teachers: one LoRA per task category (or task) on the meta-trained model", async (raw, so) => {
    const r = await trainTeachers(parseTeachersConfig(raw), {
      ...so,
      onTeacher: (e, i, n) => console.error(`[tagi] teacher ${i}/${n} ${e.group}: ${e.steps} steps, final loss ${e.finalLoss.toFixed(4)} (${e.seconds.toFixed(0)} s) -> ${e.adapter}`),
    });
    console.error(`[tagi] ${r.manifest.teachers.length} teachers: ${join(r.out, "manifest.json")}`);
  });
  addTrainingCommand(program, "pretrain-hyper", "TAGI stage 1: pretrain the adapter generator and fusion on a|b|c splits of SNI train-task text", async (raw, so) => {
    const r = await pretrainHyper(parsePretrainHyperConfig(raw), so);
    console.error(`[tagi] TAGI checkpoint: ${r.model}`);
  });
  addTrainingCommand(program, "finetune", "TAGI stage 2: finetune on SNI train tasks with L_ce + lambda1 L_kl + lambda2 L_ins (or a Hypter/HINT baseline by config)", async (raw, so) => {
    const r = await finetuneTagi(parseFinetuneConfig(raw), so);
    console.error(`[tagi] TAGI checkpoint: ${r.model}`);
  });
  program
    .command("teacher-logits")
    .description("run a stage-2 config's logit teacher once over its training examples and cache its top-k log-probabilities; finetunes read the cache through config teacherLogits instead of running the teacher")
    .requiredOption("--config <file>", "the finetune config whose teacher, examples and temperature to cache")
    .option("--set <key=value>", "override a config value, as for finetune (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .requiredOption("--out <dir>", "the cache folder (index.json + values.bin)")
    .option("--top-k <n>", "teacher tokens kept per target position (the rest kept as one remainder mass)", intArg(1), 64)
    .option("--batch-size <n>", "examples per teacher forward pass", intArg(1), 16)
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .action(async (o: { config: string; set: string[]; out: string; topK: number; batchSize: number; backend?: string }) => {
      const backend = await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
      console.error(describeBackend(backend));
      const raw = applySets(JSON.parse(readFileSync(o.config, "utf8")) as Record<string, unknown>, o.set);
      const out = resolve(o.out);
      await withFolderLock(out, { what: "teacher-logits" }, () =>
        buildTeacherLogits(parseFinetuneConfig(raw), { out, k: o.topK, batchSize: o.batchSize, command: ["tagi", ...process.argv.slice(2)] }),
      );
    });
  program
    .command("generate")
    .description(
      "write the LoRA adapter a trained generator produces for an instruction, as a PEFT adapter folder. Exact on its own only " +
        "for a model without instruction fusion and with a frozen base; otherwise the folder also holds tagi_fusion.safetensors " +
        "and/or base_trained.safetensors, which loadTagiExport applies (a warning says so)",
    )
    .option("--tagi <dir>", "TAGI checkpoint (tagi_config.json + tagi.safetensors), as evaluate and adapters name it")
    .addOption(new Option("--checkpoint <dir>", "the former name of --tagi").hideHelp())
    .addOption(new Option("--instruction <text>", "the task instruction").conflicts("instructionFile"))
    .option("--instruction-file <file>", "read the instruction from a file")
    .requiredOption("--out <dir>", "output folder (adapter_config.json + adapter_model.safetensors)")
    .option("--model <dir>", "base model folder (default: the one in tagi_config.json)")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "wasm", "cpu"]))
    .action(async (o: { tagi?: string; checkpoint?: string; instruction?: string; instructionFile?: string; out: string; model?: string; backend?: string }) => {
      const checkpoint = o.tagi ?? o.checkpoint;
      if (!checkpoint) throw new Error("generate: give --tagi DIR (the TAGI checkpoint)");
      await initBackend(o.backend ? { backend: o.backend, log: false } : { log: false });
      if (!o.instruction && !o.instructionFile) throw new Error("generate: give --instruction TEXT or --instruction-file FILE");
      const instruction = o.instruction ?? readUtf8File(o.instructionFile!); // invalid UTF-8: an error naming the byte offset
      const dir = resolve(checkpoint);
      const { base } = readTagiConfig(dir);
      const baseDir = o.model ? resolve(o.model) : base;
      const m = loadTagiParams(dir, loadBaseModel(baseDir));
      try {
        const r = writeGeneratedAdapter(m, T5Tokenizer.fromFile(), instruction, resolve(o.out), baseDir);
        console.error(`[tagi] generated ${r.modules} LoRA modules in ${(r.seconds * 1000).toFixed(0)} ms -> ${resolve(o.out)}`);
        for (const c of r.caveats) console.error(`[tagi] warning: ${c}; the PEFT adapter alone is not the TAGI model (see ${join(resolve(o.out), "README.md")}; loadTagiExport reads all of it)`);
      } finally {
        disposeTagi(m);
      }
    });
  program
    .command("experiment")
    .description("run named experiments (experiments/NAME.json) at a scale for one or more seeds; writes results/NAME/<scale>/seed-S/. `experiment status` lists the cells of the Slurm grids submitted at the scale")
    .argument("<names>", `experiment name, a comma list, or 'status' (${listExperiments().join(", ")})`)
    .option("--seed <n>", "training seed", intArg(0), 0)
    .option("--seeds <list>", "several seeds, e.g. 0,1,2 (instead of --seed)", (v: string) => v.split(",").map((x) => Number(x.trim())))
    .option("--scale <scale>", "configs/<scale>/experiments.json (default $TAGI_SCALE, else tiny)")
    .option("--force", "rerun even when the result exists")
    .option("--reevaluate [parts]", "redo the evaluations of a finished run with its trained model: all, or a comma list of sni, p3, adapters")
    .addOption(new Option("--executor <executor>", "local: one cell after another here; slurm: job arrays through sbatch (needs --profile)").choices(["local", "slurm"]).default("local"))
    .option("--profile <file>", "Slurm resources for --executor slurm (configs/slurm/cpu.json, configs/slurm/gpu.json)")
    .option("--parallel <n>", "local executor: cells at a time, each with cores/n threads (2 on 2 cores: ~1.4x the cells per hour)", intArg(1), 1)
    .option("--formats <list>", "only these prompt formats (def, def+2pos) of those each experiment evaluates, and only their shared stages; a later run with more formats completes the records", parseFormatList)
    .action(async (names: string, o: { seed: number; seeds?: number[]; scale?: string; force?: boolean; reevaluate?: string | true; executor: "local" | "slurm"; profile?: string; parallel: number; formats?: PromptFormat[] }) => {
      const scale = o.scale ?? defaultScale();
      if (names === "status") {
        console.log(formatStatus(gridStatus(scale)));
        return;
      }
      const list = names.split(",").map((x) => x.trim()).filter(Boolean);
      for (const n of list) loadExperiment(n); // an unknown name fails before anything runs or is submitted
      const seeds = o.seeds ?? [o.seed];
      if (o.executor === "slurm") {
        if (!o.profile) throw new Error("--executor slurm needs --profile FILE (its partition, CPUs, memory, time, gres, backend; see configs/slurm/)");
        if (o.force || o.reevaluate !== undefined) throw new Error("--executor slurm submits the cells without a record; --force and --reevaluate run here (--executor local)");
        if (o.formats) throw new Error("--formats runs here (--executor local); a Slurm grid evaluates every format of its scale");
        submitGrid({ scale, names: list, seeds, profile: loadSlurmProfile(o.profile) });
        return;
      }
      if (o.force || o.reevaluate !== undefined) {
        if (o.parallel !== 1) throw new Error("--parallel runs a grid's missing cells; --force and --reevaluate run one cell after another");
        const reevaluate = o.reevaluate === undefined ? false : parseEvaluationParts(o.reevaluate);
        for (const name of list) for (const seed of seeds) await runExperiment(name, { seed, scale, force: o.force ?? false, reevaluate, formats: o.formats ?? null });
        return;
      }
      const r = await runGridLocal({ scale, names: list, seeds, parallel: o.parallel, formats: o.formats ?? null });
      if (r.failed.length) throw new Error(`${r.failed.length} cell(s) failed:\n  - ${r.failed.map((f) => `${f.name} seed ${f.seed}: ${f.error.split("\n")[0]}`).join("\n  - ")}`);
    });
  program
    .command("experiment-cell", { hidden: true })
    .description("one cell of a submitted Slurm grid (the array task's line of --cells)")
    .requiredOption("--cells <file>", "the layer's cells file (layer-N.json in the grid's folder)")
    .requiredOption("--scale <scale>", "the grid's scale")
    .action(async (o: { cells: string; scale: string }) => {
      const cell = arrayTaskCell(o.cells);
      await runExperiment(cell.name, { seed: cell.seed, scale: o.scale });
    });
  program
    .command("prepare")
    .description("train the shared stages of a scale that are missing (configs/<scale>/experiments.json: base, teachers, meta-trained models, stage 1), publishing those marked so under artifacts/")
    .option("--scale <scale>", "configs/<scale>/experiments.json (default $TAGI_SCALE, else tiny)")
    .option("--through <folder>", "stop after the stage that writes this folder (its out or its artifact)")
    .action(async (o: { scale?: string; through?: string }) => {
      await ensurePrepared(loadScale(o.scale ?? defaultScale()), (l) => console.error(l), o.through !== undefined ? { through: o.through } : {});
    });
  program
    .command("demo")
    .description("the method in minutes from trained models: TAGI, Tk-Instruct and No FT on a seeded sample of the SNI test tasks with CIs, floors, paired differences and the ROUGE-L-vs-FLOPs figure (configs/<scale>/demo.json); writes results/demo/<scale>/")
    .option("--scale <scale>", "configs/<scale>/demo.json (default $TAGI_SCALE, else tiny)")
    // "all" stays a string here: commander turns a parser's null into "".
    .option("--instances-per-task <n>", "instances of each test task: a number, or 'all' (every instance: the full protocol's 10,210 per format)", (v: string): number | "all" => {
      if (v === "all") return v;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer or 'all', got '${v}'`);
      return n;
    })
    .option("--rows <names>", "only these rows of demo.json, e.g. tk-instruct,tagi (TAGI is always one)", (v: string) => v.split(",").map((x) => x.trim()).filter(Boolean))
    .option("--out <dir>", "where to write (default results/demo/<scale>/)")
    .action(async (o: { scale?: string; instancesPerTask?: number | "all"; rows?: string[]; out?: string }) => {
      const scale = o.scale ?? defaultScale();
      const n = o.instancesPerTask === "all" ? null : o.instancesPerTask;
      const settings = demoSettingsWith(loadDemoSettings(scale), { instancesPerTask: n, rows: o.rows }, `configs/${scale}/demo.json`);
      await runDemo({ scale, settings, ...(o.out ? { out: resolve(o.out) } : {}), command: `npm run demo -- ${process.argv.slice(3).join(" ")}`.trim(), log: (l) => console.error(l) });
    });
  program
    .command("results")
    .description("results/README.md from every results/NAME/<scale>/seed-S/experiment.json: tables (mean ± std over seeds) beside the paper's, and figures")
    .option("--scale <scales>", "comma-separated scales to report (default: every scale with results)", (v: string) => v.split(","))
    .option("--out <file>", "markdown file", "results/README.md")
    .action(async (o: { scale?: string[]; out: string }) => {
      const file = await writeResultsReport({ scales: o.scale, out: resolve(o.out) });
      console.error(`[tagi] results: ${file}`);
    });
  program
    .command("adapters")
    .description("generated-versus-teacher adapter similarity per teacher category, and adapter generation time against teacher training time")
    .requiredOption("--tagi <dir>", "a TAGI checkpoint")
    .requiredOption("--teachers <dir>", "the parameter teachers' folder (manifest.json)")
    .addOption(new Option("--format <format>", "instruction format").choices(["def", "def+2pos"]).default("def"))
    .option("--max-tasks-per-category <n>", "instructions per category", intArg(1), 8)
    .option("--data-dir <dir>", "data folder (default: $TAGI_DATA_DIR, else ../shared/data)")
    .requiredOption("--out <file>", "JSON file to write")
    .action(async (o: { tagi: string; teachers: string; format: "def" | "def+2pos"; maxTasksPerCategory: number; dataDir?: string; out: string }) => {
      const started = new Date();
      const backend = await initBackend({ log: false });
      console.error(describeBackend(backend));
      const dir = resolve(o.tagi);
      const model = loadBaseModel(readTagiConfig(dir).base);
      const m = loadTagiParams(dir, model);
      const tokenizer = T5Tokenizer.fromFile(undefined);
      const train = (await loadSniSplit("train", o.dataDir ? resolve(o.dataDir) : undefined, { warn: false })).tasks;
      const byCategory = groupByCategory(train);
      const similarity = adapterSimilarity(m, tokenizer, resolve(o.teachers), byCategory, { format: o.format, maxTasksPerCategory: o.maxTasksPerCategory });
      const texts = train.slice(0, 20).map((t) => taskInstruction(t, o.format));
      const timing = generationVersusTeacherTime(m, tokenizer, texts, resolve(o.teachers));
      const own = similarity.reduce((s, r) => s + r.cosineOwn, 0) / similarity.length;
      const others = similarity.reduce((s, r) => s + r.cosineOthers, 0) / similarity.length;
      const precondition = similarityPrecondition(similarity);
      const env = environmentReport();
      writeJsonAtomic(resolve(o.out), {
        command: ["tagi", ...process.argv.slice(2)].join(" "),
        commit: env.commit,
        ...(env.uncommitted?.length ? { uncommitted: env.uncommitted } : {}),
        backend: describeBackend(backend),
        format: o.format,
        maxTasksPerCategory: o.maxTasksPerCategory,
        startedAt: started.toISOString(),
        wallSeconds: (Date.now() - started.getTime()) / 1000,
        similarity,
        precondition,
        ...timing,
      });
      console.log(
        `adapters: mean cosine to own teacher ${own.toFixed(4)}, to other teachers ${others.toFixed(4)} (${similarity.length} categories); ${formatPrecondition(precondition)}; ` +
          `generating one adapter ${timing.generateSeconds.toFixed(3)} s, training one teacher ${timing.teacherSeconds.toFixed(1)} s (mean ${timing.teacherSteps.toFixed(1)} steps)`,
      );
    });
  program
    .command("training-report")
    .description("copy a scale's run records and logs (no weights) to results/, draw the loss curves, write README.md")
    .requiredOption("--runs <dir>", "the runs folder of one scale (holding base/, metatrain/, teachers/)")
    .requiredOption("--out <dir>", "where to write (e.g. results/training/small)")
    .option("--eval <dirs>", "comma-separated SNI evaluation folders (summary.json) to quote", (v: string) => v.split(",").filter(Boolean))
    .action(async (o: { runs: string; out: string; eval?: string[] }) => {
      const readme = await trainingReport({ runs: o.runs, out: o.out, evals: o.eval, command: ["tagi", ...process.argv.slice(2)] });
      console.error(`[tagi] training report: ${readme}`);
    });
  addArtifactCommands(program);
  addLossGridCommand(program);
  for (const c of program.commands) {
    const ex = COMMAND_EXAMPLES[c.name()];
    if (ex) c.addHelpText("after", `\nExample${ex.length > 1 ? "s" : ""}:\n${ex.map((l) => `  $ ${l}`).join("\n")}`);
  }
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((e: unknown) => {
      console.error(`tagi: ${e instanceof Error ? e.message : String(e)}`);
      if (process.env.TAGI_DEBUG && e instanceof Error) console.error(e.stack);
      process.exit(1);
    });
}
