#!/usr/bin/env python3
"""Reference ids for the T5 tokenizer on real SNI strings -> test/fixtures/tokenizer/sni_t5_ids.json.gz

Run from the project root (needs the shared data at ../shared/data):

    python3 reference/make_tokenizer_fixture.py

Requirements (versions it was run with): Python 3.11, transformers==5.23.0, tokenizers==0.23.3
(pip install transformers==5.23.0 tokenizers==0.23.3). No torch needed. Deterministic: fixed seed, the
output only depends on the shared data and these versions.

What it does
- Reads every task line of ../shared/data/sni/sni_{train,test}.jsonl.gz (gzipped JSONL, one task per
  line) and pools three kinds of real strings: task definitions, instance inputs, instance outputs.
- Samples with random.Random(SEED): a uniform sample from each pool, plus forced quotas of strings with
  non-ASCII characters, newlines, runs of 2+ spaces, tabs, digits and long strings (> 1,000 chars), so
  the awkward cases are well covered. Each string is capped at 1,500 characters (code points). A handful
  of synthetic edge cases (empty string, only spaces, sentinels, "</s>" in the text, emoji, CJK) are
  added and marked source "synthetic".
- Reference: transformers' T5TokenizerFast(tokenizer_file=../shared/data/t5/tokenizer.json), i.e. the
  tokenizer.json pipeline exactly (Rust `tokenizers`), with clean_up_tokenization_spaces False. It checks
  that AutoTokenizer.from_pretrained(../shared/data/t5) and the raw `tokenizers.Tokenizer` give the same
  ids. AutoTokenizer reads tokenizer_config.json, which sets clean_up_tokenization_spaces=True, so its
  decode differs ("don't ." vs "don't."): both decodes are stored.

Output (gzip JSON): {"meta": {...}, "cases": [...]}, each case:
  text              the string
  source            "train|test:definition|input|output" or "synthetic"
  ids               encode(text) with add_special_tokens=True, no truncation (ends with </s> = 1)
  decoded           decode(ids, skip_special_tokens=True), clean_up_tokenization_spaces=False
  decoded_clean     same with clean_up_tokenization_spaces=True (what AutoTokenizer on the folder gives)
  decoded_special   decode(ids, skip_special_tokens=False), no clean-up
  trunc_ids         (only on the truncation subset) encode(text, truncation=True, max_length=32)
  trunc_decoded     (idem) decode(trunc_ids, skip_special_tokens=True), no clean-up
"""
from __future__ import annotations

import gzip
import json
import os
import random
import re
import sys

SEED = 20240611
N_DEFINITIONS = 500
N_INPUTS = 900
N_OUTPUTS = 600
QUOTAS = {  # at least this many strings with the property, drawn from all pools
    "non_ascii": 200,
    "newline": 150,
    "multi_space": 120,
    "tab": 30,
    "digits": 150,
    "long": 120,
}
N_TRUNC = 300
TRUNC_MAX_LENGTH = 32
CAP = 1500

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
TOKENIZER_JSON = os.path.join(DATA, "t5", "tokenizer.json")
OUT = os.path.join(ROOT, "test", "fixtures", "tokenizer", "sni_t5_ids.json.gz")

SYNTHETIC = [
    "",
    " ",
    "   ",
    "\n",
    "\t",
    "Translate English to German: The house is wonderful.",
    "  leading and trailing spaces  ",
    "a <extra_id_0> b <extra_id_99> c",
    "<extra_id_0>",
    "text with </s> inside and <pad> and <unk>",
    "don't . , ! ? ' s n't 'm 've 're",
    "café naïve Zürich — “quoted” ‘single’ … € £ ¥",
    "東京 😀 👍🏽 العربية русский ελληνικά",
    "x" * 40,
    "1234567890 3.14159 -42 1,000,000 2024-06-11",
    "line one\nline two\r\nline three\r\n\n\nafter blank lines",
    "tab\tseparated\tvalues\t",
    "multiple     spaces    between     words",
    "\u00a0non-breaking\u00a0space and \u200bzero width",
    "ﬁ ligature, ① circled, ｆｕｌｌｗｉｄｔｈ",  # NFKC in the normalizer
]


def load_tasks():
    tasks = []
    for split in ("train", "test"):
        path = os.path.join(DATA, "sni", f"sni_{split}.jsonl.gz")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    tasks.append((split, json.loads(line)))
    return tasks


def pools(tasks):
    defs, inputs, outputs = [], [], []
    for split, t in tasks:
        for d in t["Definition"]:
            defs.append((f"{split}:definition", d))
        for inst in t["Instances"]:
            inputs.append((f"{split}:input", inst["input"]))
            for o in inst["output"]:
                outputs.append((f"{split}:output", o))
    return defs, inputs, outputs


