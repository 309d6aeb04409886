/**
 * Output-folder locks: one process writes into an output folder at a time. Two runs into the same `--out`
 * would interleave checkpoints, logs and summaries; the second is refused with the owner's name instead.
 *
 * The lock is a small JSON file (`<out>/.tagi.lock` by default) naming its owner: pid, host, command and start
 * time. It is created atomically with its content (written to a private file, then hard-linked into place,
 * which fails if the lock exists), so no reader sees a half-written lock. A lock whose process is gone (a
 * killed run) is stale: the next run takes it over and says so. A lock held by another host cannot be checked
 * from here and is refused with that host's name. Within one process the lock is re-entrant (the CLI locks
 * `--out`, and the training loop inside it locks the same folder).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface LockOwner {
  pid: number;
  host: string;
  command: string;
  startedAt: string;
  /** The Slurm job (JOBID or ARRAYJOBID_TASKID) the process ran in, when it ran under Slurm. */
  slurmJob?: string;
}

/** This process's Slurm job id ("123" or "123_4" for an array task), or undefined outside Slurm. */
export function currentSlurmJob(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env["SLURM_ARRAY_JOB_ID"] && env["SLURM_ARRAY_TASK_ID"]) return `${env["SLURM_ARRAY_JOB_ID"]}_${env["SLURM_ARRAY_TASK_ID"]}`;
  return env["SLURM_JOB_ID"] || undefined;
}

/**
 * Whether Slurm still runs (or holds) job `id`: true, false (squeue no longer lists it as pending, running,
 * suspended or completing), or null when squeue cannot be asked (not on the PATH, no controller).
 */
export function slurmJobAlive(id: string): boolean | null {
  try {
    const out = execFileSync("squeue", ["-h", "-j", id, "-t", "PD,R,S,CG,CF,RQ,RS", "-o", "%i"], { stdio: ["ignore", "pipe", "pipe"], timeout: 15_000 }).toString();
    return out.trim().length > 0;
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? "");
    if (/Invalid job id/i.test(stderr)) return false; // aged out of the controller: long finished
    return null;
  }
}

export interface FolderLock {
  file: string;
  /** The stale lock this acquisition replaced, if any. */
  tookOver: LockOwner | null;
  release(): void;
}

export const LOCK_NAME = ".tagi.lock";

const held = new Map<string, { count: number; owner: LockOwner }>();
let exitHookInstalled = false;

function readOwner(file: string): LockOwner | null | "unreadable" {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    if (!Number.isInteger(o.pid) || typeof o.host !== "string") return "unreadable";
    return o;
  } catch {
    return "unreadable";
  }
}

/** Whether `pid` on this host is a live process (EPERM: alive but not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function describeOwner(o: LockOwner): string {
  return `pid ${o.pid} on ${o.host}${o.slurmJob ? ` (Slurm job ${o.slurmJob})` : ""}, started ${o.startedAt}: ${o.command}`;
}

/** Creates `file` holding `owner` if it does not exist; false if it does. */
function createExclusive(file: string, owner: LockOwner): boolean {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(owner) + "\n");
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Locks folder `dir` (created if missing) for this process, or throws naming the process that holds it.
 * `what` names the run in messages ("evaluate", "finetune"); `log` receives the stale-lock notice.
 */
