/**
 * TAGI stage 2, finetuning (`finetuneTagi`): SNI train instances; the student reads the instance only, the
 * instruction (Def or Def + 2 Pos) reaching it through the generated adapter and fusion; the loss is
 *   L = w_ce·L_ce + λ1·L_kl + λ2·L_ins
 * with the meta-trained model reading instruction + instance as logit teacher (live, or from its cache:
 * ./teacher-logit-cache.ts) and the category's LoRA teacher as parameter teacher (./losses.ts). Each term is
 * logged; weight 0 switches a term (and its teacher) off. The same stage trains the Hypter-style (fusion
 * "none") and HINT-style (fusion "concatenate", CE only) baselines. The config: ./finetune-config.ts.
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { arraySource, type Seq2SeqExample } from "../data/batching";
import { loadTrainTasks, sampleInstances, taskCategory, type SniTrainTask } from "../data/sni";
import { truncateIds } from "../data/instances";
import { buildPrompt, truncatePrompt } from "../text/prompts";
import { T5Tokenizer } from "../text/tokenizer";
import { crossEntropyLoss, forward } from "../model/t5";
import type { LoraAdapter } from "../model/lora";
import { train } from "../train/loop";
import { checkVocab, type StageOptions, type StageResult } from "../train/base-model";
import { onlyCategories, trainAndDevTasks } from "../train/metatrain";
import { devLossHook } from "../train/dev-loss";
import { disposeModel, loadBaseModel, modelFolderFingerprint, modelSummary, recordStage, loopOptions } from "../train/seq2seq";
import { writeJsonAtomic } from "../train/checkpoint";
import { checkLogitTeacherFormat, checkTeacherPlacement, loadParameterTeachers } from "./parameter-teachers";
import { instructionCacheFor } from "./instruction-cache";
import { ceAndCachedKl, exampleKey, TeacherLogitCache } from "./teacher-logit-cache";
import { initFusionParams } from "./fusion";
import { createTagiModel, usesCrossAttention, encodeInstructions, loadTagiParams, readTagiConfig, saveTagi, studentForward, type TagiModel } from "./model";
import { distillationKl, officialAlignmentLoss, parameterAlignmentLoss, stackTeacherAdapters } from "./losses";
import { batchTensorsOf, countOf, disposeTagi, makeTagiTrainable } from "./stage-common";
import type { FinetuneConfig } from "./finetune-config";

export interface TagiExampleCounts {
  tasks: number;
  examples: number;
  instructionsTruncated: number;
  instancesCut: number;
  teacherPromptsTruncated: number;
  emptyTargets: number;
}

/** Stage-2 examples: instruction (the prompt's instruction part), instance, target, teacher prompt, group. */
export function tagiExamples(
  tasks: readonly SniTrainTask[],
  tokenizer: T5Tokenizer,
  c: Pick<FinetuneConfig, "format" | "maxInputTokens" | "maxTeacherInputTokens" | "maxTargetTokens" | "instancesPerTask" | "tagi">,
  seed: number,
  groupOf: (task: SniTrainTask) => number | undefined,
  withTeacherInput: boolean,
): { examples: Seq2SeqExample[]; counts: TagiExampleCounts } {
  const counts: TagiExampleCounts = { tasks: tasks.length, examples: 0, instructionsTruncated: 0, instancesCut: 0, teacherPromptsTruncated: 0, emptyTargets: 0 };
  const examples: Seq2SeqExample[] = [];
  const cut = (ids: number[], max: number) => truncateIds(ids, max, tokenizer.eosId);
  for (const task of tasks) {
    const group = groupOf(task);
    const first = task.instances[0];
    if (!first) continue;
    const instr = tokenizer.encode(buildPrompt(task, first, { format: c.format }).instruction);
    if (instr.length > c.tagi.maxInstructionTokens) counts.instructionsTruncated++;
    const instruction = cut(instr, c.tagi.maxInstructionTokens);
    // The same instance sample as meta-training and the teachers (sampleInstances with the run's seed).
    const chosen = c.instancesPerTask === null ? task.instances : sampleInstances(task, c.instancesPerTask, seed);
    for (const inst of chosen) {
      const ref = inst.outputs[0] ?? "";
      if (!ref.trim()) {
        counts.emptyTargets++;
        continue;
      }
      const parts = buildPrompt(task, inst, { format: c.format });
      const full = tokenizer.encode(parts.instance);
      if (full.length > c.maxInputTokens) counts.instancesCut++;
      const ex: Seq2SeqExample = { instruction, input: cut(full, c.maxInputTokens), target: cut(tokenizer.encode(ref), c.maxTargetTokens) };
      if (withTeacherInput) {
        let t = tokenizer.encode(parts.full);
        if (t.length > c.maxTeacherInputTokens - 4) {
          const tp = truncatePrompt(parts, tokenizer, c.maxTeacherInputTokens);
          if (tp.truncated) counts.teacherPromptsTruncated++;
          t = tokenizer.encode(tp.full);
        }
        ex.teacherInput = cut(t, c.maxTeacherInputTokens);
      }
      if (group !== undefined) ex.group = group;
      examples.push(ex);
    }
  }
  counts.examples = examples.length;
  return { examples, counts };
}

