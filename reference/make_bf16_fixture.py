"""Reference bits for src/model/safetensors-convert.ts (test/artifacts.test.ts): torch's float32 -> bfloat16
rounding (round to nearest, ties to even) on edge cases and random values.

    python3 reference/make_bf16_fixture.py   # writes test/fixtures/bf16/bf16.json (torch 2.x)
"""
import json, os, struct
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
edge_bits = [
    0x00000000, 0x80000000,  # +-0
    0x3F800000, 0xBF800000,  # +-1
    0x3F808000, 0x3F818000,  # ties: to even (down), to even (up)
    0x3F808001, 0x3F807FFF,  # just above / below a tie
    0x00000001, 0x807FFFFF, 0x00008000, 0x00018000,  # subnormals, ties among them
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F7FFF,  # largest finite: rounds to inf; just below the threshold
    0x7F800000, 0xFF800000,  # +-inf
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF,  # NaNs (quiet, negative, signalling, all ones)
]
rng = np.random.default_rng(0)
rand = np.concatenate([rng.normal(0, 1, 200), rng.normal(0, 1e-3, 100), rng.normal(0, 1e4, 100)]).astype(np.float32)
bits = edge_bits + [int(x) for x in rand.view(np.uint32)]
f32 = torch.tensor(np.array(bits, dtype=np.uint32).view(np.float32))
bf = f32.to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16)
# torch's NaN pattern depends on its code path (its vectorized AVX-512 one writes 0xFFFF); the test only
# checks that NaN stays NaN there, and every other value bit for bit
out = {"generator": "reference/make_bf16_fixture.py", "torch": torch.__version__, "float32Bits": bits, "bfloat16Bits": [int(x) for x in bf]}
with open(os.path.join(ROOT, "test", "fixtures", "bf16", "bf16.json"), "w") as f:
    json.dump(out, f)
print("wrote", len(bits), "values")