export function lockFolder(dir: string, opts: { what?: string; lockFile?: string; log?: (line: string) => void; command?: string } = {}): FolderLock {
  const file = path.resolve(opts.lockFile ?? path.join(dir, LOCK_NAME));
  const what = opts.what ?? "run";
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const mine = held.get(file);
  if (mine) {
    mine.count++;
    return { file, tookOver: null, release: () => releaseLock(file) };
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!opts.lockFile) fs.mkdirSync(dir, { recursive: true });
  const owner: LockOwner = {
    pid: process.pid,
    host: os.hostname(),
    command: opts.command ?? ["tagi", ...process.argv.slice(2)].join(" "),
    startedAt: new Date().toISOString(),
    ...(currentSlurmJob() ? { slurmJob: currentSlurmJob() } : {}),
  };
  let tookOver: LockOwner | null = null;
  for (let attempt = 0; ; attempt++) {
    if (createExclusive(file, owner)) break;
    const other = readOwner(file);
    if (other === null) continue; // released meanwhile: try again
    // Another host's process cannot be checked from here, but its Slurm job can: a lock left by a cancelled
    // or failed job (on a shared filesystem) is stale once Slurm no longer runs that job.
    const jobGone = other !== "unreadable" && other.host !== owner.host && other.slurmJob !== undefined && slurmJobAlive(other.slurmJob) === false;
    if (other !== "unreadable" && other.host !== owner.host && !jobGone) {
      throw new Error(`${what}: ${dir} is in use by ${describeOwner(other)} (lock ${file}); that host's process cannot be checked from here: if it is gone, delete the lock file`);
    }
    // Our own pid in a lock this process does not hold: a dead process that had the same pid (pids restart in
    // containers), so stale.
    if (!jobGone && other !== "unreadable" && other.pid !== process.pid && processAlive(other.pid)) {
      throw new Error(`${what}: ${dir} is in use by ${describeOwner(other)} (lock ${file}); wait for it to finish or choose another output folder`);
    }
    // Stale (or unreadable: a lock is written whole, so it was not made by this code). Take it over under a
    // short mutex so that two newcomers do not both remove it and one remove the other's fresh lock.
    const mutex = `${file}.takeover`;
    try {
      fs.mkdirSync(mutex);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const st = fs.statSync(mutex, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > 10_000) fs.rmSync(mutex, { recursive: true, force: true }); // left by a process killed mid-takeover
      if (attempt > 200) throw new Error(`${what}: cannot take over the stale lock ${file} (another process keeps ${mutex})`);
      sleepMs(25);
      continue;
    }
    try {
      const again = readOwner(file);
      if (again !== null && JSON.stringify(again) !== JSON.stringify(other)) continue; // someone else got there first
      fs.rmSync(file, { force: true });
      if (!createExclusive(file, owner)) continue;
      tookOver = other === "unreadable" ? { pid: -1, host: "?", command: "(unreadable lock file)", startedAt: "?" } : other;
      log(`[tagi] ${what}: took over the stale lock of ${other === "unreadable" ? "an unreadable lock file" : describeOwner(other)} in ${dir}: that process is gone`);
      break;
    } finally {
      fs.rmSync(mutex, { recursive: true, force: true });
    }
  }
  held.set(file, { count: 1, owner });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const f of held.keys()) removeIfMine(f);
    });
  }
  return { file, tookOver, release: () => releaseLock(file) };
}

function removeIfMine(file: string): void {
  const o = readOwner(file);
  if (o && o !== "unreadable" && o.pid === process.pid && o.host === os.hostname()) fs.rmSync(file, { force: true });
}

function releaseLock(file: string): void {
  const h = held.get(file);
  if (!h) return;
  if (--h.count > 0) return;
  held.delete(file);
  removeIfMine(file);
}

/** Runs `fn` holding the lock of `dir`; released after, whether `fn` succeeds or throws. */
export async function withFolderLock<T>(dir: string, opts: Parameters<typeof lockFolder>[1], fn: () => Promise<T>): Promise<T> {
  const lock = lockFolder(dir, opts);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** A fresh folder under `parent` named `<prefix>-<UTC time to the millisecond>-<pid>`, created exclusively. */
export function freshRunFolder(parent: string, prefix: string, now = new Date()): string {
  fs.mkdirSync(parent, { recursive: true });
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.(\d+)Z$/, ".$1Z"); // 20261129T211246.123Z
  for (let i = 0; ; i++) {
    const dir = path.join(parent, `${prefix}-${stamp}-${process.pid}${i ? `-${i}` : ""}`);
    try {
      fs.mkdirSync(dir);
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}
