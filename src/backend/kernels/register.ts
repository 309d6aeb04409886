/**
 * Installs (and removes) the project's kernel overrides on the wasm backend.
 *
 * The stock configs are kept so the overrides can be swapped out again: the bench compares stock and
 * patched wasm, and tests compare both against the cpu backend. Our kernels need no setupFunc (they bind
 * their C entry points lazily), so swapping works after the backend is initialised.
 */
import * as tf from "@tensorflow/tfjs-core";
import { castConfig, identityConfig, rememberStock } from "./identity";
import { batchMatMulConfig, fusedMatMulConfig } from "./matmul";
import { rememberStockSlice, sliceConfig } from "./slice";
import { rememberStockSum, sumConfig } from "./sum";
import { rememberStockTranspose, transposeConfig } from "./transpose";
import { unsortedSegmentSumConfig } from "./unsorted-segment-sum";

export const WASM_OVERRIDES: readonly tf.KernelConfig[] = [
  batchMatMulConfig,
  fusedMatMulConfig,
  sliceConfig,
  unsortedSegmentSumConfig,
  identityConfig,
  castConfig,
  sumConfig,
  transposeConfig,
];

const stock = new Map<string, tf.KernelConfig | undefined>();

function swap(config: tf.KernelConfig | undefined, name: string): void {
  if (tf.getKernel(name, "wasm")) tf.unregisterKernel(name, "wasm");
  if (!config) return;
  tf.registerKernel(config);
  // tfjs runs a kernel's setupFunc (which binds its C entry points to one wasm module) only in setBackend.
  // A stock kernel put back later still holds the bindings of the module it was last set up on: after
  // initBackend re-created the wasm backend, that module is disposed and calling it aborts. Bind it now.
  if (config.setupFunc && tf.getBackend() === "wasm") config.setupFunc(tf.backend());
}

/** Registers the overrides; returns their kernel names. Idempotent. */
export function installWasmOverrides(): string[] {
  for (const config of WASM_OVERRIDES) {
    const current = tf.getKernel(config.kernelName, "wasm");
    if (current === config) continue;
    if (!stock.has(config.kernelName)) stock.set(config.kernelName, current);
    if (config.kernelName === tf.Slice) rememberStockSlice(current);
    rememberStock(config.kernelName, current);
    if (config.kernelName === tf.Sum) rememberStockSum(current);
    if (config.kernelName === tf.Transpose) rememberStockTranspose(current);
    swap(config, config.kernelName);
  }
  // Stock kernels call each other's bound C entry points directly (stock Sum calls stock Transpose's), and
  // tfjs binds only registered kernels when a backend is set: rebind every replaced stock kernel to the
  // live module, or a stock kernel still in use would reach into a disposed one after a re-initialisation.
  if (tf.getBackend() === "wasm") {
    for (const config of stock.values()) config?.setupFunc?.(tf.backend());
  }
  return WASM_OVERRIDES.map((c) => c.kernelName);
}

/** Puts the stock kernels back (UnsortedSegmentSum then has no wasm kernel, as in stock tfjs). */
export function removeWasmOverrides(): void {
  for (const config of WASM_OVERRIDES) {
    if (tf.getKernel(config.kernelName, "wasm") !== config) continue;
    swap(stock.get(config.kernelName), config.kernelName);
  }
}

export function wasmOverridesInstalled(): boolean {
  return WASM_OVERRIDES.every((c) => tf.getKernel(c.kernelName, "wasm") === c);
}
