/**
 * TAGI's distillation losses (paper Eq. 3-6), L_finetune = L_ce + λ1·L_kl + λ2·L_ins:
 *
 * - L_ce (label level): the student's token cross-entropy on the targets (`crossEntropyLoss` of the model).
 * - L_kl (logit level, `distillationKl`): T²·KL(teacher ‖ student) of the temperature-T output
 *   distributions, averaged over target positions with padding masked (Hinton et al.'s T² keeps the gradient
 *   scale independent of T). The teacher is the meta-trained model reading instruction + instance.
 * - L_ins (parameter level, `parameterAlignmentLoss`): mean squared error between the generated LoRA and the
 *   task category's teacher LoRA, A with A and B with B, both with their LoRA scaling folded into B so the
 *   two sides follow one convention; or between the products s·A·B (option "product", invariant to the
 *   A·R, R⁻¹·B ambiguity of a factorisation); or that product error relative to the teacher's
 *   (option "relative-product", beyond the paper: ‖ΔW_g − ΔW_t‖² / ‖ΔW_t‖² per example, 1 for a zero adapter,
 *   so λ2 means the same whatever the teachers' scale; the plain MSEs are about 1e-3 of L_ce when the
 *   teachers are briefly trained, which makes λ2 = 1 a no-op); or 1 − cosine(ΔW_g, ΔW_t) per example
 *   (option "cosine", beyond the paper: the direction of the teacher's update without its size, for
 *   teachers whose size says more about how long they trained than about the task).
 *
 * The official code differs (REFERENCE.md): 0.4·KL_T + 0.6·CE with no T² and no padding mask, and the MSE
 * taken between swapped, untransposed factors. `distillationKl`'s options reproduce its KL for comparison.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { LoraAdapter } from "../model/lora";

export interface KlOptions {
  temperature: number;
  /** Multiply by T² (Hinton). Default true. */
  scaleByTemperatureSquared?: boolean;
  /** Average over target positions whose label is not -100 (default), or over every position (official code). */
  maskPadding?: boolean;
}

/**
 * T²·KL(softmax(teacher/T) ‖ softmax(student/T)) per position, summed over the vocabulary and averaged over
 * valid target positions. Logits [B, T, V]; labels [B, T] with -100 on padding. Gradients flow into the
 * student logits only (the teacher's are constants here).
 */
export function distillationKl(studentLogits: tf.Tensor3D, teacherLogits: tf.Tensor3D, labels: tf.Tensor2D, opts: KlOptions): tf.Scalar {
  const T = opts.temperature;
  if (!(T > 0) || !Number.isFinite(T)) throw new Error(`distillationKl: temperature must be a finite number > 0, got ${T}`);
  if (studentLogits.shape.join() !== teacherLogits.shape.join()) {
    throw new Error(`distillationKl: student logits [${studentLogits.shape}] and teacher logits [${teacherLogits.shape}] differ in shape`);
  }
  const [b, t] = studentLogits.shape;
  if (labels.shape[0] !== b || labels.shape[1] !== t) throw new Error(`distillationKl: labels [${labels.shape}] do not match logits [${studentLogits.shape}]`);
  return tf.tidy(() => {
    const logPs = tf.logSoftmax(tf.div(studentLogits, T));
    const logPt = tf.logSoftmax(tf.div(teacherLogits, T));
    const perPosition = tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs)), -1); // [B, T]
    const weight = opts.maskPadding === false ? tf.onesLike(perPosition) : tf.cast(tf.notEqual(labels, -100), "float32");
    const mean = tf.div(tf.sum(tf.mul(perPosition, weight)), tf.maximum(tf.sum(weight), 1));
    return (opts.scaleByTemperatureSquared === false ? mean : tf.mul(mean, T * T)) as tf.Scalar;
  });
}

export type AlignmentMode = "factors" | "product" | "relative-product" | "cosine";
export const ALIGNMENT_MODES: readonly AlignmentMode[] = ["factors", "product", "relative-product", "cosine"];

/**
 * L_ins: mean over the adapted modules of the MSE between generated and teacher adapters, both in the
 * per-example layout (A [B, in, r], B [B, r, out]; `stackTeacherAdapters` builds the teachers' side).
 * "factors": MSE(A_g, A_t) + MSE(s_g·B_g, s_t·B_t); "product": MSE(s_g·A_g·B_g, s_t·A_t·B_t);
 * "relative-product": mean over examples of ‖s_g·A_g·B_g − s_t·A_t·B_t‖²_F / ‖s_t·A_t·B_t‖²_F;
 * "cosine": mean over examples of 1 − ⟨ΔW_g, ΔW_t⟩_F / (‖ΔW_g‖_F·‖ΔW_t‖_F) (ε = 1e-12 under the root keeps a
 * zero generated update finite). In both, a teacher with ΔW = 0 is an error: the term is undefined.
 * Every module of the generated adapter must have a teacher, and vice versa; "factors" needs the same rank
 * on both sides, the modes on s·A·B do not (the rank sensitivity rows compare rank 16 or 64 with rank-32
 * teachers that way).
 */
