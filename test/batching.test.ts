/**
 * Batching and the pretraining objectives: every example once per epoch in a (seed, epoch)-determined order,
 * a stream that resumes from its state exactly, padding conventions (labels -100, decoder inputs shifted),
 * and T5 span corruption / prefix LM on the real SNI text.
 */
import { strict as assert } from "node:assert";
import { arraySource, BatchStream, epochBatches, padSeq2Seq, type Seq2SeqExample } from "../src/data/batching";
import { randomSpansNoiseMask, spanCorrupt, buildPretrainCorpus, pretrainSource, segmentsWithinTasks, T5_SPAN_CORRUPTION } from "../src/data/pretraining";
import { loadSniSplit, mulberry32, type SniTask } from "../src/data/sni";
import { T5Tokenizer } from "../src/text/tokenizer";

function toy(n: number): Seq2SeqExample[] {
  return Array.from({ length: n }, (_, i) => ({ input: Array<number>(1 + (i % 7)).fill(5), target: [i + 3, 1] }));
}

describe("batching", () => {
  it("an epoch holds every example exactly once; order depends on seed and epoch only", () => {
    const src = arraySource(toy(53), "toy");
    for (const window of [1, 4]) {
      const a = epochBatches(src, 0, { batchSize: 8, seed: 1, bucketWindow: window });
      assert.deepEqual(a.flat().sort((x, y) => x - y), Array.from({ length: 53 }, (_, i) => i));
      assert.equal(a.filter((b) => b.length < 8).length, 1); // 53 = 6x8 + 5; with windows of 32: 32 + 21 -> 8,8,8,8 + 8,8,5
      assert.deepEqual(epochBatches(src, 0, { batchSize: 8, seed: 1, bucketWindow: window }), a);
      assert.notDeepEqual(epochBatches(src, 1, { batchSize: 8, seed: 1, bucketWindow: window }), a);
      assert.notDeepEqual(epochBatches(src, 0, { batchSize: 8, seed: 2, bucketWindow: window }), a);
    }
  });

  it("bucketing groups similar lengths (less padding than no bucketing)", () => {
    const src = arraySource(toy(256), "toy");
    const pad = (batches: number[][]) =>
      batches.reduce((s, b) => {
        const lens = b.map((i) => src.length(i));
        return s + lens.reduce((t, l) => t + Math.max(...lens) - l, 0);
      }, 0);
    assert.ok(pad(epochBatches(src, 0, { batchSize: 8, seed: 0, bucketWindow: 16 })) < pad(epochBatches(src, 0, { batchSize: 8, seed: 0, bucketWindow: 1 })) / 2);
  });

  it("a stream restarted from its saved state continues the same sequence across epochs", () => {
    const src = arraySource(toy(20), "toy");
    const a = new BatchStream(src, { batchSize: 6, seed: 3 });
    const seq = Array.from({ length: 9 }, () => a.next().examples.map((e) => e.target[0]));
    const b = new BatchStream(src, { batchSize: 6, seed: 3 });
    for (let i = 0; i < 5; i++) b.next();
    const c = new BatchStream(src, { batchSize: 6, seed: 3 }, b.state);
    const rest = Array.from({ length: 4 }, () => c.next().examples.map((e) => e.target[0]));
    assert.deepEqual(rest, seq.slice(5));
    assert.equal(c.state.epoch, 2);
  });

  it("refuses a batch larger than the data, naming the data", () => {
    assert.throws(() => new BatchStream(arraySource(toy(5), "five toys"), { batchSize: 6, seed: 0 }), /batch size 6 is larger than the data \(5 examples of five toys\)/);
  });

  it("pads inputs with 0 (mask 0), labels with -100, and shifts decoder inputs right from the start id", () => {
    const b = padSeq2Seq([
      { input: [7, 8, 1], target: [9, 1] },
      { input: [5, 1], target: [4, 6, 1] },
    ]);
    assert.deepEqual(b.inputIds, [[7, 8, 1], [5, 1, 0]]);
    assert.deepEqual(b.attentionMask, [[1, 1, 1], [1, 1, 0]]);
    assert.deepEqual(b.labels, [[9, 1, -100], [4, 6, 1]]);
    assert.deepEqual(b.decoderInputIds, [[0, 9, 0], [0, 4, 6]]);
    assert.equal(b.inputTokens, 5);
    assert.equal(b.targetTokens, 5);
  });
});

