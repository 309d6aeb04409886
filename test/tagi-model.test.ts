/**
 * TAGI's model-side parts on a micro T5: instruction encoding and pooling, instruction fusion (Eq. 1
 * cross-attention: identity at init, gradients into its parameters, equal under recomputation; HINT-style
 * concatenation equal to decoding over the concatenated memory), and the adapter generator (Eq. 2: shapes,
 * LoRA-style init that leaves the model unchanged, instruction-dependent output, gradients reaching it).
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { parseT5Config } from "../src/model/config";
import { initT5Params } from "../src/model/init";
import { crossEntropyLoss, decode, disposeCache, encode, forward, type RunOptions, type T5Model } from "../src/model/t5";
import { greedyDecode } from "../src/model/generate";
import { encodeInstruction, tokenizeInstructions } from "../src/tagi/instruction-encoder";
import { initFusionParams, instructionFusion, fusionParameterShapes } from "../src/tagi/fusion";
import { adapterSlots, generateAdapter, hypernetworkParameterShapes, HYPERNETWORK_DEFAULTS, initHypernetwork, type HypernetworkConfig } from "../src/tagi/hypernetwork";
import { parameterAlignmentLoss } from "../src/tagi/losses";
import { T5Tokenizer } from "../src/text/tokenizer";
import { relError } from "./helpers/crosscheck";
import { createTagiModel, encodeInstructions, TAGI_DEFAULTS } from "../src/tagi/model";
import { instructionCacheFor } from "../src/tagi/instruction-cache";
import { cosineMatrix } from "../src/tagi/probes";

/** relError (test/helpers/crosscheck.ts) of two tensors. */
const rel = (a: tf.Tensor, b: tf.Tensor) => relError(a.dataSync(), b.dataSync());

const CONFIG = parseT5Config(
  { vocab_size: 64, d_model: 16, d_kv: 4, d_ff: 32, num_layers: 2, num_decoder_layers: 2, num_heads: 2, feed_forward_proj: "gated-gelu", tie_word_embeddings: false, dropout_rate: 0 },
  "micro",
);
const model: T5Model = { config: CONFIG, params: new Map() };
const ids = () => tf.tensor2d([[5, 9, 12, 1, 0], [7, 3, 1, 0, 0]], undefined, "int32");
const mask = () => tf.tensor2d([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], undefined, "int32");
const instrIds = () => tf.tensor2d([[20, 21, 22, 23, 1], [30, 31, 1, 0, 0]], undefined, "int32");
const instrMask = () => tf.tensor2d([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], undefined, "int32");
const dec = () => tf.tensor2d([[0, 4, 6], [0, 8, 2]], undefined, "int32");
const labels = () => tf.tensor2d([[4, 6, 1], [8, 2, 1]], undefined, "int32");
const H: HypernetworkConfig = { ...HYPERNETWORK_DEFAULTS, rank: 4, alpha: 8, hidden: 8, idDim: 4 };

