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
export * from "./text/prompts";
export * from "./data/sni";
export * from "./model/config";
export * from "./model/t5";
export * from "./model/lora";
export * from "./model/generate";
export { initT5Params } from "./model/init";
export { randomTinyT5, randomTinyT5Config } from "./model/tiny";
export * from "./model/safetensors";
export {
  loadT5Config,
  loadT5Checkpoint,
  saveT5Checkpoint,
  loadPeftAdapter,
  savePeftAdapter,
  checkAdapterShapes,
  parseLoraAdapterConfig,
  scaling as loraScaling,
} from "./model/weights";
export type { LoraAdapterConfig, PeftAdapter } from "./model/weights";
export * from "./compute/flops";
export * from "./eval/rouge";
export { porterStem } from "./eval/porter";
export * from "./data/p3";
export * from "./data/t0-mixture";
export { evaluateP3, rankClassify, MTEST10_NAME } from "./eval/p3-eval";
export type { P3Result, P3EvalOptions, P3TemplateResult, P3TaskResult } from "./eval/p3-eval";
export * from "./eval/sni-eval";
export { taskTableData, categoryTableData, recordsTableData, categoryRows, csvField, csvString, parseCsv, writeTableCsv } from "./eval/tables";
export type { Table, TaskRow, CategoryRow, CategoryTableOptions } from "./eval/tables";
// DataFrames (danfojs-node, an optional peer dependency that loads a second tfjs copy): "tagi/eval/report".
export * from "./artifacts/publish";
export * from "./data/batching";
export * from "./data/pretraining";
export * from "./data/instances";
export * from "./model/presets";
export { peftToLoraAdapter } from "./model/weights";
export * from "./train/optimizer";
export * from "./train/schedule";
export * from "./train/loop";
export * from "./train/checkpoint";
export * from "./train/run-config";
export * from "./train/seq2seq";
export * from "./train/base-model";
export * from "./train/metatrain";
export * from "./train/teachers";
export * from "./plots/render";
export * from "./plots/curves";
export { trainingReport } from "./experiments/training-report";
export * from "./compute/method-flops";
export * from "./tagi/instruction-encoder";
export * from "./tagi/hypernetwork";
export * from "./tagi/fusion";
export * from "./tagi/losses";
export * from "./tagi/model";
export * from "./tagi/train";
export * from "./tagi/probes";
export * from "./tagi/generate-adapter";
export * from "./experiments/compute-summary";
export * from "./experiments/paper";
export * from "./experiments/runner";
export * from "./experiments/results-report";
export * from "./experiments/notebook";
export * from "./experiments/loss-weight-runs";
export * from "./experiments/html-table";
export * from "./project-paths";
