/**
 * The experiment records under results/ (results/NAME/<scale>/seed-S/experiment.json), split by protocol
 * (src/experiments/protocol.ts): those of each scale's current protocol feed the tables and notebooks; the
 * others are listed, with what changed, and never mixed in.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PROJECT_DIR } from "../project-paths";
import { protocolDifferences, recordProtocol, scaleProtocol, type RecordProtocol } from "./protocol";
import { experimentFormats, listExperiments, loadExperiment, loadScale, resultsRoot, type ExperimentRecord } from "./runner";
import type { PromptFormat } from "../text/prompts";

/** A record left out of the tables: made under another protocol than its scale's config gives now. */
export interface SupersededRecord {
  scale: string;
  name: string;
  seed: number;
  /** Project-relative path of its experiment.json. */
  file: string;
  startedAt: string;
  commit: string | null;
  differences: string[];
}

/**
 * Every experiment record under `resultsDir` made under its scale's current protocol (src/experiments/protocol.ts),
 * by scale, then experiment name. The others go to `superseded` when given (never into a table).
 */
export function collectRecords(resultsDir = resultsRoot(), superseded?: SupersededRecord[]): Map<string, Map<string, ExperimentRecord[]>> {
  const out = new Map<string, Map<string, ExperimentRecord[]>>();
  const protocols = new Map<string, RecordProtocol | string>();
  const currentProtocol = (scale: string): RecordProtocol | string => {
    if (!protocols.has(scale)) {
      try {
        protocols.set(scale, scaleProtocol(loadScale(scale)));
      } catch (e) {
        protocols.set(scale, `configs/${scale} cannot be read now (${(e as Error).message.split("\n")[0]})`);
      }
    }
    return protocols.get(scale)!;
  };
  for (const name of listExperiments()) {
    const dir = path.join(resultsDir, name);
    if (!fs.existsSync(dir)) continue;
    for (const scale of fs.readdirSync(dir).sort()) {
      const sdir = path.join(dir, scale);
      if (!fs.statSync(sdir).isDirectory()) continue;
      for (const seedDir of fs.readdirSync(sdir).sort()) {
        const file = path.join(sdir, seedDir, "experiment.json");
        if (!fs.existsSync(file)) continue;
        const rec = JSON.parse(fs.readFileSync(file, "utf8")) as ExperimentRecord;
        const current = currentProtocol(scale);
        const differences = typeof current === "string" ? [current] : protocolDifferences(recordProtocol(rec), current);
        if (differences.length) {
          superseded?.push({ scale, name, seed: rec.seed, file: path.relative(PROJECT_DIR, file), startedAt: rec.startedAt, commit: rec.commit, differences });
          continue;
        }
        // Row labels come from the experiment's current definition (a renamed row, e.g. "HINT" -> "HINT-style",
        // applies to records made before the rename).
        rec.experiment = { ...rec.experiment, row: loadExperiment(name).row };
        // Records written before the evaluation reported the reference NLL: take it from the evaluation's summary.
        for (const [format, m] of Object.entries(rec.metrics)) {
          if (typeof m.referenceNll === "number") continue;
          const summary = path.join(sdir, seedDir, `eval-${format.replace("+", "")}`, "summary.json");
          const nll = fs.existsSync(summary) ? (JSON.parse(fs.readFileSync(summary, "utf8")) as { referenceNll?: { overall: number } | null }).referenceNll : null;
          m.referenceNll = nll?.overall ?? null;
        }
        const byName = out.get(scale) ?? new Map<string, ExperimentRecord[]>();
        byName.set(name, [...(byName.get(name) ?? []), rec]);
        out.set(scale, byName);
      }
    }
  }
  return out;
}

/**
 * The records left out of every table, grouped by scale and by what changed since they were made (one grid's
 * records share it), each group with its experiments, seeds, dates and commits.
 */
export function supersededSection(records: readonly SupersededRecord[]): string[] {
  if (!records.length) return [];
  const groups = new Map<string, SupersededRecord[]>();
  for (const r of records) {
    const key = JSON.stringify([r.scale, r.differences]);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const lines = [
    "## Superseded records",
    "",
    "These records were made under an earlier protocol of their scale (other evaluation settings, training budget or shared models) and are in no table above. " +
      "`npm run experiment` runs such an experiment again under the current protocol (re-evaluation alone is refused unless only the evaluation settings changed); git history has the tables they gave.",
    "",
  ];
  for (const recs of groups.values()) {
    const byName = new Map<string, number[]>();
    for (const r of recs) byName.set(r.name, [...(byName.get(r.name) ?? []), r.seed].sort((a, b) => a - b));
    const dates = recs.map((r) => r.startedAt.slice(0, 10)).sort();
    const commits = [...new Set(recs.map((r) => r.commit?.slice(0, 7) ?? "unknown"))];
    lines.push(
      `### \`${recs[0]!.scale}\`: ${recs.length} record${recs.length > 1 ? "s" : ""}, made ${dates[0]}${dates.at(-1) !== dates[0] ? ` to ${dates.at(-1)}` : ""} (commit${commits.length > 1 ? "s" : ""} ${commits.slice(0, 4).join(", ")}${commits.length > 4 ? ", ..." : ""})`,
      "",
      `Experiments (seeds): ${[...byName].map(([n, seeds]) => `${n} (${seeds.join(", ")})`).join(", ")}.`,
      "",
      "What differs from the current protocol:",
      "",
      ...recs[0]!.differences.slice(0, 12).map((d) => `- ${d}`),
      ...(recs[0]!.differences.length > 12 ? [`- ... and ${recs[0]!.differences.length - 12} more`] : []),
      "",
    );
  }
  return lines;
}

/**
 * The cells a scale's tables expect that have no record under the current protocol: every seed of the scale
 * for experiments that train (or probe a trained model), the first seed for those that evaluate a fixed model
 * (No FT, Tk-Instruct, the mean adapter: another seed gives the same numbers). A record made with --formats
 * that lacks one of the experiment's formats is listed with the formats it lacks.
 */
export function missingCells(scale: string, byName: ReadonlyMap<string, readonly ExperimentRecord[]>): { name: string; seeds: number[]; formats?: PromptFormat[] }[] {
  const settings = loadScale(scale);
  const seeds = settings.seeds;
  const out: { name: string; seeds: number[]; formats?: PromptFormat[] }[] = [];
  for (const name of listExperiments()) {
    const spec = loadExperiment(name);
    const expected = spec.stage || spec.uses ? seeds : seeds.slice(0, 1);
    const recs = new Map((byName.get(name) ?? []).map((r) => [r.seed, r]));
    const absent = expected.filter((x) => !recs.has(x));
    if (absent.length) out.push({ name, seeds: absent });
    if (spec.analysis) continue;
    // partial records, grouped by the formats they lack
    const byLack = new Map<string, number[]>();
    for (const seed of expected.filter((x) => recs.has(x))) {
      const lack = experimentFormats(spec, settings, null).filter((f) => !recs.get(seed)!.metrics[f]);
      if (lack.length) byLack.set(lack.join(","), [...(byLack.get(lack.join(",")) ?? []), seed]);
    }
    for (const [lack, s] of byLack) out.push({ name, seeds: s, formats: lack.split(",") as PromptFormat[] });
  }
  return out;
}
