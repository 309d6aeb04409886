/**
 * The T5 tokenizer: the 32k SentencePiece vocabulary in `../shared/data/t5/tokenizer.json`, run through the
 * maintained pure-JS library `@huggingface/tokenizers` (the tokenizer.json pipeline: NFKC "Precompiled"
 * normalizer, whitespace collapsing, Metaspace pre-tokenizer, Unigram model, `</s>` post-processor).
 *
 * Ids equal Hugging Face's (`T5TokenizerFast(tokenizer_file=...)`, i.e. the Rust `tokenizers` pipeline) on
 * >= 2,000 real SNI strings: see test/tokenizer.test.ts and reference/make_tokenizer_fixture.py.
 *
 * Conventions, as in Hugging Face:
 * - `encode` appends `</s>` (id 1) unless `addEos: false`; there is no BOS.
 * - truncation keeps the first `maxLength - 1` tokens and then `</s>` (HF `truncation=True` with special
 *   tokens); without `truncation` a too-long input is refused with an error naming its length.
 * - `decode` skips special tokens by default (`<pad>`, `</s>`, `<unk>`, `<extra_id_*>`) and does NOT apply
 *   HF's `clean_up_tokenization_spaces` unless asked: `T5TokenizerFast(tokenizer_file=...)` does not, while
 *   `AutoTokenizer.from_pretrained(folder)` does (the folder's tokenizer_config.json sets it), e.g.
 *   "don't ." versus "don't.". Pass `{ cleanUpTokenizationSpaces: true }` for the latter.
 */
import { dataDir, dataDirOrigin } from "../data/data-dir";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Tokenizer } from "@huggingface/tokenizers" with { "resolution-mode": "import" };

// The package ships a CommonJS build (exports["."].node.require) but only ESM-flavoured type declarations,
// which TypeScript refuses to `import` from a CommonJS module (TS1479); so: types from the ESM declarations,
// value through require, which resolves to dist/tokenizers.cjs.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tokenizersLib = require("@huggingface/tokenizers") as typeof import("@huggingface/tokenizers", {
  with: { "resolution-mode": "import" },
});

/** `t5/tokenizer.json` in the data folder ($TAGI_DATA_DIR, else ../shared/data; src/data/data-dir.ts). */
export const DEFAULT_T5_TOKENIZER_PATH = join(dataDir(), "t5", "tokenizer.json");

export interface EncodeOptions {
  /** Append `</s>` (id 1), as HF does with `add_special_tokens=True`. Default true. */
  addEos?: boolean;
  /** Maximum number of ids, `</s>` included. Default: no limit. */
  maxLength?: number;
  /**
   * When the ids exceed `maxLength`: false (default) throws an error naming the length; true keeps the
   * first `maxLength - 1` tokens and then `</s>` (or the first `maxLength` tokens when `addEos` is false).
   */
  truncation?: boolean;
}

