/**
 * src/model/safetensors.ts and src/model/weights.ts: safetensors round trips and decoding (all dtypes,
 * fp16/bf16 bit patterns), corrupt files, Hugging Face checkpoint folders (single file, sharded, bf16, key
 * checks, aliases, wrong architecture), PEFT LoRA adapters, and no tensor leaks (checked after every test).
 *
 * Fixtures: test/fixtures/t5/{v1_1,original,v1_1_lora} from reference/make_t5_fixtures.py (transformers'
 * save_pretrained and PEFT's save_pretrained output).
 *
 * Python cross-checks, done once with `python3 reference/check_weights_roundtrip.py` (torch 2.13.0,
 * transformers 5.23.0, peft 0.21.2, safetensors 0.8.0; this test does not need Python), all passed:
 * - saveT5Checkpoint's folders for both fixtures load with T5ForConditionalGeneration.from_pretrained(dir,
 *   output_loading_info=True) with no missing, unexpected or mismatched keys, and give logits identical
 *   (max |diff| = 0) to the fixture's expected.safetensors. (transformers 5 still prints its generic "tied
 *   weights ... will NOT tie them" notice for v1_1, as it does for the fixture itself: it forces
 *   tie_word_embeddings internally; the published tie_word_embeddings: false form we write is what 4.x needs.)
 * - a v1.1 folder written natively by transformers 5 (tie_word_embeddings true, scale_decoder_outputs false,
 *   no lm_head.weight) -> loadT5Checkpoint -> saveT5Checkpoint reloads to identical logits;
 * - savePeftAdapter's folder, written from the loaded fixture adapter, loads with PeftModel.from_pretrained
 *   onto the v1_1 checkpoint with all 32 LoRA tensors (no missing, no unexpected keys) and reproduces the
 *   fixture's LoRA logits exactly (max |diff| = 0; the adapter moves the logits by up to 2.4);
 * - F16 / BF16 / F64 / I64 / BOOL tensors written by the safetensors Python library read here bit-identical
 *   to torch's float32 / int32 conversions (incl. +-0, +-inf, NaN, fp16 subnormals, bf16 float32-subnormals).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { t5ParameterShapes, type T5Config } from "../src/model/config";
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  halfBitsToFloat32Bits,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from "../src/model/safetensors";
import {
  checkAdapterShapes,
  loadPeftAdapter,
  loadT5Checkpoint,
  loadT5Config,
  saveT5Checkpoint,
  savePeftAdapter,
  scaling,
  type LoraAdapterConfig,
} from "../src/model/weights";

const projectRoot = path.resolve(__dirname, "..");
const FIXTURES = path.join(projectRoot, "test", "fixtures", "t5");
const V1_1 = path.join(FIXTURES, "v1_1");
const ORIGINAL = path.join(FIXTURES, "original");
const ADAPTER = path.join(FIXTURES, "v1_1_lora", "adapter");
const FIXTURE_HINT = "run `python3 reference/make_t5_fixtures.py` from the project root to create test/fixtures/t5";

function requireFixture(dir: string): void {
  const need = dir === ADAPTER ? ["adapter_config.json", "adapter_model.safetensors"] : ["config.json", "model.safetensors"];
  for (const f of need) {
    assert.ok(fs.existsSync(path.join(dir, f)), `fixture ${path.relative(projectRoot, path.join(dir, f))} is missing: ${FIXTURE_HINT}`);
  }
}

let tmpRoot = "";
let tmpCount = 0;
function tmpDir(label: string): string {
  const d = path.join(tmpRoot, `${label}-${tmpCount++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Writes a safetensors file byte by byte (any dtype, any header), to test the reader on its own terms. */
