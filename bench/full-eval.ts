/**
 * `npm run bench -- --full-eval [--full-eval-model DIR] [--full-eval-precision fp32,bf16]`: the whole SNI-103
 * evaluation at the paper's lengths, timed inside the bench run so that its time sits in the same table as the
 * training steps (issue [speed]: "the full SNI-103 Def+2Pos evaluation ... in <= 10 minutes").
 *
 * It runs what a user runs, `tagi evaluate` (every instance of the 103 test tasks, Def + 2 Pos, up to 1024 input
 * and 128 new tokens, greedy with continuous batching, reference NLL included), in a fresh process per
 * precision, and reads the split between encoder, decoder, reference scoring and host time, the decoder's rows
 * per step and the peak resident memory from the summary it writes. The records go to a temporary folder:
 * the bench keeps the timings, not the predictions (results/eval/ holds those).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The protocol measured: the campaign's evaluation of a Def + 2 Pos model. */
export const FULL_EVAL = { format: "def+2pos", maxInputTokens: 1024, maxNewTokens: 128, batchSize: 64 } as const;

export interface FullEvalResult {
  precision: string;
  model: string;
  backend: string;
  threads: number;
  wallSeconds: number;
  instances: number;
  /** Instances per second of the whole command (loading, tokenising and writing included). */
  instancesPerSecond: number;
  prepareSeconds: number;
  encoderSeconds: number;
  decoderSeconds: number;
  scoringSeconds: number;
  hostSeconds: number;
  decoderSteps: number;
  meanRowsPerStep: number;
  rougeL: number;
  peakRssBytes: number | null;
}

interface Summary {
  wallSeconds: number;
  peakRssBytes?: number | null;
  backend: { backend: string; threads: number; precision?: { inUse: string } } | null;
  timing: { prepareMs: number; encodeMs: number; decodeMs: number; scoreMs: number; hostMs: number; decoderSteps: number; meanRowsPerStep: number };
  counts: { instances: number };
  overall: { rougeL: number };
}

/** The precisions `--full-eval-precision` accepts (TAGI_PRECISION's values). */
export function parseFullEvalPrecisions(text: string): string[] {
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((p) => p !== "fp32" && p !== "bf16");
  if (list.length === 0 || bad.length) throw new Error(`--full-eval-precision: expected fp32, bf16 or both (comma-separated), got "${text}"`);
  return list;
}

/** One full evaluation in its own process; an error (with the command's last lines) rather than a throw, as the bench's workers. */
export function runFullEval(o: { root: string; model: string; precision: string; threads: number; env?: Record<string, string>; instancesPerTask?: number }): FullEvalResult | { error: string } {
  const out = mkdtempSync(join(tmpdir(), "tagi-full-eval-"));
  const args = [
    "--import", "tsx", join(o.root, "src", "cli.ts"), "evaluate",
    "--model", o.model, "--benchmark", "sni", "--format", FULL_EVAL.format,
    "--max-input-tokens", String(FULL_EVAL.maxInputTokens), "--max-new-tokens", String(FULL_EVAL.maxNewTokens),
    "--batch-size", String(FULL_EVAL.batchSize), "--no-progress", "--out", join(out, "eval"),
    ...(o.instancesPerTask ? ["--max-instances-per-task", String(o.instancesPerTask)] : []),
  ];
  process.stderr.write(`[bench] full SNI-103 evaluation (${FULL_EVAL.format}, ${FULL_EVAL.maxInputTokens} / ${FULL_EVAL.maxNewTokens} tokens), ${o.precision}, ${o.model} ...`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: o.root, encoding: "utf8", env: { ...process.env, ...o.env, TAGI_PRECISION: o.precision, TAGI_THREADS: String(o.threads) } });
  process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  try {
    if (r.status !== 0) return { error: `tagi evaluate exit ${r.status}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}` };
    const s = JSON.parse(readFileSync(join(out, "eval", "summary.json"), "utf8")) as Summary;
    const inUse = s.backend?.precision?.inUse ?? "?";
    // A bf16 request the machine cannot honour falls back to fp32 with a message: the row says what ran.
    return {
      precision: inUse === o.precision ? o.precision : `${o.precision} requested, ${inUse} used`,
      model: o.model,
      backend: s.backend?.backend ?? "?",
      threads: s.backend?.threads ?? o.threads,
      wallSeconds: s.wallSeconds,
      instances: s.counts.instances,
      instancesPerSecond: s.counts.instances / s.wallSeconds,
      prepareSeconds: s.timing.prepareMs / 1000,
      encoderSeconds: s.timing.encodeMs / 1000,
      decoderSeconds: s.timing.decodeMs / 1000,
      scoringSeconds: s.timing.scoreMs / 1000,
      hostSeconds: s.timing.hostMs / 1000,
      decoderSteps: s.timing.decoderSteps,
      meanRowsPerStep: s.timing.meanRowsPerStep,
      rougeL: s.overall.rougeL,
      peakRssBytes: s.peakRssBytes ?? null,
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The table of the evaluations (rows; the first is the header); `full`: every instance, so the 10-minute target applies. */
export function fullEvalRows(results: (FullEvalResult | { error: string })[], full: boolean): string[][] {
  const m = (s: number) => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  const rows = [["precision", "wall", "instances/s", "encoder", "decoder", "rows/step", "reference scoring", "host", "ROUGE-L", "peak RSS GiB", "<= 10 min"]];
  for (const r of results) {
    if ("error" in r) {
      rows.push([`failed: ${r.error}`, ...Array<string>(10).fill("-")]);
      continue;
    }
    rows.push([
      r.precision,
      m(r.wallSeconds),
      r.instancesPerSecond.toFixed(1),
      m(r.encoderSeconds),
      m(r.decoderSeconds),
      r.meanRowsPerStep.toFixed(1),
      m(r.scoringSeconds),
      m(r.hostSeconds),
      r.rougeL.toFixed(2),
      r.peakRssBytes === null ? "-" : (r.peakRssBytes / 2 ** 30).toFixed(2),
      !full ? "-" : r.wallSeconds <= 600 ? "yes" : "no",
    ]);
  }
  return rows;
}
