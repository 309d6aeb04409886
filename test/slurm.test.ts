/**
 * The Slurm executor against a real Slurm: a single-node cluster started on this machine
 * (scripts/slurm-local.sh: munged, slurmctld, slurmd on localhost), a tiny grid submitted through sbatch, its
 * records compared with the local executor's for the same cells and seeds; one cell made to fail is reported
 * as failed by `status` and succeeds when the same grid is submitted again. Needs Debian's slurmctld, slurmd,
 * slurm-client and munge and root (.ci/run installs them); elsewhere the test says what is missing and skips,
 * except under CI, where missing Slurm is a failure.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runExperiment, PROJECT_ROOT, type ExperimentRecord } from "../src/experiments/runner";
import { formatStatus, gridStatus, jobScript, parseSlurmProfile, submitGrid, type SlurmProfile } from "../src/experiments/slurm";

const have = (bin: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

describe("Slurm executor (a single-node Slurm cluster on this machine)", function () {
  this.timeout(900_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-slurm-"));
  const cluster = path.join(tmp, "cluster");
  const saved = { ...process.env };
  const quiet = () => {};
  const missing = ["munged", "slurmctld", "slurmd", "sbatch", "squeue"].filter((b) => !have(b));

  before(function () {
    if (missing.length || process.getuid?.() !== 0) {
      const why = missing.length ? `missing ${missing.join(", ")} (apt-get install slurmctld slurmd slurm-client munge)` : "not root (slurmd runs the jobs)";
      if (process.env.CI) throw new Error(`Slurm test: ${why}; .ci/run installs them`);
      console.log(`      (skipped: ${why})`);
      this.skip();
    }
    execFileSync("bash", [path.join(PROJECT_ROOT, "scripts", "slurm-local.sh"), "start", cluster], { stdio: "pipe" });
    process.env.SLURM_CONF = path.join(cluster, "slurm.conf");
    process.env.TAGI_RUNS_DIR = path.join(tmp, "runs");
    process.env.TAGI_THREADS = "1"; // the jobs get one CPU each; same thread count, same sums
  });
  after(() => {
    try {
      if (fs.existsSync(path.join(cluster, "slurm.conf"))) execFileSync("bash", [path.join(PROJECT_ROOT, "scripts", "slurm-local.sh"), "stop", cluster], { stdio: "pipe" });
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  const backend = (process.env.TAGI_BACKEND ?? "auto") as SlurmProfile["backend"];
  const profile = (over: Partial<SlurmProfile> = {}): SlurmProfile => ({ partition: "debug", cpusPerTask: 1, mem: "3000M", time: "0:20:00", backend, setup: [], sbatch: [], ...over });
  const waitForGrid = async (scale: string, resultsDir: string) => {
    for (let i = 0; i < 600; i++) {
      const rows = gridStatus(scale, resultsDir);
      if (rows.length && rows.every((r) => r.state !== "pending" && r.state !== "running")) return rows;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`the grid did not finish:\n${formatStatus(gridStatus(scale, resultsDir))}`);
  };
  const record = (dir: string, name: string, seed: number) => JSON.parse(fs.readFileSync(path.join(dir, name, "tiny", `seed-${seed}`, "experiment.json"), "utf8")) as ExperimentRecord;

  it("a tiny grid through sbatch gives the local executor's records; a failed cell is reported and resubmitted", async () => {
    const local = path.join(tmp, "results-local");
    const viaSlurm = path.join(tmp, "results-slurm");
    // The local executor first (the reference), then the same cells as a Slurm grid.
    process.env.TAGI_RESULTS_DIR = local;
    const refs = [await runExperiment("no-ft", { scale: "tiny", seed: 0, log: quiet }), await runExperiment("hint", { scale: "tiny", seed: 0, log: quiet })];
    process.env.TAGI_RESULTS_DIR = viaSlurm;
    // The second cell (hint) fails: its setup line points it at a data folder that does not exist (data not mounted on the node), until `allow` exists.
    const allow = path.join(tmp, "allow");
    const failing = profile({ setup: [`if [ "\${SLURM_ARRAY_TASK_ID:-}" = 1 ] && [ ! -f ${allow} ]; then export TAGI_DATA_DIR=/nonexistent; fi`] });
    const first = submitGrid({ scale: "tiny", names: ["no-ft", "hint"], seeds: [0], profile: failing, resultsDir: viaSlurm, log: quiet });
    assert.equal(first.cells.length, 2);
    assert.match(first.prepareJob, /^\d+$/);
    let rows = await waitForGrid("tiny", viaSlurm);
    const status = formatStatus(rows);
    console.log(status.split("\n").map((l) => `      ${l}`).join("\n"));
    const prepareTail = () => fs.readFileSync(first.prepareLog, "utf8").trim().split("\n").slice(-8).join("\n");
    assert.deepEqual(rows.map((r) => [r.name, r.state]), [["no-ft", "done"], ["hint", "failed"]], `${status}\nshared stages' log:\n${prepareTail()}`);
    assert.match(rows[1]!.detail, /exit [1-9]\d* without a record/);
    assert.ok(!fs.existsSync(path.join(viaSlurm, "hint", "tiny", "seed-0", "experiment.json")), "a failed cell leaves no record a table could read");
    // Resubmitting the same grid sends only the cell without a record.
    fs.writeFileSync(allow, "");
    const second = submitGrid({ scale: "tiny", names: ["no-ft", "hint"], seeds: [0], profile: failing, resultsDir: viaSlurm, log: quiet });
    assert.deepEqual(second.cells.map((c) => c.name), ["hint"]);
    assert.deepEqual(second.skipped, [{ name: "no-ft", seed: 0 }]);
    rows = await waitForGrid("tiny", viaSlurm);
    assert.deepEqual(rows.map((r) => [r.name, r.state]), [["no-ft", "done"], ["hint", "done"]]);
    // Same cells, same seeds: the same numbers through both executors.
    for (const ref of refs) {
      const got = record(viaSlurm, ref.experiment.name, 0);
      assert.deepEqual(got.metrics, ref.metrics, `${ref.experiment.name}: metrics`);
      assert.deepEqual(got.compute, ref.compute, `${ref.experiment.name}: compute`);
      assert.deepEqual(got.protocol, ref.protocol, `${ref.experiment.name}: protocol`);
    }
  });

  it("bad input: no sbatch, a bad profile, a partition the cluster rejects: each named", () => {
    assert.throws(() => parseSlurmProfile({ partition: "debug", cpusPerTask: 0, mem: "lots", time: "soon", gpus: 1, sbatch: ["-n 2"] }, "configs/slurm/x.json"), (e: Error) =>
      ["configs/slurm/x.json", "unknown key 'gpus'", "cpusPerTask must be", "mem must be", "time must be", "sbatch: each entry"].every((s) => e.message.includes(s)),
    );
    process.env.TAGI_RESULTS_DIR = path.join(tmp, "results-bad");
    assert.throws(() => submitGrid({ scale: "tiny", names: ["no-ft"], seeds: [3], profile: profile({ partition: "nosuchpartition" }), log: quiet }), /shared stages of tiny: sbatch refused the job: .*(partition|Partition)/);
    const pathNow = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      assert.throws(() => submitGrid({ scale: "tiny", names: ["no-ft"], seeds: [3], profile: profile(), log: quiet }), /no sbatch on the PATH/);
    } finally {
      process.env.PATH = pathNow;
    }
    const script = jobScript({ profile: profile({ gres: "gpu:1", sbatch: ["--constraint=avx512"] }), name: "x", log: "/l/%a.out", array: 3, command: ["node", "a b"], exitFile: "/l/%a.exit", env: { TAGI_BACKEND: "wasm" } });
    for (const line of ["#SBATCH --array=0-2", "#SBATCH --gres=gpu:1", "#SBATCH --constraint=avx512", "#SBATCH --partition=debug", "export TAGI_BACKEND=wasm", "node 'a b'", 'echo "$code" > "/l/${SLURM_ARRAY_TASK_ID:-0}.exit"']) assert.ok(script.includes(line), line);
  });
});
