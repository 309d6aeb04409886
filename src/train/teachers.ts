/**
 * Parameter teachers ("training with instance"): one LoRA per task category (the paper; per task as an
 * option), trained on that group's instances. Each is saved as a PEFT adapter; `<out>/manifest.json` lists
 * them with category, tasks, seed, first and last loss, and the base model they sit on (its path and content
 * hash) and the input they read. TAGI's L_ins aligns generated adapters with these.
 *
 * Where they sit (REFERENCE.md, "Where the teachers' adapters sit"): a LoRA update means something only
 * relative to the weights it was trained on and the inputs it saw. The default puts each teacher where the
 * generated adapter sits: on the student's frozen base (`base` = the base model), reading the instance only
 * (`input: "instance"`), each with its own initialisation (seed from train.seed and the group). The official
 * code's arrangement (the meta-trained model, the full prompt) is `base` = the meta-trained model and
 * `input: "full"`; stage 2 refuses teachers on another base unless its config asks for that on purpose.
 *
 * Layout: `<out>/<group-slug>/adapter/` (PEFT), `<out>/<group-slug>/log.jsonl`, `.../checkpoint/`, and
 * `<out>/manifest.json` (rewritten atomically after each teacher). `resume` skips finished teachers and resumes
 * the interrupted one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { arraySource } from "../data/batching";
import { groupByCategory, loadTrainTasks, type SniTrainTask } from "../data/sni";
import { instanceExamples } from "../data/instances";
import { createLoraVariables, type LoraConfig } from "../model/lora";
import { savePeftAdapter } from "../model/weights";
import type { PromptFormat } from "../text/prompts";
import { T5Tokenizer } from "../text/tokenizer";
import { ADAMW_DEFAULTS } from "./optimizer";
import { train, type TrainConfig } from "./loop";
import { devLossEnds, devLossHook } from "./dev-loss";
import { loadStageConfig, trainDefaults } from "./run-config";
import { checkVocab, type StageOptions } from "./base-model";
import { checkSniStageFields, SNI_STAGE_DEFAULTS, trainAndDevTasks, type SniStageFields } from "./metatrain";
import { disposeModel, loadBaseModel, modelFolderFingerprint, modelSummary, seq2seqLoss, recordStage, loopOptions } from "./seq2seq";
import { fnv1a } from "../data/sni";
import { writeJsonAtomic } from "./checkpoint";
import { resolveProjectPath } from "../project-paths";

/** `base` is the model the teachers adapt: the meta-trained model's folder (the official code) or the base model. */
export interface TeachersConfig extends SniStageFields {
  groupBy: "category" | "task";
  /** Only these categories (or tasks); null: all groups of the train tasks. */
  groups: string[] | null;
  /** At most this many groups (in order of first appearance); null: no limit. */
  maxGroups: number | null;
  /** What the teacher reads: the full prompt (as the meta-trained model does) or the instance only. */
  input: "full" | "instance";
  /**
   * Passes over its group's instances each teacher makes: max(train.steps, ceil(epochs x examples / batch))
   * steps, so a category of 128 tasks is not trained as briefly as one of 2; null: train.steps for every teacher.
   */
  epochs: number | null;
}

export const TEACHERS_DEFAULTS: TeachersConfig = {
  groupBy: "category",
  groups: null,
  maxGroups: null,
  input: "instance",
  epochs: null,
  // The paper's teachers: rank 32 (SNI_STAGE_DEFAULTS' LoRA), AdamW.
  ...SNI_STAGE_DEFAULTS,
  train: trainDefaults({ steps: 100, batchSize: 8, optimizer: ADAMW_DEFAULTS, schedule: { kind: "constant", lr: 1e-3, warmupSteps: 0 } }),
};

export function parseTeachersConfig(source: string | Record<string, unknown> | undefined): TeachersConfig {
  return loadStageConfig(source, TEACHERS_DEFAULTS, "teachers", [], (c) => {
    const p = checkSniStageFields(c);
    if (c.groupBy !== "category" && c.groupBy !== "task") p.push(`config.groupBy must be "category" or "task", got ${JSON.stringify(c.groupBy)}`);
    if (c.input !== "full" && c.input !== "instance") p.push(`config.input must be "full" or "instance", got ${JSON.stringify(c.input)}`);
    if (c.epochs !== null && !(typeof c.epochs === "number" && c.epochs > 0)) p.push(`config.epochs must be a number > 0 or null, got ${JSON.stringify(c.epochs)}`);
    return p;
  });
}

