/**
 * Provenance files (summary.json, run.json, experiment.json and their copies under results/) are committed
 * and read on other machines: paths in them are written relative to the project root, never as this
 * machine's absolute paths. `projectRelative` rewrites every string of a JSON value: the project root becomes
 * "." (or disappears as a prefix), and the data folder beside it becomes "../shared". Paths elsewhere (a temp
 * folder, /usr/bin/node) stay as they are. Functional files that are read back to load a model (a teachers
 * manifest's or tagi_config.json's base) keep absolute paths where they live in runs/; only their copies
 * under results/ are rewritten.
 */
import * as path from "node:path";

/** The project root (the folder holding package.json), from src/ or dist/. */
export const PROJECT_DIR = path.resolve(__dirname, "..");

/** A text (a path, a log line, a whole JSON file) with this machine's project and data paths made relative. */
export function relativeText(s: string, root = PROJECT_DIR): string {
  const shared = path.join(path.dirname(root), "shared");
  return s
    .split(`${shared}/`).join("../shared/")
    .split(`${root}/`).join("")
    .replace(new RegExp(`${shared.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w-])`, "g"), "../shared")
    .replace(new RegExp(`${root.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w/-])`, "g"), ".");
}

/** `value` with this machine's project and data paths made relative (see the module comment). */
export function projectRelative<T>(value: T, root = PROJECT_DIR): T {
  if (typeof value === "string") return relativeText(value, root) as T;
  if (Array.isArray(value)) return value.map((v) => projectRelative(v, root)) as T;
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, projectRelative(v, root)])) as T;
  return value;
}

/**
 * A path read from a committed file (a published teachers manifest's or TAGI checkpoint's `base`): absolute
 * paths as they are, relative ones against the project root (where publishing made them relative).
 */
export function resolveProjectPath(p: string, root = PROJECT_DIR): string {
  return path.isAbsolute(p) ? p : path.resolve(root, p);
}
