"""Hugging Face side of `npm run bench:eval` (bench/sni-eval.ts): greedy `generate` on the very input batches
the TypeScript evaluation ran, timed. Reads the model folder and the batches from a JSON file; prints one JSON
object. Needs torch and transformers (pip install torch==2.13.0 transformers); never needed by the tests.
"""
import json
import sys
import time

import torch
import transformers
from transformers import T5ForConditionalGeneration


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    model = T5ForConditionalGeneration.from_pretrained(spec["model"], torch_dtype=torch.float32).eval()
    batches = spec["batches"]
    instances = sum(len(b["inputIds"]) for b in batches)
    with torch.inference_mode():
        # warm-up on the first batch
        b = batches[0]
        model.generate(input_ids=torch.tensor(b["inputIds"]), attention_mask=torch.tensor(b["attentionMask"]), max_new_tokens=4, do_sample=False, num_beams=1)
        t0 = time.perf_counter()
        for b in batches:
            model.generate(
                input_ids=torch.tensor(b["inputIds"]),
                attention_mask=torch.tensor(b["attentionMask"]),
                max_new_tokens=spec["maxNewTokens"],
                do_sample=False,
                num_beams=1,
            )
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "instances": instances, "torch": torch.__version__, "transformers": transformers.__version__, "threads": spec["threads"]}))


if __name__ == "__main__":
    main()
