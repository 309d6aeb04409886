/**
 * `tagi teacher-logits`: runs a stage-2 config's logit teacher once over that config's training examples and
 * writes the teacher logit cache (src/tagi/teacher-logit-cache.ts) that later finetunes read through
 * `teacherLogits`. The examples are the finetune's own (tagiExamples with the config's format, lengths, sample
 * and seed), so a run with the same data settings finds every example; the record says how much teacher mass
 * fell outside the kept top k (what the coarse-grained KL leaves out).
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
// ./train first: it loads the stage modules in the order their mutual imports need (metatrain <-> base-model).
import { tagiExamples, type FinetuneConfig } from "./train";
import { loadTrainTasks, taskCategory } from "../data/sni";
import { forward } from "../model/t5";
import { T5Tokenizer } from "../text/tokenizer";
import { trainAndDevTasks } from "../train/metatrain";
import { disposeModel, loadBaseModel, modelFolderFingerprint } from "../train/seq2seq";
import { environmentReport } from "../environment";
import { projectRelative } from "../project-paths";
import { exampleKey, topKLogProbs, TeacherLogitCacheWriter } from "./teacher-logit-cache";

export interface TeacherLogitsResult {
  out: string;
  examples: number;
  positions: number;
  /** Teacher probability mass outside the kept top k, over target positions. */
  restMass: { mean: number; max: number };
  seconds: number;
}

export async function buildTeacherLogits(
  c: FinetuneConfig,
  opts: { out: string; k: number; batchSize?: number; command?: string[]; log?: (line: string) => void },
): Promise<TeacherLogitsResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  if (!c.teacher) throw new Error("teacher-logits: the config names no logit teacher (config.teacher)");
  const t0 = performance.now();
  const tokenizer = T5Tokenizer.fromFile(c.tokenizer ?? undefined);
  const { tasks: all } = await loadTrainTasks(c.dataDir, "teacher-logits");
  const split = trainAndDevTasks(all, c.dev, c.maxTasks);
  const keep = c.categories ? new Set(c.categories) : null;
  const train = keep ? split.train.filter((t) => keep.has(taskCategory(t))) : split.train;
  const { examples } = tagiExamples(train, tokenizer, c, c.sampleSeed ?? c.train.seed, () => undefined, true);
  // One entry per distinct (teacher input, target); longest prompts first so batches pad little.
  const byKey = new Map(examples.map((e) => [exampleKey(e.teacherInput!, e.target), e]));
  const todo = [...byKey.entries()].sort((a, b) => b[1].teacherInput!.length - a[1].teacherInput!.length);
  const teacher = loadBaseModel(c.teacher);
  const writer = new TeacherLogitCacheWriter({ teacher: modelFolderFingerprint(c.teacher), temperature: c.losses.temperature, k: opts.k, vocab: teacher.config.vocab_size });
  const bs = opts.batchSize ?? 16;
  let positions = 0;
  let restSum = 0;
  let restMax = 0;
  let nextReport = 0;
  let lastReport = performance.now();
  try {
    for (let i = 0; i < todo.length; i += bs) {
      const chunk = todo.slice(i, i + bs);
      const lin = Math.max(...chunk.map(([, e]) => e.teacherInput!.length));
      const lout = Math.max(...chunk.map(([, e]) => e.target.length));
      const pad = tokenizer.padId;
      const inputIds = chunk.map(([, e]) => [...e.teacherInput!, ...Array<number>(lin - e.teacherInput!.length).fill(pad)]);
      const mask = chunk.map(([, e]) => [...Array<number>(e.teacherInput!.length).fill(1), ...Array<number>(lin - e.teacherInput!.length).fill(0)]);
      const dec = chunk.map(([, e]) => [teacher.config.decoder_start_token_id, ...e.target.slice(0, -1), ...Array<number>(lout - e.target.length).fill(pad)]);
      const top = tf.tidy(() => {
        const logits = forward(teacher, {
          inputIds: tf.tensor2d(inputIds, undefined, "int32"),
          attentionMask: tf.tensor2d(mask, undefined, "int32"),
          decoderInputIds: tf.tensor2d(dec, undefined, "int32"),
        });
        return topKLogProbs(tf.reshape(logits, [chunk.length * lout, teacher.config.vocab_size]) as tf.Tensor2D, c.losses.temperature, opts.k);
      });
      chunk.forEach(([key, e], j) => {
        writer.add(key, e.target.length, top.ids, top.logp, top.logRest, j * lout);
        for (let p = 0; p < e.target.length; p++) {
          const rest = Math.exp(top.logRest[j * lout + p]!);
          restSum += rest;
          restMax = Math.max(restMax, rest);
        }
        positions += e.target.length;
      });
      const done = Math.min(todo.length, i + bs);
      // Every tenth of the work or every minute, whichever comes first: the longest prompts come first, so the
      // first tenth alone takes several minutes.
      if (done / todo.length >= nextReport || done === todo.length || performance.now() - lastReport >= 60_000) {
        lastReport = performance.now();
        const s = (performance.now() - t0) / 1000;
        log(`[teacher-logits] ${done}/${todo.length} examples, ${positions} positions, ${(done / s).toFixed(1)} examples/s, ETA ${(((todo.length - done) * s) / done / 60).toFixed(1)} min`);
        nextReport = Math.floor((done / todo.length) * 10 + 1) / 10;
      }
    }
  } finally {
    disposeModel(teacher);
  }
  const seconds = (performance.now() - t0) / 1000;
  const restMass = { mean: positions ? restSum / positions : 0, max: restMax };
  const env = environmentReport();
  writer.save(opts.out, projectRelative({
    command: opts.command?.join(" ") ?? null,
    commit: env.commit,
    ...(env.uncommitted?.length ? { uncommitted: env.uncommitted } : {}),
    teacherFolder: path.resolve(c.teacher),
    format: c.format,
    maxTeacherInputTokens: c.maxTeacherInputTokens,
    maxTargetTokens: c.maxTargetTokens,
    instancesPerTask: c.instancesPerTask,
    seed: c.sampleSeed ?? c.train.seed,
    examples: todo.length,
    positions,
    restMass,
    seconds,
  }));
  log(`[teacher-logits] ${todo.length} examples, ${positions} target positions; teacher mass outside the top ${opts.k}: mean ${restMass.mean.toFixed(4)}, max ${restMass.max.toFixed(4)}; ${(seconds / 60).toFixed(1)} min -> ${opts.out}`);
  return { out: opts.out, examples: todo.length, positions, restMass, seconds };
}