PROPS = {
    "non_ascii": lambda s: any(ord(c) > 127 for c in s),
    "newline": lambda s: "\n" in s,
    "multi_space": lambda s: "  " in s,
    "tab": lambda s: "\t" in s,
    "digits": lambda s: re.search(r"\d", s) is not None,
    "long": lambda s: len(s) > 1000,
}


def main():
    from transformers import AutoTokenizer, T5TokenizerFast
    import tokenizers
    import transformers

    if not os.path.exists(TOKENIZER_JSON):
        sys.exit(f"missing {TOKENIZER_JSON}: the shared data lives in ../shared/data/t5")
    rng = random.Random(SEED)
    tasks = load_tasks()
    defs, inputs, outputs = pools(tasks)
    print(f"tasks {len(tasks)}; pools: definitions {len(defs)}, inputs {len(inputs)}, outputs {len(outputs)}")

    chosen: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(src, s):
        s = s[:CAP]
        if s in seen:
            return False
        seen.add(s)
        chosen.append((src, s))
        return True

    for pool, n in ((defs, N_DEFINITIONS), (inputs, N_INPUTS), (outputs, N_OUTPUTS)):
        for i in rng.sample(range(len(pool)), n):
            add(*pool[i])
    everything = defs + inputs + outputs
    for prop, quota in QUOTAS.items():
        test = PROPS[prop]
        have = sum(1 for _, s in chosen if test(s))
        candidates = [i for i, (_, s) in enumerate(everything) if test(s)]
        rng.shuffle(candidates)
        for i in candidates:
            if have >= quota:
                break
            if add(*everything[i]):
                have += 1
    for s in SYNTHETIC:
        if s not in seen:
            seen.add(s)
            chosen.append(("synthetic", s))

    tok = T5TokenizerFast(tokenizer_file=TOKENIZER_JSON)
    auto = AutoTokenizer.from_pretrained(os.path.dirname(TOKENIZER_JSON))
    raw = tokenizers.Tokenizer.from_file(TOKENIZER_JSON)
    assert tok.clean_up_tokenization_spaces is False, tok.clean_up_tokenization_spaces
    assert auto.clean_up_tokenization_spaces is True, auto.clean_up_tokenization_spaces

    trunc_idx = set(rng.sample(range(len(chosen)), N_TRUNC))
    cases = []
    for i, (src, s) in enumerate(chosen):
        ids = tok(s, add_special_tokens=True).input_ids
        assert ids == auto(s).input_ids == raw.encode(s).ids, f"tokenizers disagree on {s!r}"
        assert ids[-1] == 1
        case = {
            "text": s,
            "source": src,
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False),
            "decoded_clean": auto.decode(ids, skip_special_tokens=True),
            "decoded_special": tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        }
        assert case["decoded_clean"] == tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
        if i in trunc_idx:
            t_ids = tok(s, add_special_tokens=True, truncation=True, max_length=TRUNC_MAX_LENGTH).input_ids
            if len(ids) > TRUNC_MAX_LENGTH:
                assert t_ids == ids[: TRUNC_MAX_LENGTH - 1] + [1], s
            else:
                assert t_ids == ids
            case["trunc_ids"] = t_ids
            case["trunc_decoded"] = tok.decode(t_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        cases.append(case)

    counts = {p: sum(1 for c in cases if PROPS[p](c["text"])) for p in PROPS}
    counts["truncated_longer_than_max"] = sum(1 for c in cases if "trunc_ids" in c and len(c["ids"]) > TRUNC_MAX_LENGTH)
    meta = {
        "made_by": "python3 reference/make_tokenizer_fixture.py",
        "seed": SEED,
        "tokenizer_file": "../shared/data/t5/tokenizer.json",
        "reference": "transformers T5TokenizerFast(tokenizer_file=...), add_special_tokens=True",
        "decoded_clean_reference": "AutoTokenizer.from_pretrained(../shared/data/t5): clean_up_tokenization_spaces=True",
        "trunc_max_length": TRUNC_MAX_LENGTH,
        "cap_chars": CAP,
        "versions": {"python": sys.version.split()[0], "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "n_cases": len(cases),
        "n_trunc": sum(1 for c in cases if "trunc_ids" in c),
        "property_counts": counts,
        "source_counts": {k: sum(1 for c in cases if c["source"] == k) for k in sorted({c["source"] for c in cases})},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    data = json.dumps({"meta": meta, "cases": cases}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # mtime=0 so the gzip bytes are reproducible
    with open(OUT, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(data)
    print(json.dumps(meta, indent=1, ensure_ascii=False))
    print(f"wrote {OUT}: {os.path.getsize(OUT):,} bytes ({len(data):,} uncompressed)")


if __name__ == "__main__":
    main()
