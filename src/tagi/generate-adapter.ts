/**
 * Adapters as files: the LoRA a trained generator produces for one instruction, written as a PEFT adapter
 * folder (adapter_config.json + adapter_model.safetensors with PEFT's key names) that Hugging Face PEFT loads
 * onto the same base model.
 *
 * A LoRA file alone is exact only for a model trained without instruction fusion and with a frozen base.
 * With fusion, the TAGI model also runs the fusion layers over this instruction's encoding (8% different
 * logits in a measured case); with `trainBase`, it runs trained base weights. Neither fits in a PEFT adapter,
 * so the folder also gets `tagi_fusion.safetensors` (the fusion layers and this instruction's encoding) and
 * `base_trained.safetensors`, as needed, plus a README saying which; `loadTagiExport` reads them back and
 * gives the exact forward options. `writeGeneratedAdapter` returns the same warning the CLI prints.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import type { T5Tokenizer } from "../text/tokenizer";
import { loadPeftAdapter, peftToLoraAdapter, savePeftAdapter } from "../model/weights";
import { readSafetensors, writeSafetensors } from "../model/safetensors";
import type { InstructionFusion, T5Model } from "../model/t5";
import type { LoraAdapter } from "../model/lora";
import { BASE_TRAINED_FILE, type TagiModel } from "./model";
import { encodeInstructions } from "./model";
import type { FusionMode } from "./fusion";
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

export const FUSION_FILE = "tagi_fusion.safetensors";

/** Why the PEFT adapter alone is not the TAGI model (empty: it is exact). */
export function exportCaveats(m: TagiModel): string[] {
  const c: string[] = [];
  if (m.config.fusion !== "none") {
    c.push(`the model uses instruction fusion ("${m.config.fusion}"): the LoRA alone gives different outputs; ${FUSION_FILE} holds the fusion layers and this instruction's encoding`);
  }
  if (m.trainedBase?.length) c.push(`the model trained ${m.trainedBase.length} base parameters (trainBase): ${BASE_TRAINED_FILE} holds them; the base folder alone is the untrained base`);
  return c;
}

/**
 * Writes the generated adapter for `instruction` to `dir` (PEFT layout), and what else the TAGI model needs
 * to give the same outputs (see the module comment). Returns the seconds generation took and the caveats.
 */
export function writeGeneratedAdapter(m: TagiModel, tokenizer: T5Tokenizer, instruction: string, dir: string, baseModel: string): { seconds: number; modules: number; caveats: string[] } {
  const t0 = performance.now();
  const weights = generatePeftWeights(m, tokenizer, instruction);
  const seconds = (performance.now() - t0) / 1000;
  const h = m.config.hypernetwork;
  const allKinds = h.kinds.length === 3;
  const caveats = exportCaveats(m);
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
  const fusionFile = path.join(dir, FUSION_FILE);
  fs.rmSync(fusionFile, { force: true });
  if (m.config.fusion !== "none") {
    const { ids, mask } = tokenizeInstructions(tokenizer, [instruction], m.config.maxInstructionTokens);
    const enc = encodeInstructions(m, ids, mask);
    try {
      writeSafetensors(fusionFile, new Map<string, tf.Tensor>([...m.fusion, ["instruction.states", enc.states], ["instruction.mask", enc.mask]]), { format: "tagi-fusion", fusion: m.config.fusion });
    } finally {
      disposeEncoding(enc);
    }
  }
  const trainedFile = path.join(dir, BASE_TRAINED_FILE);
  fs.rmSync(trainedFile, { force: true });
  if (m.trainedBase?.length) writeSafetensors(trainedFile, new Map(m.trainedBase.map((n) => [n, m.base.params.get(n)!])), { format: "tagi-base-trained" });
  fs.writeFileSync(path.join(dir, "README.md"), exportReadme(instruction, baseModel, caveats));
  return { seconds, modules: weights.size, caveats };
}

