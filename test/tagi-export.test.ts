/**
 * `tagi generate`'s export: the PEFT adapter alone equals the TAGI model only without instruction fusion and
 * with a frozen base. With fusion and trained base weights, the folder also holds them, the caveats say so
 * (CLI warning, README), and loadTagiExport + exportRunOptions reproduce the TAGI model's logits exactly.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { parseT5Config } from "../src/model/config";
import { initT5Params } from "../src/model/init";
import { forward, type T5Model } from "../src/model/t5";
import { createTagiModel, encodeInstructions, studentForward, TAGI_DEFAULTS, type TagiModel } from "../src/tagi/model";
import { tokenizeInstructions } from "../src/tagi/instruction-encoder";
import { HYPERNETWORK_DEFAULTS } from "../src/tagi/hypernetwork";
import { disposeTagiExport, exportRunOptions, FUSION_FILE, loadTagiExport, writeGeneratedAdapter } from "../src/tagi/generate-adapter";
import { T5Tokenizer } from "../src/text/tokenizer";
import { loadPeftAdapter, peftToLoraAdapter } from "../src/model/weights";
import { relError } from "./helpers/crosscheck";

// The real vocabulary (the tokenizer's ids), tiny widths.
const CONFIG = parseT5Config(
  { vocab_size: 32128, d_model: 16, d_kv: 4, d_ff: 32, num_layers: 2, num_decoder_layers: 2, num_heads: 2, feed_forward_proj: "gated-gelu", tie_word_embeddings: false, dropout_rate: 0 },
  "micro-vocab",
);
const fresh = (): T5Model => ({ config: CONFIG, params: initT5Params(CONFIG, 5) });
const INSTRUCTION = "Definition: Answer with the opposite word.";

/** Replaces every tensor of `params` (whose name passes `pick`) by a random one of its shape: a "trained" state. */
function perturb(params: Map<string, tf.Tensor>, pick: (n: string) => boolean, seed: number): void {
  let s = seed;
  for (const [n, t] of params) {
    if (!pick(n)) continue;
    params.set(n, tf.randomNormal(t.shape, 0, 0.3, "float32", s++));
    t.dispose();
  }
}

function batch() {
  return {
    inputIds: tf.tensor2d([[100, 200, 300, 1], [400, 500, 1, 0]], undefined, "int32"),
    attentionMask: tf.tensor2d([[1, 1, 1, 1], [1, 1, 1, 0]], undefined, "int32"),
    decoderInputIds: tf.tensor2d([[0, 600, 700], [0, 800, 900]], undefined, "int32"),
  };
}

function tagiLogits(m: TagiModel, tok: T5Tokenizer): tf.Tensor {
  return tf.tidy(() => {
    const { ids, mask } = tokenizeInstructions(tok, [INSTRUCTION], m.config.maxInstructionTokens);
    const enc = encodeInstructions(m, ids, mask);
    const { logits } = studentForward(m, enc, { ...batch(), instructionOfExample: tf.tensor1d([0, 0], "int32") });
    return logits;
  });
}

describe("TAGI export (tagi generate)", function () {
  this.timeout(60_000);
  let tok: T5Tokenizer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-export-"));
  before(async () => {
    await initBackend({ log: false });
    tok = T5Tokenizer.fromFile();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("with fusion and a trained base: warned, written, and loadTagiExport gives the TAGI model's logits exactly", () => {
    const hyper = { ...HYPERNETWORK_DEFAULTS, rank: 4, alpha: 8, hidden: 8, idDim: 4 };
    const m = createTagiModel(fresh(), { ...TAGI_DEFAULTS, hypernetwork: hyper, fusion: "cross-attention+concatenate", maxInstructionTokens: 32 }, 1);
    perturb(m.hyper, () => true, 10);
    perturb(m.fusion, () => true, 100);
    const trained = "encoder.block.1.layer.1.DenseReluDense.wo.weight";
    perturb(m.base.params, (n) => n === trained, 1000);
    m.trainedBase = [trained];
    const out = path.join(dir, "fused");
    const r = writeGeneratedAdapter(m, tok, INSTRUCTION, out, "runs/base/model");
    assert.equal(r.caveats.length, 2);
    assert.match(r.caveats[0]!, /instruction fusion \("cross-attention\+concatenate"\): the LoRA alone gives different outputs/);
    assert.match(r.caveats[1]!, /trained 1 base parameters \(trainBase\): base_trained\.safetensors/);
    assert.match(fs.readFileSync(path.join(out, "README.md"), "utf8"), /The PEFT adapter alone is not the TAGI model/);
    const want = tagiLogits(m, tok);
    const x = loadTagiExport(out, fresh());
    const got = tf.tidy(() => forward(x.base, batch(), exportRunOptions(x, 2)));
    assert.ok(relError(got.dataSync(), want.dataSync()) < 1e-5, `export vs TAGI: ${relError(got.dataSync(), want.dataSync())}`);
    assert.deepEqual(x.trainedBase, [trained]);
    // The LoRA alone on the untrained base is not the model: the caveat is real.
    const peftOnly = peftToLoraAdapter(loadPeftAdapter(out));
    const plain = fresh();
    const alone = tf.tidy(() => forward(plain, batch(), { lora: peftOnly }));
    assert.ok(relError(alone.dataSync(), want.dataSync()) > 1e-3, "the PEFT adapter alone should differ");
    tf.dispose([want, got, alone, ...[...peftOnly.modules.values()].flatMap(({ A, B }) => [A, B]), ...plain.params.values(), ...x.base.params.values()]);
    disposeTagiExport(x);
    tf.dispose([...m.hyper.values(), ...m.fusion.values(), ...m.base.params.values()]);
  });

  it("without fusion and with a frozen base, the PEFT adapter alone is exact, and nothing else is written", () => {
    const hyper = { ...HYPERNETWORK_DEFAULTS, rank: 4, alpha: 8, hidden: 8, idDim: 4 };
    const m = createTagiModel(fresh(), { ...TAGI_DEFAULTS, hypernetwork: hyper, fusion: "none", maxInstructionTokens: 32 }, 1);
    perturb(m.hyper, () => true, 20);
    const out = path.join(dir, "plain");
    const r = writeGeneratedAdapter(m, tok, INSTRUCTION, out, "runs/base/model");
    assert.deepEqual(r.caveats, []);
    assert.equal(fs.existsSync(path.join(out, FUSION_FILE)), false);
    assert.match(fs.readFileSync(path.join(out, "README.md"), "utf8"), /gives exactly the TAGI model's outputs/);
    const want = tagiLogits(m, tok);
    const lora = peftToLoraAdapter(loadPeftAdapter(out));
    const base = fresh();
    const got = tf.tidy(() => forward(base, batch(), { lora }));
    assert.ok(relError(got.dataSync(), want.dataSync()) < 1e-5);
    tf.dispose([want, got, ...[...lora.modules.values()].flatMap(({ A, B }) => [A, B]), ...base.params.values(), ...m.hyper.values(), ...m.base.params.values()]);
  });
});