export interface TeacherEntry {
  group: string;
  groupBy: "category" | "task";
  /** Folder of this teacher, relative to the teachers' out folder. */
  dir: string;
  adapter: string;
  tasks: string[];
  examples: number;
  steps: number;
  finalLoss: number;
  /** Mean loss over the last 10 steps (a third of the steps when fewer than 30; less noisy than the last step). */
  meanLossLast10: number;
  /** Mean loss over the first 10 steps (likewise): with meanLossLast10, whether the teacher learnt anything. */
  meanLossFirst10?: number;
  /** The dev curve's first and last points (the group's dev tasks); null: the group has no dev task. Absent: no dev curve asked for. */
  devLoss?: { first: number; last: number; firstStep: number; lastStep: number } | null;
  /** The seed of this teacher's LoRA init and data order (each teacher its own). */
  seed?: number;
  seconds: number;
}

/** Each teacher's seed: a function of the run seed and the group, so teachers start from different inits. */
export function teacherSeed(runSeed: number, group: string): number {
  return fnv1a(`teacher:${runSeed}:${group}`) % 2_000_000_000;
}

/** A teacher's optimizer steps for `examples` training instances (see TeachersConfig.epochs). */
export function teacherSteps(c: Pick<TeachersConfig, "epochs" | "train">, examples: number): number {
  return c.epochs === null ? c.train.steps : Math.max(c.train.steps, Math.ceil((c.epochs * examples) / (c.train.batchSize * c.train.gradAccumulation)));
}

/** Relative fall of the loss below which a teacher is reported as not trained ("last10 > 0.9·first10"). */
export const TEACHER_MIN_LOSS_DROP = 0.1;

export interface TeachersManifest {
  base: string;
  /** sha256 of the base model folder's content (modelFolderFingerprint): where the adapters sit. */
  baseFingerprint?: string;
  groupBy: "category" | "task";
  lora: LoraConfig;
  format: PromptFormat;
  input: "full" | "instance";
  teachers: TeacherEntry[];
}

/** A teachers folder's manifest.json, or an error saying how to make one; it must list teachers. */
export function readTeachersManifest(teachersDir: string): TeachersManifest {
  const file = path.join(teachersDir, "manifest.json");
  if (!fs.existsSync(file)) throw new Error(`no teachers manifest at ${file} (train teachers with \`tagi teachers\`)`);
  const m = JSON.parse(fs.readFileSync(file, "utf8")) as TeachersManifest;
  if (!m.teachers?.length) throw new Error(`${file}: lists no teachers`);
  return { ...m, base: resolveProjectPath(m.base) }; // published manifests name their base project-relative
}

export function groupSlug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "group";
}

/** The groups (category or task -> tasks) a teachers config selects, with an error naming unknown groups. */
export function teacherGroups(tasks: readonly SniTrainTask[], c: Pick<TeachersConfig, "groupBy" | "groups" | "maxGroups">): Map<string, SniTrainTask[]> {
  const all = c.groupBy === "category" ? groupByCategory(tasks) : new Map(tasks.map((t) => [t.name, [t]]));
  let names = [...all.keys()];
  if (c.groups) {
    const unknown = c.groups.filter((g) => !all.has(g));
    if (unknown.length) throw new Error(`teachers: unknown ${c.groupBy}(s): ${unknown.join(", ")} (e.g. ${names.slice(0, 4).join("; ")})`);
    names = c.groups;
  }
  if (c.maxGroups !== null) names = names.slice(0, c.maxGroups);
  return new Map(names.map((n) => [n, all.get(n)!]));
}