function exportReadme(instruction: string, baseModel: string, caveats: string[]): string {
  const head = ["# A LoRA adapter generated by TAGI from one instruction", "", `Base model: \`${baseModel}\`.`, "", "Instruction:", "", "```", instruction, "```", ""];
  if (!caveats.length) {
    return [...head, "`adapter_config.json` + `adapter_model.safetensors` are a PEFT adapter; on the base model above it gives exactly the TAGI model's outputs for this instruction.", ""].join("\n");
  }
  return [
    ...head,
    "**The PEFT adapter alone is not the TAGI model:**",
    "",
    ...caveats.map((c) => `- ${c}`),
    "",
    "For the exact outputs, in TypeScript: `const x = loadTagiExport(dir, loadBaseModel(base)); forward(x.base, batch, exportRunOptions(x, batchSize))`.",
    "",
  ].join("\n");
}

/** A generated adapter folder read back with what makes it exact: the LoRA, fusion inputs, the trained base. */
export interface TagiExport {
  base: T5Model;
  lora: LoraAdapter;
  fusionMode: FusionMode;
  fusion: { params: Map<string, tf.Tensor>; states: tf.Tensor3D; mask: tf.Tensor2D } | null;
  trainedBase: string[];
}

/**
 * Reads a folder written by writeGeneratedAdapter onto `base` (its trained parameters, if any, replace the
 * base's in place). `exportRunOptions` turns it into forward options for a batch.
 */
export function loadTagiExport(dir: string, base: T5Model): TagiExport {
  const lora = peftToLoraAdapter(loadPeftAdapter(dir));
  let fusion: TagiExport["fusion"] = null;
  let fusionMode: FusionMode = "none";
  const fusionFile = path.join(dir, FUSION_FILE);
  if (fs.existsSync(fusionFile)) {
    const { tensors, metadata } = readSafetensors(fusionFile);
    fusionMode = metadata["fusion"] as FusionMode;
    const states = tensors.get("instruction.states") as tf.Tensor3D | undefined;
    const mask = tensors.get("instruction.mask") as tf.Tensor2D | undefined;
    if (!states || !mask || !["cross-attention", "concatenate", "cross-attention+concatenate"].includes(fusionMode)) {
      for (const t of tensors.values()) t.dispose();
      throw new Error(`${fusionFile}: not a TAGI fusion file (needs instruction.states, instruction.mask and a fusion mode in its metadata)`);
    }
    tensors.delete("instruction.states");
    tensors.delete("instruction.mask");
    fusion = { params: tensors, states, mask: tf.tidy(() => tf.cast(mask, "int32")) as tf.Tensor2D };
    mask.dispose();
  }
  const trainedBase: string[] = [];
  const trainedFile = path.join(dir, BASE_TRAINED_FILE);
  if (fs.existsSync(trainedFile)) {
    for (const [n, t] of readSafetensors(trainedFile).tensors) {
      const w = base.params.get(n);
      if (!w || w.shape.join() !== t.shape.join()) {
        t.dispose();
        throw new Error(`${trainedFile}: ${n} ${w ? `is [${t.shape}], the base model's [${w.shape}]` : "is not a parameter of the base model"}`);
      }
      w.dispose();
      base.params.set(n, t);
      trainedBase.push(n);
    }
  }
  return { base, lora, fusionMode, fusion, trainedBase };
}

/**
 * Forward options for a batch of `batchSize` instances of this export's task. The instruction encoding is
 * tiled to the batch: new tensors, so call it inside tf.tidy (as forward's callers do).
 */
export function exportRunOptions(x: TagiExport, batchSize: number): { lora: LoraAdapter; fusion?: InstructionFusion } {
  if (!x.fusion) return { lora: x.lora };
  const f = x.fusion;
  return {
    lora: x.lora,
    fusion: {
      instruction: tf.tile(f.states, [batchSize, 1, 1]) as tf.Tensor3D,
      instructionMask: tf.tile(f.mask, [batchSize, 1]) as tf.Tensor2D,
      crossAttention: x.fusionMode === "cross-attention" || x.fusionMode === "cross-attention+concatenate",
      concatenate: x.fusionMode === "concatenate" || x.fusionMode === "cross-attention+concatenate",
      params: f.params,
    },
  };
}

/** Frees an export's tensors (not the base model's). */
export function disposeTagiExport(x: TagiExport): void {
  for (const { A, B } of x.lora.modules.values()) tf.dispose([A, B]);
  if (x.fusion) tf.dispose([...x.fusion.params.values(), x.fusion.states, x.fusion.mask]);
}
