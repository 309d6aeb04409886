/**
 * safetensors reading and writing for tfjs tensors, in Node.
 *
 * A small, self-contained implementation of the format (https://github.com/huggingface/safetensors): there is
 * no maintained npm package that reads and writes safetensors files locally (the npm package "safetensors"
 * is a 0.0.1 placeholder, and @huggingface/hub only parses the headers of remote files), so this file does it
 * itself, following the reference Rust library's rules:
 *
 *   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data buffer]
 *   header = { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
 *              "__metadata__"?: { "<key>": "<string>" } }
 *
 * Offsets are relative to the start of the data buffer. As in the Rust library, the tensors must tile the
 * buffer exactly: sorted by offset, each begins where the previous one ended, the last one ends at the end of
 * the file, and each covers exactly product(shape) * sizeof(dtype) bytes. Anything else (a truncated file,
 * overlapping or out-of-range offsets, a header length past the end of the file, invalid JSON, an unknown
 * dtype) is an error that names the file and the offending key.
 *
 * Reading converts every floating type (F32, F16, BF16, F64) to float32, integer types to int32 (I64 / U32 /
 * U64 must fit in int32, else an error naming the tensor), BOOL to bool. Each tensor's bytes are read from
 * the file once, straight into the typed array that becomes the tensor (F32 / I32 need no further copy; the
 * other dtypes are converted from that one read), so no file-sized buffer is ever allocated: files larger
 * than Node's 2 GiB readFileSync limit or 4 GiB Buffer limit read too.
 *
 * Writing stores float32 as F32, int32 as I32 and bool as BOOL, keys in sorted order (4-byte dtypes first,
 * then the 1-byte BOOL tensors, so every F32/I32 tensor stays 4-byte aligned), the header padded with spaces
 * to a multiple of 8 bytes as the Rust library does, atomically (a temporary file in the same folder, fsync,
 * rename). Little-endian hosts only (every platform Node ships for), checked at run time.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";

/** The dtypes of the safetensors format. Those this reader converts are listed in DTYPE_SIZE. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Bytes per element of every dtype this reader understands. */
const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Dtypes of the format that exist but that this reader does not convert (named in the error). */
const KNOWN_UNSUPPORTED = new Set(["F8_E5M2", "F8_E4M3", "F8_E4M3FN", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64", "C128"]);

/** The Rust library refuses headers above 100 MB; so do we (a corrupt length would otherwise allocate GBs). */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry in a safetensors header. `dataOffsets` are relative to the data buffer. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  dataOffsets: [number, number];
}

/** A validated header: tensor entries in file order, the `__metadata__` strings, and where the data starts. */
export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Absolute file offset of the data buffer (8 + header length). */
  dataStart: number;
  /** Total file size in bytes. */
  fileSize: number;
}

export interface ReadSafetensorsOptions {
  /** Read only the tensors for which this returns true (the others are validated but not read). */
  filter?: (name: string, entry: SafetensorsEntry) => boolean;
  /**
   * Accept NaN and ±Inf in float tensors. Default false: a checkpoint holding them is an error naming the
   * tensor, the count and the first flat index (a diverged run must not be loaded as if it were a model).
   */
  allowNonFinite?: boolean;
}

function assertLittleEndian(): void {
  if (os.endianness() !== "LE") throw new Error("safetensors: only little-endian hosts are supported");
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads exactly `length` bytes at `position` into `dest`, in chunks below Node's 2 GiB per-call limit. */
function readExactly(fd: number, dest: Uint8Array, position: number, file: string, what: string): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < dest.byteLength) {
    const want = Math.min(CHUNK, dest.byteLength - done);
    const got = fs.readSync(fd, dest, done, want, position + done);
    if (got === 0) {
      throw new Error(`${file}: file is truncated: ${what} needs ${dest.byteLength} bytes at offset ${position}, the file ends after ${done}`);
    }
    done += got;
  }
}