describe("TAGI model parts", () => {
  before(async () => {
    await initBackend({ log: false });
    for (const [k, v] of initT5Params(CONFIG, 3)) model.params.set(k, v);
  });

  it("instruction encoding: mean pooling over non-padding tokens; padding does not change it; first-last pooling", () => {
    const e = encodeInstruction(model, instrIds(), instrMask());
    assert.deepEqual(e.states.shape, [2, 5, 16]);
    assert.deepEqual(e.pooled.shape, [2, 16]);
    const alone = encodeInstruction(model, tf.tensor2d([[30, 31, 1]], undefined, "int32"), tf.tensor2d([[1, 1, 1]], undefined, "int32"));
    assert.ok(rel(e.pooled.slice([1, 0], [1, 16]), alone.pooled) < 1e-5);
    const fl = encodeInstruction(model, instrIds(), instrMask(), "first-last");
    assert.deepEqual(fl.pooled.shape, [2, 16]);
    assert.ok(rel(fl.pooled, e.pooled) > 1e-3);
    assert.throws(() => encodeInstruction(model, instrIds(), instrMask(), "max" as never), /pooling must be "mean" or "first-last"/);
  });

  it("the stage-2 instruction cache: each distinct instruction encoded once, batches equal to live encoding; none when the encoder trains or pools padding", () => {
    const m = createTagiModel(model, { ...TAGI_DEFAULTS, hypernetwork: H }, 1);
    const cache = instructionCacheFor(m, { layerNorms: false, feedForward: false })!;
    const batches: [number[][], number[][]][] = [
      [[[20, 21, 22, 23, 1], [30, 31, 1, 0, 0]], [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]],
      [[[30, 31, 1, 0, 0, 0], [40, 41, 42, 1, 0, 0], [20, 21, 22, 23, 1, 0]], [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]]],
    ];
    for (const [ids, mask] of batches) {
      const got = cache.encode(ids, mask);
      const live = encodeInstructions(m, ids, mask);
      const keep = tf.expandDims(tf.cast(live.mask, "float32"), -1);
      assert.ok(rel(got.states, tf.mul(live.states, keep)) < 1e-5, "states on tokens equal, zero on padding");
      assert.ok(rel(got.pooled, live.pooled) < 1e-5);
      assert.deepEqual(got.mask.arraySync(), mask);
      tf.dispose([got.states, got.mask, got.pooled, live.states, live.mask, live.pooled, keep]);
    }
    assert.deepEqual([cache.size, cache.misses, cache.hits], [3, 3, 2]);
    assert.equal(instructionCacheFor(m, { layerNorms: true, feedForward: false }), null);
    assert.equal(instructionCacheFor({ ...m, config: { ...m.config, pooling: "first-last" } }, { layerNorms: false, feedForward: false }), null);
    for (const t of [...m.hyper.values(), ...m.fusion.values()]) t.dispose();
  });

  it("tokenizeInstructions: empty instructions are errors; long ones are cut (with a warning) and end with </s>", () => {
    const tok = T5Tokenizer.fromFile();
    assert.throws(() => tokenizeInstructions(tok, ["Translate to French.", "   "], 32), /instruction 1 is empty or whitespace/);
    const warned: number[] = [];
    const r = tokenizeInstructions(tok, ["word ".repeat(50), "Short one."], 16, (i) => warned.push(i));
    assert.deepEqual(warned, [0]);
    assert.equal(r.ids[0]!.length, 16);
    assert.equal(r.ids[0]![15], 1);
    assert.deepEqual(r.mask[1]!.slice(-1), [0]);
  });

  it("fusion (Eq. 1): output projection 0 at init, so the fused model equals the base model", () => {
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const fp = initFusionParams(CONFIG, 1);
    assert.equal(fp.size, fusionParameterShapes(CONFIG).size);
    const base = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() });
    const fused = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, { fusion: instructionFusion("cross-attention", enc, fp) });
    assert.ok(rel(fused, base) < 1e-6);
  });

  it("fusion (Eq. 1): trained weights change the output; gradients reach every fusion parameter, equal under recomputation", () => {
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const fp = initFusionParams(CONFIG, 1);
    for (const [k, v] of fp) if (k.endsWith(".o.weight")) fp.set(k, tf.randomNormal(v.shape, 0, 0.3, "float32", 5));
    const names = [...fp.keys()];
    const run = (recompute: boolean) =>
      tf.grads((...xs: tf.Tensor[]) => {
        const p = new Map(names.map((n, i) => [n, xs[i]!]));
        const logits = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, { fusion: instructionFusion("cross-attention", enc, p), recompute });
        return crossEntropyLoss(logits, labels());
      })(names.map((n) => fp.get(n)!));
    const plain = run(false);
    const recomputed = run(true);
    names.forEach((n, i) => {
      assert.ok(tf.max(tf.abs(plain[i]!)).dataSync()[0]! > 0, `no gradient reaches ${n}`);
      assert.ok(rel(recomputed[i]!, plain[i]!) < 1e-5, `${n}: recomputed gradient differs`);
    });
    const base = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() });
    const fused = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, { fusion: instructionFusion("cross-attention", enc, fp) });
    assert.ok(rel(fused, base) > 1e-3);
  });

  it("HINT-style concatenation: the decoder reads (I_x ; encoder output) under the joined mask; greedy decoding agrees", () => {
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const opts: RunOptions = { fusion: instructionFusion("concatenate", enc, new Map()) };
    const logits = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, opts);
    const memory = tf.concat([enc.states, encode(model, ids(), mask())], 1) as tf.Tensor3D;
    const joined = tf.concat([instrMask(), mask()], 1) as tf.Tensor2D;
    const { logits: manual, cache } = decode(model, dec(), memory, joined);
    disposeCache(cache);
    assert.ok(rel(logits, manual) < 1e-5);
    const greedy = greedyDecode(model, ids(), mask(), { ...opts, maxNewTokens: 1 });
    const first = tf.argMax(logits.slice([0, 0, 0], [2, 1, 64]).reshape([2, 64]), -1).arraySync() as number[];
    assert.deepEqual(greedy.map((r) => r[1]), first);
  });

  it("the generator (Eq. 2): one adapter per adapted projection, A [B, in, r], B [B, r, out]; per-layer or shared networks", () => {
    const slots = adapterSlots(CONFIG, H);
    assert.equal(slots.length, 2 * 2 + 2 * 2 + 2 * 2);
    const perLayer = hypernetworkParameterShapes(CONFIG, H);
    const shared = hypernetworkParameterShapes(CONFIG, { ...H, sharing: "shared" });
    assert.equal([...perLayer.keys()].filter((k) => k.endsWith("fc2.weight")).length, 6);
    assert.equal([...shared.keys()].filter((k) => k.endsWith("fc2.weight")).length, 3);
    assert.deepEqual(shared.get("hyper.encoder.self.id_embedding"), [4, 4]); // 2 layers x (q, v)
    const params = initHypernetwork(CONFIG, H, 0);
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const a = generateAdapter(params, CONFIG, H, enc.pooled);
    assert.equal(a.modules.size, slots.length);
    const q = a.modules.get("decoder.block.1.layer.1.EncDecAttention.q")!;
    assert.deepEqual(q.A.shape, [2, 16, 4]);
    assert.deepEqual(q.B.shape, [2, 4, 8]);
    assert.equal(a.scaling, 2);
  });

  it("LoRA-style init: generated B = 0 (the model is unchanged), A nonzero and instruction-dependent; the official init is ~0", () => {
    const params = initHypernetwork(CONFIG, H, 0);
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const a = generateAdapter(params, CONFIG, H, enc.pooled);
    const m = a.modules.get("encoder.block.0.layer.0.SelfAttention.q")!;
    assert.equal(tf.max(tf.abs(m.B)).dataSync()[0], 0);
    const A = m.A.arraySync() as number[][][];
    assert.ok(Math.max(...A[0]!.flat().map(Math.abs)) > 0.05);
    assert.notDeepEqual(A[0], A[1]);
    const base = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() });
    const adapted = forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, { lora: a });
    assert.ok(rel(adapted, base) < 1e-6);
    const off = generateAdapter(initHypernetwork(CONFIG, { ...H, init: "official" }, 0), CONFIG, H, enc.pooled);
    assert.ok(tf.max(tf.abs(off.modules.get("encoder.block.0.layer.0.SelfAttention.q")!.A)).dataSync()[0]! < 1e-4);
  });

  it("at the LoRA-style init, L_ce's gradient reaches the B rows of the output layer", () => {
    const params = initHypernetwork(CONFIG, H, 0);
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const w = params.get("hyper.decoder.self.1.fc2.weight")!;
    const g = tf.grad((x: tf.Tensor) => {
      const p = new Map(params);
      p.set("hyper.decoder.self.1.fc2.weight", x);
      return crossEntropyLoss(forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, { lora: generateAdapter(p, CONFIG, H, enc.pooled) }), labels());
    })(w);
    const aRows = 16 * 4;
    assert.ok(tf.max(tf.abs(g.slice([aRows, 0], [w.shape[0]! - aRows, 8]))).dataSync()[0]! > 0);
  });

  it("gradients of L_ce and of L_ins reach the generator's parameters", () => {
    const params = initHypernetwork(CONFIG, { ...H, projection: 8 }, 0);
    // At the LoRA-style init the B rows are zero, so (as in LoRA) only they get a gradient at first; after a
    // step they are not: perturb them to check that gradients reach every layer of the generator.
    for (const [k, v] of params) if (k.endsWith("fc2.weight")) params.set(k, tf.add(v, tf.randomNormal(v.shape, 0, 0.01, "float32", 11)));
    const enc = encodeInstruction(model, instrIds(), instrMask());
    const names = [...params.keys()];
    const ce = tf.grads((...xs: tf.Tensor[]) => {
      const p = new Map(names.map((n, i) => [n, xs[i]!]));
      const a = generateAdapter(p, CONFIG, { ...H, projection: 8 }, enc.pooled);
      return crossEntropyLoss(forward(model, { inputIds: ids(), attentionMask: mask(), decoderInputIds: dec() }, { lora: a }), labels());
    })(names.map((n) => params.get(n)!));
    for (const n of ["hyper.projection.weight", "hyper.encoder.self.0.fc2.weight", "hyper.decoder.cross.1.fc1.weight"]) {
      assert.ok(tf.max(tf.abs(ce[names.indexOf(n)]!)).dataSync()[0]! > 0, `L_ce does not reach ${n}`);
    }
    const teacher = generateAdapter(initHypernetwork(CONFIG, { ...H, projection: 8 }, 9), CONFIG, { ...H, projection: 8 }, enc.pooled);
    const ins = tf.grads((...xs: tf.Tensor[]) => {
      const p = new Map(names.map((n, i) => [n, xs[i]!]));
      return parameterAlignmentLoss(generateAdapter(p, CONFIG, { ...H, projection: 8 }, enc.pooled), teacher);
    })(names.map((n) => params.get(n)!));
    assert.ok(tf.max(tf.abs(ins[names.indexOf("hyper.decoder.self.0.fc2.bias")]!)).dataSync()[0]! > 0);
    assert.throws(() => generateAdapter(new Map(), CONFIG, H, enc.pooled), /checkpoint without a hypernetwork/);
  });
});

