/**
 * Rewrites this machine's absolute project and data paths in committed provenance files to project-relative
 * ones (src/project-paths.ts), for files written before the writers did it themselves:
 *
 *   node --import tsx scripts/relativize-paths.ts            # every results/**.json and notebooks/*.ipynb
 *   node --import tsx scripts/relativize-paths.ts FILE ...   # just these
 *
 * Text replacement inside the files (paths sit inside JSON strings), so nothing else changes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PROJECT_DIR, relativeText } from "../src/project-paths";

function walk(dir: string, keep: (f: string) => boolean): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const f = path.join(dir, e.name);
    return e.isDirectory() ? walk(f, keep) : keep(f) ? [f] : [];
  });
}

const files = process.argv.length > 2 ? process.argv.slice(2) : [...walk(path.join(PROJECT_DIR, "results"), (f) => f.endsWith(".json")), ...walk(path.join(PROJECT_DIR, "notebooks"), (f) => f.endsWith(".ipynb"))];
let changed = 0;
for (const f of files) {
  const text = fs.readFileSync(f, "utf8");
  const out = relativeText(text);
  if (out !== text) {
    fs.writeFileSync(f, out);
    changed++;
  }
}
console.log(`relativize-paths: ${changed} of ${files.length} files rewritten (project root ${PROJECT_DIR})`);