/** Parses and validates the header of an open file. */
function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new Error(`${file}: not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBytes = new Uint8Array(8);
  readExactly(fd, lenBytes, 0, file, "the header length");
  const lenBig = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (lenBig > BigInt(fileSize - 8)) {
    throw new Error(
      `${file}: header length ${lenBig} is larger than the file (${fileSize} bytes): truncated or not a safetensors file`,
    );
  }
  const headerLen = Number(lenBig);
  if (headerLen > MAX_HEADER_BYTES) throw new Error(`${file}: header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerLen < 2) throw new Error(`${file}: header length ${headerLen} is too small for a JSON object`);
  const headerBytes = new Uint8Array(headerLen);
  readExactly(fd, headerBytes, 8, file, "the header");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new Error(`${file}: header is not valid UTF-8`);
  }
  if (!text.startsWith("{")) throw new Error(`${file}: header does not start with '{': not a safetensors file`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error(`${file}: header is not a JSON object`);

  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error(`${file}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") throw new Error(`${file}: __metadata__[${quote(k)}] must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${file}: tensor ${quote(name)}`;
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`${where}: entry is not an object`);
    const e = value as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== "string") throw new Error(`${where}: missing dtype`);
    if (!(dtype in DTYPE_SIZE)) {
      if (KNOWN_UNSUPPORTED.has(dtype)) throw new Error(`${where}: dtype ${dtype} is not supported (supported: ${Object.keys(DTYPE_SIZE).join(", ")})`);
      throw new Error(`${where}: unknown dtype ${quote(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(", ")})`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new Error(`${where}: data_offsets must be [begin, end] (non-negative integers), got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataSize) {
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes): the file is truncated or corrupt`,
      );
    }
    const expectBytes = product(shape as number[]) * DTYPE_SIZE[dtype as SafetensorsDtype];
    if (end - begin !== expectBytes) {
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${expectBytes}`,
      );
    }
    tensors.set(name, { dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], dataOffsets: [begin, end] });
  }
  // The tensors must tile the data buffer: no overlap, no hole, nothing after the last one.
  const byOffset = [...tensors.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let cursor = 0;
  let prev: string | null = null;
  for (const [name, e] of byOffset) {
    const [begin, end] = e.dataOffsets;
    if (begin < cursor) {
      throw new Error(`${file}: tensor ${quote(name)} data_offsets [${begin}, ${end}] overlap tensor ${quote(prev ?? "")} (which ends at ${cursor})`);
    }
    if (begin > cursor) {
      throw new Error(
        `${file}: tensor ${quote(name)} data_offsets [${begin}, ${end}] leave a gap of ${begin - cursor} bytes after ${prev === null ? "the header" : `tensor ${quote(prev)}`}`,
      );
    }
    cursor = end;
    prev = name;
  }
  if (cursor !== dataSize) {
    throw new Error(`${file}: the tensors cover ${cursor} bytes of data but the file holds ${dataSize}: the file is corrupt (trailing bytes)`);
  }
  return { tensors, metadata, dataStart, fileSize };
}

/**
 * Reads and validates a safetensors header without reading any tensor data: names, dtypes, shapes, offsets
 * and metadata. Cheap even for multi-GB files; enough to check a checkpoint's keys and shapes.
 */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    return readHeaderFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`${file}: no such file`);
    if (code === "EISDIR") throw new Error(`${file}: is a folder, not a safetensors file`);
    throw new Error(`${file}: cannot open (${(e as Error).message})`);
  }
}

// ------------------------------------------------------------------------------------ float conversions

let halfTable: Float32Array | null = null;

/** Exact IEEE 754 binary16 -> binary32 conversion of one bit pattern (subnormals, +-0, +-inf, NaN payloads). */
export function halfBitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0; // +-0
    // Subnormal: mant * 2^-24. Normalise: shift until the implicit bit (0x400) is set.
    let e = 127 - 15 + 1;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    mant &= 0x3ff;
    return (sign | (e << 23) | (mant << 13)) >>> 0;
  }
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf (mant 0) or NaN (payload kept)
  return (sign | ((exp + 127 - 15) << 23) | (mant << 13)) >>> 0;
}

/** float16 bit patterns -> float32 values, through a 65,536-entry table built on first use. */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  if (halfTable === null) {
    const t = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) t[h] = halfBitsToFloat32Bits(h);
    halfTable = new Float32Array(t.buffer);
  }
  const table = halfTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** bfloat16 bit patterns -> float32 values (bf16 is the top half of a float32: exact). */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