export function parameterAlignmentLoss(generated: LoraAdapter, teacher: LoraAdapter, mode: AlignmentMode = "factors"): tf.Scalar {
  if (generated.layout !== "perExample" || teacher.layout !== "perExample") {
    throw new Error("parameterAlignmentLoss: both adapters must be in the per-example layout (see stackTeacherAdapters)");
  }
  if (!ALIGNMENT_MODES.includes(mode)) throw new Error(`parameterAlignmentLoss: unknown alignment mode ${JSON.stringify(mode)} (valid: ${ALIGNMENT_MODES.join(", ")})`);
  const problems: string[] = [];
  for (const m of generated.modules.keys()) if (!teacher.modules.has(m)) problems.push(`the teacher has no adapter for ${m}`);
  for (const m of teacher.modules.keys()) if (!generated.modules.has(m)) problems.push(`the generated adapter has no ${m}, the teacher does`);
  for (const [m, g] of generated.modules) {
    const t = teacher.modules.get(m);
    if (!t) continue;
    // "factors" compares A with A and B with B, so the ranks must agree; the other modes compare the update
    // s·A·B [batch, in, out], which any rank gives (a rank-16 generator against rank-32 teachers).
    const same = mode === "factors" ? g.A.shape.join() === t.A.shape.join() && g.B.shape.join() === t.B.shape.join() : g.A.shape[0] === t.A.shape[0] && g.A.shape[1] === t.A.shape[1] && g.B.shape[0] === t.B.shape[0] && g.B.shape[2] === t.B.shape[2];
    if (!same) problems.push(`${m}: generated A [${g.A.shape}] B [${g.B.shape}], teacher A [${t.A.shape}] B [${t.B.shape}] (${mode === "factors" ? "rank, " : ""}batch or features differ)`);
  }
  if (problems.length) throw new Error(`parameterAlignmentLoss: generated and teacher adapters do not match:\n  - ${problems.slice(0, 8).join("\n  - ")}`);
  if (generated.modules.size === 0) throw new Error("parameterAlignmentLoss: empty adapters");
  // "relative-product" and "cosine" divide by the teacher's ‖ΔW_t‖²: its per-module, per-example values are
  // kept from the tidy as one [modules, B] tensor and read once, to refuse a zero teacher update by name.
  const moduleNames = [...generated.modules.keys()];
  let teacherNorms: tf.Tensor | null = null;
  const loss = tf.tidy(() => {
    const terms: tf.Scalar[] = [];
    const norms: tf.Tensor[] = [];
    for (const [m, g] of generated.modules) {
      const t = teacher.modules.get(m)!;
      if (mode === "factors") {
        const a = tf.mean(tf.squaredDifference(g.A, t.A));
        const bb = tf.mean(tf.squaredDifference(tf.mul(g.B, generated.scaling), tf.mul(t.B, teacher.scaling)));
        terms.push(tf.add(a, bb) as tf.Scalar);
        continue;
      }
      const dg = tf.mul(tf.matMul(g.A as tf.Tensor3D, g.B as tf.Tensor3D), generated.scaling);
      const dt = tf.mul(tf.matMul(t.A as tf.Tensor3D, t.B as tf.Tensor3D), teacher.scaling);
      if (mode === "product") {
        terms.push(tf.mean(tf.squaredDifference(dg, dt)) as tf.Scalar);
        continue;
      }
      const norm = tf.sum(tf.square(dt), [1, 2]);
      norms.push(norm);
      const safeNorm = tf.maximum(norm, 1e-30);
      if (mode === "cosine") {
        const dot = tf.sum(tf.mul(dg, dt), [1, 2]);
        const ng = tf.sqrt(tf.add(tf.sum(tf.square(dg), [1, 2]), 1e-12));
        terms.push(tf.mean(tf.sub(1, tf.div(dot, tf.mul(ng, tf.sqrt(safeNorm))))) as tf.Scalar);
      } else {
        terms.push(tf.mean(tf.div(tf.sum(tf.squaredDifference(dg, dt), [1, 2]), safeNorm)) as tf.Scalar);
      }
    }
    if (norms.length) teacherNorms = tf.keep(tf.stack(norms));
    return tf.div(tf.addN(terms), terms.length) as tf.Scalar;
  });
  if (teacherNorms !== null) {
    const norms = teacherNorms as tf.Tensor;
    const [, batch] = norms.shape as [number, number];
    const values = norms.dataSync();
    norms.dispose();
    const at = values.findIndex((x) => !(x > 0));
    if (at >= 0) {
      loss.dispose();
      throw new Error(`parameterAlignmentLoss ("${mode}"): the teacher's s·A·B is zero for ${moduleNames[Math.floor(at / batch)]}, example ${at % batch}; the term is undefined (use "product" or "factors")`);
    }
  }
  return loss;
}

