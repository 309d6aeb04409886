export { initBackend, describeBackend, currentBackend, BACKENDS } from "./select";
export type { BackendInfo, BackendOptions, BackendName, BackendChoice } from "./select";
export { recompute, assertNoLeak, liveTensors } from "./memory";
export { installWasmOverrides, removeWasmOverrides, wasmOverridesInstalled, WASM_OVERRIDES } from "./kernels/register";
export { setNativeGemm, nativeGemmInUse } from "./kernels/matmul";
export { loadNativeGemm } from "./native-gemm";
export type { NativeGemm, NativeGemmStatus } from "./native-gemm";
export { registerGradientFixes, batchMatMulGradConfig } from "./gradients";
