/**
 * T5 encoder-decoder forward pass in tfjs, mirroring Hugging Face's modeling_t5.py so that a checkpoint's
 * parameter names map one to one and outputs can be compared layer by layer:
 * RMS layer norm (no mean, no bias), relative position bias computed by the first layer of each stack and
 * reused by the others, ReLU or gated-GELU feed-forward, no biases, untied lm_head (v1.1) or tied embeddings
 * with the d_model^-0.5 rescale (original T5), optional LoRA on any linear layer.
 *
 * Functional: parameters are a plain Map of tensors keyed by HF names; every function returns new tensors
 * and leaves disposal to the caller (wrap calls in tf.tidy).
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Config } from "./config";
import { causalMask, mergeHeads, paddingMask, positionBias, scaledDotProduct, splitHeads } from "./attention";
import { loraDelta, type LoraAdapter } from "./lora";
import { recompute } from "../backend/memory";
import { fusedCeKl, fusedLossStatus } from "../backend/fused-ce-kl";

export interface T5Model {
  config: T5Config;
  /** Every parameter by its Hugging Face name (linear weights in PyTorch's [out, in] layout). */
  params: Map<string, tf.Tensor>;
}

export interface RunOptions {
  /** Dropout on (config.dropout_rate) when true. Default false. */
  training?: boolean;
  /** Seed for dropout masks (advanced per use). */
  seed?: number;
  /** A LoRA adapter applied to the modules it covers. */
  lora?: LoraAdapter;
  /**
   * Recompute each block's activations during backprop instead of storing them (gradient checkpointing):
   * memory falls to the block boundaries at the cost of one more forward pass. Values and gradients are
   * unchanged. Ignored by incremental (cached) decoding.
   */
  recompute?: boolean;
  /** TAGI's instruction fusion (paper Eq. 1), or HINT-style concatenation; see InstructionFusion. */
  fusion?: InstructionFusion;
}

/**
 * The encoded instruction I_x joined to the model (TAGI Eq. 1; src/tagi/fusion.ts builds these):
 * - crossAttention: in every encoder layer, after self-attention, a pre-norm cross-attention sublayer from the
 *   self-attention output to I_x with a residual: F_l = S_l + CrossAttn_l(norm(S_l), I_x). Its parameters,
 *   `encoder.block.{l}.fusion.layer_norm.weight` and `encoder.block.{l}.fusion.CrossAttention.{q,k,v,o}.weight`,
 *   come from `params` (they are not part of the T5 checkpoint).
 * - concatenate: the decoder attends over (I_x ; F_L): `encode` returns the concatenation [B, S + T, d] and the
 *   decoder's memory mask is (instructionMask ; attentionMask) (see memoryMask).
 * Both off is the plain model; concatenate alone is HINT's fusion.
 */
export interface InstructionFusion {
  /** I_x: the instruction's encoding [B, S, d_model] (one row per example). */
  instruction: tf.Tensor3D;
  /** 1 on instruction tokens, 0 on padding [B, S]. */
  instructionMask: tf.Tensor2D;
  crossAttention: boolean;
  concatenate: boolean;
  params: Map<string, tf.Tensor>;
}

/** The mask of what the decoder attends over: the input's mask, preceded by the instruction's under concatenation. */
export function memoryMask(opts: RunOptions, attentionMask: tf.Tensor2D | undefined, batch: number, inputLength: number): tf.Tensor2D | undefined {
  const f = opts.fusion;
  if (!f?.concatenate) return attentionMask;
  return tf.tidy(() =>
    tf.concat([tf.cast(f.instructionMask, "int32"), attentionMask ? tf.cast(attentionMask, "int32") : tf.ones([batch, inputLength], "int32")], 1),
  ) as tf.Tensor2D;
}

/** Per-layer key/value cache for incremental decoding. */
export interface DecoderCache {
  /** Self-attention keys/values so far, [B, H, t, dk] per layer. */
  self: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  /** Cross-attention keys/values over the encoder output, computed once, per layer. */
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  /**
   * 1 on the self-attention slots each row may attend to, 0 on the slots before its first token [B, t]
   * (continuous batching, src/model/stream-decode.ts: a row that joins a running batch is left-padded to the
   * batch's slot count). Absent: every slot. T5's decoder bias depends only on key - query, which padding on
   * the left leaves unchanged, so a left-padded row decodes as it would alone.
   */
  selfMask?: tf.Tensor2D;
}