export async function finetuneTagi(config: FinetuneConfig, opts: StageOptions): Promise<StageResult> {
  const started = new Date();
  const c = config;
  // Before any data loads: teachers that cannot be used are refused first.
  const placement = c.losses.ins > 0 ? checkTeacherPlacement(c) : null;
  if (c.losses.kl > 0) checkLogitTeacherFormat(c);
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all, file: dataFile } = await loadTrainTasks(c.dataDir, "finetune");
  const split = trainAndDevTasks(all, c.dev, c.maxTasks);
  if (c.categories) split.train = onlyCategories(split.train, c.categories, "finetune");
  const base = loadBaseModel(c.base!);
  checkVocab(base, tokenizer);
  let m: TagiModel;
  if (c.init) {
    const saved = readTagiConfig(c.init);
    // The generator must match; the fusion may differ (the "w/o fusion" ablation and HINT start from the
    // same stage-1 generator): fusion layers the checkpoint lacks start fresh, ones it has but the run does
    // not use are dropped.
    if (JSON.stringify({ ...saved.tagi, fusion: null }) !== JSON.stringify({ ...c.tagi, fusion: null })) {
      disposeModel(base);
      throw new Error(`finetune: config.tagi differs from the stage-1 checkpoint's (${c.init}/tagi_config.json) beyond the fusion mode; use the same generator settings`);
    }
    const loaded = loadTagiParams(c.init, base);
    if (saved.tagi.fusion === c.tagi.fusion) m = loaded;
    else {
      const keepFusion = usesCrossAttention(c.tagi) && usesCrossAttention(saved.tagi);
      if (!keepFusion) for (const t of loaded.fusion.values()) t.dispose();
      const fusion = keepFusion ? loaded.fusion : usesCrossAttention(c.tagi) ? initFusionParams(base.config, c.initSeed) : new Map<string, tf.Tensor>();
      m = { base, config: c.tagi, hyper: loaded.hyper, fusion, trainedBase: loaded.trainedBase ?? [] };
      console.error(`[tagi] finetune: stage-1 generator from ${c.init}; fusion '${c.tagi.fusion}' (stage 1 used '${saved.tagi.fusion}'): ${keepFusion ? "fusion layers kept" : usesCrossAttention(c.tagi) ? "fresh fusion layers" : "no fusion layers"}`);
    }
  } else m = createTagiModel(base, c.tagi, c.initSeed);
  // The logit teacher: read from its cache when one is given (checked against the teacher's content and T), else run live.
  const logitCache = c.losses.kl > 0 && c.teacherLogits ? TeacherLogitCache.load(c.teacherLogits) : null;
  if (logitCache) {
    const bad = logitCache.mismatch(modelFolderFingerprint(c.teacher!), c.losses.temperature, base.config.vocab_size);
    if (bad) {
      disposeModel(base);
      throw new Error(`finetune: ${bad}`);
    }
  }
  const teacherModel = c.losses.kl > 0 && !logitCache ? loadBaseModel(c.teacher!) : null;
  const teachers = c.losses.ins > 0 ? loadParameterTeachers(c.teachers!, base) : null;
  try {
    if (teachers) {
      const r = c.tagi.hypernetwork.rank;
      const t0 = teachers.adapters[0];
      const tr = t0 ? [...t0.modules.values()][0]!.A.shape[0] : r;
      // The paper's L_ins compares factors, which needs one rank; the modes on s·A·B compare any ranks.
      const byFactors = c.losses.variant === "official" || c.losses.alignment === "factors";
      if (tr !== r && byFactors) throw new Error(`finetune: the parameter teachers have rank ${tr}, the generator ${r}; L_ins ${c.losses.variant === "official" ? "(the official variant)" : `(losses.alignment "${c.losses.alignment}")`} compares them factor by factor (set tagi.hypernetwork.rank = ${tr}, or losses.alignment = "product" to compare the updates s·A·B)`);
      const missing = [...new Set(split.train.map(taskCategory))].filter((cat) => !teachers.byGroup.has(cat));
      if (missing.length) throw new Error(`finetune: no parameter teacher for categor${missing.length > 1 ? "ies" : "y"} ${missing.join(", ")} in ${c.teachers} (train teachers for them, or restrict the tasks)`);
    }
    const { examples, counts } = tagiExamples(split.train, tokenizer, c, c.sampleSeed ?? c.train.seed, (t) => teachers?.byGroup.get(taskCategory(t)), c.losses.kl > 0);
    if (logitCache) {
      const missing = logitCache.missing(examples.map((e) => exampleKey(e.teacherInput!, e.target)));
      if (missing.length) throw new Error(`finetune: ${missing.length} of ${examples.length} training examples are not in the teacher logit cache ${c.teacherLogits} (made for other examples, lengths or format); rebuild it with \`tagi teacher-logits\` for this config`);
    }
    const trainable = makeTagiTrainable(m, c.trainBase);
    const lw = c.losses;
    // Each task's instruction is encoded once per run while the encoder is frozen (src/tagi/instruction-cache.ts).
    const instructions = instructionCacheFor(m, c.trainBase);
    const encodeBatch = (b: { instructionIds?: number[][]; instructionMask?: number[][] }) =>
      instructions ? instructions.encode(b.instructionIds!, b.instructionMask!) : encodeInstructions(m, b.instructionIds!, b.instructionMask!);
    const result = await train({
      label: "finetune",
      out: opts.out,
      config: c.train,
      trainable,
      source: arraySource(examples, `${examples.length} SNI train instances (${c.format} instructions)`),
      constants: (b) => {
        const e = encodeBatch(b);
        const out = new Map<string, tf.Tensor>([
          ["states", e.states],
          ["mask", e.mask],
          ["pooled", e.pooled],
        ]);
        if (logitCache) {
          const keys = b.teacherInputIds!.map((ids, i) => exampleKey(ids.slice(0, b.teacherMask![i]!.reduce((a, x) => a + x, 0)), b.labels[i]!.filter((x) => x !== -100)));
          const cached = logitCache.batch(keys, b.labels[0]!.length);
          out.set("cachedIds", cached.ids);
          out.set("cachedLogp", cached.logp);
          out.set("cachedLogRest", cached.logRest);
        }
        if (teacherModel) {
          out.set(
            "teacherLogits",
            tf.tidy(() =>
              forward(teacherModel, {
                inputIds: tf.tensor2d(b.teacherInputIds!, undefined, "int32"),
                attentionMask: tf.tensor2d(b.teacherMask!, undefined, "int32"),
                decoderInputIds: tf.tensor2d(b.decoderInputIds, undefined, "int32"),
              }),
            ),
          );
        }
        if (teachers) {
          const stacked = stackTeacherAdapters(teachers.adapters, b.groups!);
          for (const [k, { A, B }] of stacked.modules) {
            out.set(`teacherA:${k}`, A);
            out.set(`teacherB:${k}`, B);
          }
        }
        return out;
      },
      // The dev curve: L_ce of the dev tasks' references with their own generated adapters (the student's
      // reference NLL; no teachers, no dropout), a fixed sample.
      evaluate: devLossHook(
        c.dev.every > 0 ? tagiExamples(split.dev, tokenizer, { ...c, instancesPerTask: c.dev.instancesPerTask }, c.dev.seed, () => undefined, false).examples : [],
        { every: c.dev.every, batchSize: c.train.batchSize },
        (b) => {
          const e = encodeBatch(b);
          const t = batchTensorsOf(b);
          return crossEntropyLoss(studentForward(m, e, t, { training: false }).logits, t.labels);
        },
      ),
      lossFn: (b, ctx) => {
        const t = batchTensorsOf(b);
        const k = ctx.constants;
        const enc = { states: k.get("states") as tf.Tensor3D, mask: k.get("mask") as tf.Tensor2D, pooled: k.get("pooled") as tf.Tensor2D };
        const { logits, adapter } = studentForward(m, enc, t, { training: true, seed: ctx.seed, recompute: ctx.recompute });
        const terms: Record<string, tf.Scalar> = {};
        let total: tf.Scalar = tf.scalar(0);
        const cached = logitCache ? { ids: k.get("cachedIds") as tf.Tensor3D, logp: k.get("cachedLogp") as tf.Tensor3D, logRest: k.get("cachedLogRest") as tf.Tensor2D } : null;
        // With the cache, L_ce and L_kl come from one pass over the logits where the fused op runs.
        const both = cached ? ceAndCachedKl(logits, cached, t.labels, { temperature: lw.temperature }) : null;
        const ce = both ? both.ce : crossEntropyLoss(logits, t.labels);
        terms["ce"] = ce;
        if (lw.ce > 0) total = tf.add(total, tf.mul(ce, lw.ce));
        if (both) {
          terms["kl"] = both.kl;
          total = tf.add(total, tf.mul(both.kl, lw.kl));
        }
        if (teacherModel) {
          const official = lw.variant === "official";
          const kl = distillationKl(logits, k.get("teacherLogits") as tf.Tensor3D, t.labels, { temperature: lw.temperature, scaleByTemperatureSquared: !official, maskPadding: !official });
          terms["kl"] = kl;
          total = tf.add(total, tf.mul(kl, lw.kl));
        }
        if (teachers) {
          const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
          for (const name of adapter.modules.keys()) {
            const A = k.get(`teacherA:${name}`);
            const B = k.get(`teacherB:${name}`);
            if (!A || !B) throw new Error(`finetune: the parameter teachers do not adapt ${name}, which the generator does (set tagi.hypernetwork.kinds/projections to the teachers' modules)`);
            modules.set(name, { A, B });
          }
          const teacher: LoraAdapter = { layout: "perExample", scaling: teachers.adapters[0]!.scaling, dropout: 0, modules };
          const ins = lw.variant === "official" ? officialAlignmentLoss(adapter, teacher) : parameterAlignmentLoss(adapter, teacher, lw.alignment);
          terms["ins"] = ins;
          total = tf.add(total, tf.mul(ins, lw.ins));
        }
        return { loss: total, terms };
      },
      saveModel: (dir) => saveTagi(dir, m, c.base!),
      ...loopOptions(opts),
      fingerprint: { stage: c, model: base.config },
      data: { files: [dataFile], tasks: split.train.map((t) => t.name) },
    });
    const modelDir = path.join(opts.out, "model");
    saveTagi(modelDir, m, c.base!);
    recordStage("finetune", opts, c, started, result, {
        model: { base: path.resolve(c.base!), init: c.init ? path.resolve(c.init) : null, ...modelSummary(base.config), trainableParameters: countOf(trainable) },
        data: { ...counts, trainTasks: split.train.length },
        devTasks: split.dev.map((t) => t.name),
        teachers: { logit: c.teacher ? path.resolve(c.teacher) : null, logitCache: logitCache ? { dir: path.resolve(c.teacherLogits!), k: logitCache.info.k } : null, parameter: teachers ? teachers.adapters.length : 0, placement },
        // this process's count (a resumed run counts from its restart)
        instructionEncodings: instructions ? { cached: true, encoded: instructions.misses, reused: instructions.hits } : { cached: false },
        outputs: { model: "model/", log: "log.jsonl", checkpoint: "checkpoint/" },
    });
    writeJsonAtomic(path.join(opts.out, "losses.json"), { weights: lw, terms: Object.keys(result.log.at(-1)?.terms ?? {}) });
    return { out: opts.out, model: modelDir, result };
  } finally {
    disposeTagi(m);
    if (teacherModel) disposeModel(teacherModel);
    if (teachers) for (const a of teachers.adapters) for (const { A, B } of a.modules.values()) tf.dispose([A, B]);
  }
}