export async function trainTeachers(
  config: TeachersConfig,
  opts: StageOptions & { onTeacher?: (e: TeacherEntry, index: number, total: number) => void },
): Promise<{ out: string; manifest: TeachersManifest }> {
  const started = new Date();
  const c = config;
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all, file: dataFile } = await loadTrainTasks(c.dataDir, "teachers");
  const split = trainAndDevTasks(all, c.dev, c.maxTasks);
  const groups = teacherGroups(split.train, c);
  // A teacher's dev curve: the dev tasks of its own group (groupBy category: the category's held-out tasks;
  // categories with none get no dev curve, said in the manifest as devLoss null).
  const devGroups = c.groupBy === "category" ? groupByCategory(split.dev) : new Map<string, SniTrainTask[]>();
  const model = loadBaseModel(c.base!);
  checkVocab(model, tokenizer);
  fs.mkdirSync(opts.out, { recursive: true });
  const manifestFile = path.join(opts.out, "manifest.json");
  const manifest: TeachersManifest = { base: path.resolve(c.base!), baseFingerprint: modelFolderFingerprint(c.base!), groupBy: c.groupBy, lora: c.lora, format: c.format, input: c.input, teachers: [] };
  if (opts.resume && fs.existsSync(manifestFile)) {
    const prev = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as TeachersManifest;
    manifest.teachers = prev.teachers.filter((t) => groups.has(t.group));
  } else if (fs.existsSync(manifestFile)) {
    throw new Error(`teachers: ${opts.out} already holds teachers (manifest.json); pass --resume to continue, or choose another --out`);
  }
  const done = new Set(manifest.teachers.map((t) => t.group));
  let index = 0;
  try {
    for (const [group, tasks] of groups) {
      index++;
      if (done.has(group)) continue;
      const slug = groupSlug(group);
      const dir = path.join(opts.out, slug);
      const { examples } = instanceExamples(tasks, tokenizer, {
        format: c.format,
        input: c.input,
        maxInputTokens: c.maxInputTokens,
        maxTargetTokens: c.maxTargetTokens,
        instancesPerTask: c.instancesPerTask,
        seed: c.train.seed,
      });
      const seed = teacherSeed(c.train.seed, group);
      const steps = teacherSteps(c, examples.length);
      const lora = createLoraVariables(model.config, c.lora, seed);
      const trainable = new Map<string, tf.Variable>();
      for (const [m, { A, B }] of lora.modules) {
        trainable.set(`${m}.lora_A.weight`, A as tf.Variable);
        trainable.set(`${m}.lora_B.weight`, B as tf.Variable);
      }
      const saveModel = (d: string) =>
        savePeftAdapter(
          d,
          { r: c.lora.r, lora_alpha: c.lora.alpha, lora_dropout: c.lora.dropout, target_modules: c.lora.targetModules, bias: "none", task_type: "SEQ_2_SEQ_LM" },
          lora.modules,
          path.resolve(c.base!),
        );
      const t0 = performance.now();
      try {
        const result = await train({
          label: `teacher ${index}/${groups.size} ${slug}`,
          out: dir,
          config: { ...c.train, seed, steps },
          trainable,
          source: arraySource(examples, `${examples.length} instances of ${c.groupBy} '${group}'`),
          lossFn: (batch, ctx) => seq2seqLoss(model, batch, { training: true, seed: ctx.seed, recompute: ctx.recompute, lora }),
          evaluate: devLossHook(
            c.dev.every > 0 ? instanceExamples(devGroups.get(group) ?? [], tokenizer, { format: c.format, input: c.input, maxInputTokens: c.maxInputTokens, maxTargetTokens: c.maxTargetTokens, instancesPerTask: c.dev.instancesPerTask, seed: c.dev.seed }).examples : [],
            { every: c.dev.every, batchSize: c.train.batchSize },
            (b) => seq2seqLoss(model, b, { training: false, lora }).loss,
          ),
          saveModel,
          ...loopOptions({ ...opts, stopAtStep: undefined }), // a teacher is trained whole or resumed
          fingerprint: { stage: c, group, model: model.config },
          data: { files: [dataFile], tasks: tasks.map((t) => t.name) },
        });
        saveModel(path.join(dir, "adapter"));
        // First and last windows that never overlap: 10 steps, or a third of a short run.
        const w = Math.max(1, Math.min(10, Math.floor(result.log.length / 3)));
        const last = result.log.slice(-w);
        const first = result.log.slice(0, w);
        const meanLoss = (xs: typeof last) => xs.reduce((s, r) => s + r.loss, 0) / Math.max(1, xs.length);
        const dev = devLossEnds(result.log);
        const entry: TeacherEntry = {
          group,
          groupBy: c.groupBy,
          dir: slug,
          adapter: `${slug}/adapter`,
          tasks: tasks.map((t) => t.name),
          examples: examples.length,
          steps: result.state.step,
          finalLoss: result.log.at(-1)?.loss ?? NaN,
          meanLossLast10: meanLoss(last),
          meanLossFirst10: meanLoss(first),
          ...(c.dev.every > 0 ? { devLoss: dev ? { first: dev.first.loss, last: dev.last.loss, firstStep: dev.first.step, lastStep: dev.last.step } : null } : {}),
          seed,
          seconds: (performance.now() - t0) / 1000,
        };
        if (!(entry.meanLossLast10 < (1 - TEACHER_MIN_LOSS_DROP) * entry.meanLossFirst10!)) {
          process.stderr.write(
            `[teachers] warning: teacher '${group}' did not learn: mean loss ${entry.meanLossFirst10!.toFixed(3)} over its first ${w} steps, ${entry.meanLossLast10.toFixed(3)} over its last ${w} ` +
              `(less than a ${TEACHER_MIN_LOSS_DROP * 100}% fall); its adapter says little about the task (more steps or another learning rate)\n`,
          );
        }
        manifest.teachers.push(entry);
        writeJsonAtomic(manifestFile, manifest);
        opts.onTeacher?.(entry, index, groups.size);
      } finally {
        for (const { A, B } of lora.modules.values()) (A.dispose(), B.dispose());
      }
    }
    recordStage("teachers", opts, c, started, undefined, {
        model: { base: path.resolve(c.base!), ...modelSummary(model.config) },
        teachers: manifest.teachers.length,
        trainTasks: split.train.length,
        devTasks: split.dev.map((t) => t.name),
        outputs: { manifest: "manifest.json" },
    });
    writeJsonAtomic(manifestFile, manifest);
    return { out: opts.out, manifest };
  } finally {
    disposeModel(model);
  }
}