export interface DecodeOptions {
  /** Drop `<pad>`, `</s>`, `<unk>` and the `<extra_id_*>` sentinels. Default true. */
  skipSpecialTokens?: boolean;
  /**
   * HF's `clean_up_tokenization_spaces` (" ." -> ".", " n't" -> "n't", ...). Default false, like
   * `T5TokenizerFast(tokenizer_file=...)`; `AutoTokenizer.from_pretrained` on the T5 folder uses true.
   */
  cleanUpTokenizationSpaces?: boolean;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: unknown[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

/** Words kept by encodeWords' cache before it is emptied (a word's ids are a few numbers). */
const WORD_CACHE_SIZE = 200_000;
/** A space followed by a mark, format character (joiners), modifier symbol or emoji modifier: see encodeWords. */
const WORD_SPLIT_UNSAFE = / [\p{M}\p{Cf}\p{Sk}\u{1F3FB}-\u{1F3FF}]/u;

export class T5Tokenizer {
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  /** Number of token ids (32,100 for the shared T5 vocabulary: 32,000 pieces + 100 sentinels). */
  readonly vocabSize: number;
  /** Where the tokenizer was read from. */
  readonly path: string;
  private readonly tok: Tokenizer;
  private readonly wordCache = new Map<string, readonly number[]>();

  private constructor(tok: Tokenizer, vocabSize: number, path: string) {
    this.tok = tok;
    this.vocabSize = vocabSize;
    this.path = path;
  }

  /** Reads a Hugging Face `tokenizer.json` (default: the shared T5 vocabulary). */
  static fromFile(path: string = DEFAULT_T5_TOKENIZER_PATH): T5Tokenizer {
    const file = resolve(path);
    if (!existsSync(file)) {
      throw new Error(
        `T5Tokenizer: tokenizer file not found: ${file}. The T5 vocabulary (tokenizer.json) lives in t5/ of the ` +
          `data folder, ${dataDirOrigin()} (${DEFAULT_T5_TOKENIZER_PATH}).`,
      );
    }
    let json: TokenizerJson;
    try {
      json = JSON.parse(readFileSync(file, "utf8")) as TokenizerJson;
    } catch (e) {
      throw new Error(`T5Tokenizer: cannot parse ${file} as JSON: ${(e as Error).message}`);
    }
    if (json.model?.type !== "Unigram" || !Array.isArray(json.model.vocab)) {
      throw new Error(`T5Tokenizer: ${file} is not a Unigram (SentencePiece) tokenizer.json (model.type ${String(json.model?.type)})`);
    }
    let vocabSize = json.model.vocab.length;
    for (const t of json.added_tokens ?? []) vocabSize = Math.max(vocabSize, t.id + 1);
    // The config argument plays the part of tokenizer_config.json; only clean_up_tokenization_spaces matters
    // to this library for a Unigram model, and we pass it explicitly on every decode.
    const tok = new tokenizersLib.Tokenizer(json, { clean_up_tokenization_spaces: false });
    const t = new T5Tokenizer(tok, vocabSize, file);
    for (const [id, piece] of [
      [t.padId, "<pad>"],
      [t.eosId, "</s>"],
      [t.unkId, "<unk>"],
    ] as const) {
      if (tok.id_to_token(id) !== piece) {
        throw new Error(`T5Tokenizer: ${file}: id ${id} is ${JSON.stringify(tok.id_to_token(id))}, expected ${piece}`);
      }
    }
    return t;
  }

  /** Token ids of `text`, with `</s>` appended unless `addEos` is false. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new Error(`T5Tokenizer.encode: expected a string, got ${typeof text}`);
    const addEos = opts.addEos ?? true;
    const ids = this.encodeWords(text);
    if (addEos) ids.push(this.eosId);
    const max = opts.maxLength;
    if (max === undefined || ids.length <= max) return ids;
    if (!Number.isInteger(max) || max < (addEos ? 1 : 0)) {
      throw new Error(`T5Tokenizer.encode: maxLength must be an integer >= ${addEos ? 1 : 0}, got ${max}`);
    }
    if (!opts.truncation) {
      throw new Error(
        `T5Tokenizer.encode: input is ${ids.length} tokens long${addEos ? " (</s> included)" : ""}, more than ` +
          `maxLength ${max}; pass truncation: true to keep the first ${max} tokens`,
      );
    }
    if (!addEos) return ids.slice(0, max);
    const out = ids.slice(0, max - 1);
    out.push(this.eosId);
    return out;
  }

  /**
   * The ids of `text` without `</s>`, word by word through a cache: equal to the library's whole-string
   * encoding (test/tokenizer.test.ts checks both on the reference fixture and on real prompts), ~10x faster on
   * the long Def + 2 Pos prompts, whose definition and examples repeat across a task's instances.
   *
   * Why it is exact: the pipeline's pre-tokenizer (Metaspace, split) cuts the normalized text before every
   * "▁", which stands for a space or a run of spaces (the normalizer's Replace) and is prepended to the first
   * word, and the Unigram model runs on each piece alone. So cutting the text at its spaces, encoding each
   * word, and concatenating gives the same pieces. The normalizer's other steps act on a word alone as they do in
   * the text (characters mapped one by one; a trailing space, stripped, is where the next piece starts anyway).
   * Strings the argument does not cover go through the library whole: a literal "▁" in the text, or a space
   * followed by a mark, joiner or modifier (the Precompiled map reads grapheme clusters, which such a pair
   * forms). The test found the word split equal on those too, but few real prompts have them.
   */
  encodeWords(text: string): number[] {
    if (text.includes("\u2581") || WORD_SPLIT_UNSAFE.test(text)) return this.tok.encode(text, { add_special_tokens: false }).ids;
    const out: number[] = [];
    for (const word of text.split(" ")) {
      if (word === "") continue;
      const ids = this.wordCache.get(word) ?? this.encodeWord(word);
      for (const id of ids) out.push(id);
    }
    return out;
  }

  private encodeWord(word: string): readonly number[] {
    const ids = this.tok.encode(word, { add_special_tokens: false }).ids;
    if (this.wordCache.size >= WORD_CACHE_SIZE) this.wordCache.clear(); // bounded memory; refills cheaply
    this.wordCache.set(word, ids);
    return ids;
  }

  /** The library's own encoding of the whole string (no word cache), `</s>` appended unless addEos is false. */
  encodeWhole(text: string, opts: { addEos?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addEos ?? true }).ids;
  }

  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  /** The text of `ids`; special tokens skipped by default. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`T5Tokenizer.decode: token id ${id} is out of range [0, ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return ""; // the library refuses empty arrays
    return this.tok.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? false,
    });
  }

  /** The piece of one id (e.g. "▁house"), or throws if out of range. */
  idToToken(id: number): string {
    const t = Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.tok.id_to_token(id) : undefined;
    if (t === undefined) throw new Error(`T5Tokenizer.idToToken: token id ${id} is out of range [0, ${this.vocabSize})`);
    return t;
  }

  /** The id of a piece, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}

/** Right-pads id lists to the longest one; attention mask 1 on tokens, 0 on padding. */
export function padBatch(ids: readonly (readonly number[])[], padId = 0): { inputIds: number[][]; attentionMask: number[][] } {
  const len = ids.reduce((m, x) => Math.max(m, x.length), 0);
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const x of ids) {
    const row = x.slice();
    const mask = new Array<number>(len).fill(0).fill(1, 0, x.length);
    while (row.length < len) row.push(padId);
    inputIds.push(row);
    attentionMask.push(mask);
  }
  return { inputIds, attentionMask };
}
