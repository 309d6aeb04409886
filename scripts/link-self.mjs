// Makes the project importable by its own package name ("tagi") from anywhere inside it.
// Why: tslab compiles notebook cells with its own settings and refuses relative imports that leave the
// notebook's folder, so notebooks in notebooks/ import the built library as `import ... from "tagi"`.
import { existsSync, lstatSync, mkdirSync, symlinkSync, readlinkSync, unlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const link = join(root, "node_modules", "tagi");
mkdirSync(dirname(link), { recursive: true });
if (existsSync(link) || isDanglingLink(link)) {
  if (lstatSync(link).isSymbolicLink() && readlinkSync(link) === "..") process.exit(0);
  unlinkSync(link);
}
symlinkSync("..", link, "dir");
console.log(`[tagi] linked node_modules/tagi -> project root`);

function isDanglingLink(p) {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
