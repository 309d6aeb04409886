/**
 * An untrained tiny T5 with the real T5 vocabulary (32,128 ids, as t5-v1.1/LM-adapt checkpoints): for
 * smoke-testing pipelines end to end (`tagi evaluate --random-tiny`). Its scores mean nothing.
 */
import type { T5Config } from "./config";
import { presetConfig } from "./presets";
import { initT5Params } from "./init";
import type { T5Model } from "./t5";

/** The `tiny` preset: d_model 64, d_kv 16, d_ff 128, 2 encoder + 2 decoder layers, 4 heads, gated-GELU, untied head. */
export function randomTinyT5Config(): T5Config {
  return presetConfig("tiny");
}

/** The tiny T5 with parameters from `initT5Params(config, seed)`. */
export function randomTinyT5(seed = 0): T5Model {
  const config = randomTinyT5Config();
  return { config, params: initT5Params(config, seed) };
}
