"""PEFT round trip of a TAGI-generated adapter (test/fixtures/tagi/).

1. TypeScript (reference/tagi_generate_fixture.ts) generates a LoRA adapter with a seeded generator on the
   v1_1 T5 fixture and writes it as a PEFT adapter folder: test/fixtures/tagi/adapter/.
2. Python loads the base model with transformers and the adapter with PEFT's PeftModel.from_pretrained
   (every LoRA key must load: none missing, none unexpected) and records the logits of the v1_1 fixture's
   batch in test/fixtures/tagi/expected.safetensors.
test/tagi-peft.test.ts checks that the TypeScript model with the same adapter gives these logits and that
regenerating the adapter gives the committed files.

    python reference/make_tagi_peft_fixture.py
"""
import os
import subprocess

import peft
import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(__file__), "..")
BASE = os.path.join(ROOT, "test", "fixtures", "t5", "v1_1")
OUT = os.path.join(ROOT, "test", "fixtures", "tagi")


def main():
    adapter = os.path.join(OUT, "adapter")
    subprocess.run(["node", "--import", "tsx", os.path.join(ROOT, "reference", "tagi_generate_fixture.ts"), adapter], check=True, cwd=ROOT)
    model = transformers.T5ForConditionalGeneration.from_pretrained(BASE).eval()
    wrapped = PeftModel.from_pretrained(model, adapter)
    sd = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    lora_params = [n for n, _ in wrapped.named_parameters() if "lora_" in n]
    assert len(lora_params) == len(sd), f"PEFT created {len(lora_params)} LoRA tensors, the file has {len(sd)}"
    batch = load_file(os.path.join(BASE, "expected.safetensors"))
    with torch.no_grad():
        out = wrapped(
            input_ids=batch["input_ids"].long(),
            attention_mask=batch["attention_mask"].long(),
            decoder_input_ids=batch["decoder_input_ids"].long(),
        )
    save_file(
        {"logits": out.logits.float().contiguous()},
        os.path.join(OUT, "expected.safetensors"),
        metadata={"generator": "reference/make_tagi_peft_fixture.py", "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    )
    print("wrote", OUT, "lora tensors", len(sd))


if __name__ == "__main__":
    main()