function writeRaw(
  file: string,
  entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[],
  opts: { metadata?: Record<string, string>; headerText?: string; headerLength?: bigint; offsets?: Record<string, [number, number]> } = {},
): void {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: opts.offsets?.[e.name] ?? [off, off + e.bytes.byteLength] };
    off += e.bytes.byteLength;
  }
  const json = Buffer.from(opts.headerText ?? JSON.stringify(header), "utf-8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLength ?? BigInt(json.byteLength));
  fs.writeFileSync(file, Buffer.concat([len, json, ...entries.map((e) => Buffer.from(e.bytes))]));
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function assertBitsEqual(actual: tf.Tensor, expected: tf.Tensor, label: string): void {
  assert.equal(actual.dtype, expected.dtype, `${label}: dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  const a = actual.dataSync() as Float32Array | Int32Array | Uint8Array;
  const b = expected.dataSync() as Float32Array | Int32Array | Uint8Array;
  assert.ok(Buffer.from(bytesOf(a)).equals(Buffer.from(bytesOf(b))), `${label}: values differ`);
}

/**
 * `it`, plus a leak check: the number of live tensors after the test (which disposes what it made) equals
 * the number before, also on the error paths the test provokes.
 */
function itNoLeak(title: string, fn: (this: Mocha.Context) => void): Mocha.Test {
  return it(title, function () {
    const before = tf.memory().numTensors;
    fn.call(this);
    assert.equal(tf.memory().numTensors, before, `tensor leak: ${tf.memory().numTensors - before} tensors left alive`);
  });
}

function disposeAll(m: Map<string, tf.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

function disposeAdapter(w: Map<string, { A: tf.Tensor; B: tf.Tensor }>): void {
  for (const { A, B } of w.values()) {
    A.dispose();
    B.dispose();
  }
}

/** Asserts that fn throws an Error whose message contains every one of `parts`. */
function throwsWith(fn: () => unknown, parts: string[], label = ""): string {
  let msg: string | null = null;
  try {
    fn();
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.ok(msg !== null, `${label}: expected an error`);
  for (const p of parts) assert.ok(msg.includes(p), `${label}: error should mention ${JSON.stringify(p)}:\n${msg}`);
  return msg;
}

/** Copies a checkpoint folder's config.json and writes the given tensors as its model.safetensors. */
function makeCheckpoint(from: string, tensors: Map<string, tf.Tensor>, configPatch: Record<string, unknown> = {}): string {
  const d = tmpDir("ckpt");
  const raw = JSON.parse(fs.readFileSync(path.join(from, "config.json"), "utf-8")) as Record<string, unknown>;
  fs.writeFileSync(path.join(d, "config.json"), JSON.stringify({ ...raw, ...configPatch }));
  writeSafetensors(path.join(d, "model.safetensors"), tensors);
  return d;
}

describe("weights: safetensors and checkpoints", function () {
  before(async function () {
    await initBackend({ log: false });
    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tagi-weights-"));
  });
  after(function () {
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
  });

  describe("safetensors format", function () {
    itNoLeak("writes and reads back float32 (incl. NaN, +-inf, -0, subnormals), int32, bool, scalars and empty tensors", function () {
      const f32 = new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, -2.5e-39]);
      const tensors = new Map<string, tf.Tensor>([
        ["z.float", tf.tensor(f32, [2, 4], "float32")],
        ["a.int", tf.tensor(new Int32Array([-2147483648, 2147483647, 0, -7, 42, 1]), [3, 2], "int32")],
        ["m.bool", tf.tensor(new Uint8Array([1, 0, 1]), [3], "bool")],
        ["b.scalar", tf.scalar(-3.25)],
        ["c.empty", tf.zeros([0, 3])],
        ["d.bool2", tf.tensor([true, false, false, true, true], [5], "bool")],
      ]);
      const file = path.join(tmpDir("rt"), "x.safetensors");
      writeSafetensors(file, tensors, { format: "pt", note: "hello" });
      // NaN and Inf are refused on load unless asked for, naming the tensor, the count and the first index
      throwsWith(() => readSafetensors(file), [file, `"z.float"`, "3 non-finite value(s)", "NaN", "flat index 2"], "non-finite");
      const back = readSafetensors(file, { allowNonFinite: true });
      assert.deepEqual(back.metadata, { format: "pt", note: "hello" });
      assert.deepEqual([...back.tensors.keys()].sort(), [...tensors.keys()].sort());
      for (const [k, t] of tensors) assertBitsEqual(back.tensors.get(k)!, t, k);
      // Record input, no metadata.
      const file2 = path.join(path.dirname(file), "y.safetensors");
      writeSafetensors(file2, { w: tensors.get("z.float")! });
      const back2 = readSafetensors(file2, { allowNonFinite: true });
      assert.deepEqual(back2.metadata, {});
      assertBitsEqual(back2.tensors.get("w")!, tensors.get("z.float")!, "record input");
      disposeAll(tensors);
      disposeAll(back.tensors);
      disposeAll(back2.tensors);
    });

    itNoLeak("lays out the file like the Rust library: header padded with spaces to 8 bytes, keys sorted, aligned data, no temp file left", function () {
      const d = tmpDir("layout");
      const file = path.join(d, "x.safetensors");
      const tensors = new Map<string, tf.Tensor>([
        ["b", tf.ones([3])],
        ["flag", tf.tensor([true], [1], "bool")],
        ["a", tf.zeros([2, 2], "int32")],
        ["c", tf.ones([1])],
      ]);
      writeSafetensors(file, tensors, { format: "pt" });
      disposeAll(tensors);
      const buf = fs.readFileSync(file);
      const n = Number(buf.readBigUInt64LE(0));
      assert.equal(n % 8, 0, "header length is a multiple of 8");
      const text = buf.subarray(8, 8 + n).toString("utf-8");
      assert.match(text, /^\{.*\} *$/);
      const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
      assert.deepEqual(Object.keys(header), ["__metadata__", "a", "b", "c", "flag"]);
      for (const k of ["a", "b", "c"]) assert.equal(header[k]!.data_offsets[0] % 4, 0, `${k} is 4-byte aligned`);
      assert.deepEqual(fs.readdirSync(d), ["x.safetensors"]);
      const h = readSafetensorsHeader(file);
      assert.deepEqual(
        [...h.tensors].map(([k, e]) => [k, e.dtype, e.shape]),
        [["a", "I32", [2, 2]], ["b", "F32", [3]], ["c", "F32", [1]], ["flag", "BOOL", [1]]],
      );
      assert.equal(h.dataStart, 8 + n);
      assert.equal(h.fileSize, buf.byteLength);
    });

    itNoLeak("replaces an existing file atomically and refuses unwritable input without touching it", function () {
      const d = tmpDir("atomic");
      const file = path.join(d, "x.safetensors");
      const a = tf.ones([2]);
      writeSafetensors(file, { a });
      const before = fs.readFileSync(file);
      const s = tf.tensor(["text"]);
      throwsWith(() => writeSafetensors(file, { a, s }), [file, `"s"`, "dtype string"], "string");
      assert.ok(fs.readFileSync(file).equals(before));
      assert.deepEqual(fs.readdirSync(d), ["x.safetensors"]);
      const b = tf.zeros([3]);
      writeSafetensors(file, { b });
      const back = readSafetensors(file);
      assert.deepEqual([...back.tensors.keys()], ["b"]);
      disposeAll(back.tensors);
      tf.dispose([a, b, s]);
    });

    itNoLeak("decodes float16 exactly: all 65,536 bit patterns against the IEEE formula, and known values", function () {
      for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1;
        const exp = (h >> 10) & 0x1f;
        const mant = h & 0x3ff;
        const want = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
        const got = new Float32Array(new Uint32Array([halfBitsToFloat32Bits(h)]).buffer)[0]!;
        if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `0x${h.toString(16)}`);
        else assert.ok(Object.is(got, want), `0x${h.toString(16)}: ${got} != ${want}`);
      }
      const bits = new Uint16Array([0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x7e00, 0x3555, 0x8001]);
      const want = [0, -0, 1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, Infinity, -Infinity, NaN, 0.333251953125, -(2 ** -24)];
      const got = float16ToFloat32(bits);
      want.forEach((w, i) => assert.ok(Object.is(got[i], w) || (Number.isNaN(w) && Number.isNaN(got[i]!)), `f16 #${i}: ${got[i]} != ${w}`));
      // NaN payloads and sign survive (bits, not just NaN-ness).
      assert.equal(halfBitsToFloat32Bits(0x7c01), 0x7f802000);
      assert.equal(halfBitsToFloat32Bits(0xfe00), 0xffc00000);
    });

    itNoLeak("decodes bfloat16 exactly, incl. -0, +-inf, NaN and float32 subnormals", function () {
      const bits = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x7fc0, 0x8000, 0x0001, 0x3eab, 0x7f7f, 0x0000]);
      const want = [1, -2, Infinity, -Infinity, NaN, -0, 2 ** -133, 0.333984375, 3.3895313892515355e38, 0];
      const got = bfloat16ToFloat32(bits);
      want.forEach((w, i) => assert.ok(Object.is(got[i], w) || (Number.isNaN(w) && Number.isNaN(got[i]!)), `bf16 #${i}: ${got[i]} != ${w}`));
    });

    itNoLeak("reads every dtype: F16 / BF16 / F64 -> float32, I64 / I32 / I16 / U16 / I8 / U8 / U32 / U64 -> int32, BOOL -> bool", function () {
      const file = path.join(tmpDir("dtypes"), "all.safetensors");
      const i64 = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n, 5n, -5n]);
      writeRaw(file, [
        { name: "f16", dtype: "F16", shape: [2, 2], bytes: bytesOf(new Uint16Array([0x3c00, 0x0001, 0xfc00, 0x8000])) },
        { name: "bf16", dtype: "BF16", shape: [3], bytes: bytesOf(new Uint16Array([0x3f80, 0xc000, 0x0001])) },
        { name: "f64", dtype: "F64", shape: [3], bytes: bytesOf(new Float64Array([0.1, -1e300, 2.5])) },
        { name: "f32", dtype: "F32", shape: [1], bytes: bytesOf(new Float32Array([7.5])) },
        { name: "i64", dtype: "I64", shape: [2, 3], bytes: bytesOf(i64) },
        { name: "i32", dtype: "I32", shape: [2], bytes: bytesOf(new Int32Array([-9, 9])) },
        { name: "i16", dtype: "I16", shape: [2], bytes: bytesOf(new Int16Array([-32768, 32767])) },
        { name: "u16", dtype: "U16", shape: [1], bytes: bytesOf(new Uint16Array([65535])) },
        { name: "i8", dtype: "I8", shape: [2], bytes: bytesOf(new Int8Array([-128, 127])) },
        { name: "u8", dtype: "U8", shape: [2], bytes: new Uint8Array([0, 255]) },
        { name: "u32", dtype: "U32", shape: [1], bytes: bytesOf(new Uint32Array([2147483647])) },
        { name: "u64", dtype: "U64", shape: [1], bytes: bytesOf(new BigUint64Array([123n])) },
        { name: "bool", dtype: "BOOL", shape: [3], bytes: new Uint8Array([1, 0, 1]) },
        { name: "scalar", dtype: "F16", shape: [], bytes: bytesOf(new Uint16Array([0xc000])) },
      ]);
      const { tensors } = readSafetensors(file, { allowNonFinite: true });
      const arr = (k: string) => Array.from(tensors.get(k)!.dataSync() as ArrayLike<number>);
      const dt = (k: string) => tensors.get(k)!.dtype;
      assert.deepEqual(arr("f16"), [1, 2 ** -24, -Infinity, -0]);
      assert.ok(Object.is(arr("f16")[3], -0));
      assert.deepEqual(arr("bf16"), [1, -2, 2 ** -133]);
      assert.deepEqual(arr("f64"), [Math.fround(0.1), -Infinity, 2.5]);
      assert.deepEqual(arr("f32"), [7.5]);
      assert.deepEqual(arr("i64"), [0, -1, 2147483647, -2147483648, 5, -5]);
      assert.deepEqual(tensors.get("i64")!.shape, [2, 3]);
      assert.deepEqual(arr("i32"), [-9, 9]);
      assert.deepEqual(arr("i16"), [-32768, 32767]);
      assert.deepEqual(arr("u16"), [65535]);
      assert.deepEqual(arr("i8"), [-128, 127]);
      assert.deepEqual(arr("u8"), [0, 255]);
      assert.deepEqual(arr("u32"), [2147483647]);
      assert.deepEqual(arr("u64"), [123]);
      assert.deepEqual(arr("bool"), [1, 0, 1]);
      assert.deepEqual(arr("scalar"), [-2]);
      assert.deepEqual(tensors.get("scalar")!.shape, []);
      for (const k of ["f16", "bf16", "f64", "f32", "scalar"]) assert.equal(dt(k), "float32", k);
      for (const k of ["i64", "i32", "i16", "u16", "i8", "u8", "u32", "u64"]) assert.equal(dt(k), "int32", k);
      assert.equal(dt("bool"), "bool");
      disposeAll(tensors);
      // A filter reads a subset.
      const some = readSafetensors(file, { filter: (n) => n.startsWith("f"), allowNonFinite: true });
      assert.deepEqual([...some.tensors.keys()].sort(), ["f16", "f32", "f64"]);
      disposeAll(some.tensors);
    });

    itNoLeak("refuses 64-bit integers outside int32, naming the file and the tensor, and leaks nothing", function () {
      const d = tmpDir("i64");
      const file = path.join(d, "big.safetensors");
      writeRaw(file, [
        { name: "ok", dtype: "F32", shape: [1], bytes: bytesOf(new Float32Array([1])) },
        { name: "position_ids", dtype: "I64", shape: [3], bytes: bytesOf(new BigInt64Array([1n, 2n, 2147483648n])) },
      ]);
      throwsWith(() => readSafetensors(file), [file, `"position_ids"`, "2147483648", "int32"], "I64");
      const file2 = path.join(d, "neg.safetensors");
      writeRaw(file2, [{ name: "n", dtype: "I64", shape: [1], bytes: bytesOf(new BigInt64Array([-2147483649n])) }]);
      throwsWith(() => readSafetensors(file2), [file2, `"n"`, "-2147483649"], "I64 negative");
      const file3 = path.join(d, "u64.safetensors");
      writeRaw(file3, [{ name: "u", dtype: "U64", shape: [1], bytes: bytesOf(new BigUint64Array([2n ** 63n])) }]);
      throwsWith(() => readSafetensors(file3), [file3, `"u"`, "9223372036854775808"], "U64");
    });

    itNoLeak("rejects corrupt files with an error naming the file (and the key)", function () {
      const d = tmpDir("corrupt");
      const good = path.join(d, "good.safetensors");
      const t = { a: tf.ones([4, 4]), b: tf.zeros([8]) };
      writeSafetensors(good, t);
      tf.dispose([t.a, t.b]);
      const buf = fs.readFileSync(good);
      const variant = (name: string, bytes: Uint8Array) => {
        const f = path.join(d, name);
        fs.writeFileSync(f, bytes);
        return f;
      };
      const f32 = (n: number) => bytesOf(new Float32Array(n));

      const truncated = variant("truncated.safetensors", buf.subarray(0, buf.byteLength - 5));
      throwsWith(() => readSafetensors(truncated), [truncated, "truncated"], "truncated");
      throwsWith(() => readSafetensorsHeader(truncated), [truncated], "truncated header read");
      const tiny = variant("tiny.safetensors", buf.subarray(0, 5));
      throwsWith(() => readSafetensors(tiny), [tiny, "8-byte"], "tiny");
      const cutHeader = variant("cutheader.safetensors", buf.subarray(0, 20));
      throwsWith(() => readSafetensors(cutHeader), [cutHeader, "larger than the file"], "cut in header");

      const bigLen = path.join(d, "biglen.safetensors");
      writeRaw(bigLen, [{ name: "a", dtype: "F32", shape: [2], bytes: f32(2) }], { headerLength: 1n << 40n });
      throwsWith(() => readSafetensors(bigLen), [bigLen, "header length", "larger than the file"], "header length");

      const badJson = path.join(d, "badjson.safetensors");
      writeRaw(badJson, [{ name: "a", dtype: "F32", shape: [2], bytes: f32(2) }], { headerText: '{"a": {"dtype": "F32", "shape": [2], ' });
      throwsWith(() => readSafetensors(badJson), [badJson, "not valid JSON"], "bad JSON");

      const notObj = path.join(d, "notobj.safetensors");
      writeRaw(notObj, [], { headerText: "[1, 2]   " });
      throwsWith(() => readSafetensors(notObj), [notObj], "not an object");

      const overlap = path.join(d, "overlap.safetensors");
      writeRaw(
        overlap,
        [
          { name: "a", dtype: "F32", shape: [2], bytes: f32(2) },
          { name: "b", dtype: "F32", shape: [2], bytes: f32(2) },
        ],
        { offsets: { a: [0, 8], b: [4, 12] } },
      );
      throwsWith(() => readSafetensors(overlap), [overlap, `"b"`, "overlap", `"a"`], "overlap");

      const past = path.join(d, "past.safetensors");
      writeRaw(past, [{ name: "a", dtype: "F32", shape: [4], bytes: f32(2) }], { offsets: { a: [0, 16] } });
      throwsWith(() => readSafetensors(past), [past, `"a"`, "past the end"], "offsets past the end");

      const wrongSize = path.join(d, "wrongsize.safetensors");
      writeRaw(wrongSize, [{ name: "w", dtype: "F32", shape: [3], bytes: f32(2) }]);
      throwsWith(() => readSafetensors(wrongSize), [wrongSize, `"w"`, "needs 12"], "size mismatch");

      const gap = path.join(d, "gap.safetensors");
      writeRaw(
        gap,
        [
          { name: "a", dtype: "F32", shape: [1], bytes: f32(2) },
          { name: "b", dtype: "F32", shape: [1], bytes: f32(1) },
        ],
        { offsets: { a: [0, 4], b: [8, 12] } },
      );
      throwsWith(() => readSafetensors(gap), [gap, `"b"`, "gap"], "gap");

      const trailing = path.join(d, "trailing.safetensors");
      writeRaw(trailing, [{ name: "a", dtype: "F32", shape: [1], bytes: f32(2) }], { offsets: { a: [0, 4] } });
      throwsWith(() => readSafetensors(trailing), [trailing, "trailing"], "trailing bytes");

      const unknown = path.join(d, "unknown.safetensors");
      writeRaw(unknown, [{ name: "q", dtype: "Q4", shape: [2], bytes: f32(2) }]);
      throwsWith(() => readSafetensors(unknown), [unknown, `"q"`, "unknown dtype", "Q4"], "unknown dtype");
      const fp8 = path.join(d, "fp8.safetensors");
      writeRaw(fp8, [{ name: "q", dtype: "F8_E4M3", shape: [2], bytes: new Uint8Array(2) }]);
      throwsWith(() => readSafetensors(fp8), [fp8, `"q"`, "F8_E4M3", "not supported"], "fp8");

      const badShape = path.join(d, "badshape.safetensors");
      writeRaw(badShape, [{ name: "s", dtype: "F32", shape: [-1], bytes: f32(1) }]);
      throwsWith(() => readSafetensors(badShape), [badShape, `"s"`, "shape"], "bad shape");

      const missing = path.join(d, "nope.safetensors");
      throwsWith(() => readSafetensors(missing), [missing, "no such file"], "missing file");
    });
  });

  describe("Hugging Face T5 checkpoints", function () {
    const fixtureKeys = (): Record<string, string[]> => {
      const m = path.join(FIXTURES, "manifest.json");
      if (!fs.existsSync(m)) return {};
      return (JSON.parse(fs.readFileSync(m, "utf-8")) as { checkpoint_keys?: Record<string, string[]> }).checkpoint_keys ?? {};
    };

    for (const [name, dir] of [
      ["v1_1", V1_1],
      ["original", ORIGINAL],
    ] as const) {
      itNoLeak(`loads the ${name} fixture (save_pretrained output): every parameter, float32, shaped as the config says`, function () {
        requireFixture(dir);
        const { config, params } = loadT5Checkpoint(dir);
        const shapes = t5ParameterShapes(config);
        assert.deepEqual([...params.keys()].sort(), [...shapes.keys()].sort());
        for (const [k, s] of shapes) {
          const t = params.get(k)!;
          assert.deepEqual(t.shape, s, k);
          assert.equal(t.dtype, "float32", k);
        }
        assert.equal(config.tie_word_embeddings, name === "original");
        assert.equal(config.feed_forward_proj, name === "original" ? "relu" : "gated-gelu");
        assert.equal(params.has("lm_head.weight"), name === "v1_1");
        const keys = fixtureKeys()[name];
        if (keys) assert.deepEqual([...params.keys()].sort(), [...keys].sort(), "the manifest's checkpoint keys");
        // Values equal the file's (read directly).
        const raw = readSafetensors(path.join(dir, "model.safetensors"));
        for (const [k, t] of params) assertBitsEqual(t, raw.tensors.get(k)!, k);
        disposeAll(raw.tensors);
        disposeAll(params);
      });

      itNoLeak(`saveT5Checkpoint (${name}) writes a folder that loads back bit-identical, with HF's config fields`, function () {
        requireFixture(dir);
        const { config, params } = loadT5Checkpoint(dir);
        const out = tmpDir(`save-${name}`);
        saveT5Checkpoint(out, config, params);
        assert.deepEqual(fs.readdirSync(out).sort(), ["config.json", "model.safetensors"]);
        const json = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf-8")) as Record<string, unknown>;
        assert.equal(json.model_type, "t5");
        assert.deepEqual(json.architectures, ["T5ForConditionalGeneration"]);
        assert.equal(json.tie_word_embeddings, config.tie_word_embeddings);
        assert.equal(json.is_gated_act, name === "v1_1");
        assert.equal(json.dense_act_fn, name === "v1_1" ? "gelu_new" : "relu");
        assert.equal(readSafetensorsHeader(path.join(out, "model.safetensors")).metadata.format, "pt");
        const back = loadT5Checkpoint(out);
        assert.deepEqual(back.config, config);
        assert.deepEqual([...back.params.keys()].sort(), [...params.keys()].sort());
        for (const [k, t] of params) assertBitsEqual(back.params.get(k)!, t, k);
        disposeAll(back.params);
        disposeAll(params);
      });
    }

    itNoLeak("loads a sharded checkpoint (model.safetensors.index.json) equal to the single file, and checks the index", function () {
      requireFixture(V1_1);
      const single = readSafetensors(path.join(V1_1, "model.safetensors"));
      const d = tmpDir("sharded");
      fs.copyFileSync(path.join(V1_1, "config.json"), path.join(d, "config.json"));
      const names = [...single.tensors.keys()].sort();
      const shards: Map<string, tf.Tensor>[] = [new Map(), new Map(), new Map()];
      const weightMap: Record<string, string> = {};
      names.forEach((n, i) => {
        shards[i % 3]!.set(n, single.tensors.get(n)!);
        weightMap[n] = `model-0000${(i % 3) + 1}-of-00003.safetensors`;
      });
      shards.forEach((s, i) => writeSafetensors(path.join(d, `model-0000${i + 1}-of-00003.safetensors`), s, { format: "pt" }));
      const index = { metadata: { total_size: 0 }, weight_map: weightMap };
      fs.writeFileSync(path.join(d, "model.safetensors.index.json"), JSON.stringify(index));
      const { params } = loadT5Checkpoint(d);
      assert.deepEqual([...params.keys()].sort(), names);
      for (const [k, t] of single.tensors) assertBitsEqual(params.get(k)!, t, k);
      disposeAll(params);

      // A shard named by the index but absent; a key placed in the wrong shard.
      const first = names[0]!;
      const bad = { weight_map: { ...weightMap, [first]: "model-00009-of-00003.safetensors" } };
      fs.writeFileSync(path.join(d, "model.safetensors.index.json"), JSON.stringify(bad));
      throwsWith(() => loadT5Checkpoint(d), ["model.safetensors.index.json", "model-00009-of-00003.safetensors", "missing"], "missing shard");
      const wrong = { weight_map: { ...weightMap, [first]: "model-00002-of-00003.safetensors" } };
      fs.writeFileSync(path.join(d, "model.safetensors.index.json"), JSON.stringify(wrong));
      throwsWith(() => loadT5Checkpoint(d), [first, "model-00002-of-00003.safetensors", "does not hold it"], "wrong shard");
      fs.writeFileSync(path.join(d, "model.safetensors.index.json"), "{not json");
      throwsWith(() => loadT5Checkpoint(d), ["model.safetensors.index.json", "not valid JSON"], "bad index");
      disposeAll(single.tensors);
    });

    itNoLeak("loads bf16 and fp16 checkpoints as float32", function () {
      requireFixture(V1_1);
      const single = readSafetensors(path.join(V1_1, "model.safetensors"));
      for (const dtype of ["BF16", "F16"] as const) {
        const d = tmpDir(dtype);
        fs.copyFileSync(path.join(V1_1, "config.json"), path.join(d, "config.json"));
        const entries = [...single.tensors].map(([name, t]) => {
          const v = t.dataSync() as Float32Array;
          const bits = new Uint16Array(v.length);
          const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
          for (let i = 0; i < v.length; i++) {
            if (dtype === "BF16") bits[i] = u[i]! >>> 16; // truncation: exactly representable
            else bits[i] = f32ToF16(v[i]!);
          }
          return { name, dtype, shape: t.shape, bytes: bytesOf(bits) };
        });
        writeRaw(path.join(d, "model.safetensors"), entries);
        const { params } = loadT5Checkpoint(d);
        for (const e of entries) {
          const t = params.get(e.name)!;
          assert.equal(t.dtype, "float32");
          const bits = new Uint16Array(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength / 2);
          const want = dtype === "BF16" ? bfloat16ToFloat32(bits) : float16ToFloat32(bits);
          assert.ok(Buffer.from(bytesOf(t.dataSync() as Float32Array)).equals(Buffer.from(bytesOf(want))), `${dtype} ${e.name}`);
        }
        disposeAll(params);
      }
      disposeAll(single.tensors);
    });

    itNoLeak("lists every missing, unexpected and mis-shaped key in one error", function () {
      requireFixture(V1_1);
      const { tensors } = readSafetensors(path.join(V1_1, "model.safetensors"));
      const q = "encoder.block.1.layer.0.SelfAttention.q.weight";
      const wo = "decoder.block.2.layer.2.DenseReluDense.wo.weight";
      const ln = "decoder.final_layer_norm.weight";
      tensors.get(q)!.dispose();
      tensors.delete(q);
      tensors.get(ln)!.dispose();
      tensors.delete(ln);
      const woT = tensors.get(wo)!;
      tensors.set(wo, tf.transpose(woT));
      woT.dispose();
      tensors.set("encoder.block.7.layer.0.SelfAttention.q.weight", tf.zeros([64, 64]));
      tensors.set("decoder.block.0.layer.2.DenseReluDense.wi.weight", tf.zeros([96, 64]));
      const d = makeCheckpoint(V1_1, tensors);
      const msg = throwsWith(
        () => loadT5Checkpoint(d),
        [
          d,
          "missing keys (2)",
          `${q} [64, 64]`,
          ln,
          "unexpected keys (2)",
          "encoder.block.7.layer.0.SelfAttention.q.weight",
          "decoder.block.0.layer.2.DenseReluDense.wi.weight",
          "mis-shaped keys (1)",
          `${wo}: checkpoint [96, 64], config expects [64, 96]`,
          "feed_forward_proj",
        ],
        "key check",
      );
      assert.ok(!msg.includes("shared.weight"), "only the bad keys are listed");
      // A v1.1 folder whose config is untied but has no lm_head: the hint names the likely cause.
      const lm = tensors.get("lm_head.weight")!;
      tensors.delete("lm_head.weight");
      const d2 = makeCheckpoint(V1_1, tensors);
      throwsWith(() => loadT5Checkpoint(d2), ["lm_head.weight [384, 64]", "tie_word_embeddings is false"], "missing lm_head");
      lm.dispose();
      // Integer dtype for a parameter.
      disposeAll(tensors);
    });

    itNoLeak("accepts and drops aliases of shared.weight (embed_tokens; lm_head when tied) only when consistent", function () {
      requireFixture(V1_1);
      requireFixture(ORIGINAL);
      // Untied (v1_1): embed_tokens equal to shared are dropped; different ones are an error.
      const v = readSafetensors(path.join(V1_1, "model.safetensors")).tensors;
      const shared = v.get("shared.weight")!;
      v.set("encoder.embed_tokens.weight", shared.clone());
      v.set("decoder.embed_tokens.weight", shared.clone());
      const d = makeCheckpoint(V1_1, v);
      const { params } = loadT5Checkpoint(d);
      assert.ok(!params.has("encoder.embed_tokens.weight") && !params.has("decoder.embed_tokens.weight"));
      assert.equal(params.size, t5ParameterShapes(loadT5Config(V1_1)).size);
      disposeAll(params);
      v.get("decoder.embed_tokens.weight")!.dispose();
      v.set("decoder.embed_tokens.weight", tf.add(shared, 1));
      const d2 = makeCheckpoint(V1_1, v);
      throwsWith(() => loadT5Checkpoint(d2), [d2, "decoder.embed_tokens.weight differs from shared.weight"], "alias differs");
      // A checkpoint holding the embedding only under an alias.
      v.get("decoder.embed_tokens.weight")!.dispose();
      v.delete("decoder.embed_tokens.weight");
      v.delete("shared.weight");
      const d3 = makeCheckpoint(V1_1, v);
      const r3 = loadT5Checkpoint(d3);
      assertBitsEqual(r3.params.get("shared.weight")!, shared, "shared from alias");
      assert.ok(!r3.params.has("encoder.embed_tokens.weight"));
      disposeAll(r3.params);
      shared.dispose();
      disposeAll(v);

      // Tied (original): lm_head equal to shared is dropped, a different one is an error; aliases dropped unread.
      const o = readSafetensors(path.join(ORIGINAL, "model.safetensors")).tensors;
      const s = o.get("shared.weight")!;
      o.set("lm_head.weight", s.clone());
      o.set("encoder.embed_tokens.weight", tf.mul(s, 2)); // tied: dropped unread, as transformers does
      const d4 = makeCheckpoint(ORIGINAL, o);
      const r4 = loadT5Checkpoint(d4);
      assert.ok(!r4.params.has("lm_head.weight") && !r4.params.has("encoder.embed_tokens.weight"));
      disposeAll(r4.params);
      o.get("lm_head.weight")!.dispose();
      o.set("lm_head.weight", tf.neg(s));
      const d5 = makeCheckpoint(ORIGINAL, o);
      throwsWith(() => loadT5Checkpoint(d5), [d5, "lm_head.weight differs from shared.weight", "tie_word_embeddings"], "tied lm_head differs");
      o.get("lm_head.weight")!.dispose();
      o.set("lm_head.weight", tf.zeros([5, 64]));
      const d6 = makeCheckpoint(ORIGINAL, o);
      throwsWith(() => loadT5Checkpoint(d6), ["lm_head.weight (an alias of shared.weight): checkpoint [5, 64]"], "alias shape");
      disposeAll(o);
    });

    itNoLeak("reads a transformers-5 v1.1 config (tied, scale_decoder_outputs false) as the untied model", function () {
      requireFixture(V1_1);
      const v = readSafetensors(path.join(V1_1, "model.safetensors")).tensors;
      v.get("lm_head.weight")!.dispose();
      v.delete("lm_head.weight");
      const d = makeCheckpoint(V1_1, v, { tie_word_embeddings: true, scale_decoder_outputs: false });
      const { config, params } = loadT5Checkpoint(d);
      assert.equal(config.tie_word_embeddings, false);
      assert.deepEqual([...params.keys()].sort(), [...t5ParameterShapes(config).keys()].sort());
      assertBitsEqual(params.get("lm_head.weight")!, v.get("shared.weight")!, "lm_head = shared");
      disposeAll(params);
      const bad = makeCheckpoint(V1_1, v, { tie_word_embeddings: false, scale_decoder_outputs: true });
      throwsWith(() => loadT5Checkpoint(bad), ["scale_decoder_outputs true with tie_word_embeddings false", "not supported"], "rescale untied");
      disposeAll(v);
    });

    itNoLeak("rejects other architectures, naming them", function () {
      requireFixture(V1_1);
      const one = { w: tf.zeros([1]) };
      const bart = tmpDir("bart");
      fs.writeFileSync(
        path.join(bart, "config.json"),
        JSON.stringify({ model_type: "bart", architectures: ["BartForConditionalGeneration"], d_model: 16, vocab_size: 10 }),
      );
      writeSafetensors(path.join(bart, "model.safetensors"), one);
      throwsWith(() => loadT5Checkpoint(bart), [path.join(bart, "config.json"), "bart", "BartForConditionalGeneration", "not a T5"], "bart");
      const enc = makeCheckpoint(V1_1, new Map(), { architectures: ["T5EncoderModel"] });
      throwsWith(() => loadT5Checkpoint(enc), ["T5EncoderModel", "T5ForConditionalGeneration"], "encoder-only");
      const lie = makeCheckpoint(V1_1, new Map(), { model_type: "t5", architectures: ["MT5ForConditionalGeneration"] });
      throwsWith(() => loadT5Checkpoint(lie), ["MT5ForConditionalGeneration"], "mt5 arch");
      one.w.dispose();
    });

    itNoLeak("explains a missing folder, config.json, safetensors file (pytorch_model.bin) or a bad config", function () {
      const nowhere = path.join(tmpRoot, "does-not-exist");
      throwsWith(() => loadT5Checkpoint(nowhere), [nowhere, "not found", "config.json", "model.safetensors"], "no folder");
      const empty = tmpDir("noconfig");
      throwsWith(() => loadT5Checkpoint(empty), [empty, "no config.json"], "no config");
      requireFixture(V1_1);
      const bin = tmpDir("bin");
      fs.copyFileSync(path.join(V1_1, "config.json"), path.join(bin, "config.json"));
      fs.writeFileSync(path.join(bin, "pytorch_model.bin"), "");
      throwsWith(
        () => loadT5Checkpoint(bin),
        [bin, "pytorch_model.bin", "not supported", "save_pretrained(D, safe_serialization=True)", "T5ForConditionalGeneration"],
        "bin only",
      );
      const file = path.join(V1_1, "model.safetensors");
      throwsWith(() => loadT5Checkpoint(file), [file, "not a folder"], "file instead of folder");
      const badCfg = makeCheckpoint(V1_1, new Map(), { d_model: "big", feed_forward_proj: "swiglu" });
      throwsWith(() => loadT5Checkpoint(badCfg), ["config.json", "d_model", "swiglu"], "bad config");
      const notJson = tmpDir("badjson");
      fs.writeFileSync(path.join(notJson, "config.json"), "{");
      throwsWith(() => loadT5Checkpoint(notJson), [path.join(notJson, "config.json"), "not valid JSON"], "config not JSON");
      const adapterOnly = tmpDir("adapterdir");
      fs.copyFileSync(path.join(V1_1, "config.json"), path.join(adapterOnly, "config.json"));
      fs.writeFileSync(path.join(adapterOnly, "adapter_config.json"), "{}");
      throwsWith(() => loadT5Checkpoint(adapterOnly), ["loadPeftAdapter"], "adapter folder");
    });

    itNoLeak("saveT5Checkpoint refuses parameters that do not match the config, writing nothing", function () {
      requireFixture(V1_1);
      const { config, params } = loadT5Checkpoint(V1_1);
      const k = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
      const rb = params.get(k)!;
      params.delete(k);
      const extra = tf.zeros([3], "int32");
      const wi0 = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight";
      params.get(wi0)!.dispose();
      params.set(wi0, tf.zeros([96, 64], "int32"));
      params.set("something.else", extra);
      const out = path.join(tmpRoot, "save-refused");
      throwsWith(() => saveT5Checkpoint(out, config, params), [out, `missing keys (1)`, k, "something.else", "dtype int32"], "save check");
      assert.ok(!fs.existsSync(out));
      rb.dispose();
      disposeAll(params);
    });
  });

  describe("PEFT LoRA adapters", function () {
    const v11Config = (): T5Config => loadT5Config(V1_1);

    itNoLeak("loads the fixture adapter (PEFT save_pretrained): config, module paths, A [r, in], B [out, r]", function () {
      requireFixture(ADAPTER);
      const { config, weights } = loadPeftAdapter(ADAPTER);
      assert.equal(config.r, 4);
      assert.equal(config.lora_alpha, 8);
      assert.equal(config.lora_dropout, 0);
      assert.deepEqual(config.target_modules, ["q", "v"]);
      assert.equal(config.bias, "none");
      assert.equal(config.task_type, "SEQ_2_SEQ_LM");
      assert.equal(scaling(config), 2);
      // q and v of 2 encoder self-attentions, 3 decoder self- and 3 cross-attentions.
      assert.equal(weights.size, 2 * (2 + 3 + 3));
      assert.ok(weights.has("encoder.block.0.layer.0.SelfAttention.q"));
      assert.ok(weights.has("decoder.block.2.layer.1.EncDecAttention.v"));
      for (const [m, { A, B }] of weights) {
        assert.deepEqual(A.shape, [4, 64], m);
        assert.deepEqual(B.shape, [64, 4], m);
        assert.equal(A.dtype, "float32");
      }
      const raw = readSafetensors(path.join(ADAPTER, "adapter_model.safetensors")).tensors;
      const a = raw.get("base_model.model.decoder.block.1.layer.0.SelfAttention.v.lora_A.weight")!;
      assertBitsEqual(weights.get("decoder.block.1.layer.0.SelfAttention.v")!.A, a, "A");
      checkAdapterShapes({ config, weights }, v11Config());
      disposeAll(raw);
      disposeAdapter(weights);
    });

    itNoLeak("savePeftAdapter round trip: PEFT's key names and config fields, values bit-identical", function () {
      requireFixture(ADAPTER);
      const adapter = loadPeftAdapter(ADAPTER);
      const out = tmpDir("adapter");
      savePeftAdapter(out, adapter.config, adapter.weights, "google/t5-base-lm-adapt");
      assert.deepEqual(fs.readdirSync(out).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
      const keys = [...readSafetensorsHeader(path.join(out, "adapter_model.safetensors")).tensors.keys()].sort();
      const fixtureKeys = [...readSafetensorsHeader(path.join(ADAPTER, "adapter_model.safetensors")).tensors.keys()].sort();
      assert.deepEqual(keys, fixtureKeys);
      const json = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf-8")) as Record<string, unknown>;
      for (const [k, v] of Object.entries({
        peft_type: "LORA",
        task_type: "SEQ_2_SEQ_LM",
        base_model_name_or_path: "google/t5-base-lm-adapt",
        r: 4,
        lora_alpha: 8,
        lora_dropout: 0,
        target_modules: ["q", "v"],
        bias: "none",
        fan_in_fan_out: false,
        inference_mode: true,
        use_dora: false,
        use_rslora: false,
      })) {
        assert.deepEqual(json[k], v, k);
      }
      const back = loadPeftAdapter(out);
      assert.deepEqual([...back.weights.keys()], [...adapter.weights.keys()]);
      for (const [m, { A, B }] of adapter.weights) {
        assertBitsEqual(back.weights.get(m)!.A, A, `${m} A`);
        assertBitsEqual(back.weights.get(m)!.B, B, `${m} B`);
      }
      assert.equal(back.config.base_model_name_or_path, "google/t5-base-lm-adapt");
      disposeAdapter(back.weights);
      disposeAdapter(adapter.weights);
    });

    itNoLeak("reads in-memory PEFT names (.lora_A.default.weight), regex target_modules and rsLoRA scaling", function () {
      const d = tmpDir("default-names");
      const A = tf.ones([2, 8]);
      const B = tf.zeros([8, 2]);
      writeSafetensors(path.join(d, "adapter_model.safetensors"), {
        "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.default.weight": A,
        "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.default.weight": B,
      });
      fs.writeFileSync(
        path.join(d, "adapter_config.json"),
        JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 8, target_modules: ".*SelfAttention\\.(q|v)", use_rslora: true, bias: "none" }),
      );
      const ad = loadPeftAdapter(d);
      assert.deepEqual([...ad.weights.keys()], ["encoder.block.0.layer.0.SelfAttention.q"]);
      assert.deepEqual(ad.config.target_modules, ["q"]);
      assert.equal(ad.config.target_modules_regex, ".*SelfAttention\\.(q|v)");
      assert.equal(scaling(ad.config), 8 / Math.sqrt(2));
      disposeAdapter(ad.weights);
      tf.dispose([A, B]);
    });

    itNoLeak("rejects unsupported adapter configs, listing every problem", function () {
      requireFixture(ADAPTER);
      const d = tmpDir("unsupported");
      fs.copyFileSync(path.join(ADAPTER, "adapter_model.safetensors"), path.join(d, "adapter_model.safetensors"));
      const raw = JSON.parse(fs.readFileSync(path.join(ADAPTER, "adapter_config.json"), "utf-8")) as Record<string, unknown>;
      fs.writeFileSync(
        path.join(d, "adapter_config.json"),
        JSON.stringify({ ...raw, bias: "all", use_dora: true, fan_in_fan_out: true, rank_pattern: { q: 8 }, alpha_pattern: { v: 2 } }),
      );
      throwsWith(
        () => loadPeftAdapter(d),
        [path.join(d, "adapter_config.json"), `bias "all"`, "use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern"],
        "unsupported",
      );
      fs.writeFileSync(path.join(d, "adapter_config.json"), JSON.stringify({ ...raw, peft_type: "IA3", r: 0 }));
      throwsWith(() => loadPeftAdapter(d), ["IA3", "r: expected a positive integer"], "not lora");
      fs.writeFileSync(path.join(d, "adapter_config.json"), JSON.stringify({ ...raw, target_modules: ["k"] }));
      throwsWith(() => loadPeftAdapter(d), ["not matched by target_modules", "SelfAttention.q"], "targets");
      const cfg: LoraAdapterConfig = { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ["q"], bias: "none", task_type: "SEQ_2_SEQ_LM" };
      const w = new Map([["encoder.block.0.layer.0.SelfAttention.q", { A: tf.zeros([3, 64]), B: tf.zeros([64, 4]) }]]);
      const out = path.join(tmpRoot, "never-written");
      throwsWith(() => savePeftAdapter(out, { ...cfg, use_rslora: true, extra: { use_dora: true } }, w), ["use_dora"], "save config");
      throwsWith(() => savePeftAdapter(out, cfg, w), ["lora_A [3, 64] should be [r = 4, in]"], "save shapes");
      assert.ok(!fs.existsSync(out));
      disposeAdapter(w);
    });

    itNoLeak("rejects malformed adapter weights (unpaired, wrong rank, foreign keys) in one error", function () {
      const d = tmpDir("badweights");
      const t = {
        "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight": tf.zeros([2, 8]),
        "base_model.model.encoder.block.0.layer.0.SelfAttention.v.lora_A.weight": tf.zeros([2, 8]),
        "base_model.model.encoder.block.0.layer.0.SelfAttention.v.lora_B.weight": tf.zeros([8, 3]),
        "base_model.model.shared.lora_embedding_A": tf.zeros([2, 8]),
        "base_model.model.lm_head.modules_to_save.weight": tf.zeros([2, 8]),
      };
      writeSafetensors(path.join(d, "adapter_model.safetensors"), t);
      fs.writeFileSync(path.join(d, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q", "v"] }));
      throwsWith(
        () => loadPeftAdapter(d),
        [
          "adapter_model.safetensors",
          "SelfAttention.q: has lora_A but no lora_B",
          "lora_B [8, 3] should be [out, r = 2]",
          "lora_embedding",
          "lm_head.modules_to_save.weight: not a LoRA weight",
        ],
        "weights",
      );
      tf.dispose(Object.values(t));
      const empty = tmpDir("noadapter");
      throwsWith(() => loadPeftAdapter(empty), [empty, "no adapter_config.json"], "no config");
      fs.writeFileSync(path.join(empty, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 2, target_modules: ["q"] }));
      fs.writeFileSync(path.join(empty, "adapter_model.bin"), "");
      throwsWith(() => loadPeftAdapter(empty), ["adapter_model.bin", "not supported"], "bin adapter");
    });

    itNoLeak("checkAdapterShapes lists every module that does not fit the base model", function () {
      requireFixture(ADAPTER);
      requireFixture(ORIGINAL);
      const adapter = loadPeftAdapter(ADAPTER);
      const orig = loadT5Checkpoint(ORIGINAL);
      disposeAll(orig.params);
      // The original fixture has 2 decoder layers: the adapter's decoder.block.2 modules do not exist there.
      throwsWith(
        () => checkAdapterShapes(adapter, orig.config),
        ["decoder.block.2.layer.0.SelfAttention.q: not a linear layer", "decoder.block.2.layer.1.EncDecAttention.v: not a linear layer"],
        "layers",
      );
      const wide = { ...orig.config, num_decoder_layers: 3, d_model: 32, num_heads: 8 };
      const msg = throwsWith(
        () => checkAdapterShapes(adapter, wide),
        ["encoder.block.0.layer.0.SelfAttention.q: lora_A [4, 64], the layer needs [r, 32]", "lora_B [64, 4], the layer needs [128, r]"],
        "widths",
      );
      assert.equal(msg.split("\n").filter((l) => l.includes("lora_A")).length, 16, "every module listed");
      const w = new Map([["shared", { A: tf.zeros([4, 64]), B: tf.zeros([384, 4]) }]]);
      throwsWith(() => checkAdapterShapes({ config: adapter.config, weights: w }, v11Config()), ["shared: not a linear layer"], "embedding");
      disposeAdapter(w);
      disposeAdapter(adapter.weights);
    });
  });
});

/** float32 -> float16 bits, round to nearest even (test helper; the library only decodes fp16). */
function f32ToF16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}
