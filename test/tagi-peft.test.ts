/**
 * Generated adapters as files: an adapter produced by the TAGI generator and written in PEFT's layout
 * (test/fixtures/tagi/adapter, by reference/make_tagi_peft_fixture.py) gives, loaded by Hugging Face PEFT on
 * the same base model, the same logits as the TypeScript model with that adapter; regenerating it gives the
 * committed values.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { loadPeftAdapter, loadT5Checkpoint, peftToLoraAdapter } from "../src/model/weights";
import { readSafetensors } from "../src/model/safetensors";
import { forward } from "../src/model/t5";
import { relError } from "./helpers/crosscheck";
import { fixtureAdapter } from "./helpers/tagi-fixture";

const T5_FIX = join(__dirname, "fixtures", "t5", "v1_1");
const TAGI_FIX = join(__dirname, "fixtures", "tagi");

describe("TAGI adapters as PEFT files", () => {
  before(async () => {
    await initBackend({ log: false });
  });

  it("PEFT (Python) and the TypeScript model give the same logits with the generated adapter", () => {
    const base = loadT5Checkpoint(T5_FIX);
    const batch = readSafetensors(join(T5_FIX, "expected.safetensors")).tensors;
    const expected = readSafetensors(join(TAGI_FIX, "expected.safetensors")).tensors.get("logits")!;
    const peft = loadPeftAdapter(join(TAGI_FIX, "adapter"));
    assert.equal(peft.weights.size, 16);
    const run = (lora?: ReturnType<typeof peftToLoraAdapter>) =>
      forward({ config: base.config, params: base.params }, {
        inputIds: batch.get("input_ids") as tf.Tensor2D,
        attentionMask: batch.get("attention_mask") as tf.Tensor2D,
        decoderInputIds: batch.get("decoder_input_ids") as tf.Tensor2D,
      }, lora ? { lora } : {});
    const err = relError(run(peftToLoraAdapter(peft)).dataSync(), expected.dataSync());
    assert.ok(err < 1e-4, `relative error ${err}`);
    // The adapter matters: without it the logits are far from PEFT's.
    assert.ok(relError(run().dataSync(), expected.dataSync()) > 1e-2);
  });

  it("regenerating the fixture's adapter gives the committed file's values", () => {
    const base = loadT5Checkpoint(T5_FIX);
    const regenerated = fixtureAdapter({ config: base.config, params: base.params });
    const committed = loadPeftAdapter(join(TAGI_FIX, "adapter")).weights;
    assert.deepEqual([...regenerated.keys()].sort(), [...committed.keys()].sort());
    for (const [k, { A, B }] of regenerated) {
      const c = committed.get(k)!;
      assert.ok(relError(A.dataSync(), c.A.dataSync()) < 1e-6 && relError(B.dataSync(), c.B.dataSync()) < 1e-6, k);
    }
  });
});
