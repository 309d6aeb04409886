/**
 * The T5 model against Hugging Face transformers (and PEFT for LoRA), on the random-weight fixtures made by
 * reference/make_t5_fixtures.py: encoder states and logits (relative error <= 1e-4, relError as in
 * test/helpers/crosscheck.ts), loss (within 1e-5), per-token log-probabilities, greedy tokens (identical),
 * with and without padding, T5 v1.1 (gated-GELU, untied head) and original T5 (ReLU, tied, rescaled).
 */
import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { readSafetensors } from "../src/model/safetensors";
import { loadPeftAdapter, loadT5Checkpoint } from "../src/model/weights";
import { crossEntropyLoss, decode, disposeCache, encode, forward, tokenLogProbs, type T5Model } from "../src/model/t5";
import { encodeInChunks, ENCODE_CHUNK_ROWS, generateAndScore, greedyDecode, scoreTargets } from "../src/model/generate";
import { createLoraVariables, mergeLora, toPerExample, type LoraAdapter } from "../src/model/lora";
import { relError } from "./helpers/crosscheck";
import { randomTinyT5 } from "../src/model/tiny";

const FIXTURES = join(__dirname, "fixtures", "t5");

function fixture(name: string): { model: T5Model; expected: Map<string, tf.Tensor> } {
  const dir = join(FIXTURES, name);
  if (!existsSync(join(dir, "expected.safetensors"))) {
    throw new Error(`fixture ${dir} missing: run python3 reference/make_t5_fixtures.py`);
  }
  const { config, params } = loadT5Checkpoint(dir);
  return { model: { config, params }, expected: readSafetensors(join(dir, "expected.safetensors")).tensors };
}

function get(m: Map<string, tf.Tensor>, key: string): tf.Tensor {
  const t = m.get(key);
  if (!t) throw new Error(`expected.safetensors has no '${key}'`);
  return t;
}

function ids2(m: Map<string, tf.Tensor>, key: string): tf.Tensor2D {
  return get(m, key) as tf.Tensor2D;
}

function rows(t: tf.Tensor): number[][] {
  return t.arraySync() as number[][];
}

function close(actual: tf.Tensor, expected: tf.Tensor, tol: number, label: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  const err = relError(actual.dataSync(), expected.dataSync());
  assert.ok(err <= tol, `${label}: relative error ${err} > ${tol}`);
}

before(async () => {
  await initBackend({ log: false });
});

