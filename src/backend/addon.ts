/**
 * Loading of the project's native add-ons (native/): the first of the candidate paths that exists and loads.
 * Never throws; what was tried and why it failed is returned for the caller's status line.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

/** `$envVar` when set, then `native/<...parts>` under the project root (src/backend and dist/backend are both two levels below it). */
export function addonCandidates(envVar: string, ...parts: string[]): string[] {
  const out: string[] = [];
  if (process.env[envVar]) out.push(resolve(process.env[envVar]!));
  out.push(join(__dirname, "..", "..", "native", ...parts));
  return out;
}

/** The first candidate that exists, loads and passes `check` (which throws to refuse it), or what was tried. */
export function loadAddon<T>(candidates: readonly string[], check: (addon: T) => void = () => {}): { addon: T; path: string } | { addon: null; tried: string[] } {
  const tried: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      tried.push(`${path} (not built)`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(path) as T;
      check(addon);
      return { addon, path };
    } catch (e) {
      tried.push(`${path} (failed to load: ${(e as Error).message.split("\n")[0]})`);
    }
  }
  return { addon: null, tried };
}
