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
import { generateAndScore, greedyDecode, scoreTargets } from "../src/model/generate";
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
    const peft = createLoraVariables(base.config, { r: 4, alpha: 8, dropout: 0, targetModules: ["q", "v"] }, 1);
    const lora = toPerExample(peft, b);
    for (const m of peft.modules.values()) tf.dispose([m.A, m.B]);
    for (const m of lora.modules.values()) {
      const B = m.B;
      m.B = tf.randomNormal(B.shape, 0, 0.5, "float32", 2);
      B.dispose();
    }
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
});