describe("pretraining objectives", () => {
  it("random_spans_noise_mask: T5's counts (15% noise, mean span 3), starts unmasked, reproducible", () => {
    const rand = mulberry32(9);
    for (const len of [10, 57, 114, 568]) {
      const m = randomSpansNoiseMask(len, T5_SPAN_CORRUPTION, rand);
      assert.equal(m.length, len);
      const noise = m.filter(Boolean).length;
      assert.equal(noise, Math.min(Math.max(Math.round(len * 0.15), 1), len - 1));
      let spans = 0;
      m.forEach((x, i) => {
        if (x && (i === 0 || !m[i - 1])) spans++;
      });
      assert.equal(spans, Math.max(Math.round(noise / 3), 1), `len ${len}`);
      assert.equal(m[0], false);
    }
    assert.deepEqual(randomSpansNoiseMask(114, T5_SPAN_CORRUPTION, mulberry32(4)), randomSpansNoiseMask(114, T5_SPAN_CORRUPTION, mulberry32(4)));
  });

  it("span corruption: sentinels count down in input and target, and input + target reconstruct the text", () => {
    const tokens = Array.from({ length: 40 }, (_, i) => 100 + i);
    const mask = randomSpansNoiseMask(40, T5_SPAN_CORRUPTION, mulberry32(2));
    const { input, target } = spanCorrupt(tokens, mask, 32099, 1);
    assert.equal(input.at(-1), 1);
    assert.equal(target.at(-1), 1);
    const sentinelsIn = input.filter((t) => t >= 32000);
    const sentinelsOut = target.filter((t) => t >= 32000);
    assert.deepEqual(sentinelsIn, sentinelsOut);
    assert.deepEqual(sentinelsIn, sentinelsIn.map((_, i) => 32099 - i));
    // Replace each sentinel in the input by the tokens that follow it in the target.
    const fill = new Map<number, number[]>();
    let cur = -1;
    for (const t of target.slice(0, -1)) {
      if (t >= 32000) fill.set((cur = t), []);
      else fill.get(cur)!.push(t);
    }
    const rebuilt = input.slice(0, -1).flatMap((t) => (t >= 32000 ? fill.get(t)! : [t]));
    assert.deepEqual(rebuilt, tokens);
  });

  it("on SNI train text: refuses test tasks; examples reproducible per (epoch, index) and fresh per epoch", async function () {
    this.timeout(60_000);
    const tok = T5Tokenizer.fromFile();
    const { tasks } = await loadSniSplit("train", undefined, { warn: false });
    const test = (await loadSniSplit("test", undefined, { warn: false })).tasks;
    assert.throws(() => buildPretrainCorpus(test.slice(0, 2) as unknown as typeof tasks, tok), /only SNI train tasks may be used/);
    const corpus = buildPretrainCorpus(tasks.slice(0, 5), tok);
    assert.ok(corpus.tokens.length > 10_000 && corpus.texts > 500, `${corpus.tokens.length} tokens, ${corpus.texts} texts`);
    const sc = pretrainSource(corpus, tok, { objective: "span-corruption", segmentLength: 114, seed: 0 });
    const e = sc.example(3, 0);
    assert.deepEqual(sc.example(3, 0), e);
    assert.notDeepEqual(sc.example(3, 1), e);
    assert.equal(e.input.length + e.target.length, sc.length(3));
    assert.equal(e.input.length, 114 - 17 + 6 + 1);
    assert.match(tok.decode(e.input, { skipSpecialTokens: false }), /<extra_id_0>.*<extra_id_1>/);
    const lm = pretrainSource(corpus, tok, { objective: "prefix-lm", segmentLength: 50, seed: 0 });
    const p = lm.example(7, 0);
    assert.deepEqual([...p.input.slice(0, -1), ...p.target.slice(0, -1)], [...corpus.tokens.subarray(350, 400)]);
    assert.ok(((tasks[0] as SniTask).split) === "train");
    // where each task's text starts: stage 1's segments never join two tasks
    assert.equal(corpus.taskStarts.length, 6);
    assert.equal(corpus.taskStarts[0], 0);
    assert.equal(corpus.taskStarts[5], corpus.tokens.length);
    const one = buildPretrainCorpus(tasks.slice(1, 2), tok);
    assert.deepEqual([...corpus.tokens.subarray(corpus.taskStarts[1]!, corpus.taskStarts[2]!)], [...one.tokens]);
    const L = 256;
    const offsets = segmentsWithinTasks(corpus, L);
    for (const o of offsets) {
      const t = corpus.taskStarts.findIndex((start, i) => i + 1 < corpus.taskStarts.length && start <= o && o < corpus.taskStarts[i + 1]!);
      assert.ok(o + L <= corpus.taskStarts[t + 1]!, `segment at ${o} crosses the end of task ${t}`);
    }
    const perTask = Array.from({ length: 5 }, (_, i) => Math.floor((corpus.taskStarts[i + 1]! - corpus.taskStarts[i]!) / L));
    assert.equal(offsets.length, perTask.reduce((a, b) => a + b, 0));
    assert.deepEqual(segmentsWithinTasks({ taskStarts: Int32Array.from([0, 10, 15]) }, 5), [0, 5, 10]);
  });
});
