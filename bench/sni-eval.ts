/**
 * `npm run bench:eval`: the SNI evaluation's speed on a real model, side by side with Hugging Face's
 * `generate` on the same input batches (reference/bench_generate.py, when torch and transformers import).
 *
 * Runs evaluateSni on a fixed sample (every test task, `--instances-per-task` each) four ways: continuous
 * batching (the default: a finished row's place is refilled), fixed batches with finished sequences leaving
 * them, fixed batches with every row decoded to the end (the reference path: its predictions must equal the
 * previous one's), and continuous batching without the reference NLL; then HF generate (greedy, stopping when
 * every row has finished, as HF does) on the same padded batches as the fixed-batch runs. Reports
 * instances/s, the encoder/decoder/scoring/host split, and decoder rows per step; writes
 * results/bench/sni-eval.json and prints a table.
 *
 *   npm run bench:eval -- --model artifacts/small/base/model --format def+2pos --instances-per-task 3
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initBackend, describeBackend } from "../src/backend";
import { evaluateSni, type SniResult } from "../src/eval/sni-eval";
import { loadT5Checkpoint } from "../src/model/weights";
import { T5Tokenizer } from "../src/text/tokenizer";
import { environmentReport } from "../src/environment";
import { PROJECT_DIR, projectRelative } from "../src/project-paths";
import type { PromptFormat } from "../src/text/prompts";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

void (async () => {
  const model = arg("model", "artifacts/small/base/model");
  const format = arg("format", "def+2pos") as PromptFormat;
  const perTask = Number(arg("instances-per-task", "3"));
  const maxInputTokens = Number(arg("max-input-tokens", "1024"));
  const maxNewTokens = Number(arg("max-new-tokens", "128"));
  const batchSize = Number(arg("batch-size", "16"));
  const out = path.resolve(arg("out", "results/bench/sni-eval.json"));
  const backend = await initBackend({ log: false });
  console.error(describeBackend(backend));
  const tokenizer = T5Tokenizer.fromFile();
  const { config, params } = loadT5Checkpoint(path.resolve(model));
  const m = { config, params };
  const common = { format, maxInputTokens, maxNewTokens, batchSize, maxInstancesPerTask: perTask, seed: 0 };
  const batches: { inputIds: number[][]; attentionMask: number[][] }[] = [];
  const runs: Record<string, SniResult> = {};
  const t0 = Date.now();
  // Warm-up (kernels, allocator), not measured: the first path run would otherwise pay it.
  await evaluateSni(m, tokenizer, { ...common, maxInstancesPerTask: 1, maxNewTokens: 4 });
  runs["continuous"] = await evaluateSni(m, tokenizer, common);
  runs["batched, compact"] = await evaluateSni(m, tokenizer, { ...common, decoding: "batched", onBatch: (inputIds, attentionMask) => batches.push({ inputIds, attentionMask }) });
  runs["batched, every row to the end"] = await evaluateSni(m, tokenizer, { ...common, decoding: "batched", compactDecoding: false });
  runs["continuous, no reference NLL"] = await evaluateSni(m, tokenizer, { ...common, referenceNll: false });
  const same = runs["batched, compact"]!.predictions.every((p, i) => p.prediction === runs["batched, every row to the end"]!.predictions[i]!.prediction);
  if (!same) throw new Error("bench:eval: the compacted decoding's predictions differ from decoding every row to the end");
  // Continuous batching pads rows differently (each row's memory is padded to the running batch's), so its
  // floats may differ in the last bits: counted, not required to be zero.
  const continuousDiffer = runs["continuous"]!.predictions.filter((p, i) => p.prediction !== runs["batched, compact"]!.predictions[i]!.prediction).length;
  // HF generate on the same batches (greedy, max_new_tokens, all rows stop at EOS)
  type HfResult = { seconds: number; instances: number; torch: string; transformers: string; threads: number } | { error: string };
  const batchesFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tagi-bench-eval-")), "batches.json");
  fs.writeFileSync(batchesFile, JSON.stringify({ model: path.resolve(model), maxNewTokens, threads: Number(process.env.TAGI_THREADS ?? os.cpus().length), batches }));
  const py = spawnSync("python3", [path.join(PROJECT_DIR, "reference", "bench_generate.py"), batchesFile], { encoding: "utf8", timeout: 3_600_000 });
  const hf: HfResult = py.status === 0 ? (JSON.parse(py.stdout.trim().split("\n").at(-1)!) as HfResult) : { error: (py.stderr || py.stdout).trim().split("\n").slice(-3).join(" | ") };
  const rows = Object.entries(runs).map(([name, r]) => {
    const t = r.timing;
    return { path: name, instances: r.counts.instances, seconds: t.generateMs / 1000, instancesPerSec: t.instancesPerSec, encodeS: t.encodeMs / 1000, decodeS: t.decodeMs / 1000, scoreS: t.scoreMs / 1000, hostS: t.hostMs / 1000, decoderSteps: t.decoderSteps, meanRowsPerStep: t.meanRowsPerStep };
  });
  const env = environmentReport();
  const record = {
    command: ["npm run bench:eval --", ...process.argv.slice(2)].join(" "),
    commit: env.commit,
    ...(env.uncommitted?.length ? { uncommitted: env.uncommitted } : {}),
    backend: env.backend,
    environment: { node: env.node, tfjs: env.tfjs, cpu: env.cpu, cores: env.cores },
    config: { model, format, instancesPerTask: perTask, maxInputTokens, maxNewTokens, batchSize, tasks: runs["continuous"]!.counts.tasks },
    predictionsIdentical: same,
    continuousPredictionsDiffering: continuousDiffer,
    rows,
    huggingFace: hf,
    wallSeconds: (Date.now() - t0) / 1000,
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(projectRelative(record), null, 2) + "\n");
  const f = (x: number, d = 2) => x.toFixed(d);
  console.log(`SNI-103 ${format}, ${record.config.tasks} tasks x ${perTask} instances (${rows[0]!.instances}), inputs up to ${maxInputTokens} tokens, up to ${maxNewTokens} new tokens, batch ${batchSize}, ${env.backend?.backend}:`);
  console.log("| path | instances/s | generate s | encoder s | decoder s | ref. scoring s | host s | decoder steps | rows/step |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.path} | ${f(r.instancesPerSec)} | ${f(r.seconds, 1)} | ${f(r.encodeS, 1)} | ${f(r.decodeS, 1)} | ${f(r.scoreS, 1)} | ${f(r.hostS, 1)} | ${r.decoderSteps} | ${f(r.meanRowsPerStep, 1)} |`);
  if ("seconds" in hf) console.log(`| HF generate (torch ${hf.torch}, ${hf.threads} threads), same batches | ${f(hf.instances / hf.seconds)} | ${f(hf.seconds, 1)} | | | | | | |`);
  else console.log(`HF generate not measured: ${hf.error}`);
  console.log(`predictions identical with and without compaction: ${same}; continuous batching's differing from batched: ${continuousDiffer} of ${rows[0]!.instances}; wrote ${path.relative(process.cwd(), out)}`);
})().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
