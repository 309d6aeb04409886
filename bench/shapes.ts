/**
 * The shapes the bench measures, shared by the tfjs workers and written into the JSON so the PyTorch script
 * (reference/bench_torch.py) runs exactly the same problems.
 */
export interface GemmCase {
  name: "plain" | "transposeA" | "transposeB" | "batched" | "batchedAttention";
  /** a: [batch?, rows, cols] as stored (already transposed when transposeA). */
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
  flops: number;
}

/** T5-small-shaped activations: batch 8 x 128 tokens = 1024 rows, d_model 512, d_ff 1024, 8 heads of 64. */
export const ROWS = 1024;
export const D_MODEL = 512;
export const D_FF = 1024;
export const HEADS = 8;
export const BATCH = 8;
export const SEQ = 128;

export function gemmCases(): GemmCase[] {
  const m = ROWS, k = D_MODEL, n = D_FF;
  const f = 2 * m * k * n;
  return [
    { name: "plain", a: [m, k], b: [k, n], transposeA: false, transposeB: false, flops: f },
    // the weight gradient of a linear layer: X^T · dY
    { name: "transposeA", a: [k, m], b: [k, n], transposeA: true, transposeB: false, flops: f },
    // the input gradient: dY · W^T
    { name: "transposeB", a: [m, k], b: [n, k], transposeA: false, transposeB: true, flops: f },
    // both operands batched, same work as plain
    { name: "batched", a: [8, m / 8, k], b: [8, k, n], transposeA: false, transposeB: false, flops: f },
    // attention scores: [B*H, T, dk] · [B*H, T, dk]^T
    {
      name: "batchedAttention",
      a: [BATCH * HEADS, SEQ, D_MODEL / HEADS],
      b: [BATCH * HEADS, SEQ, D_MODEL / HEADS],
      transposeA: false,
      transposeB: true,
      flops: 2 * BATCH * HEADS * SEQ * SEQ * (D_MODEL / HEADS),
    },
  ];
}

/** matMul FLOPs of forward + backward (= 3x forward) of one T5-style encoder block at these shapes. */
export function blockFlops(layers: number): number {
  const bt = BATCH * SEQ;
  const projections = 4 * 2 * bt * D_MODEL * D_MODEL; // q, k, v, o
  const attention = 2 * 2 * BATCH * SEQ * SEQ * D_MODEL; // scores and weighted sum over all heads
  const ffn = 3 * 2 * bt * D_MODEL * D_FF; // gated-GELU: wi_0, wi_1, wo
  return 3 * layers * (projections + attention + ffn);
}
