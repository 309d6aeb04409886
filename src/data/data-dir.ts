/**
 * Where the data lives (SNI, P3 with its promptsource templates, the T5 tokenizer): $TAGI_DATA_DIR when set,
 * else `../shared/data` beside the project folder. Every command, notebook and library default reads it from
 * here, so one variable moves all of them; `--data-dir` / a config's `dataDir` still override it per call.
 */
import { join, resolve } from "node:path";

/** The project root (this file is src/data/data-dir.ts, or dist/data/data-dir.js once built). */
const projectRoot = resolve(__dirname, "..", "..");

export function dataDir(): string {
  const env = process.env.TAGI_DATA_DIR;
  return env && env.trim() !== "" ? resolve(env) : join(projectRoot, "..", "shared", "data");
}

/** How the data folder was chosen, for messages: "TAGI_DATA_DIR=..." or "../shared/data (the default)". */
export function dataDirOrigin(): string {
  return process.env.TAGI_DATA_DIR ? `TAGI_DATA_DIR=${process.env.TAGI_DATA_DIR}` : "../shared/data beside the project (the default; set TAGI_DATA_DIR to move it)";
}