for (const name of ["v1_1", "original"]) {
  describe(`T5 '${name}' vs Hugging Face transformers`, () => {
    let model: T5Model;
    let expected: Map<string, tf.Tensor>;
    before(() => {
      ({ model, expected } = fixture(name));
    });
    after(() => {
      tf.dispose([...model.params.values(), ...expected.values()]);
    });

    it("encoder last hidden state, padded batch", () => {
      const enc = encode(model, ids2(expected, "input_ids"), ids2(expected, "attention_mask"));
      // Padding positions are not compared (HF computes them too; they carry no meaning, but should match as well).
      close(enc, get(expected, "encoder_last_hidden_state"), 1e-4, "encoder states");
      enc.dispose();
    });

    it("logits, loss and per-token log-probabilities, padded batch", () => {
      const labels = ids2(expected, "labels");
      const logits = forward(model, {
        inputIds: ids2(expected, "input_ids"),
        attentionMask: ids2(expected, "attention_mask"),
        decoderInputIds: ids2(expected, "decoder_input_ids"),
      });
      close(logits, get(expected, "logits"), 1e-4, "logits");
      const loss = crossEntropyLoss(logits, labels);
      const lossRef = get(expected, "loss").dataSync()[0]!;
      assert.ok(Math.abs(loss.dataSync()[0]! - lossRef) <= 1e-5, `loss ${loss.dataSync()[0]} vs ${lossRef}`);
      const lp = tokenLogProbs(logits, labels);
      close(lp, get(expected, "token_logprobs"), 1e-4, "token log-probs");
      tf.dispose([logits, loss, lp]);
    });

    it("crossEntropyLoss's written-out gradient equals autodiff through log-probabilities", () => {
      const labels = ids2(expected, "labels");
      const logits = get(expected, "logits") as tf.Tensor3D;
      const count = rows(labels).flat().filter((x) => x !== -100).length;
      const [g1] = tf.grads((x: tf.Tensor) => crossEntropyLoss(x as tf.Tensor3D, labels))([logits]);
      const [g2] = tf.grads((x: tf.Tensor) => tf.div(tf.neg(tf.sum(tokenLogProbs(x as tf.Tensor3D, labels))), count))([logits]);
      close(g1!, g2!, 1e-5, "CE gradient");
      tf.dispose([g1!, g2!]);
    });

    it("encoder states, logits and loss without padding (single example, no attention mask)", () => {
      const enc = encode(model, ids2(expected, "single_input_ids"));
      close(enc, get(expected, "single_encoder_last_hidden_state"), 1e-4, "single encoder states");
      const { logits, cache } = decode(model, ids2(expected, "single_decoder_input_ids"), enc);
      close(logits, get(expected, "single_logits"), 1e-4, "single logits");
      const loss = crossEntropyLoss(logits, ids2(expected, "single_labels"));
      assert.ok(Math.abs(loss.dataSync()[0]! - get(expected, "single_loss").dataSync()[0]!) <= 1e-5, "single loss");
      disposeCache(cache);
      tf.dispose([enc, logits, loss]);
    });

    it("greedy decoding equals HF generate(), padded batch and single example", () => {
      const got = greedyDecode(model, ids2(expected, "input_ids"), ids2(expected, "attention_mask"), { maxNewTokens: 8 });
      assert.deepEqual(got, rows(get(expected, "greedy_ids")));
      const single = greedyDecode(model, ids2(expected, "single_input_ids"), undefined, { maxNewTokens: 8 });
      assert.deepEqual(single, rows(get(expected, "single_greedy_ids")));
    });

    it("scoreTargets agrees with teacher-forced log-probabilities", () => {
      const labels = rows(get(expected, "labels")).map((r) => r.filter((x) => x !== -100));
      const s = scoreTargets(model, ids2(expected, "input_ids"), ids2(expected, "attention_mask"), labels);
      const ref = rows(get(expected, "token_logprobs"));
      s.tokenLogProbs.forEach((row, i) => assert.ok(relError(row, ref[i]!.slice(0, row.length)) <= 1e-4, `row ${i}`));
      s.mean.forEach((m, i) => assert.ok(Math.abs(m - s.sum[i]! / labels[i]!.length) < 1e-9));
    });

    it("rejects token ids outside the vocabulary, naming the id and its position", () => {
      const bad = tf.tensor2d([[5, model.config.vocab_size + 3]], undefined, "int32");
      assert.throws(() => encode(model, bad), new RegExp(`id ${model.config.vocab_size + 3} at \\[0, 1\\]`));
      bad.dispose();
    });
  });
}

