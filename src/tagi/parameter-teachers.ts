/**
 * The parameter teachers stage 2 reads for L_ins, and the checks that they can be used: they must sit where
 * the generated adapter sits (the student's base, reading the instance; REFERENCE.md) unless the config asks
 * for the official code's arrangement, and read the student's prompt format; the logit teacher must have
 * been meta-trained on that format too.
 */
import * as path from "node:path";
import type { T5Model } from "../model/t5";
import { checkAdapterShapes, loadPeftAdapter, peftToLoraAdapter } from "../model/weights";
import type { LoraAdapter } from "../model/lora";
import { readTeachersManifest, type TeachersManifest } from "../train/teachers";
import { modelFolderFingerprint, trainedFormat } from "../train/seq2seq";
import type { FinetuneConfig } from "./train";

/** The parameter teachers of a teachers folder, by category, as PEFT-layout adapters (checked against the base). */
export function loadParameterTeachers(dir: string, base: T5Model): { byGroup: Map<string, number>; adapters: LoraAdapter[]; manifest: TeachersManifest } {
  const manifest = readTeachersManifest(dir);
  if (manifest.groupBy !== "category") throw new Error(`parameter teachers in ${dir} are per ${manifest.groupBy}; TAGI's L_ins uses one per category`);
  const byGroup = new Map<string, number>();
  const adapters: LoraAdapter[] = [];
  for (const t of manifest.teachers) {
    const peft = loadPeftAdapter(path.join(dir, t.adapter));
    checkAdapterShapes(peft, base.config);
    byGroup.set(t.group, adapters.length);
    adapters.push(peftToLoraAdapter(peft));
  }
  return { byGroup, adapters, manifest };
}

/**
 * Refuses parameter teachers that do not sit where the generated adapter sits (see FinetuneConfig's
 * teacherPlacement), and teachers of another prompt format than the student's, with what differs.
 * Returns what the run record keeps about them.
 */
export function checkTeacherPlacement(c: Pick<FinetuneConfig, "base" | "teachers" | "teacherPlacement" | "format">): Record<string, unknown> {
  const manifest = readTeachersManifest(c.teachers!);
  const studentBase = modelFolderFingerprint(c.base!);
  const sameBase = manifest.baseFingerprint !== undefined ? manifest.baseFingerprint === studentBase : path.resolve(manifest.base) === path.resolve(c.base!);
  const record = { placement: c.teacherPlacement, base: manifest.base, sameBaseAsStudent: sameBase, input: manifest.input, format: manifest.format };
  if (manifest.input === "full" && manifest.format !== c.format) {
    throw new Error(`finetune: the parameter teachers in ${c.teachers} read ${manifest.format} prompts, this run trains on ${c.format}: train teachers for ${c.format} (one format per model, as the paper)`);
  }
  if (c.teacherPlacement === "official") return record;
  const problems: string[] = [];
  if (!sameBase) {
    problems.push(`they sit on ${manifest.base}${manifest.baseFingerprint ? ` (content ${manifest.baseFingerprint.slice(0, 12)})` : ""}, the generated adapter on ${path.resolve(c.base!)} (content ${studentBase.slice(0, 12)})`);
  }
  if (manifest.input !== "instance") problems.push(`they read the ${manifest.input} prompt, the generated adapter's model reads the instance only`);
  if (problems.length) {
    throw new Error(
      `finetune: the parameter teachers in ${c.teachers} do not sit where the generated adapter sits: ${problems.join("; ")}. ` +
        `L_ins would pull the generated update towards another model's. Train teachers with base = this run's base and input = "instance" ` +
        `(the default), or set teacherPlacement: "official" to compare with the released code's arrangement on purpose.`,
    );
  }
  return record;
}

/**
 * The logit teacher must have been meta-trained on the student's prompt format (the paper trains one model
 * per format): its run record (run.json beside its model folder, when it has one) is checked.
 */
export function checkLogitTeacherFormat(c: Pick<FinetuneConfig, "teacher" | "format">): void {
  const t = trainedFormat(c.teacher!);
  if (t && t.format !== c.format) {
    throw new Error(`finetune: the logit teacher ${c.teacher} was meta-trained on ${t.format} prompts (${t.record}), this run trains on ${c.format}: use the ${c.format} meta-trained model`);
  }
}
