"""PyTorch side of `npm run bench`: the same GEMM shapes and T5-shaped block step, on the CPU.

Run by bench/bench.ts when `import torch` works (pip install torch==2.13.0); reads the problem shapes
from a JSON file the bench writes, prints one JSON object. Never needed by the tests.
"""
import json
import math
import sys
import time

import torch


def timed(fn, min_seconds, max_reps):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], len(times)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def gelu_new(x):
    return x * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3)))


def block(x, p, s):
    ln1, wq, wk, wv, wo, ln2, wi0, wi1, wout = p
    b, t, h, d = s["batch"], s["seq"], s["heads"], s["d_model"]
    dk = d // h

    def heads(y):
        return y.reshape(b, t, h, dk).permute(0, 2, 1, 3).reshape(b * h, t, dk)

    hh = rms_norm(x, ln1)
    q, k, v = heads(hh @ wq), heads(hh @ wk), heads(hh @ wv)
    ctx = torch.softmax(q @ k.transpose(1, 2), -1) @ v
    merged = ctx.reshape(b, h, t, dk).permute(0, 2, 1, 3).reshape(b * t, d)
    x1 = x + merged @ wo
    h2 = rms_norm(x1, ln2)
    return x1 + (gelu_new(h2 @ wi0) * (h2 @ wi1)) @ wout


def main():
    spec = json.load(open(sys.argv[1]))
    threads = int(spec["threads"])
    torch.set_num_threads(threads)
    quick = bool(spec.get("quick"))
    gemm = {}
    for c in spec["gemm"]:
        a = torch.randn(c["a"])
        bb = torch.randn(c["b"])

        def run(a=a, bb=bb, c=c):
            aa = a.transpose(-1, -2) if c["transposeA"] else a
            b2 = bb.transpose(-1, -2) if c["transposeB"] else bb
            return aa @ b2

        sec, reps = timed(run, 0.3 if quick else 1.0, 3 if quick else 10)
        gemm[c["name"]] = {"gflops": c["flops"] / sec / 1e9, "seconds": sec, "reps": reps}

    s = spec["block"]
    d, dff, layers = s["d_model"], s["d_ff"], s["layers"]
    params = []
    for _ in range(layers):
        params += [torch.ones(d)] + [torch.randn(d, d) * d ** -0.5 for _ in range(4)] + [torch.ones(d)]
        params += [torch.randn(d, dff) * d ** -0.5, torch.randn(d, dff) * d ** -0.5, torch.randn(dff, d) * dff ** -0.5]
    for p in params:
        p.requires_grad_(True)
    x = torch.randn(s["batch"] * s["seq"], d)

    def step():
        for p in params:
            p.grad = None
        h = x
        for l in range(layers):
            h = block(h, params[l * 9 : l * 9 + 9], s)
        loss = h.pow(2).mean()
        loss.backward()
        return loss.item()

    sec, reps = timed(step, 2 if quick else 8, 2 if quick else 5)
    # The same step under CPU autocast to bf16 (bf16 matrix products, fp32 parameters): what the project's
    # bf16 path is compared with.
    sec16, reps16 = timed(autocast(step), 2 if quick else 8, 2 if quick else 5)
    t5 = t5_bench(spec["t5"], quick) if spec.get("t5") else None
    campaign = campaign_bench(spec["campaign"], quick) if spec.get("campaign") else None
    tagi = tagi_step_bench(spec["tagi"], quick) if spec.get("tagi") else None
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": torch.__config__.show().split("BLAS_INFO=")[-1].split(",")[0] if "BLAS_INFO=" in torch.__config__.show() else "unknown",
        "gemm": gemm,
        "blockStep": {"seconds": sec, "gflops": s["flops"] / sec / 1e9, "layers": layers, "reps": reps},
        "blockStepBf16": {"seconds": sec16, "gflops": s["flops"] / sec16 / 1e9, "layers": layers, "reps": reps16},
        "t5": t5,
        "campaign": campaign,
        "tagi": tagi,
    }))


def autocast(fn):
    """fn with its forward pass under torch.autocast("cpu", bfloat16) (backward runs in the dtypes autocast chose)."""

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()

    return run