describe("LoRA vs PEFT (v1_1 with a q,v adapter)", () => {
  let model: T5Model;
  let expected: Map<string, tf.Tensor>;
  let adapter: LoraAdapter;
  before(() => {
    ({ model } = fixture("v1_1"));
    const dir = join(FIXTURES, "v1_1_lora");
    expected = readSafetensors(join(dir, "expected.safetensors")).tensors;
    const peft = loadPeftAdapter(join(dir, "adapter"));
    adapter = { layout: "peft", scaling: peft.config.lora_alpha / peft.config.r, dropout: 0, modules: peft.weights };
  });
  const batch = () => ({
    inputIds: ids2(expected, "input_ids"),
    attentionMask: ids2(expected, "attention_mask"),
    decoderInputIds: ids2(expected, "decoder_input_ids"),
  });

  it("covers q and v of encoder self-, decoder self- and cross-attention", () => {
    const mods = [...adapter.modules.keys()];
    const c = model.config;
    assert.equal(mods.length, 2 * (c.num_layers + 2 * c.num_decoder_layers));
    assert.ok(mods.includes("decoder.block.0.layer.1.EncDecAttention.v"));
  });

  it("logits and loss with the adapter applied unmerged (x·A·B)", () => {
    const logits = forward(model, batch(), { lora: adapter });
    close(logits, get(expected, "logits"), 1e-4, "LoRA logits");
    const loss = crossEntropyLoss(logits, ids2(expected, "labels"));
    assert.ok(Math.abs(loss.dataSync()[0]! - get(expected, "loss").dataSync()[0]!) <= 1e-5);
    tf.dispose([logits, loss]);
  });

  it("merge gives the same logits as PEFT's merge_and_unload; unmerge restores the base weights", () => {
    const merged = mergeLora(model.params, adapter);
    const logits = forward({ config: model.config, params: merged }, batch());
    close(logits, get(expected, "merged_logits"), 1e-4, "merged logits");
    const unmerged = mergeLora(merged, adapter, -1);
    for (const m of adapter.modules.keys()) {
      const w = `${m}.weight`;
      assert.ok(relError(unmerged.get(w)!.dataSync(), model.params.get(w)!.dataSync()) < 1e-6, `unmerge ${w}`);
    }
    const created = [...adapter.modules.keys()].flatMap((m) => [merged.get(`${m}.weight`)!, unmerged.get(`${m}.weight`)!]);
    tf.dispose([logits, ...created]);
  });

  it("per-example adapters (A [B,in,r], B [B,r,out]) equal the shared adapter and pass gradients to A and B", () => {
    const b = ids2(expected, "input_ids").shape[0];
    const names = [...adapter.modules.keys()];
    const repeated = toPerExample(adapter, b);
    const as = names.map((m) => repeated.modules.get(m)!.A);
    const bs = names.map((m) => repeated.modules.get(m)!.B);
    const perExample = (aa: tf.Tensor[], bb: tf.Tensor[]): LoraAdapter => ({
      layout: "perExample",
      scaling: adapter.scaling,
      dropout: 0,
      modules: new Map(names.map((m, i) => [m, { A: aa[i]!, B: bb[i]! }])),
    });
    const logits = forward(model, batch(), { lora: perExample(as, bs) });
    close(logits, get(expected, "logits"), 1e-4, "per-example logits");
    const labels = ids2(expected, "labels");
    const grads = tf.grads((...xs: tf.Tensor[]) =>
      crossEntropyLoss(forward(model, batch(), { lora: perExample(xs.slice(0, names.length), xs.slice(names.length)) }), labels),
    )([...as, ...bs]);
    for (const g of grads) {
      const v = g.dataSync();
      assert.ok(v.every(Number.isFinite), "finite gradients");
    }
    assert.ok(grads.some((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) > 0), "non-zero gradients");
    tf.dispose([logits, ...as, ...bs, ...grads]);
  });

  it("recompute (gradient checkpointing) gives the same loss and gradients, with dropout on, for weights and per-example LoRA", () => {
    const b = ids2(expected, "input_ids").shape[0];
    const names = [...adapter.modules.keys()];
    const paramNames = [...model.params.keys()];
    const repeated = toPerExample(adapter, b);
    const as = names.map((m) => repeated.modules.get(m)!.A);
    const bs = names.map((m) => repeated.modules.get(m)!.B);
    const labels = ids2(expected, "labels");
    const run = (recompute: boolean) =>
      tf.tidy(() => {
        const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
          const n = paramNames.length;
          const m: T5Model = { config: { ...model.config, dropout_rate: 0.2 }, params: new Map(paramNames.map((k, i) => [k, xs[i]!])) };
          const lora: LoraAdapter = {
            layout: "perExample",
            scaling: adapter.scaling,
            dropout: 0.1,
            modules: new Map(names.map((k, i) => [k, { A: xs[n + i]!, B: xs[n + names.length + i]! }])),
          };
          return crossEntropyLoss(forward(m, batch(), { lora, training: true, seed: 7, recompute }), labels);
        })([...paramNames.map((k) => model.params.get(k)!), ...as, ...bs]);
        return [value.dataSync()[0]!, ...grads.map((g) => Array.from(g.dataSync()))] as const;
      });
    const before = tf.memory().numTensors;
    const [plainLoss, ...plainGrads] = run(false);
    const [reLoss, ...reGrads] = run(true);
    assert.equal(tf.memory().numTensors, before, "no tensors left behind");
    assert.ok(Math.abs((plainLoss as number) - (reLoss as number)) < 1e-6, `loss ${plainLoss} vs ${reLoss}`);
    plainGrads.forEach((g, i) => {
      const err = relError(reGrads[i] as number[], g as number[]);
      assert.ok(err < 1e-5, `gradient ${i < paramNames.length ? paramNames[i] : `lora ${i - paramNames.length}`}: ${err}`);
    });
    tf.dispose([...as, ...bs]);
  });

  it("100 training steps of a LoRA teacher leak no tensors", async () => {
    const lora = createLoraVariables(model.config, { r: 4, alpha: 8, dropout: 0.1, targetModules: ["q", "v"] }, 1);
    const opt = tf.train.adam(1e-2);
    const vars = [...lora.modules.values()].flatMap((m) => [m.A, m.B]) as tf.Variable[];
    const step = (i: number) =>
      opt.minimize(() => crossEntropyLoss(forward(model, batch(), { lora, training: true, seed: i }), ids2(expected, "labels")), true, vars);
    const first = step(0)!;
    const firstLoss = first.dataSync()[0]!;
    first.dispose();
    const before = tf.memory().numTensors;
    let last = NaN;
    for (let i = 1; i <= 100; i++) {
      const l = step(i)!;
      if (i === 100) last = l.dataSync()[0]!;
      l.dispose();
    }
    assert.equal(tf.memory().numTensors, before, "live tensors after 100 steps");
    assert.ok(last < firstLoss, `training lowers the loss (${firstLoss} -> ${last})`);
    opt.dispose();
    tf.dispose(vars);
  });
});