// ----------------------------------------------------------------------------------------------- read

type Converted = { values: Float32Array | Int32Array | Uint8Array; dtype: "float32" | "int32" | "bool" };

function convert(bytes: Uint8Array, entry: SafetensorsEntry, where: string): Converted {
  const n = product(entry.shape);
  const buf = bytes.buffer;
  const off = bytes.byteOffset; // 0: every tensor is read into its own fresh buffer, so views are aligned
  const outOfRange = (i: number, v: string): Error =>
    new Error(`${where}: ${entry.dtype} value ${v} at flat index ${i} does not fit in int32 (tfjs's integer type)`);
  switch (entry.dtype) {
    case "F32":
      return { values: new Float32Array(buf, off, n), dtype: "float32" };
    case "F16":
      return { values: float16ToFloat32(new Uint16Array(buf, off, n)), dtype: "float32" };
    case "BF16":
      return { values: bfloat16ToFloat32(new Uint16Array(buf, off, n)), dtype: "float32" };
    case "F64":
      return { values: Float32Array.from(new Float64Array(buf, off, n)), dtype: "float32" };
    case "I32":
      return { values: new Int32Array(buf, off, n), dtype: "int32" };
    case "I16":
      return { values: Int32Array.from(new Int16Array(buf, off, n)), dtype: "int32" };
    case "U16":
      return { values: Int32Array.from(new Uint16Array(buf, off, n)), dtype: "int32" };
    case "I8":
      return { values: Int32Array.from(new Int8Array(buf, off, n)), dtype: "int32" };
    case "U8":
      return { values: Int32Array.from(new Uint8Array(buf, off, n)), dtype: "int32" };
    case "U32": {
      const src = new Uint32Array(buf, off, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        if (v > 0x7fffffff) throw outOfRange(i, String(v));
        out[i] = v;
      }
      return { values: out, dtype: "int32" };
    }
    case "I64":
    case "U64": {
      // Little-endian 64-bit words as (low, high) 32-bit pairs: the value fits in int32 iff high is the sign
      // extension of low (I64) or high is 0 and low < 2^31 (U64).
      const words = new Int32Array(buf, off, 2 * n);
      const out = new Int32Array(n);
      const signed = entry.dtype === "I64";
      for (let i = 0; i < n; i++) {
        const lo = words[2 * i]!;
        const hi = words[2 * i + 1]!;
        if (signed ? hi !== lo >> 31 : hi !== 0 || lo < 0) {
          const big = new DataView(buf, off + 8 * i, 8);
          throw outOfRange(i, String(signed ? big.getBigInt64(0, true) : big.getBigUint64(0, true)));
        }
        out[i] = lo;
      }
      return { values: out, dtype: "int32" };
    }
    case "BOOL": {
      const src = new Uint8Array(buf, off, n);
      for (let i = 0; i < n; i++) if (src[i]! > 1) src[i] = 1;
      return { values: src, dtype: "bool" };
    }
  }
}

function assertFinite(values: Float32Array, where: string): void {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) {
      // NaN - NaN and Inf - Inf are NaN; every finite v gives 0
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad) throw new Error(`${where} holds ${bad} non-finite value(s) (NaN or Inf; the first, ${values[first]}, at flat index ${first}): the run that wrote it diverged`);
}

/**
 * Reads a safetensors file into tfjs tensors (float types -> float32, integers -> int32, BOOL -> bool) and its
 * `__metadata__`. The caller owns the tensors (dispose them). Errors name the file and, where there is one,
 * the tensor.
 */
