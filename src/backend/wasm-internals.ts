/**
 * The parts of tfjs-backend-wasm's internals that the project's kernels use, typed in one place.
 *
 * Why: the overrides work directly on the wasm heap (views, temporary tensor ids) to avoid copies. These
 * fields are not public API, which is why @tensorflow/* is pinned exactly in package.json and why every
 * override is tested against the cpu backend.
 */
import type * as tf from "@tensorflow/tfjs-core";

export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

export interface WasmModule {
  HEAPU8: Uint8Array;
  wasmMemory?: WebAssembly.Memory;
  cwrap(name: string, ret: string | null, args: string[]): (...args: unknown[]) => unknown;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
    getThreadsCount(): number;
  };
}

export interface WasmBackendInternals {
  wasm: WasmModule;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): WasmTensorData | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  readSync(dataId: object): unknown;
}

export function internals(backend: unknown): WasmBackendInternals {
  const b = backend as Partial<WasmBackendInternals>;
  if (!b || !b.wasm || !b.dataIdMap || typeof b.makeOutput !== "function") {
    throw new Error("tagi backend: expected the tfjs wasm backend (internals not found; is @tensorflow/tfjs-backend-wasm 4.22.0 installed?)");
  }
  return b as WasmBackendInternals;
}

export function tensorData(backend: WasmBackendInternals, t: tf.TensorInfo): WasmTensorData {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error(`tagi backend: tensor of shape [${t.shape.join(",")}] is not on the wasm backend`);
  return d;
}

/** The whole linear memory as a Float32Array. Taken fresh each time: the heap may have grown. */
export function heapF32(backend: WasmBackendInternals): Float32Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  return new Float32Array(buffer);
}

/** A typed view (not a copy) of a tensor's values on the heap. */
export function viewOf(backend: WasmBackendInternals, t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array {
  const d = tensorData(backend, t);
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  const size = t.shape.reduce((a, b) => a * b, 1);
  switch (t.dtype) {
    case "float32":
      return new Float32Array(buffer, d.memoryOffset, size);
    case "int32":
      return new Int32Array(buffer, d.memoryOffset, size);
    case "bool":
      return new Uint8Array(buffer, d.memoryOffset, size);
    default:
      throw new Error(`tagi backend: no heap view for dtype ${t.dtype}`);
  }
}

/**
 * Registers a temporary tensor id that aliases `size` floats of existing heap memory (no allocation), so a
 * stock C++ kernel can run on a slice of a larger tensor. Release it with `releaseAlias`.
 */
export function aliasTensor(backend: WasmBackendInternals, byteOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, byteOffset);
  return id;
}

export function releaseAlias(backend: WasmBackendInternals, id: number): void {
  // dispose_data drops the id and runs its disposal callbacks (e.g. XNNPACK operators cached on it);
  // the memory belongs to the aliased tensor and is not freed here.
  backend.wasm.tfjs.disposeData(id);
}
