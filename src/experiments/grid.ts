/**
 * The local executor for a grid (experiments x seeds at one scale): cells one after another, or `parallel` at a
 * time, each with its share of the cores (TAGI_THREADS = cores / parallel).
 *
 * Why cells in parallel on one machine: the small models here do not keep two cores busy in one process. On
 * the 2-core machine, a teacher run at 1 thread beside another job made 0.8x the steps of a 2-thread run alone,
 * and the meta-training beside it 0.6x: about 1.4x the work per hour with two cells at a time.
 *
 * The shared stages are prepared once before any cell starts (two cells must not both train a missing stage),
 * and probes (which read another experiment's model) run after the cells they read, as under Slurm.
 */
import { availableParallelism } from "node:os";
import type { PromptFormat } from "../text/prompts";
import { ensurePrepared, experimentFormats, loadExperiment, loadScale, readsLogitCache, runExperiment, type ExperimentRecord, type ScaleSettings } from "./runner";
import { gridCells } from "./slurm";

export interface GridRunResult {
  done: ExperimentRecord[];
  failed: { name: string; seed: number; error: string }[];
}

/**
 * The logit caches the grid's training stages read (see readsLogitCache). An experiment without a training
 * stage (a probe or analysis) may run the experiment it reads inside its cell: then every cache is prepared
 * up front (null), so that two cells never build one.
 */
function gridLogitCaches(names: readonly string[], scale: ScaleSettings, only: readonly PromptFormat[] | null): PromptFormat[] | null {
  const caches = new Set<PromptFormat>();
  for (const name of names) {
    const spec = loadExperiment(name);
    if (!spec.stage) return null;
    for (const f of experimentFormats(spec, scale, only)) if (readsLogitCache(spec, scale, f)) caches.add(f);
  }
  return [...caches];
}

/** Runs every cell (see the module comment); a failed cell is reported and the others go on. */
export async function runGridLocal(o: { scale: string; names: readonly string[]; seeds: readonly number[]; parallel?: number; formats?: readonly PromptFormat[] | null; log?: (line: string) => void }): Promise<GridRunResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const parallel = o.parallel ?? 1;
  if (!Number.isInteger(parallel) || parallel < 1) throw new Error(`--parallel must be an integer >= 1, got ${parallel}`);
  const cells = gridCells(o.names, o.seeds);
  const result: GridRunResult = { done: [], failed: [] };
  const previous = process.env.TAGI_THREADS;
  try {
    // The shared stages run alone, before any cell: they get every core, not a cell's share.
    const scale = loadScale(o.scale);
    await ensurePrepared(scale, log, { formats: o.formats ?? null, logitCaches: gridLogitCaches(o.names, scale, o.formats ?? null) });
    if (parallel > 1) {
      const threads = Math.max(1, Math.floor((previous ? Number(previous) : availableParallelism()) / parallel));
      process.env.TAGI_THREADS = String(threads); // read by every CLI process the cells start
      log(`[grid] ${cells.length} cells, ${parallel} at a time, ${threads} thread${threads > 1 ? "s" : ""} each`);
    }
    for (const layer of [0, 1] as const) {
      const queue = cells.filter((c) => c.layer === layer);
      const worker = async () => {
        for (let c = queue.shift(); c; c = queue.shift()) {
          try {
            result.done.push(await runExperiment(c.name, { scale: o.scale, seed: c.seed, formats: o.formats ?? null, log }));
          } catch (e) {
            const error = (e as Error).message;
            result.failed.push({ name: c.name, seed: c.seed, error });
            log(`[grid] ${c.name} seed ${c.seed} failed: ${error.split("\n")[0]}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, worker));
    }
  } finally {
    if (previous === undefined) delete process.env.TAGI_THREADS;
    else process.env.TAGI_THREADS = previous;
  }
  log(`[grid] ${result.done.length} done, ${result.failed.length} failed${result.failed.length ? `: ${result.failed.map((f) => `${f.name} seed ${f.seed}`).join(", ")} (rerun the same command to retry them)` : ""}`);
  return result;
}