/** A rank-4 LoRA on q and v, one adapter per example, with non-zero B (so it changes the output); seeded. */
function randomPerExampleLora(model: T5Model, batch: number, seed: number): LoraAdapter {
  const peft = createLoraVariables(model.config, { r: 4, alpha: 8, dropout: 0, targetModules: ["q", "v"] }, seed);
  const lora = toPerExample(peft, batch);
  for (const m of peft.modules.values()) tf.dispose([m.A, m.B]);
  for (const m of lora.modules.values()) {
    const B = m.B;
    m.B = tf.randomNormal(B.shape, 0, 0.5, "float32", seed * 2);
    B.dispose();
  }
  return lora;
}

describe("greedy decoding: finished sequences leave the batch", () => {
  before(async () => {
    await initBackend({ log: false });
  });

  it("gives the ids of decoding every row to the end (padded batch, per-example LoRA, concatenated instruction), leaking nothing", () => {
    const base = randomTinyT5(5);
    const b = 6;
    const lens = [9, 7, 9, 4, 8, 6];
    const ids = tf.tensor2d(lens.map((n, i) => Array.from({ length: 9 }, (_, j) => (j < n ? 3 + ((i * 131 + j * 17) % 500) : 0))), [b, 9], "int32");
    const mask = tf.tensor2d(lens.map((n) => Array.from({ length: 9 }, (_, j) => (j < n ? 1 : 0))), [b, 9], "int32");
    const lora = randomPerExampleLora(base, b, 1);
    const fusion = { instruction: tf.randomNormal([b, 3, base.config.d_model], 0, 1, "float32", 3) as tf.Tensor3D, instructionMask: tf.tensor2d([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1]], [b, 3], "int32"), crossAttention: false, concatenate: true, params: new Map<string, tf.Tensor>() };
    // An end-of-sequence id that the rows reach at different steps: the most common first-seen token of a run that ignores EOS.
    const free = greedyDecode(base, ids, mask, { maxNewTokens: 12, ignoreEos: true, lora, fusion });
    const counts = new Map<number, number>();
    for (const row of free) for (const t of new Set(row.slice(1))) counts.set(t, (counts.get(t) ?? 0) + 1);
    const eos = [...counts].filter(([, n]) => n >= 2 && n < b).sort((x, y) => y[1] - x[1])[0]![0];
    const model = { config: { ...base.config, eos_token_id: eos }, params: base.params };
    const before = tf.memory().numTensors;
    const reference = greedyDecode(model, ids, mask, { maxNewTokens: 12, lora, fusion, compact: false });
    const compacted = greedyDecode(model, ids, mask, { maxNewTokens: 12, lora, fusion });
    assert.equal(tf.memory().numTensors, before, "greedy decoding leaked tensors");
    assert.deepEqual(compacted, reference);
    const stops = reference.map((r) => r.indexOf(eos));
    assert.ok(new Set(stops).size >= 2 && stops.some((s) => s > 0), `rows should finish at different steps: ${stops}`);
    assert.ok(reference.every((r) => r.length === reference[0]!.length));
    // one encoder pass for generation and reference scores: the same values as the two calls apart
    const labels = [[5, 9, 1], [7, 1], [11, 12, 13, 1], [1], [4, 4, 1], [8, 1]];
    const both = generateAndScore(model, ids, mask, labels, { maxNewTokens: 12, lora, fusion });
    assert.deepEqual(both.ids, reference);
    assert.deepEqual(both.scores, scoreTargets(model, ids, mask, labels, { lora, fusion }));
    assert.equal(tf.memory().numTensors, before, "generateAndScore leaked tensors");
    for (const m of lora.modules.values()) tf.dispose([m.A, m.B]);
    tf.dispose([ids, mask, fusion.instruction, fusion.instructionMask, ...base.params.values()]);
  });

  it("a batch larger than ENCODE_CHUNK_ROWS is encoded in chunks: the same encoder output and ids, nothing leaked", () => {
    const model = randomTinyT5(6);
    const b = 2 * ENCODE_CHUNK_ROWS + 5;
    const lens = Array.from({ length: b }, (_, i) => 3 + ((i * 7) % 9));
    const ids = tf.tensor2d(lens.map((n, i) => Array.from({ length: 11 }, (_, j) => (j < n ? 3 + ((i * 97 + j * 13) % 700) : 0))), [b, 11], "int32");
    const mask = tf.tensor2d(lens.map((n) => Array.from({ length: 11 }, (_, j) => (j < n ? 1 : 0))), [b, 11], "int32");
    const before = tf.memory().numTensors;
    const whole = encode(model, ids, mask);
    const chunked = encodeInChunks(model, ids, mask, {});
    assert.deepEqual(chunked.shape, whole.shape);
    assert.ok(relError(chunked.dataSync(), whole.dataSync()) < 1e-6);
    tf.dispose([whole, chunked]);
    const out = greedyDecode(model, ids, mask, { maxNewTokens: 5 });
    // row by row in batches of at most ENCODE_CHUNK_ROWS: the same ids
    const rows: number[][] = [];
    for (let s = 0; s < b; s += ENCODE_CHUNK_ROWS) {
      const n = Math.min(ENCODE_CHUNK_ROWS, b - s);
      const part = tf.tidy(() => [tf.slice(ids, [s, 0], [n, -1]) as tf.Tensor2D, tf.slice(mask, [s, 0], [n, -1]) as tf.Tensor2D]);
      rows.push(...greedyDecode(model, part[0]!, part[1]!, { maxNewTokens: 5 }));
      tf.dispose(part);
    }
    const len = Math.max(...rows.map((r) => r.length));
    assert.deepEqual(out, rows.map((r) => [...r, ...new Array<number>(len - r.length).fill(model.config.pad_token_id)]));
    // reference scores, chunked the same way: equal to scoring each row alone
    const labels = Array.from({ length: b }, (_, i) => [3 + i, 5 + ((i * 3) % 11), 1].slice(i % 2));
    const scored = scoreTargets(model, ids, mask, labels);
    for (const i of [0, ENCODE_CHUNK_ROWS, b - 1]) {
      const one = tf.tidy(() => [tf.slice(ids, [i, 0], [1, -1]) as tf.Tensor2D, tf.slice(mask, [i, 0], [1, -1]) as tf.Tensor2D]);
      const alone = scoreTargets(model, one[0]!, one[1]!, [labels[i]!]);
      tf.dispose(one);
      assert.ok(Math.abs(alone.sum[0]! - scored.sum[i]!) < 1e-4, `row ${i}: ${alone.sum[0]} vs ${scored.sum[i]}`);
    }
    // with batch-shaped options (per-example LoRA, a concatenated instruction): sliced with the rows
    const lora = randomPerExampleLora(model, b, 2);
    const fusion = {
      instruction: tf.randomNormal([b, 3, model.config.d_model], 0, 1, "float32", 5) as tf.Tensor3D,
      instructionMask: tf.tensor2d(Array.from({ length: b }, (_, i) => [1, i % 2, i % 3 === 0 ? 1 : 0]), [b, 3], "int32"),
      crossAttention: false,
      concatenate: true,
      params: new Map<string, tf.Tensor>(),
    };
    const opts = { lora, fusion };
    const before2 = tf.memory().numTensors;
    const wholeF = encode(model, ids, mask, opts);
    const chunkedF = encodeInChunks(model, ids, mask, opts);
    // 1e-5, not the 1e-6 above: with per-example LoRA the encoder runs batched matrix products whose row count
    // differs between a chunk and the whole batch, and the OpenBLAS GEMM add-on (wasm backend) blocks them
    // differently by shape and CPU, so sums are reordered: 1.2e-6 measured on an AMD EPYC (AVX-512), about 10 ulp.
    const errF = relError(chunkedF.dataSync(), wholeF.dataSync());
    assert.ok(errF < 1e-5, `chunked encoding with per-example LoRA and fusion: relative error ${errF}`);
    tf.dispose([wholeF, chunkedF]);
    const scoredF = scoreTargets(model, ids, mask, labels, opts);
    const i = ENCODE_CHUNK_ROWS + 3;
    const one = (() => ({
      ids: tf.slice(ids, [i, 0], [1, -1]) as tf.Tensor2D,
      mask: tf.slice(mask, [i, 0], [1, -1]) as tf.Tensor2D,
      lora: { ...lora, modules: new Map([...lora.modules].map(([k, { A, B }]) => [k, { A: tf.slice(A, i, 1), B: tf.slice(B, i, 1) }])) },
      fusion: { ...fusion, instruction: tf.slice(fusion.instruction, i, 1) as tf.Tensor3D, instructionMask: tf.slice(fusion.instructionMask, i, 1) as tf.Tensor2D },
    }))();
    const aloneF = scoreTargets(model, one.ids, one.mask, [labels[i]!], { lora: one.lora, fusion: one.fusion });
    assert.ok(Math.abs(aloneF.sum[0]! - scoredF.sum[i]!) < 1e-4, `row ${i} with options: ${aloneF.sum[0]} vs ${scoredF.sum[i]}`);
    tf.dispose([one.ids, one.mask, one.fusion.instruction, one.fusion.instructionMask, ...[...one.lora.modules.values()].flatMap((m) => [m.A, m.B])]);
    assert.equal(tf.memory().numTensors, before2, "leaked tensors with options");
    for (const m of lora.modules.values()) tf.dispose([m.A, m.B]);
    tf.dispose([fusion.instruction, fusion.instructionMask]);
    assert.equal(tf.memory().numTensors, before, "leaked tensors");
    tf.dispose([ids, mask, ...model.params.values()]);
  });
});
