/**
 * Adapters as files: the LoRA a trained generator produces for one instruction, written as a PEFT adapter
 * folder (adapter_config.json + adapter_model.safetensors with PEFT's key names) that Hugging Face PEFT loads
 * onto the same base model. The fusion layers of a model trained with instruction fusion are not part of a
 * LoRA adapter: such a model needs them too (`tagi eval` applies both); the file is exactly the generated
 * LoRA.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Tokenizer } from "../text/tokenizer";
import { savePeftAdapter } from "../model/weights";
import type { TagiModel } from "./model";
import { encodeInstructions } from "./model";
import { tokenizeInstructions, disposeEncoding } from "./instruction-encoder";
import { generateAdapter, disposeAdapter } from "./hypernetwork";

/** The generated adapter for one instruction, in PEFT's layout (A [r, in], B [out, r]); the caller disposes. */
export function generatePeftWeights(m: TagiModel, tokenizer: T5Tokenizer, instruction: string): Map<string, { A: tf.Tensor; B: tf.Tensor }> {
  const { ids, mask } = tokenizeInstructions(tokenizer, [instruction], m.config.maxInstructionTokens);
  const enc = encodeInstructions(m, ids, mask);
  const adapter = generateAdapter(m.hyper, m.base.config, m.config.hypernetwork, enc.pooled);
  try {
    const out = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
    for (const [k, { A, B }] of adapter.modules) {
      out.set(k, tf.tidy(() => ({ A: tf.transpose(tf.squeeze(A, [0])), B: tf.transpose(tf.squeeze(B, [0])) })));
    }
    return out;
  } finally {
    disposeAdapter(adapter);
    disposeEncoding(enc);
  }
}

/** Writes the generated adapter for `instruction` to `dir` (PEFT layout); returns the seconds generation took. */
export function writeGeneratedAdapter(m: TagiModel, tokenizer: T5Tokenizer, instruction: string, dir: string, baseModel: string): { seconds: number; modules: number } {
  const t0 = performance.now();
  const weights = generatePeftWeights(m, tokenizer, instruction);
  const seconds = (performance.now() - t0) / 1000;
  const h = m.config.hypernetwork;
  const allKinds = h.kinds.length === 3;
  try {
    savePeftAdapter(
      dir,
      {
        r: h.rank,
        lora_alpha: h.alpha,
        lora_dropout: 0,
        target_modules: allKinds ? h.projections : [...weights.keys()],
        bias: "none",
        task_type: "SEQ_2_SEQ_LM",
      },
      weights,
      baseModel,
    );
  } finally {
    for (const { A, B } of weights.values()) tf.dispose([A, B]);
  }
  return { seconds, modules: weights.size };
}
