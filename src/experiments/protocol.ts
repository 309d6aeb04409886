/**
 * The protocol of a results record: what its numbers depend on besides the experiment and the seed. That is
 * the scale's evaluation settings (instances, length limits, decoding), the training steps and overrides every
 * experiment gets, the shared models it starts from and distils from (by path), and the published artifacts
 * behind those paths (by the sha256 of their artifact.json, which lists every weight file's sha256).
 *
 * A table mixes records of one protocol only. When a scale's config moves on (a longer campaign replaces a
 * 50-step grid, an artifact is retrained), the older records are superseded: the report lists them, by file,
 * with what changed, and leaves them out of every table; the runner trains them again instead of calling them
 * done.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { PROJECT_DIR } from "../project-paths";
import { configDifferences } from "../train/resume";
import type { ExperimentRecord, ScaleSettings } from "./runner";

export interface RecordProtocol {
  eval: ScaleSettings["eval"];
  steps: ScaleSettings["steps"];
  set: ScaleSettings["set"];
  formats: ScaleSettings["formats"];
  base: string;
  teachers: string;
  logitTeachers: ScaleSettings["logitTeachers"];
  teacherLogitCaches: NonNullable<ScaleSettings["teacherLogitCaches"]>;
  /** Each published artifact of the scale (artifacts/<scale>/<name>) present when the record was made: sha256 of its artifact.json. */
  artifacts: Record<string, string>;
}

/** sha256 of each published artifact's artifact.json that the scale's prepare stages publish and that exists. */
export function publishedArtifacts(scale: ScaleSettings, root = PROJECT_DIR): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of scale.prepare) {
    if (!p.publish) continue;
    const file = path.join(root, p.publish.to, "artifact.json");
    if (fs.existsSync(file)) out[p.publish.to] = createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  }
  return out;
}

/** The protocol experiments at `scale` run under now (the config files and the artifacts on disk). */
export function scaleProtocol(scale: ScaleSettings, root = PROJECT_DIR): RecordProtocol {
  return {
    eval: scale.eval,
    steps: scale.steps,
    set: scale.set,
    formats: scale.formats,
    base: scale.base,
    teachers: scale.teachers,
    logitTeachers: scale.logitTeachers,
    teacherLogitCaches: scale.teacherLogitCaches ?? {},
    artifacts: publishedArtifacts(scale, root),
  };
}

/**
 * A record's protocol: the one it stored, or, for records made before protocols were stored, the one its scale
 * snapshot gives (no artifact hashes: those records predate published artifacts).
 */
export function recordProtocol(rec: Pick<ExperimentRecord, "scale" | "protocol">): RecordProtocol {
  if (rec.protocol) return rec.protocol;
  const s = rec.scale;
  return { eval: s.eval, steps: s.steps, set: s.set, formats: s.formats, base: s.base, teachers: s.teachers, logitTeachers: s.logitTeachers ?? {}, teacherLogitCaches: s.teacherLogitCaches ?? {}, artifacts: {} };
}

/**
 * How a record's protocol differs from the current one, in words ("eval.maxInstancesPerTask: 5 -> null");
 * empty when the record belongs in today's tables. An artifact counts only when both sides name it: one
 * published after the record was made is the same model the record read from runs/ (its copy), while one
 * whose artifact.json changed was retrained.
 */
export function protocolDifferences(record: RecordProtocol, current: RecordProtocol): string[] {
  const { artifacts: ra, ...rest } = record;
  const { artifacts: ca, ...currentRest } = current;
  const out = configDifferences(JSON.parse(JSON.stringify(rest)) as unknown, JSON.parse(JSON.stringify(currentRest)) as unknown).map((d) => `${d.key}: ${d.from} -> ${d.to}`);
  for (const [artifact, sha] of Object.entries(ra)) {
    const now = ca[artifact];
    if (now !== undefined && now !== sha) out.push(`${artifact} was published again (artifact.json sha256 ${sha.slice(0, 12)} -> ${now.slice(0, 12)})`);
  }
  return out;
}

/** Only these differences: the record's model is still the one today's protocol trains (re-evaluating it is sound). */
export const onlyEvaluationDiffers = (differences: readonly string[]): boolean => differences.every((d) => d.startsWith("eval."));