class Context {
  private seed: number;
  constructor(
    readonly model: T5Model,
    readonly opts: RunOptions,
    /** Parameters (and LoRA factors) that replace the model's inside a recomputed block. */
    private readonly overrides?: Map<string, tf.Tensor>,
  ) {
    this.seed = opts.seed ?? 0;
  }
  get cfg(): T5Config {
    return this.model.config;
  }
  param(name: string): tf.Tensor {
    const t = this.overrides?.get(name) ?? this.model.params.get(name) ?? this.opts.fusion?.params.get(name);
    if (!t) throw new Error(`T5: parameter '${name}' is missing from the model`);
    return t;
  }
  dropout = (x: tf.Tensor): tf.Tensor => {
    const rate = this.cfg.dropout_rate;
    if (!this.opts.training || rate === 0) return x;
    return tf.dropout(x, rate, undefined, this.seed++);
  };
  /** x [N, in] · W^T (+ LoRA) for the linear module `name` (without ".weight"). */
  linear(name: string, x: tf.Tensor2D, batch: number): tf.Tensor2D {
    const y = tf.matMul(x, this.param(`${name}.weight`) as tf.Tensor2D, false, true) as tf.Tensor2D;
    const delta = loraDelta(this.lora(), name, x, batch, this.dropout);
    return delta ? (tf.add(y, delta) as tf.Tensor2D) : y;
  }
  private lora(): LoraAdapter | undefined {
    const lora = this.opts.lora;
    if (!lora || !this.overrides) return lora;
    const modules = new Map(lora.modules);
    for (const m of lora.modules.keys()) {
      const A = this.overrides.get(`${m}#lora_A`);
      const B = this.overrides.get(`${m}#lora_B`);
      if (A && B) modules.set(m, { A, B });
    }
    return { ...lora, modules };
  }

  /**
   * Runs `block(ctx, inputs)` for the block whose parameters start with `prefix`, recomputed in backprop
   * when opts.recompute is on. Every tensor the block reads is passed explicitly (inputs, its parameters,
   * its LoRA factors) because tfjs's customGrad differentiates explicit arguments only; dropout masks are
   * reproduced by replaying the same seeds.
   */
  block(prefix: string, inputs: tf.Tensor[], block: (ctx: Context, inputs: tf.Tensor[]) => tf.Tensor): tf.Tensor {
    const seed = this.seed;
    this.seed += 1_000; // the block's dropout seeds: the same whether recomputed or not, and when replayed
    if (!this.opts.recompute) return block(new Context(this.model, { ...this.opts, seed }, this.overrides), inputs);
    // The relative attention bias table lives in block 0 but is read before the blocks (the bias is an input).
    const names = [...this.model.params.keys(), ...(this.opts.fusion?.params.keys() ?? [])].filter(
      (n) => n.startsWith(prefix) && !n.includes("relative_attention_bias"),
    );
    const loraKeys: string[] = [];
    const loraTensors: tf.Tensor[] = [];
    for (const [m, { A, B }] of this.opts.lora?.modules ?? []) {
      if (!m.startsWith(prefix)) continue;
      loraKeys.push(`${m}#lora_A`, `${m}#lora_B`);
      loraTensors.push(A, B);
    }
    const keys = [...names, ...loraKeys];
    const run = recompute((ins, ps) => {
      const sub = new Context(this.model, { ...this.opts, seed }, new Map(keys.map((k, i) => [k, ps[i]!])));
      return block(sub, ins);
    });
    return run(inputs, [...names.map((n) => this.param(n)), ...loraTensors]);
  }
}

/** T5LayerNorm: x / sqrt(mean(x^2) + eps) * w (no mean subtraction, no bias). */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/** gelu_new, 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))), written as x·sigmoid(2z): same function, no tanh. */
export function geluNew(x: tf.Tensor): tf.Tensor {
  const z = tf.mul(tf.add(x, tf.mul(tf.mul(x, tf.square(x)), 0.044715)), 2 * Math.sqrt(2 / Math.PI));
  return tf.mul(x, tf.sigmoid(z));
}

