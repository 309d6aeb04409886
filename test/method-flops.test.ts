/**
 * Compute accounting per method against a count done by hand for a small config (d_model 4, 2 heads of 2,
 * gated FFN 8, 1+1 layers, vocab 10; instruction 3, instance 2, target 1 tokens; 2 instances; a generator
 * of rank 1, hidden 2, id size 1 adapting the encoder's q only).
 */
import { strict as assert } from "node:assert";
import { parseT5Config } from "../src/model/config";
import { methodFlops } from "../src/compute/method-flops";
import { HYPERNETWORK_DEFAULTS, hypernetworkFlops } from "../src/tagi/hypernetwork";
import { t5ForwardFlops, t5EncoderFlops, t5DecoderFlops } from "../src/compute/flops";
import { sniComputeSummary } from "../src/experiments/compute-summary";
import { T5Tokenizer } from "../src/text/tokenizer";
import { buildPrompt } from "../src/text/prompts";
import type { SniTestTask } from "../src/data/sni";
import type { SniResult } from "../src/eval/sni-eval";

const c = parseT5Config({ vocab_size: 10, d_model: 4, d_kv: 2, d_ff: 8, num_layers: 1, num_decoder_layers: 1, num_heads: 2, feed_forward_proj: "gated-gelu" }, "hand");
const h = { ...HYPERNETWORK_DEFAULTS, rank: 1, alpha: 1, hidden: 2, idDim: 1, kinds: ["encoder.self" as const], projections: ["q" as const] };
const shape = { instances: 2, instructionLength: 3, instanceLength: 2, targetLength: 1 };

describe("compute accounting", () => {
  it("encoder and decoder counts add up to the teacher-forced forward", () => {
    // enc(n) = 320n + 16n^2 for this config: q,k,v,o 4*2*n*4*4 = 128n, scores+mix 2*2*2*n^2*2 = 16n^2, FFN 3*2*n*4*8 = 192n.
    assert.equal(t5EncoderFlops(c, 1, 5), 2000);
    // dec(m) = 480 + 64m + 16m with nothing cached (self 128 + 16, cross q,o 64, FFN 192, lm_head 80).
    assert.equal(t5DecoderFlops(c, 1, 1, 5), 880);
    assert.equal(t5DecoderFlops(c, 1, 1, 5, 3), 880 - 64 * 3);
    assert.equal(t5ForwardFlops(c, { batch: 1, inputLength: 5, targetLength: 1 }), 2880);
  });

  it("the generator: fc1 2*5*2 + fc2 2*2*(4*1 + 1*4) = 52 per instruction", () => {
    assert.equal(hypernetworkFlops(c, h), 52);
  });

  it("per method, for a task of 2 instances (hand count)", () => {
    assert.deepEqual(methodFlops("tk-instruct", c, shape), { method: "tk-instruct", perTask: 0, perInstance: 2880, total: 5760 });
    // Hypter: enc(3) + generator = 1104 + 52; per instance enc(2) 704 + dec(2) 640 + LoRA on q over 2 tokens 2*2*8 = 32.
    assert.deepEqual(methodFlops("hypter", c, shape, h), { method: "hypter", perTask: 1156, perInstance: 1376, total: 3908 });
    // HINT: + the instruction's cross k,v once (2*2*3*4*4 = 192); the decoder attends over 5 positions, 2 new.
    assert.deepEqual(methodFlops("hint", c, shape, h), { method: "hint", perTask: 1348, perInstance: 1424, total: 4196 });
    // TAGI: + Eq. 1 k,v of the instruction once (192); per instance q,o 2*2*2*4*4 = 128, scores+mix 2*2*2*2*3*2 = 96.
    assert.deepEqual(methodFlops("tagi", c, shape, h), { method: "tagi", perTask: 1540, perInstance: 1648, total: 4836 });
    assert.throws(() => methodFlops("tagi", c, shape), /needs the hypernetwork config/);
  });

  it("at the paper's setting (T5-base shapes, 100 instances, long instructions) TAGI costs a fraction of Tk-Instruct", () => {
    const base = parseT5Config({ vocab_size: 32128, d_model: 768, d_kv: 64, d_ff: 2048, num_layers: 12, num_heads: 12, feed_forward_proj: "gated-gelu", tie_word_embeddings: false }, "t5-base");
    const s = { instances: 100, instructionLength: 300, instanceLength: 60, targetLength: 8 };
    const ratio = methodFlops("tagi", base, s, HYPERNETWORK_DEFAULTS).total / methodFlops("tk-instruct", base, s).total;
    assert.ok(ratio > 0.15 && ratio < 0.6, `TAGI / Tk-Instruct = ${ratio}`);
  });

  it("an evaluation's compute counts what was run: truncated prompts, generated tokens, labelled with the format", () => {
    const tok = T5Tokenizer.fromFile();
    const task = {
      name: "t1",
      definition: "Say the word back. ".repeat(20).trim(),
      categories: ["Misc"],
      positiveExamples: [],
      negativeExamples: [],
      instances: [{ id: "a", input: "apple", outputs: ["apple apple apple apple apple apple"] }],
    } as unknown as SniTestTask;
    const instanceTokens = tok.encode(buildPrompt(task, task.instances[0]!, { format: "def" }).instance).length;
    const read = 40; // the prompt as cut to 40 tokens: the instance whole, the rest of the instruction
    const result = { options: { input: "full" }, predictions: [{ task: "t1", id: "a", inputTokens: read, prediction: "apple" }] } as unknown as SniResult;
    const s = sniComputeSummary(result, [task], tok, "def", "tk-instruct", c, 16);
    const T = tok.encode("apple").length + 1; // generated, with </s>; not the 6-word reference
    assert.equal(s.flops, methodFlops("tk-instruct", c, { instances: 1, instructionLength: read - instanceTokens, instanceLength: instanceTokens, targetLength: T }).total);
    assert.equal(s.format, "def");
    assert.match(s.note, /on def prompts, with the lengths as run/);
    // an instance-only model with a generator: the instruction as the generator read it (cut at 8 tokens)
    const inst = { options: { input: "instance" }, predictions: [{ task: "t1", id: "a", inputTokens: instanceTokens, prediction: "apple" }] } as unknown as SniResult;
    const t = sniComputeSummary(inst, [task], tok, "def", "tagi", c, 16, h, 8);
    assert.equal(t.flops, methodFlops("tagi", c, { instances: 1, instructionLength: 8, instanceLength: instanceTokens, targetLength: T }, h).total);
  });
});
