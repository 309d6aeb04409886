/**
 * tagi: a TypeScript research environment for TAGI (Task Adapters Generation from Instructions).
 * The package's public surface; notebooks import it as `import * as tagi from "tagi"`.
 */
export * as tf from "@tensorflow/tfjs-core";
export * from "./backend";
export { environmentReport } from "./environment";
export type { EnvironmentReport } from "./environment";
export { T5Tokenizer, padBatch, DEFAULT_T5_TOKENIZER_PATH } from "./text/tokenizer";
export type { EncodeOptions, DecodeOptions } from "./text/tokenizer";