function checkIds(ids: tf.Tensor, vocab: number, what: string): void {
  if (ids.dtype !== "int32") throw new Error(`T5: ${what} must be int32, got ${ids.dtype}`);
  if (ids.rank !== 2) throw new Error(`T5: ${what} must be [batch, length], got shape [${ids.shape}]`);
  const v = ids.dataSync();
  for (let i = 0; i < v.length; i++) {
    const id = v[i]!;
    if (id < 0 || id >= vocab) {
      const [, len] = ids.shape as [number, number];
      throw new Error(`T5: ${what} holds id ${id} at [${Math.floor(i / len)}, ${i % len}], outside the vocabulary [0, ${vocab})`);
    }
  }
}

function attention(
  ctx: Context,
  prefix: string,
  xq: tf.Tensor2D,
  kv: tf.Tensor2D | null,
  batch: number,
  bias: tf.Tensor,
  past?: { k: tf.Tensor4D; v: tf.Tensor4D },
  precomputed?: { k: tf.Tensor4D; v: tf.Tensor4D },
): { out: tf.Tensor2D; k: tf.Tensor4D; v: tf.Tensor4D } {
  const { num_heads: h, d_kv: dk } = ctx.cfg;
  const tq = xq.shape[0] / batch;
  const q = splitHeads(ctx.linear(`${prefix}.q`, xq, batch), batch, tq, h, dk);
  let k: tf.Tensor4D;
  let v: tf.Tensor4D;
  if (precomputed) {
    ({ k, v } = precomputed);
  } else {
    const src = kv ?? xq;
    const tk = src.shape[0] / batch;
    k = splitHeads(ctx.linear(`${prefix}.k`, src, batch), batch, tk, h, dk);
    v = splitHeads(ctx.linear(`${prefix}.v`, src, batch), batch, tk, h, dk);
    if (past) {
      k = tf.concat([past.k, k], 2);
      v = tf.concat([past.v, v], 2);
    }
  }
  const ctxv = scaledDotProduct(q, k, v, bias, ctx.dropout);
  return { out: ctx.linear(`${prefix}.o`, mergeHeads(ctxv), batch), k, v };
}

function feedForward(ctx: Context, prefix: string, x: tf.Tensor2D, batch: number): tf.Tensor2D {
  const c = ctx.cfg;
  const h = rmsNorm(x, ctx.param(`${prefix}.layer_norm.weight`), c.layer_norm_epsilon) as tf.Tensor2D;
  const p = `${prefix}.DenseReluDense`;
  let inner: tf.Tensor2D;
  if (c.feed_forward_proj === "gated-gelu") {
    inner = tf.mul(geluNew(ctx.linear(`${p}.wi_0`, h, batch)), ctx.linear(`${p}.wi_1`, h, batch));
  } else {
    inner = tf.relu(ctx.linear(`${p}.wi`, h, batch));
  }
  return tf.add(x, ctx.dropout(ctx.linear(`${p}.wo`, ctx.dropout(inner) as tf.Tensor2D, batch))) as tf.Tensor2D;
}

function embed(ctx: Context, ids: tf.Tensor2D): tf.Tensor2D {
  const [b, t] = ids.shape;
  return tf.reshape(tf.gather(ctx.param("shared.weight"), tf.reshape(ids, [b * t])), [b * t, ctx.cfg.d_model]) as tf.Tensor2D;
}

/** Encoder: token ids [B, T] (int32) and optional 0/1 mask -> last hidden state [B, T, d_model]. */
export function encode(model: T5Model, inputIds: tf.Tensor2D, attentionMask?: tf.Tensor2D, opts: RunOptions = {}): tf.Tensor3D {
  checkIds(inputIds, model.config.vocab_size, "input_ids");
  return tf.tidy(() => encodeWith(new Context(model, opts), inputIds, attentionMask));
}

