/**
 * Probes beyond the paper: does the generated adapter depend on the instruction, does it beat one fixed
 * adapter, and does it resemble the teacher it was distilled from?
 *
 * - Instruction probes (`probeInstructions`): evaluate TAGI with each task's instruction replaced by another
 *   test task's (a derangement: no task keeps its own) or by its own words in random order. If the score
 *   barely drops, the generator ignores what the instruction says.
 * - Mean teacher adapter (`meanTeacherDeltas`): the average weight update of all parameter teachers,
 *   mean_i(s·B_i·A_i), merged into the base model and used for every task. Averaging the products (not A and
 *   B separately) is the only average that means something: LoRA factors are defined up to an invertible
 *   r×r transform, so two teachers' A matrices are not comparable entry by entry.
 * - Adapter similarity (`adapterSimilarity`): for each teacher's category, the cosine between the
 *   generated update (s·A·B from the category's task instructions) and that teacher's update, per module;
 *   and, as the control, the same cosine against the other categories' teachers.
 */
import { binomialUpperTail } from "../eval/stats";
import * as tf from "@tensorflow/tfjs-core";
import * as path from "node:path";
import * as fs from "node:fs";
import { seededRandom, type SniTask } from "../data/sni";
import { buildPrompt, type PromptFormat } from "../text/prompts";
import type { T5Tokenizer } from "../text/tokenizer";
import type { T5Config } from "../model/config";
import { checkAdapterShapes, loadPeftAdapter, scaling } from "../model/weights";
import { readTeachersManifest } from "../train/teachers";
import { disposeEncoding, tokenizeInstructions } from "./instruction-encoder";
import { disposeAdapter, generateAdapter } from "./hypernetwork";
import { encodeInstructions, type TagiModel } from "./model";

export type InstructionProbe = "own" | "other-task" | "shuffled-words";
export const INSTRUCTION_PROBES: readonly InstructionProbe[] = ["own", "other-task", "shuffled-words"];

/** The instruction (Def or Def + 2 Pos) a task is evaluated with. */
export function taskInstruction(task: SniTask, format: PromptFormat): string {
  return buildPrompt(task, task.instances[0] ?? { input: "" }, { format }).instruction;
}

/**
 * Instruction per task name for a probe. "other-task": a seeded derangement (Sattolo's algorithm gives a
 * single cycle, so no task keeps its own); "shuffled-words": the task's own words, seeded shuffle.
 */
