/**
 * Storing float32 safetensors files as bfloat16, for publishing frozen weights at half the size (a trained
 * model's embeddings are two thirds of the `small` preset's 24M parameters). The conversion works on the
 * file's bytes, not on tfjs tensors, so it needs no backend and never holds more than one tensor's data twice.
 *
 * Rounding is round-to-nearest, ties to even, as torch's `tensor.to(torch.bfloat16)`; NaN becomes a quiet
 * NaN of the same sign, infinities stay infinite, and a finite value too large for bf16 rounds to infinity
 * (as in torch). test/artifacts.test.ts checks the bits against a fixture made by torch
 * (reference/make_bf16_fixture.py).
 */
import * as fs from "node:fs";
import { readSafetensorsHeader, writeFileAtomic, type SafetensorsDtype } from "./safetensors";

/** float32 values -> bfloat16 bit patterns, round to nearest even (torch's rule). */
export function float32ToBfloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    if ((b & 0x7fffffff) > 0x7f800000) {
      out[i] = ((b >>> 16) & 0x8000) | 0x7fc0; // NaN: quiet, sign kept
      continue;
    }
    out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

export interface ConvertedFile {
  /** Tensors stored as BF16 (were F32). */
  converted: number;
  /** Tensors copied unchanged (other dtypes, or F32 names excluded by `keepFloat32`). */
  kept: number;
  /** Number of elements per output dtype. */
  elements: Partial<Record<SafetensorsDtype, number>>;
}

/**
 * Rewrites safetensors file `src` as `dst` with every F32 tensor stored as BF16 (except names for which
 * `keepFloat32(name)` is true); other dtypes and `__metadata__` are copied. Keys keep their order (sorted),
 * the header is padded to 8 bytes as the format recommends, and `dst` is written atomically.
 */
export function convertSafetensorsToBf16(src: string, dst: string, keepFloat32: (name: string) => boolean = () => false): ConvertedFile {
  const header = readSafetensorsHeader(src);
  const fd = fs.openSync(src, "r");
  try {
    const names = [...header.tensors.keys()].sort();
    const out: Record<string, unknown> = {};
    if (Object.keys(header.metadata).length) out["__metadata__"] = header.metadata;
    const plan: { name: string; toBf16: boolean; bytes: number }[] = [];
    let offset = 0;
    const result: ConvertedFile = { converted: 0, kept: 0, elements: {} };
    for (const name of names) {
      const e = header.tensors.get(name)!;
      const toBf16 = e.dtype === "F32" && !keepFloat32(name);
      const bytes = toBf16 ? (e.dataOffsets[1] - e.dataOffsets[0]) / 2 : e.dataOffsets[1] - e.dataOffsets[0];
      const dtype: SafetensorsDtype = toBf16 ? "BF16" : e.dtype;
      out[name] = { dtype, shape: e.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
      plan.push({ name, toBf16, bytes });
      if (toBf16) result.converted++;
      else result.kept++;
      result.elements[dtype] = (result.elements[dtype] ?? 0) + e.shape.reduce((a, b) => a * b, 1);
    }
    let json = Buffer.from(JSON.stringify(out), "utf-8");
    const padded = Math.ceil(json.byteLength / 8) * 8;
    if (padded !== json.byteLength) json = Buffer.concat([json, Buffer.alloc(padded - json.byteLength, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.byteLength), 0);
    writeFileAtomic(dst, (wfd) => {
      fs.writeSync(wfd, len);
      fs.writeSync(wfd, json);
      for (const p of plan) {
        const e = header.tensors.get(p.name)!;
        const raw = Buffer.alloc(e.dataOffsets[1] - e.dataOffsets[0]);
        const got = raw.byteLength ? fs.readSync(fd, raw, 0, raw.byteLength, header.dataStart + e.dataOffsets[0]) : 0;
        if (got !== raw.byteLength) throw new Error(`${src}: tensor "${p.name}": read ${got} of ${raw.byteLength} bytes`);
        const data = p.toBf16 ? float32ToBfloat16(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)) : raw;
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        for (let done = 0; done < bytes.byteLength; ) done += fs.writeSync(wfd, bytes, done, bytes.byteLength - done);
      }
    });
    return result;
  } finally {
    fs.closeSync(fd);
  }
}
