/**
 * TypeScript half of reference/make_tagi_peft_fixture.py: generates a LoRA adapter with a seeded generator
 * on the v1_1 T5 fixture (rank 4, the output layer perturbed so that B is not zero) for fixed instruction
 * ids, and writes it as a PEFT adapter folder to the path given.
 *
 *   node --import tsx reference/tagi_generate_fixture.ts test/fixtures/tagi/adapter
 */
import * as path from "node:path";
import { initBackend } from "../src/backend";
import { loadT5Checkpoint, savePeftAdapter } from "../src/model/weights";
import { fixtureAdapter, FIXTURE_HYPERNETWORK } from "../test/helpers/tagi-fixture";

(async () => {
  await initBackend({ log: false });
  const base = loadT5Checkpoint(path.join(__dirname, "..", "test", "fixtures", "t5", "v1_1"));
  const weights = fixtureAdapter({ config: base.config, params: base.params });
  const h = FIXTURE_HYPERNETWORK;
  savePeftAdapter(process.argv[2]!, { r: h.rank, lora_alpha: h.alpha, lora_dropout: 0, target_modules: h.projections, bias: "none", task_type: "SEQ_2_SEQ_LM" }, weights);
  console.log(`wrote ${weights.size} modules to ${process.argv[2]}`);
})();
