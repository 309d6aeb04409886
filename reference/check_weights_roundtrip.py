#!/usr/bin/env python3
"""Cross-checks src/model/safetensors.ts and src/model/weights.ts against transformers, PEFT and safetensors.

Run from the project root, after reference/make_t5_fixtures.py:

    python3 reference/check_weights_roundtrip.py

Requirements: as make_t5_fixtures.py (torch, transformers, peft, safetensors), plus Node and the project's
npm dependencies (it runs a small TypeScript program with tsx). Not needed by the tests; it is how the claims
in test/weights.test.ts's header were checked. What it does, in a temporary folder:

1. TypeScript: loadT5Checkpoint + saveT5Checkpoint for test/fixtures/t5/{v1_1,original}; loadPeftAdapter +
   savePeftAdapter for test/fixtures/t5/v1_1_lora/adapter; and readSafetensors of a file that Python wrote
   with F16 / BF16 / F64 / I64 / BOOL tensors (values dumped to JSON).
2. Python: T5ForConditionalGeneration.from_pretrained(saved, output_loading_info=True) must report no missing,
   unexpected or mismatched keys and reproduce the fixture's logits; PeftModel.from_pretrained(base, saved
   adapter) must load every LoRA key (none missing, none unexpected) and reproduce the fixture's LoRA logits;
   the TypeScript decoding of the Python-written file must equal numpy's float32 / int32 values bit for bit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.environ.get("TAGI_T5_FIXTURES", os.path.join(ROOT, "test", "fixtures", "t5"))  # override for trying other folders

TS = r"""
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "%(root)s/src/backend";
import { readSafetensors } from "%(root)s/src/model/safetensors";
import { loadPeftAdapter, loadT5Checkpoint, savePeftAdapter, saveT5Checkpoint } from "%(root)s/src/model/weights";
(async () => {
  await initBackend({ backend: "cpu", log: false });
  const out = process.argv[2]!;
  for (const name of ["v1_1", "original"]) {
    const { config, params } = loadT5Checkpoint(path.join("%(fix)s", name));
    saveT5Checkpoint(path.join(out, name), config, params);
  }
  const ad = loadPeftAdapter(path.join("%(fix)s", "v1_1_lora", "adapter"));
  savePeftAdapter(path.join(out, "adapter"), ad.config, ad.weights, "v1_1");
  const { tensors } = readSafetensors(path.join(out, "dtypes.safetensors"));
  const dump: Record<string, { dtype: string; shape: number[]; bits: number[] }> = {};
  for (const [k, t] of tensors) {
    const v = t.dataSync() as Float32Array | Int32Array | Uint8Array;
    const bits = v instanceof Float32Array ? Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length)) : Array.from(v);
    dump[k] = { dtype: t.dtype, shape: t.shape, bits };
  }
  fs.writeFileSync(path.join(out, "dtypes.json"), JSON.stringify(dump));
})();
"""

TS_V5 = r"""
import * as path from "node:path";
import { initBackend } from "%(root)s/src/backend";
import { loadT5Checkpoint, saveT5Checkpoint } from "%(root)s/src/model/weights";
(async () => {
  await initBackend({ backend: "cpu", log: false });
  const out = process.argv[2]!;
  const { config, params } = loadT5Checkpoint(path.join(out, "t5v5"));
  if (config.tie_word_embeddings) throw new Error("expected the untied equivalent");
  saveT5Checkpoint(path.join(out, "t5v5_saved"), config, params);
})();
"""


def logits(model, exp):
    with torch.no_grad():
        return model(
            input_ids=exp["input_ids"].long(),
            attention_mask=exp["attention_mask"].long(),
            labels=exp["labels"].long(),
            use_cache=False,
        ).logits


def main():
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import T5ForConditionalGeneration

    torch.set_num_threads(1)
    ok = True
    with tempfile.TemporaryDirectory(prefix="tagi-weights-check-") as out:
        # A Python-written file with the dtypes the reader converts.
        g = torch.Generator().manual_seed(0)
        x = torch.randn(257, generator=g) * 1e3
        special = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 6e-8, 1e-40, 65504.0, 3e38])
        src = {
            "f16": torch.cat([x, special]).to(torch.float16),
            "bf16": torch.cat([x, special]).to(torch.bfloat16),
            "f64": torch.cat([x, special]).double(),
            "i64": torch.tensor([[0, -1, 2**31 - 1, -(2**31)], [7, -7, 123456, -123456]], dtype=torch.int64),
            "bool": torch.tensor([True, False, True]),
        }
        save_file(src, os.path.join(out, "dtypes.safetensors"))
        prog = os.path.join(out, "roundtrip.ts")
        with open(prog, "w") as f:
            f.write(TS % dict(root=ROOT, fix=FIX))
        subprocess.run(["npx", "tsx", prog, out], cwd=ROOT, check=True)

        dump = json.load(open(os.path.join(out, "dtypes.json")))
        for k, t in src.items():
            d = dump[k]
            if t.is_floating_point():
                want = t.float().numpy().view(np.uint32).ravel().tolist()
            else:
                want = t.numpy().astype(np.int32).ravel().tolist() if k != "bool" else t.numpy().astype(np.uint8).tolist()
            same = d["bits"] == want and d["shape"] == list(t.shape)
            # NaN: compare as NaN (payload preserved by the fp16/bf16 paths, canonicalised by numpy for f64).
            if not same and t.is_floating_point():
                a = np.array(d["bits"], dtype=np.uint32).view(np.float32)
                b = t.float().numpy().ravel()
                same = bool(np.array_equal(a, b, equal_nan=True))
            print(f"readSafetensors {k:5s} ({str(t.dtype).replace('torch.', '')}) -> {d['dtype']}: {'equal' if same else 'DIFFERENT'}")
            ok &= same

        for name in ("v1_1", "original"):
            exp = load_file(os.path.join(FIX, name, "expected.safetensors"))
            model, info = T5ForConditionalGeneration.from_pretrained(os.path.join(out, name), output_loading_info=True)
            model.eval()
            keys_ok = not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))
            diff = float((logits(model, exp) - exp["logits"]).abs().max())
            print(f"saveT5Checkpoint {name}: loading info {dict((k, list(v)) for k, v in info.items())}, max |logits - fixture| = {diff:g}")
            ok &= keys_ok and diff == 0.0

        # A v1.1 checkpoint as transformers 5 writes it (tie_word_embeddings true, scale_decoder_outputs false,
        # no lm_head.weight): loadT5Checkpoint -> saveT5Checkpoint (untied, lm_head = shared) -> same logits.
        from transformers import T5Config

        torch.manual_seed(0)
        cfg = T5Config(vocab_size=50, d_model=16, d_kv=4, num_heads=4, d_ff=24, num_layers=2, num_decoder_layers=2,
                       feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                       decoder_start_token_id=0)
        t5v5 = T5ForConditionalGeneration(cfg).eval()
        with torch.no_grad():
            for p in t5v5.parameters():
                p.normal_(0.0, 0.5)
        t5v5.save_pretrained(os.path.join(out, "t5v5"))
        c5 = json.load(open(os.path.join(out, "t5v5", "config.json")))
        print(f"transformers {__import__('transformers').__version__} wrote tie_word_embeddings={c5.get('tie_word_embeddings')}, "
              f"scale_decoder_outputs={c5.get('scale_decoder_outputs')}")
        prog2 = os.path.join(out, "t5v5.ts")
        with open(prog2, "w") as f:
            f.write(TS_V5 % dict(root=ROOT))
        subprocess.run(["npx", "tsx", prog2, out], cwd=ROOT, check=True)
        ids = dict(input_ids=torch.tensor([[5, 6, 7, 1]]), attention_mask=torch.ones(1, 4, dtype=torch.long), labels=torch.tensor([[8, 9, 1]]))
        reloaded, info = T5ForConditionalGeneration.from_pretrained(os.path.join(out, "t5v5_saved"), output_loading_info=True)
        keys_ok = not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))
        diff = float((logits(reloaded.eval(), ids) - logits(t5v5, ids)).abs().max())
        print(f"transformers-5 v1.1 folder -> load/save: loading info ok {keys_ok}, max |logits diff| = {diff:g}")
        ok &= keys_ok and diff == 0.0

        # The adapter: reference logits from PEFT with the fixture's own adapter folder (and the fixture's
        # expected.safetensors where present); ours must load completely and give the same numbers.
        lexp_path = os.path.join(FIX, "v1_1_lora", "expected.safetensors")
        exp = load_file(lexp_path if os.path.exists(lexp_path) else os.path.join(FIX, "v1_1", "expected.safetensors"))
        ref_base = T5ForConditionalGeneration.from_pretrained(os.path.join(FIX, "v1_1")).eval()
        ref = logits(PeftModel.from_pretrained(ref_base, os.path.join(FIX, "v1_1_lora", "adapter")).eval(), exp)
        base = T5ForConditionalGeneration.from_pretrained(os.path.join(FIX, "v1_1")).eval()
        peft_model = PeftModel.from_pretrained(base, os.path.join(out, "adapter")).eval()
        res = peft_model.load_adapter(os.path.join(out, "adapter"), adapter_name="check")
        missing = [k for k in res.missing_keys if "lora_" in k and ".check." in k]
        unexpected = list(res.unexpected_keys)
        n_lora = sum(1 for n, _ in peft_model.named_parameters() if ".default." in n and "lora_" in n)
        peft_model.set_adapter("default")
        ours = logits(peft_model, exp)
        diff = float((ours - ref).abs().max())
        base_logits = load_file(os.path.join(FIX, "v1_1", "expected.safetensors"))["logits"]
        effect = float((ours - base_logits).abs().max())
        ok &= effect > 0.1  # the adapter really changes the outputs
        msg = f"savePeftAdapter: max |LoRA logits - base logits| = {effect:.3f}; {n_lora} LoRA tensors, missing {missing}, unexpected {unexpected}, max |logits - PEFT(fixture adapter)| = {diff:g}"
        ok &= not missing and not unexpected and diff == 0.0 and n_lora == 32
        if os.path.exists(lexp_path):
            d2 = float((ours - exp["logits"]).abs().max())
            msg += f", max |logits - v1_1_lora/expected.safetensors| = {d2:g}"
            ok &= d2 == 0.0
        else:
            msg += " (v1_1_lora/expected.safetensors absent: compared with PEFT on the fixture adapter only)"
        print(msg)
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
