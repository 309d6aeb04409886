/**
 * Strict UTF-8. Node's "utf8" decoding replaces an invalid byte sequence with U+FFFD without a word, so a
 * corrupt task file or instruction file would silently become a different instruction. Here invalid input is
 * an error naming the file and the byte offset.
 */
import * as fs from "node:fs";

/**
 * Offset of the first byte that does not start or continue a valid UTF-8 sequence (overlong forms, surrogates
 * and code points above U+10FFFF are invalid, as in WHATWG's decoder), or -1 if all of `bytes` is valid. A
 * sequence cut by the end of `bytes` is invalid unless `allowIncompleteTail` (a chunk of a stream).
 */
export function firstInvalidUtf8(bytes: Uint8Array, allowIncompleteTail = false): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0; // overlong
      if (b === 0xed) hi = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90; // overlong
      if (b === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return i;
    for (let k = 1; k < len; k++) {
      if (i + k >= n) return allowIncompleteTail ? -1 : i;
      const c = bytes[i + k]!;
      if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += len;
  }
  return -1;
}

/** Line (1-based) of byte `offset` in `bytes`, counting "\n" before it. */
function lineAt(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** The text of `bytes`, or an error naming `source`, the byte offset and line of the first invalid sequence. */
export function decodeUtf8Strict(bytes: Uint8Array, source: string): string {
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    const shown = Array.from(bytes.subarray(bad, Math.min(bytes.length, bad + 4)), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new Error(`${source}: invalid UTF-8 at byte offset ${bad} (line ${lineAt(bytes, bad)}: bytes ${shown}); re-save the file as UTF-8`);
  }
  return new TextDecoder("utf-8").decode(bytes);
}

/** Reads a text file as strict UTF-8 (see decodeUtf8Strict). */
export function readUtf8File(file: string): string {
  return decodeUtf8Strict(fs.readFileSync(file), file);
}

/**
 * Streaming strict decoder: `write(chunk)` returns the text of the complete sequences so far, and throws at
 * the first invalid byte with its offset in the whole stream; `end()` checks that no sequence was left cut.
 */
export class StrictUtf8Stream {
  private pending: Uint8Array = new Uint8Array(0);
  private offset = 0; // stream offset of pending[0]
  private newlines = 0; // "\n" bytes before pending[0]
  private readonly decoder = new TextDecoder("utf-8");

  constructor(private readonly source: string) {}

  write(chunk: Uint8Array): string {
    const bytes = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const bad = firstInvalidUtf8(bytes, true);
    if (bad >= 0) this.fail(this.offset + bad, this.newlines + lineAt(bytes, bad), bytes.subarray(bad));
    // Keep a sequence cut at the end of the chunk for the next one.
    let cut = bytes.length;
    for (let k = 1; k <= 3 && k <= bytes.length; k++) {
      const b = bytes[bytes.length - k]!;
      if (b >= 0xc0) {
        const len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
        if (len > k) cut = bytes.length - k;
        break;
      }
      if (b < 0x80) break;
    }
    const text = this.decoder.decode(bytes.subarray(0, cut));
    this.newlines += lineAt(bytes, cut) - 1;
    this.pending = Uint8Array.from(bytes.subarray(cut));
    this.offset += cut;
    return text;
  }

  end(): void {
    if (this.pending.length) this.fail(this.offset, this.newlines + 1, this.pending, "a multi-byte sequence cut by the end of the data");
  }

  private fail(offset: number, line: number, at: Uint8Array, what = "invalid UTF-8"): never {
    const shown = Array.from(at.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new Utf8Error(`${this.source}: ${what} at byte offset ${offset} (line ${line}: bytes ${shown})`);
  }
}

export class Utf8Error extends Error {}