describe("adapter similarity: every generated-versus-teacher cosine at once", () => {
  before(async () => {
    await initBackend({ log: false });
  });
  it("cosineMatrix equals the mean over shared modules of each pair's cosine (float64 reference); a zero update scores 0; nothing leaks", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const shapes: Record<string, [number, number]> = { "q.0": [5, 7], "v.0": [3, 9] };
    const update = (zero = false, drop?: string) =>
      new Map(Object.entries(shapes).filter(([k]) => k !== drop).map(([k, [r, c]]) => [k, tf.tensor2d(Array.from({ length: r * c }, () => (zero ? 0 : rnd())), [r, c])] as [string, tf.Tensor]));
    const gen = [update(), update(), update(true)];
    // a teacher lacking a module: that module is left out of every pair
    const teach = [update(), update(), update(), update(false, "v.0")];
    const before = tf.memory().numTensors;
    const got = cosineMatrix(gen, teach);
    assert.equal(tf.memory().numTensors, before);
    const cos64 = (a: tf.Tensor, b: tf.Tensor) => {
      const x = Array.from(a.dataSync()), y = Array.from(b.dataSync());
      const dot = x.reduce((s, v, i) => s + v * y[i]!, 0);
      const n = Math.sqrt(x.reduce((s, v) => s + v * v, 0)) * Math.sqrt(y.reduce((s, v) => s + v * v, 0));
      return dot / Math.max(n, 1e-30);
    };
    gen.forEach((g, i) =>
      teach.forEach((t, j) => {
        const want = cos64(g.get("q.0")!, t.get("q.0")!);
        assert.ok(Math.abs(got[i]![j]! - want) < 1e-5, `[${i}][${j}]: ${got[i]![j]} vs ${want}`);
      }),
    );
    assert.deepEqual(got[2], [0, 0, 0, 0]);
    // with every module shared, the mean over both
    const full = cosineMatrix(gen.slice(0, 2), teach.slice(0, 3));
    const want = (cos64(gen[1]!.get("q.0")!, teach[2]!.get("q.0")!) + cos64(gen[1]!.get("v.0")!, teach[2]!.get("v.0")!)) / 2;
    assert.ok(Math.abs(full[1]![2]! - want) < 1e-5);
    assert.throws(() => cosineMatrix([new Map([["k.0", tf.zeros([2, 2])]])], teach), /share no module/);
    tf.dispose([...gen, ...teach].flatMap((u) => [...u.values()]));
  });
});
