/**
 * The adapter generator (paper Eq. 2): a 2-layer MLP (Linear, ReLU, Linear) maps the pooled instruction,
 * joined with an id embedding for the layer and projection, to the LoRA factors A [in, r] and B [r, out] of
 * every adapted attention projection (q and v of encoder self-, decoder self- and decoder cross-attention by
 * default). The delta it applies is scaling·x·A·B with scaling = alpha / rank, as a LoRA.
 *
 * Sharing (who owns an MLP):
 * - "per-layer" (the paper): one network per (attention kind, layer), shared between its projections; the id
 *   tells q from v (ids 2l and 2l+1 as in the paper).
 * - "shared" (the official code): one network per attention kind, shared across layers; the id names layer
 *   and projection.
 *
 * Init: "lora" (default) puts LoRA's own init in the output layer — the A part of the bias uniform(±1/√in)
 * as PEFT's kaiming_uniform(a=√5) and its weights small (std `initStd`); the B part of bias and weights
 * zero — so a fresh generator emits a LoRA initialisation (the delta is zero, B's gradient is not) whose A
 * depends on the instruction. "official" draws every output weight from N(0, 1e-7) with zero bias, as the
 * released code (A ≈ B ≈ 0, whose product's gradient is near zero at first).
 *
 * `generateAdapter(params, config, pooled)` is a pure function of its inputs.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Config } from "../model/config";
import { t5ParameterShapes } from "../model/config";
import type { LoraAdapter } from "../model/lora";

export type AttentionKind = "encoder.self" | "decoder.self" | "decoder.cross";

export interface HypernetworkConfig {
  rank: number;
  alpha: number;
  kinds: AttentionKind[];
  /** Projections adapted in each attention block. */
  projections: ("q" | "k" | "v" | "o")[];
  sharing: "per-layer" | "shared";
  /** Hidden width of the MLP. */
  hidden: number;
  /** Size of the layer/projection id embedding. */
  idDim: number;
  /** Project the pooled instruction to this width with Linear + tanh first (official: 255); null: none. */
  projection: number | null;
  init: "lora" | "official";
  /** Std of the output layer's weights under init "lora". */
  initStd: number;
}

export const HYPERNETWORK_DEFAULTS: HypernetworkConfig = {
  rank: 32,
  alpha: 32,
  kinds: ["encoder.self", "decoder.self", "decoder.cross"],
  projections: ["q", "v"],
  sharing: "per-layer",
  hidden: 64,
  idDim: 16,
  projection: null,
  init: "lora",
  initStd: 1e-3,
};