function encodeWith(ctx: Context, inputIds: tf.Tensor2D, attentionMask?: tf.Tensor2D, embedded?: tf.Tensor2D): tf.Tensor3D {
  const c = ctx.cfg;
  const [b, t] = inputIds.shape;
  let x = ctx.dropout(embedded ?? embed(ctx, inputIds)) as tf.Tensor2D;
  let bias: tf.Tensor = positionBias(
    ctx.param("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
    t,
    t,
    true,
    c.relative_attention_max_distance,
  );
  if (attentionMask) bias = tf.add(bias, paddingMask(attentionMask));
  const fusion = ctx.opts.fusion;
  if (fusion) checkFusion(fusion, b, c.d_model);
  const cross = fusion?.crossAttention ?? false;
  // Eq. 1's inputs: I_x flattened to rows, and its padding as an additive mask (no position bias, as T5's cross-attention).
  const instr = cross ? (tf.reshape(fusion!.instruction, [b * fusion!.instruction.shape[1], c.d_model]) as tf.Tensor2D) : null;
  const instrBias = cross ? paddingMask(fusion!.instructionMask) : null;
  for (let i = 0; i < c.num_layers; i++) {
    const p = `encoder.block.${i}`;
    const inputs = cross ? [x, bias, instr!, instrBias!] : [x, bias];
    x = ctx.block(`${p}.`, inputs, (cx, [xi, bi, ins, insBias]) => {
      const h = rmsNorm(xi!, cx.param(`${p}.layer.0.layer_norm.weight`), c.layer_norm_epsilon) as tf.Tensor2D;
      let y = tf.add(xi!, cx.dropout(attention(cx, `${p}.layer.0.SelfAttention`, h, null, b, bi!).out)) as tf.Tensor2D;
      if (ins) {
        const hf = rmsNorm(y, cx.param(`${p}.fusion.layer_norm.weight`), c.layer_norm_epsilon) as tf.Tensor2D;
        y = tf.add(y, cx.dropout(attention(cx, `${p}.fusion.CrossAttention`, hf, ins as tf.Tensor2D, b, insBias!).out)) as tf.Tensor2D;
      }
      return feedForward(cx, `${p}.layer.1`, y, b);
    }) as tf.Tensor2D;
  }
  const out = tf.reshape(ctx.dropout(rmsNorm(x, ctx.param("encoder.final_layer_norm.weight"), c.layer_norm_epsilon)), [b, t, c.d_model]) as tf.Tensor3D;
  return fusion?.concatenate ? (tf.concat([fusion.instruction, out], 1) as tf.Tensor3D) : out;
}

function checkFusion(f: InstructionFusion, batch: number, d: number): void {
  const [fb, fs, fd] = f.instruction.shape;
  if (fb !== batch || fd !== d) throw new Error(`instruction fusion: the instruction encoding is [${f.instruction.shape}], expected [${batch}, S, ${d}]`);
  if (f.instructionMask.shape[0] !== fb || f.instructionMask.shape[1] !== fs) {
    throw new Error(`instruction fusion: the instruction mask is [${f.instructionMask.shape}], expected [${fb}, ${fs}]`);
  }
}

/**
 * Decoder: ids [B, Tq] given the encoder output [B, Tk, d] and its mask -> logits [B, Tq, vocab].
 * With `cache`, ids are the next tokens after `cache.self[0].k.shape[2]` earlier ones and the cache is
 * returned extended (the old cache tensors are not disposed: the caller owns them).
 */
export function decode(
  model: T5Model,
  decoderInputIds: tf.Tensor2D,
  /** null only with a cache that holds the cross-attention keys/values (they are all the decoder reads of it). */
  encoderHidden: tf.Tensor3D | null,
  encoderMask?: tf.Tensor2D,
  opts: RunOptions = {},
  cache?: DecoderCache,
): { logits: tf.Tensor3D; cache: DecoderCache } {
  checkIds(decoderInputIds, model.config.vocab_size, "decoder_input_ids");
  return decodeWith(model, decoderInputIds, encoderHidden, encoderMask, opts, cache);
}

function decodeWith(
  model: T5Model,
  decoderInputIds: tf.Tensor2D,
  encoderHidden: tf.Tensor3D | null,
  encoderMask: tf.Tensor2D | undefined,
  opts: RunOptions,
  cache?: DecoderCache,
  embedded?: tf.Tensor2D,
): { logits: tf.Tensor3D; cache: DecoderCache } {
  const ctx = new Context(model, cache ? { ...opts, recompute: false } : opts);
  const c = ctx.cfg;
  const [b, tq] = decoderInputIds.shape;
  const cached = cache?.cross[0];
  if (!encoderHidden && !cached) throw new Error("T5 decode: the encoder output is needed unless the cache holds the cross-attention keys/values");
  const tk = cached ? cached.k.shape[2] : encoderHidden!.shape[1];
  const offset = cache?.self[0]?.k.shape[2] ?? 0;
  const next: DecoderCache = { self: [], cross: [] };
  const logits = tf.tidy(() => {
    // With cached cross keys/values the encoder output is not read: a placeholder stands in for it.
    const enc2 = (encoderHidden ? tf.reshape(encoderHidden, [b * tk, c.d_model]) : tf.zeros([1, c.d_model])) as tf.Tensor2D;
    let x = ctx.dropout(embedded ?? embed(ctx, decoderInputIds)) as tf.Tensor2D;
    let selfBias = tf.add(
      positionBias(
        ctx.param("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
        tq,
        offset + tq,
        false,
        c.relative_attention_max_distance,
        offset,
      ),
      causalMask(tq, offset + tq, offset),
    );
    if (cache?.selfMask) {
      const valid = tf.concat([tf.cast(cache.selfMask, "int32"), tf.ones([b, tq], "int32")], 1) as tf.Tensor2D;
      selfBias = tf.add(selfBias, paddingMask(valid));
      next.selfMask = tf.keep(valid);
    }
    const crossBias: tf.Tensor = encoderMask ? paddingMask(encoderMask) : tf.zeros([1, 1, 1, tk]);
    // Recomputed blocks keep no key/value cache (their activations are not stored): only without cache.
    const recomputing = Boolean(opts.recompute) && !cache;
    for (let i = 0; i < c.num_decoder_layers; i++) {
      const p = `decoder.block.${i}`;
      x = ctx.block(`${p}.`, [x, selfBias, crossBias, enc2], (cx, [xi, sb, cb, e2]) => {
        const h = rmsNorm(xi!, cx.param(`${p}.layer.0.layer_norm.weight`), c.layer_norm_epsilon) as tf.Tensor2D;
        const sa = attention(cx, `${p}.layer.0.SelfAttention`, h, null, b, sb!, cache?.self[i]);
        let y = tf.add(xi!, cx.dropout(sa.out)) as tf.Tensor2D;
        const h2 = rmsNorm(y, cx.param(`${p}.layer.1.layer_norm.weight`), c.layer_norm_epsilon) as tf.Tensor2D;
        const ca = attention(cx, `${p}.layer.1.EncDecAttention`, h2, e2 as tf.Tensor2D, b, cb!, undefined, cache?.cross[i]);
        y = tf.add(y, cx.dropout(ca.out)) as tf.Tensor2D;
        if (!recomputing) {
          next.self.push({ k: tf.keep(sa.k), v: tf.keep(sa.v) });
          next.cross.push(cache?.cross[i] ?? { k: tf.keep(ca.k), v: tf.keep(ca.v) });
        }
        return feedForward(cx, `${p}.layer.2`, y, b);
      }) as tf.Tensor2D;
    }
    let out = ctx.dropout(rmsNorm(x, ctx.param("decoder.final_layer_norm.weight"), c.layer_norm_epsilon)) as tf.Tensor2D;
    let lmHead: tf.Tensor2D;
    if (c.tie_word_embeddings) {
      out = tf.mul(out, c.d_model ** -0.5); // HF rescales before the tied projection
      lmHead = ctx.param("shared.weight") as tf.Tensor2D;
    } else {
      lmHead = ctx.param("lm_head.weight") as tf.Tensor2D;
    }
    return tf.reshape(tf.matMul(out, lmHead, false, true), [b, tq, c.vocab_size]) as tf.Tensor3D;
  });
  return { logits, cache: next };
}

/** Disposes a decoder cache's tensors. */
export function disposeCache(cache: DecoderCache): void {
  for (const e of [...cache.self, ...cache.cross]) tf.dispose([e.k, e.v]);
  cache.selfMask?.dispose();
}

export interface Seq2SeqBatch {
  inputIds: tf.Tensor2D;
  attentionMask?: tf.Tensor2D;
  /** Decoder inputs: the labels shifted right (see shiftRight). */
  decoderInputIds: tf.Tensor2D;
}

/** Full teacher-forced forward: logits [B, T, vocab]. */
export function forward(model: T5Model, batch: Seq2SeqBatch, opts: RunOptions = {}): tf.Tensor3D {
  checkIds(batch.inputIds, model.config.vocab_size, "input_ids");
  checkIds(batch.decoderInputIds, model.config.vocab_size, "decoder_input_ids");
  return tf.tidy(() => {
    // Encoder and decoder tokens in one lookup: the shared embedding's gradient is then one scatter-add
    // into one [vocab, d_model] tensor, instead of two dense [vocab, d_model] gradients added together.
    const [b, tin] = batch.inputIds.shape;
    const tdec = batch.decoderInputIds.shape[1];
    const ids = tf.concat([tf.reshape(batch.inputIds, [b * tin]), tf.reshape(batch.decoderInputIds, [b * tdec])]);
    const [encEmb, decEmb] = tf.split(tf.gather(model.params.get("shared.weight") ?? missingShared(), ids), [b * tin, b * tdec]) as [
      tf.Tensor2D,
      tf.Tensor2D,
    ];
    const enc = encodeWith(new Context(model, { ...opts, seed: opts.seed }), batch.inputIds, batch.attentionMask, encEmb);
    // A different dropout seed stream for the decoder than the encoder used.
    const { logits, cache } = decodeWith(
      model,
      batch.decoderInputIds,
      enc,
      memoryMask(opts, batch.attentionMask, b, tin),
      { ...opts, seed: (opts.seed ?? 0) + 1_000_003 },
      undefined,
      decEmb,
    );
    disposeCache(cache);
    return logits;
  });
}

function missingShared(): never {
  throw new Error("T5: parameter 'shared.weight' is missing from the model");
}

/** HF's shift_right: [start, labels[:-1]] with -100 replaced by pad. */
export function shiftRight(labels: number[][], decoderStartId: number, padId: number): number[][] {
  return labels.map((row) => [decoderStartId, ...row.slice(0, -1)].map((id) => (id === -100 ? padId : id)));
}

/** log p(label) per position [B, T] (0 where the label is -100). */
export function tokenLogProbs(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, t, v] = logits.shape;
    const valid = tf.notEqual(labels, -100);
    const safe = tf.where(valid, labels, tf.zerosLike(labels));
    const logp = tf.logSoftmax(tf.reshape(logits, [b * t, v]));
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.reshape(safe, [b * t]), v)), -1);
    return tf.mul(tf.reshape(picked, [b, t]), tf.cast(valid, "float32")) as tf.Tensor2D;
  });
}