/**
 * The official code's L_ins (REFERENCE.md), for comparison with the paper's: 1000·[MSE(A_g, B_t) +
 * MSE(B_g, A_t)] with the factors swapped and compared untransposed as the code stores them (generated A
 * [in, r] against the teacher's PEFT B [out, r]; generated B [r, out] against the teacher's PEFT A [r, in];
 * it only runs where in = out, as for q and v of T5), unscaled on both sides, then gated as sigmoid(L)·L.
 * Mean over modules of the per-module MSE sums. Both adapters in the per-example layout.
 */
export function officialAlignmentLoss(generated: LoraAdapter, teacher: LoraAdapter): tf.Scalar {
  if (generated.layout !== "perExample" || teacher.layout !== "perExample") throw new Error("officialAlignmentLoss: both adapters must be in the per-example layout");
  for (const [m, g] of generated.modules) {
    const t = teacher.modules.get(m);
    if (!t) throw new Error(`officialAlignmentLoss: the teacher has no adapter for ${m}`);
    const [, din, r] = g.A.shape;
    const dout = g.B.shape[2];
    if (din !== dout) throw new Error(`officialAlignmentLoss: ${m} maps ${din} to ${dout} features; the official swapped comparison needs a square projection`);
    if (t.A.shape.join() !== g.A.shape.join() || t.B.shape.join() !== g.B.shape.join()) throw new Error(`officialAlignmentLoss: ${m}: generated and teacher shapes differ (rank ${r})`);
  }
  return tf.tidy(() => {
    const terms = [...generated.modules].map(([m, g]) => {
      const t = teacher.modules.get(m)!;
      // per-example teacher B is [B, r, out]: PEFT's [out, r] is its transpose; likewise A.
      const tBpeft = tf.transpose(t.B, [0, 2, 1]);
      const tApeft = tf.transpose(t.A, [0, 2, 1]);
      return tf.add(tf.mean(tf.squaredDifference(g.A, tBpeft)), tf.mean(tf.squaredDifference(g.B, tApeft)));
    });
    const l = tf.mul(tf.div(tf.addN(terms), terms.length), 1000);
    return tf.mul(tf.sigmoid(l), l) as tf.Scalar;
  });
}

/**
 * Teacher adapters (PEFT layout, one per group) as one per-example adapter: example i gets teacher
 * `groupOfExample[i]`. All teachers must share modules, rank and scaling. New tensors; the caller disposes.
 */
export function stackTeacherAdapters(teachers: readonly LoraAdapter[], groupOfExample: readonly number[]): LoraAdapter {
  if (teachers.length === 0) throw new Error("stackTeacherAdapters: no teachers");
  const first = teachers[0]!;
  for (const [i, t] of teachers.entries()) {
    if (t.layout !== "peft") throw new Error(`stackTeacherAdapters: teacher ${i} is not in the PEFT layout`);
    if (t.scaling !== first.scaling) throw new Error(`stackTeacherAdapters: teacher ${i} has scaling ${t.scaling}, teacher 0 ${first.scaling}`);
    const a = [...t.modules.keys()].sort().join();
    if (a !== [...first.modules.keys()].sort().join()) throw new Error(`stackTeacherAdapters: teacher ${i} adapts other modules than teacher 0`);
  }
  for (const g of groupOfExample) {
    if (!Number.isInteger(g) || g < 0 || g >= teachers.length) throw new Error(`stackTeacherAdapters: example teacher index ${g} is out of range [0, ${teachers.length})`);
  }
  const idx = tf.tensor1d([...groupOfExample], "int32");
  const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  try {
    for (const m of first.modules.keys()) {
      for (const t of teachers) {
        const x = t.modules.get(m)!;
        const f = first.modules.get(m)!;
        if (x.A.shape.join() !== f.A.shape.join() || x.B.shape.join() !== f.B.shape.join()) {
          throw new Error(`stackTeacherAdapters: ${m} has A [${x.A.shape}] B [${x.B.shape}] in one teacher, A [${f.A.shape}] B [${f.B.shape}] in teacher 0`);
        }
      }
      modules.set(
        m,
        tf.tidy(() => ({
          // PEFT stores A [r, in] and B [out, r]; the per-example layout is A [in, r] and B [r, out].
          A: tf.gather(tf.stack(teachers.map((t) => tf.transpose(t.modules.get(m)!.A))), idx),
          B: tf.gather(tf.stack(teachers.map((t) => tf.transpose(t.modules.get(m)!.B))), idx),
        })),
      );
    }
  } catch (e) {
    for (const { A, B } of modules.values()) (A.dispose(), B.dispose());
    throw e;
  } finally {
    idx.dispose();
  }
  return { layout: "perExample", scaling: first.scaling, dropout: 0, modules };
}