export function probeInstructions(tasks: readonly SniTask[], format: PromptFormat, probe: InstructionProbe, seed = 0): Map<string, string> {
  if (!INSTRUCTION_PROBES.includes(probe)) throw new Error(`unknown instruction probe '${probe}' (valid: ${INSTRUCTION_PROBES.join(", ")})`);
  const own = tasks.map((t) => taskInstruction(t, format));
  const out = new Map<string, string>();
  if (probe === "own") tasks.forEach((t, i) => out.set(t.name, own[i]!));
  else if (probe === "other-task") {
    if (tasks.length < 2) throw new Error("instruction probe 'other-task' needs at least two tasks");
    const rand = seededRandom(seed, "probe:other-task");
    const perm = tasks.map((_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * i); // j < i: Sattolo
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    tasks.forEach((t, i) => out.set(t.name, own[perm[i]!]!));
  } else {
    tasks.forEach((t, i) => {
      const rand = seededRandom(seed, `probe:shuffled-words:${t.name}`);
      const words = own[i]!.split(/\s+/).filter(Boolean);
      for (let k = words.length - 1; k > 0; k--) {
        const j = Math.floor(rand() * (k + 1));
        [words[k], words[j]] = [words[j]!, words[k]!];
      }
      out.set(t.name, words.join(" "));
    });
  }
  return out;
}

/** Each teacher's weight update s·B·A per module ([out, in], the weight's layout), as new tensors. */
function teacherDeltas(teachersDir: string, adapter: string, config: T5Config): Map<string, tf.Tensor2D> {
  const peft = loadPeftAdapter(path.join(teachersDir, adapter));
  checkAdapterShapes(peft, config);
  const s = scaling(peft.config);
  const out = new Map<string, tf.Tensor2D>();
  for (const [m, { A, B }] of peft.weights) {
    out.set(m, tf.tidy(() => tf.mul(tf.matMul(B as tf.Tensor2D, A as tf.Tensor2D), s) as tf.Tensor2D));
    A.dispose();
    B.dispose();
  }
  return out;
}

/** mean_i(s·B_i·A_i) over every teacher in `teachersDir`'s manifest, per module ([out, in]). */
export function meanTeacherDeltas(teachersDir: string, config: T5Config): { deltas: Map<string, tf.Tensor2D>; teachers: number } {
  const manifest = readTeachersManifest(teachersDir);
  let sum: Map<string, tf.Tensor2D> | null = null;
  for (const t of manifest.teachers) {
    const d = teacherDeltas(teachersDir, t.adapter, config);
    if (sum === null) sum = d;
    else {
      for (const [m, x] of d) {
        const prev = sum.get(m);
        if (!prev) throw new Error(`teacher ${t.dir} adapts module ${m}, which the first teacher does not`);
        sum.set(m, tf.add(prev, x) as tf.Tensor2D);
        prev.dispose();
        x.dispose();
      }
    }
  }
  const n = manifest.teachers.length;
  const deltas = new Map<string, tf.Tensor2D>();
  for (const [m, x] of sum!) {
    deltas.set(m, tf.div(x, n) as tf.Tensor2D);
    x.dispose();
  }
  return { deltas, teachers: n };
}

/** `params` with W + delta for every module in `deltas` (new tensors for those; the rest shared). */
export function mergeDeltas(params: Map<string, tf.Tensor>, deltas: Map<string, tf.Tensor2D>): Map<string, tf.Tensor> {
  const merged = new Map(params);
  for (const [m, d] of deltas) {
    const w = params.get(`${m}.weight`);
    if (!w) throw new Error(`mergeDeltas: the model has no module ${m}`);
    if (w.shape.join() !== d.shape.join()) throw new Error(`mergeDeltas: ${m} is [${w.shape}] but its update is [${d.shape}]`);
    merged.set(`${m}.weight`, tf.add(w, d));
  }
  return merged;
}

export interface SimilarityRow {
  category: string;
  /** Tasks whose instructions generated adapters (their updates averaged). */
  tasks: number;
  /** Mean over modules of cos(generated update, this category's teacher update). */
  cosineOwn: number;
  /** Mean over modules and over the other categories' teachers (the control). */
  cosineOthers: number;
  /** The largest mean-over-modules cosine to any other category's teacher (own > this: own teacher ranks first). */
  cosineMaxOther?: number;
}

/**
 * The precondition for reading any L_ins result (REFERENCE.md): are generated updates closer to their own
 * category's teacher than to the others' more often than chance? Two counts, each with its one-sided binomial
 * p-value: own cosine above the mean of the others (chance 1/2 under exchangeable teachers), and own teacher
 * the closest of all K (chance 1/K).
 */
export interface SimilarityPrecondition {
  categories: number;
  closerThanOthersMean: number;
  pCloserThanOthersMean: number;
  ownClosest: number | null;
  pOwnClosest: number | null;
  /** Whether both counts (where available) are above chance at the 5% level. */
  holds: boolean;
}

export function similarityPrecondition(rows: readonly SimilarityRow[]): SimilarityPrecondition {
  const n = rows.length;
  const k1 = rows.filter((r) => r.cosineOwn > r.cosineOthers).length;
  const p1 = binomialUpperTail(k1, n, 0.5);
  const withMax = rows.filter((r) => r.cosineMaxOther !== undefined);
  const k2 = withMax.length === n && n > 1 ? rows.filter((r) => r.cosineOwn > r.cosineMaxOther!).length : null;
  const p2 = k2 === null ? null : binomialUpperTail(k2, n, 1 / n);
  return { categories: n, closerThanOthersMean: k1, pCloserThanOthersMean: p1, ownClosest: k2, pOwnClosest: p2, holds: p1 < 0.05 && (p2 === null || p2 < 0.05) };
}

/** One line for logs and tables: "41 of 60 closer than the others' mean (p = 0.003); own closest 9 of 60 (p = 1e-6)". */
export function formatPrecondition(p: SimilarityPrecondition): string {
  const fp = (x: number) => (x < 1e-3 ? x.toExponential(1) : x.toFixed(3));
  return (
    `${p.closerThanOthersMean} of ${p.categories} closer to own teacher than to the others' mean (binomial p = ${fp(p.pCloserThanOthersMean)}, chance 1/2)` +
    (p.ownClosest === null ? "" : `; own teacher closest in ${p.ownClosest} of ${p.categories} (p = ${fp(p.pOwnClosest!)}, chance 1/${p.categories})`) +
    (p.holds ? "" : " — the precondition for reading L_ins does not hold")
  );
}

/**
 * Generated-versus-teacher update similarity per teacher category. `tasksByCategory`: SNI train tasks per
 * category (the tasks the teacher was trained on); at most `maxTasksPerCategory` instructions are used.
 */
export function adapterSimilarity(
  m: TagiModel,
  tokenizer: T5Tokenizer,
  teachersDir: string,
  tasksByCategory: Map<string, readonly SniTask[]>,
  opts: { format: PromptFormat; maxTasksPerCategory?: number },
): SimilarityRow[] {
  const manifest = readTeachersManifest(teachersDir);
  const teachers = manifest.teachers.filter((t) => tasksByCategory.has(t.group));
  if (teachers.length === 0) throw new Error(`adapterSimilarity: none of the ${manifest.teachers.length} teachers in ${teachersDir} has tasks given`);
  const s = m.config.hypernetwork.alpha / m.config.hypernetwork.rank;
  // The generated update per category: mean over its tasks of s·(A·B)^T ([out, in], like the teacher's).
  const generated = new Map<string, { deltas: Map<string, tf.Tensor2D>; tasks: number }>();
  for (const t of teachers) {
    const tasks = tasksByCategory.get(t.group)!.slice(0, opts.maxTasksPerCategory ?? 8);
    const texts = tasks.map((task) => taskInstruction(task, opts.format));
    const { ids, mask } = tokenizeInstructions(tokenizer, texts, m.config.maxInstructionTokens, () => {});
    const enc = encodeInstructions(m, ids, mask);
    const adapter = generateAdapter(m.hyper, m.base.config, m.config.hypernetwork, enc.pooled);
    const deltas = new Map<string, tf.Tensor2D>();
    for (const [mod, { A, B }] of adapter.modules) {
      deltas.set(mod, tf.tidy(() => tf.transpose(tf.mul(tf.mean(tf.matMul(A as tf.Tensor3D, B as tf.Tensor3D), 0), s)) as tf.Tensor2D));
    }
    disposeAdapter(adapter);
    disposeEncoding(enc);
    generated.set(t.group, { deltas, tasks: tasks.length });
  }
  const teacherUpdates = new Map(teachers.map((t) => [t.group, teacherDeltas(teachersDir, t.adapter, m.base.config)]));
  try {
    const cos = cosineMatrix(
      teachers.map((t) => generated.get(t.group)!.deltas),
      teachers.map((t) => teacherUpdates.get(t.group)!),
    );
    return teachers.map((t, i) => {
      const others = cos[i]!.filter((_, j) => j !== i);
      return {
        category: t.group,
        tasks: generated.get(t.group)!.tasks,
        cosineOwn: cos[i]![i]!,
        cosineOthers: others.length ? others.reduce((a, b) => a + b, 0) / others.length : NaN,
        cosineMaxOther: others.length ? Math.max(...others) : NaN,
      };
    });
  } finally {
    for (const { deltas } of generated.values()) for (const d of deltas.values()) d.dispose();
    for (const u of teacherUpdates.values()) for (const d of u.values()) d.dispose();
  }
}

/**
 * cos[i][j]: the mean over modules of the cosine between generated update i and teacher update j (each module's
 * matrix flattened), for every pair at once: per module, one product of the stacked updates divided by the
 * outer product of their norms, instead of n² separate cosines (60 categories x 24 modules was 86,400 host round trips, minutes; now 24 products).
 * Modules are those every update has; a zero update's cosine is 0, as cos = x·y / max(|x||y|, 1e-30) gives.
 */
export function cosineMatrix(generated: readonly Map<string, tf.Tensor>[], teachers: readonly Map<string, tf.Tensor>[]): number[][] {
  const all = [...generated, ...teachers];
  if (!generated.length || !teachers.length) throw new Error("cosineMatrix: no updates to compare");
  const mods = [...generated[0]!.keys()].filter((k) => all.every((u) => u.has(k)));
  if (!mods.length) throw new Error("adapterSimilarity: the generated and teacher adapters share no module");
  const sum = tf.tidy(() => {
    let acc = tf.zeros([generated.length, teachers.length]) as tf.Tensor2D;
    for (const k of mods) {
      const g = tf.stack(generated.map((u) => tf.reshape(u.get(k)!, [-1]))) as tf.Tensor2D;
      const t = tf.stack(teachers.map((u) => tf.reshape(u.get(k)!, [-1]))) as tf.Tensor2D;
      const dots = tf.matMul(g, t, false, true);
      const norms = tf.outerProduct(tf.norm(g, "euclidean", 1) as tf.Tensor1D, tf.norm(t, "euclidean", 1) as tf.Tensor1D);
      acc = tf.add(acc, tf.div(dots, tf.maximum(norms, 1e-30)));
    }
    return tf.div(acc, mods.length) as tf.Tensor2D;
  });
  const out = sum.arraySync() as number[][];
  sum.dispose();
  return out;
}

/**
 * Seconds to turn one instruction into an adapter (tokenize, encode, pool, generate), mean over `texts`
 * after one warm-up, read back to the host so the work is done; and the teachers' mean training time.
 */
export function generationVersusTeacherTime(m: TagiModel, tokenizer: T5Tokenizer, texts: readonly string[], teachersDir: string): { generateSeconds: number; teacherSeconds: number; teacherSteps: number; instructions: number } {
  if (texts.length === 0) throw new Error("generationVersusTeacherTime: no instructions");
  const once = (text: string) => {
    const { ids, mask } = tokenizeInstructions(tokenizer, [text], m.config.maxInstructionTokens, () => {});
    const enc = encodeInstructions(m, ids, mask);
    const adapter = generateAdapter(m.hyper, m.base.config, m.config.hypernetwork, enc.pooled);
    for (const { A, B } of adapter.modules.values()) {
      A.dataSync();
      B.dataSync();
    }
    disposeAdapter(adapter);
    disposeEncoding(enc);
  };
  once(texts[0]!);
  const t0 = performance.now();
  for (const t of texts) once(t);
  const generateSeconds = (performance.now() - t0) / 1000 / texts.length;
  const manifest = readTeachersManifest(teachersDir);
  const timed = manifest.teachers.filter((t) => typeof (t as { seconds?: number }).seconds === "number");
  const teacherSeconds = timed.reduce((s, t) => s + (t as unknown as { seconds: number }).seconds, 0) / Math.max(1, timed.length);
  const teacherSteps = timed.reduce((s, t) => s + t.steps, 0) / Math.max(1, timed.length);
  return { generateSeconds, teacherSeconds, teacherSteps, instructions: texts.length };
}