export function readSafetensors(
  file: string,
  options: ReadSafetensorsOptions = {},
): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
  assertLittleEndian();
  const fd = openForRead(file);
  const tensors = new Map<string, tf.Tensor>();
  try {
    const header = readHeaderFd(fd, file);
    for (const [name, entry] of header.tensors) {
      if (options.filter && !options.filter(name, entry)) continue;
      const [begin, end] = entry.dataOffsets;
      const bytes = new Uint8Array(end - begin);
      readExactly(fd, bytes, header.dataStart + begin, file, `tensor ${quote(name)}`);
      const { values, dtype } = convert(bytes, entry, `${file}: tensor ${quote(name)}`);
      if (dtype === "float32" && !options.allowNonFinite) assertFinite(values as Float32Array, `${file}: tensor ${quote(name)}`);
      tensors.set(name, tf.tensor(values, entry.shape, dtype));
    }
    return { tensors, metadata: header.metadata };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------- write

const WRITE_DTYPE: Partial<Record<tf.DataType, { dtype: SafetensorsDtype; size: number }>> = {
  float32: { dtype: "F32", size: 4 },
  int32: { dtype: "I32", size: 4 },
  bool: { dtype: "BOOL", size: 1 },
};

/**
 * Writes `path` atomically: `write(fd)` fills `${path}.tmp-<pid>` in the same folder, which is fsynced and
 * renamed over `path` (the folder is fsynced too where the platform allows). On any error the temporary
 * file is removed and `path` is left as it was.
 */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, "w");
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = fs.openSync(path.dirname(file), "r");
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // Directory fsync is not possible everywhere (Windows); the rename itself is still atomic.
  }
}

/** JSON (2-space indented, trailing newline) written atomically with writeFileAtomic. */
export function writeJsonAtomic(file: string, value: unknown): void {
  const bytes = Buffer.from(JSON.stringify(value, null, 2) + "\n", "utf-8");
  writeFileAtomic(file, (fd) => {
    fs.writeSync(fd, bytes);
  });
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, Math.min(1 << 30, bytes.byteLength - done));
  }
}

/**
 * Writes tensors to a safetensors file: float32 -> F32, int32 -> I32, bool -> BOOL; keys sorted (4-byte
 * dtypes first, then BOOL, so all F32/I32 data is 4-byte aligned); header padded with spaces to a multiple of
 * 8 bytes; `metadata` as `__metadata__` (string values only). Atomic: the file appears complete or not at all.
 */
export function writeSafetensors(
  file: string,
  tensors: Map<string, tf.Tensor> | Record<string, tf.Tensor>,
  metadata?: Record<string, string>,
): void {
  assertLittleEndian();
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const problems: string[] = [];
  const plan: { name: string; tensor: tf.Tensor; dtype: SafetensorsDtype; size: number }[] = [];
  for (const [name, tensor] of entries) {
    if (name === "__metadata__") {
      problems.push(`"__metadata__" is reserved and cannot name a tensor`);
      continue;
    }
    if (tensor.isDisposed) {
      problems.push(`tensor ${quote(name)} is disposed`);
      continue;
    }
    const w = WRITE_DTYPE[tensor.dtype];
    if (!w) {
      problems.push(`tensor ${quote(name)}: dtype ${tensor.dtype} cannot be written (float32, int32, bool)`);
      continue;
    }
    plan.push({ name, tensor, ...w });
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") problems.push(`metadata[${quote(k)}] must be a string, got ${typeof v}`);
    }
  }
  if (problems.length) throw new Error(`${file}: cannot write safetensors:\n  - ${problems.join("\n  - ")}`);
  plan.sort((a, b) => b.size - a.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    header.__metadata__ = Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  let offset = 0;
  for (const p of plan) {
    const bytes = p.tensor.size * p.size;
    header[p.name] = { dtype: p.dtype, shape: p.tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), "utf-8");
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) json = Buffer.concat([json, Buffer.alloc(padded - json.byteLength, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength), 0);

  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileAtomic(file, (fd) => {
    writeAll(fd, len);
    writeAll(fd, json);
    for (const p of plan) {
      const data = p.tensor.dataSync() as Float32Array | Int32Array | Uint8Array;
      let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (p.dtype === "BOOL") {
        // tfjs bool tensors hold 0/1 in a Uint8Array; normalise defensively.
        if (bytes.some((b) => b > 1)) bytes = bytes.map((b) => (b ? 1 : 0));
      }
      if (bytes.byteLength !== p.tensor.size * p.size) {
        throw new Error(`${file}: tensor ${quote(p.name)}: ${bytes.byteLength} data bytes for ${p.tensor.size} ${p.dtype} elements`);
      }
      writeAll(fd, bytes);
    }
  });
}