export function validateHypernetworkConfig(h: HypernetworkConfig, where = "hypernetwork"): string[] {
  const p: string[] = [];
  const posInt = (name: keyof HypernetworkConfig) => {
    const v = h[name] as number;
    if (!Number.isInteger(v) || v < 1) p.push(`${where}.${name} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  posInt("rank");
  posInt("hidden");
  posInt("idDim");
  if (h.projection !== null) posInt("projection");
  if (!(h.alpha > 0)) p.push(`${where}.alpha must be > 0, got ${h.alpha}`);
  if (!(h.initStd >= 0)) p.push(`${where}.initStd must be >= 0, got ${h.initStd}`);
  if (!h.kinds.length || h.kinds.some((k) => !["encoder.self", "decoder.self", "decoder.cross"].includes(k))) {
    p.push(`${where}.kinds must be a non-empty subset of encoder.self, decoder.self, decoder.cross, got ${JSON.stringify(h.kinds)}`);
  }
  if (!h.projections.length || h.projections.some((m) => !["q", "k", "v", "o"].includes(m))) {
    p.push(`${where}.projections must be a non-empty subset of q, k, v, o, got ${JSON.stringify(h.projections)}`);
  }
  if (h.sharing !== "per-layer" && h.sharing !== "shared") p.push(`${where}.sharing must be "per-layer" or "shared", got ${JSON.stringify(h.sharing)}`);
  if (h.init !== "lora" && h.init !== "official") p.push(`${where}.init must be "lora" or "official", got ${JSON.stringify(h.init)}`);
  return p;
}

/** One adapted projection: its module path, the network that generates it, its id, and its shapes. */
export interface AdapterSlot {
  module: string;
  network: string;
  id: number;
  inFeatures: number;
  outFeatures: number;
}

function blockPath(kind: AttentionKind, layer: number): string {
  if (kind === "encoder.self") return `encoder.block.${layer}.layer.0.SelfAttention`;
  if (kind === "decoder.self") return `decoder.block.${layer}.layer.0.SelfAttention`;
  return `decoder.block.${layer}.layer.1.EncDecAttention`;
}

/** Every projection the generator adapts, in a fixed order, with its network and id. */
export function adapterSlots(c: T5Config, h: HypernetworkConfig): AdapterSlot[] {
  const shapes = t5ParameterShapes(c);
  const slots: AdapterSlot[] = [];
  for (const kind of h.kinds) {
    const layers = kind === "encoder.self" ? c.num_layers : c.num_decoder_layers;
    for (let l = 0; l < layers; l++) {
      h.projections.forEach((proj, j) => {
        const module = `${blockPath(kind, l)}.${proj}`;
        const [out, inn] = shapes.get(`${module}.weight`)!;
        slots.push({
          module,
          network: h.sharing === "per-layer" ? `hyper.${kind}.${l}` : `hyper.${kind}`,
          id: h.sharing === "per-layer" ? j : l * h.projections.length + j,
          inFeatures: inn!,
          outFeatures: out!,
        });
      });
    }
  }
  return slots;
}

/** Parameter names and shapes of the generator (linear weights [out, in]). */
export function hypernetworkParameterShapes(c: T5Config, h: HypernetworkConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const inDim = h.projection ?? c.d_model;
  if (h.projection !== null) {
    shapes.set("hyper.projection.weight", [h.projection, c.d_model]);
    shapes.set("hyper.projection.bias", [h.projection]);
  }
  const nets = new Map<string, { ids: number; outDim: number }>();
  for (const s of adapterSlots(c, h)) {
    const outDim = s.inFeatures * h.rank + h.rank * s.outFeatures;
    const n = nets.get(s.network);
    if (n && n.outDim !== outDim) throw new Error(`hypernetwork: ${s.network} would generate adapters of different sizes (${n.outDim} and ${outDim}); use sharing "per-layer" or fewer projections`);
    nets.set(s.network, { ids: Math.max(n?.ids ?? 0, s.id + 1), outDim });
  }
  for (const [net, { ids, outDim }] of nets) {
    shapes.set(`${net}.id_embedding`, [ids, h.idDim]);
    shapes.set(`${net}.fc1.weight`, [h.hidden, inDim + h.idDim]);
    shapes.set(`${net}.fc1.bias`, [h.hidden]);
    shapes.set(`${net}.fc2.weight`, [outDim, h.hidden]);
    shapes.set(`${net}.fc2.bias`, [outDim]);
  }
  return shapes;
}

/** Fresh generator parameters (see the module comment for the two inits). */
export function initHypernetwork(c: T5Config, h: HypernetworkConfig, seed: number): Map<string, tf.Tensor> {
  const problems = validateHypernetworkConfig(h);
  if (problems.length) throw new Error(`invalid hypernetwork config: ${problems.join("; ")}`);
  const shapes = hypernetworkParameterShapes(c, h);
  const slotOf = new Map(adapterSlots(c, h).map((s) => [s.network, s]));
  const params = new Map<string, tf.Tensor>();
  let i = 0;
  for (const [name, shape] of shapes) {
    const s = seed * 10_007 + ++i; // never 0: tfjs's randomNormal ignores a seed of 0
    const fanIn = shape[1] ?? shape[0]!;
    if (name.endsWith("id_embedding")) params.set(name, tf.randomNormal(shape, 0, 1, "float32", s));
    else if (name.endsWith("fc2.weight")) {
      if (h.init === "official") params.set(name, tf.randomNormal(shape, 0, 1e-7, "float32", s));
      else {
        // Rows generating A: small and random (A depends on the instruction); rows generating B: zero (delta 0).
        const aSize = slotOf.get(name.slice(0, -".fc2.weight".length))!.inFeatures * h.rank;
        params.set(name, tf.tidy(() => tf.concat([tf.randomNormal([aSize, shape[1]!], 0, h.initStd, "float32", s), tf.zeros([shape[0]! - aSize, shape[1]!])])));
      }
    }
    else if (name.endsWith("fc2.bias")) {
      const slot = slotOf.get(name.slice(0, -".fc2.bias".length))!;
      const aSize = slot.inFeatures * h.rank;
      const bound = 1 / Math.sqrt(slot.inFeatures);
      params.set(
        name,
        h.init === "official"
          ? tf.zeros(shape)
          : tf.tidy(() => tf.concat([tf.randomUniform([aSize], -bound, bound, "float32", s), tf.zeros([shape[0]! - aSize])])),
      );
    } else if (name.endsWith(".bias")) params.set(name, tf.zeros(shape));
    else params.set(name, tf.randomNormal(shape, 0, fanIn ** -0.5, "float32", s)); // fc1, projection: std 1/√fan_in
  }
  return params;
}

function get(params: Map<string, tf.Tensor>, name: string): tf.Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`hypernetwork: parameter '${name}' is missing (a checkpoint without a hypernetwork, or another config?)`);
  return t;
}

/**
 * Eq. 2: the LoRA adapter (per-example layout, A [B, in, r], B [B, r, out]) generated from pooled
 * instructions [B, d_model]. Gradients flow into `params` (and `pooled`).
 */
export function generateAdapter(params: Map<string, tf.Tensor>, c: T5Config, h: HypernetworkConfig, pooled: tf.Tensor2D): LoraAdapter {
  const [b, d] = pooled.shape;
  if (d !== c.d_model) throw new Error(`generateAdapter: pooled instructions are [${pooled.shape}], expected [B, ${c.d_model}]`);
  const modules = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  const slots = adapterSlots(c, h);
  const out = tf.tidy(() => {
    const x = h.projection !== null ? tf.tanh(tf.add(tf.matMul(pooled, get(params, "hyper.projection.weight") as tf.Tensor2D, false, true), get(params, "hyper.projection.bias"))) : pooled;
    // Group slots by network: one batched MLP pass per network over (its ids x examples).
    const byNet = new Map<string, AdapterSlot[]>();
    for (const s of slots) byNet.set(s.network, [...(byNet.get(s.network) ?? []), s]);
    const result: { module: string; A: tf.Tensor; B: tf.Tensor }[] = [];
    for (const [net, group] of byNet) {
      const ids = tf.tensor1d(group.map((s) => s.id), "int32");
      const idEmb = tf.gather(get(params, `${net}.id_embedding`), ids); // [n, e]
      const n = group.length;
      // [n, B, d + e]: every example's instruction joined with every slot's id.
      const joined = tf.concat([tf.tile(tf.expandDims(x, 0), [n, 1, 1]), tf.tile(tf.expandDims(idEmb, 1), [1, b, 1])], 2);
      const flat = tf.reshape(joined, [n * b, joined.shape[2]!]) as tf.Tensor2D;
      const hid = tf.relu(tf.add(tf.matMul(flat, get(params, `${net}.fc1.weight`) as tf.Tensor2D, false, true), get(params, `${net}.fc1.bias`)));
      const o = tf.add(tf.matMul(hid as tf.Tensor2D, get(params, `${net}.fc2.weight`) as tf.Tensor2D, false, true), get(params, `${net}.fc2.bias`)); // [n*B, out]
      // unstack and split rather than slices: their gradients are one stack and one concat, where each
      // slice's gradient pads back to the full [n, B, out] and the pads are summed (PadV2 + Add: ~80 ms of
      // a 1.5 s TAGI stage-2 step in tf.profile of bench/tagi-step.ts).
      const rows = tf.unstack(tf.reshape(o, [n, b, o.shape[1]!])); // n x [B, out]
      group.forEach((s, j) => {
        const aSize = s.inFeatures * h.rank;
        const bSize = h.rank * s.outFeatures;
        const rest = o.shape[1]! - aSize - bSize; // a network shared by slots of different shapes is as wide as the largest
        const [a, bb] = tf.split(rows[j]!, rest > 0 ? [aSize, bSize, rest] : [aSize, bSize], 1);
        const A = tf.reshape(a!, [b, s.inFeatures, h.rank]);
        const B = tf.reshape(bb!, [b, h.rank, s.outFeatures]);
        result.push({ module: s.module, A, B });
      });
    }
    return result;
  });
  for (const r of out) modules.set(r.module, { A: r.A, B: r.B });
  return { layout: "perExample", scaling: h.alpha / h.rank, dropout: 0, modules };
}

export function disposeAdapter(a: LoraAdapter): void {
  for (const { A, B } of a.modules.values()) tf.dispose([A, B]);
}

/** MatMul FLOPs of one generation (one instruction): the projection, then fc1 and fc2 for every adapted projection. */
export function hypernetworkFlops(c: T5Config, h: HypernetworkConfig): number {
  const inDim = (h.projection ?? c.d_model) + h.idDim;
  let f = h.projection !== null ? 2 * c.d_model * h.projection : 0;
  for (const s of adapterSlots(c, h)) f += 2 * inDim * h.hidden + 2 * h.hidden * (s.inFeatures * h.rank + h.rank * s.outFeatures);
  return f;
}
