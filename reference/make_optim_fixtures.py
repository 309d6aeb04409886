"""Golden fixtures for src/train/optimizer.ts and schedule.ts.

AdamW from torch.optim.AdamW and Adafactor from transformers.optimization.Adafactor, run for a few steps on
fixed parameters and gradients (a matrix, so Adafactor factors its second moment, and a vector), with the
learning rate changing every step as a schedule would change it. Writes test/fixtures/optim/optim.json.

    python reference/make_optim_fixtures.py
"""
import json
import os

import numpy as np
import torch
import transformers
from transformers.optimization import Adafactor

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "optim", "optim.json")
STEPS = 5
LRS = [1e-2, 2e-2, 3e-2, 2e-2, 1e-2]


def tensors(seed):
    g = np.random.default_rng(seed)
    return {"w": g.normal(size=(4, 6)).astype(np.float32), "b": g.normal(size=(5,)).astype(np.float32)}


def run(make, init, grads):
    params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
    opt = make(list(params.values()))
    after = []
    for step in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = LRS[step]
        for k, p in params.items():
            p.grad = torch.tensor(grads[step][k])
        opt.step()
        after.append({k: p.detach().numpy().ravel().tolist() for k, p in params.items()})
    return after


def main():
    init = tensors(0)
    # Gradients of very different scales per step, to exercise the second moments and the clipping.
    grads = [{k: (v * s).tolist() for k, v in tensors(10 + i).items()} for i, s in enumerate([1.0, 0.1, 3.0, 0.5, 10.0])]
    grads_np = [{k: np.array(v, dtype=np.float32) for k, v in g.items()} for g in grads]
    cases = {
        "adamw": dict(config=dict(kind="adamw", beta1=0.9, beta2=0.999, eps=1e-8, weightDecay=0.01),
                      make=lambda ps: torch.optim.AdamW(ps, lr=LRS[0], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
        "adafactor": dict(config=dict(kind="adafactor", eps1=1e-30, eps2=1e-3, clipThreshold=1.0, decayRate=-0.8, beta1=None,
                                      weightDecay=0.0, scaleParameter=False),
                          make=lambda ps: Adafactor(ps, lr=LRS[0], scale_parameter=False, relative_step=False, warmup_init=False)),
        "adafactor_scaled_momentum_wd": dict(
            config=dict(kind="adafactor", eps1=1e-30, eps2=1e-3, clipThreshold=1.0, decayRate=-0.8, beta1=0.9,
                        weightDecay=0.1, scaleParameter=True),
            make=lambda ps: Adafactor(ps, lr=LRS[0], scale_parameter=True, relative_step=False, warmup_init=False,
                                      beta1=0.9, weight_decay=0.1)),
    }
    out = {
        "generator": "reference/make_optim_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lrs": LRS,
        "init": {k: {"shape": list(v.shape), "values": v.ravel().tolist()} for k, v in init.items()},
        "grads": [{k: np.array(v).ravel().tolist() for k, v in g.items()} for g in grads],
        "cases": {},
    }
    for name, case in cases.items():
        out["cases"][name] = {"config": case["config"], "after": run(case["make"], init, grads_np)}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