/**
 * Mean cross-entropy over the labels that are not -100 (HF's CrossEntropyLoss(ignore_index=-100)), with its
 * gradient written out — (softmax(logits) - onehot(label)) / count on valid positions — instead of
 * differentiated through log-softmax, one-hot and sum: half the passes over the [tokens, vocab] logits,
 * which at T5's 32k vocabulary are the largest tensors of a training step.
 */
export function crossEntropyLoss(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Scalar {
  // One forward and one backward kernel over the logits where the fused op runs (src/backend/fused-ce-kl.ts).
  if (fusedLossStatus().inUse) return fusedCeKl(logits, labels, null, { temperature: 1 }).ce;
  return composedCrossEntropyLoss(logits, labels);
}

/** `crossEntropyLoss` in TensorFlow ops (every backend; the fused op's reference in its tests). */
export function composedCrossEntropyLoss(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Scalar {
  const [b, t, v] = logits.shape;
  const ce = tf.customGrad((...args: unknown[]) => {
    const [x, save] = [args[0] as tf.Tensor, args[args.length - 1] as tf.GradSaveFunc];
    const flat = tf.reshape(x, [b * t, v]);
    const labelFlat = tf.reshape(labels, [b * t]);
    const valid = tf.cast(tf.notEqual(labelFlat, -100), "float32");
    const safe = tf.where(tf.notEqual(labelFlat, -100), labelFlat, tf.zerosLike(labelFlat));
    const count = tf.maximum(tf.sum(valid), 1);
    const logp = tf.logSoftmax(flat);
    const rows = tf.range(0, b * t, 1, "int32");
    const picked = tf.gather(tf.reshape(logp, [b * t * v]), tf.add(tf.mul(rows, tf.scalar(v, "int32")), safe));
    const value = tf.div(tf.neg(tf.sum(tf.mul(picked, valid))), count) as tf.Scalar;
    save([logp, safe, valid, count]);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [lp, lab, val, cnt] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.Scalar];
        const scale = tf.div(tf.mul(tf.reshape(val, [b * t, 1]), dy as tf.Scalar), cnt); // [N, 1]
        const g = tf.mul(tf.sub(tf.exp(lp), tf.oneHot(lab, v)), scale);
        return [tf.reshape(g, [b, t, v])];
      },
    };
  });
  return (ce as (x: tf.Tensor) => tf.Scalar)(logits);
}