def t5_training_step(spec):
    """A randomly initialised T5 of spec["config"] and one full training step on random ids of the spec's shape
    (the same model and data as bench/t5.ts makeT5Bench)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(**{"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, **spec["config"]})
    model = T5ForConditionalGeneration(cfg)
    # Same deliberate init difference as src/model/init.ts: lm_head N(0, d_model^-0.5), not N(0, 1), so the
    # output softmax does not underflow to subnormals (which would time subnormal arithmetic, not the model).
    torch.nn.init.normal_(model.lm_head.weight, std=cfg.d_model ** -0.5)
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(2, cfg.vocab_size, (spec["batch"], spec["inputLength"]), generator=g)
    labels = torch.randint(2, cfg.vocab_size, (spec["batch"], spec["targetLength"]), generator=g)
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        out = model(input_ids=input_ids, labels=labels)
        out.loss.backward()
        return out.loss.item()

    return model, input_ids, step


def t5_bench(spec, quick):
    """The same T5-small-shaped training step and greedy decoding as bench/t5.ts, with transformers."""
    model, input_ids, step = t5_training_step(spec)
    step_sec, step_reps = timed(step, 2 if quick else 6, 2 if quick else 4)
    step16_sec, _ = timed(autocast(step), 2 if quick else 6, 2 if quick else 4)
    model.eval()
    b, steps = spec["batch"], spec["decodeTokens"]

    def decode():
        with torch.no_grad():
            return model.generate(input_ids=input_ids, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, num_beams=1)

    dec_sec, _ = timed(decode, 1 if quick else 3, 2 if quick else 3)
    return {
        "t5SmallStepSeconds": step_sec,
        "t5SmallStepGflops": spec["flops"] / step_sec / 1e9,
        "t5SmallStepBf16Seconds": step16_sec,
        "decodeTokensPerSecond": b * steps / dec_sec,
        "reps": step_reps,
    }


def campaign_bench(spec, quick):
    """The campaign's step (bench/t5.ts CAMPAIGN_BENCH): the same training step at the small preset's shape."""
    _, _, step = t5_training_step(spec)
    sec, reps = timed(step, 3 if quick else 10, 2 if quick else 4)
    sec16, _ = timed(autocast(step), 3 if quick else 10, 2 if quick else 4)
    return {"stepSeconds": sec, "stepBf16Seconds": sec16, "reps": reps, "gflops": spec["flops"] / sec / 1e9}


class PerExampleLora(torch.nn.Module):
    """A frozen linear layer plus a LoRA update that differs per example: y = W x + s * (x A_b) B_b.

    A [batch, in, r] and B [batch, r, out] are set before each forward pass (they are the generator's output).
    """

    def __init__(self, base, scaling):
        super().__init__()
        self.base, self.scaling, self.A, self.B = base, scaling, None, None

    def forward(self, x):
        return self.base(x) + self.scaling * torch.bmm(torch.bmm(x, self.A), self.B)


class FusedSelfAttention(torch.nn.Module):
    """An encoder block's self-attention sublayer followed by TAGI's instruction cross-attention (Eq. 1)."""

    def __init__(self, self_attention, fusion):
        super().__init__()
        self.self_attention, self.fusion, self.instruction = self_attention, fusion, None

    def forward(self, hidden_states, *args, **kwargs):
        out = self.self_attention(hidden_states, *args, **kwargs)
        fused = self.fusion(out[0], key_value_states=self.instruction)[0]
        return (fused,) + tuple(out[1:])


def tagi_step_bench(spec, quick):
    """bench/tagi-step.ts in PyTorch: the frozen small T5 (transformers), per-layer generator MLPs emitting rank-32
    LoRAs for q and v of every attention, instruction fusion (a cross-attention sublayer in each encoder block and
    the instruction states before the encoder output), L_ce + cached top-k L_kl + L_ins, gradients for the generator
    and fusion only. The instruction encodings are computed once, before the step, as in the real run."""
    from transformers import T5Config, T5ForConditionalGeneration
    from transformers.models.t5.modeling_t5 import T5LayerCrossAttention

    torch.manual_seed(0)
    cfg = T5Config(**{"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, **spec["config"]})
    model = T5ForConditionalGeneration(cfg)
    torch.nn.init.normal_(model.lm_head.weight, std=cfg.d_model ** -0.5)
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    b, n_in, n_out, n_instr, k, temp = spec["batch"], spec["inputLength"], spec["targetLength"], spec["instructionLength"], spec["topK"], spec["temperature"]
    rank, hidden, id_dim, d = spec["rank"], spec["hidden"], spec["idDim"], cfg.d_model
    g = torch.Generator().manual_seed(1)
    rand_ids = lambda *shape: torch.randint(2, cfg.vocab_size, shape, generator=g)
    instruction_ids, input_ids, labels = rand_ids(b, n_instr), rand_ids(b, n_in), rand_ids(b, n_out)
    decoder_input_ids = model._shift_right(labels)
    with torch.no_grad():
        states = model.encoder(input_ids=instruction_ids).last_hidden_state
    pooled = states.mean(1)
    # Adapted projections: q and v of encoder self-, decoder self- and decoder cross-attention, one MLP per layer and kind.
    slots = []
    for stack, kind in ((model.encoder, "enc"), (model.decoder, "dec-self"), (model.decoder, "dec-cross")):
        for block in stack.block:
            attn = block.layer[0].SelfAttention if kind != "dec-cross" else block.layer[1].EncDecAttention
            wrapped = []
            for proj in ("q", "v"):
                lin = getattr(attn, proj)
                w = PerExampleLora(lin, spec["alpha"] / rank)
                setattr(attn, proj, w)
                wrapped.append((w, lin.in_features, lin.out_features))
            slots.append(wrapped)
    trainable = []
    nets = []
    for wrapped in slots:
        out_dim = wrapped[0][1] * rank + rank * wrapped[0][2]
        net = torch.nn.ModuleDict({"id": torch.nn.Embedding(len(wrapped), id_dim), "fc1": torch.nn.Linear(d + id_dim, hidden), "fc2": torch.nn.Linear(hidden, out_dim)})
        torch.nn.init.normal_(net["fc2"].weight, std=1e-3)
        nets.append(net)
        trainable += list(net.parameters())
    fusions = []
    for block in model.encoder.block:
        fusion = T5LayerCrossAttention(cfg)
        fused = FusedSelfAttention(block.layer[0], fusion)
        block.layer[0] = fused
        fusions.append(fused)
        trainable += list(fusion.parameters())
    for p in trainable:
        p.requires_grad_(True)
    cached_ids = rand_ids(b, n_out, k)
    scores = torch.log_softmax(2 * torch.randn(b, n_out, k + 1, generator=g), -1)
    cached_logp, cached_rest = scores[..., :k], scores[..., k]
    teachers = [[(0.02 * torch.randn(b, i, rank, generator=g), 0.02 * torch.randn(b, rank, o, generator=g)) for (_, i, o) in wrapped] for wrapped in slots]
    concat_mask = torch.ones(b, n_instr + n_in, dtype=torch.long)

    def step():
        for p in trainable:
            p.grad = None
        ins = 0.0
        for net, wrapped, teacher in zip(nets, slots, teachers):
            for j, ((w, i, o), (ta, tb)) in enumerate(zip(wrapped, teacher)):
                x = torch.cat([pooled, net["id"].weight[j].expand(b, id_dim)], -1)
                flat = net["fc2"](torch.relu(net["fc1"](x)))
                w.A, w.B = flat[:, : i * rank].view(b, i, rank), flat[:, i * rank :].view(b, rank, o)
                ins = ins + ((w.A - ta) ** 2).mean() + ((w.B * w.scaling - tb) ** 2).mean()
        for f in fusions:
            f.instruction = states
        enc = model.encoder(input_ids=input_ids).last_hidden_state
        joined = torch.cat([states, enc], 1)
        logits = model(encoder_outputs=(joined,), attention_mask=concat_mask, decoder_input_ids=decoder_input_ids).logits
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), labels.reshape(-1))
        logq = torch.log_softmax(logits.float() / temp, -1)
        logq_top = logq.gather(-1, cached_ids)
        q_rest = (1 - logq_top.exp().sum(-1)).clamp_min(1e-30)
        kl = (cached_logp.exp() * (cached_logp - logq_top)).sum(-1) + cached_rest.exp() * (cached_rest - q_rest.log())
        loss = ce + kl.mean() * temp * temp + ins
        loss.backward()
        return loss.item()

    sec, reps = timed(step, 3 if quick else 10, 2 if quick else 4)
    sec16, _ = timed(autocast(step), 3 if quick else 10, 2 if quick else 4)
    return {"stepSeconds": sec, "stepBf16Seconds": sec16, "reps": reps, "trainableParameters": sum(p.numel() for p in trainable)}


if __name__ == "__main__":
    main()
