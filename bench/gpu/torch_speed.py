#!/usr/bin/env python3
"""PyTorch's training speed on the shapes `kiln bench` measured: a yardstick for Kiln's
figures on the same machine (not a goal of the WebGPU engine: PyTorch on CUDA has
cuBLAS; it says how far our kernels are from it).

  python3 bench/gpu/torch_speed.py --results results.jsonl [--backend webgpu] [--steps 10]
                                   [--device cuda|cpu] [--threads N] [--json FILE]
                                   [--precision f32|bf16] [--compile]

For every distinct preset among the `{"bench":"train", "backend": BACKEND}` lines of
--results (their `model`, `batch_size` and `grad_accum`), trains the same GPT-2 shape in
PyTorch eager float32: nanoGPT's model (pre-LN blocks, causal
scaled_dot_product_attention, tanh GELU, tied head, biases, and its dropout where the
line's `dropout` is above 0, as Kiln ran it), torch.optim.AdamW
(fused where CUDA has it), clipping at 1.0, random tokens, micro-batches as Kiln runs
them. TF32 stays off (PyTorch's default for matmuls), so both sides do FP32 arithmetic.
With --precision bf16 the forward runs under bf16 autocast (nanoGPT's mixed precision,
the yardstick for Kiln's CUDA bf16 runs); --compile times torch.compile after eager.
One warm-up step, then --steps timed (synchronised). Prints one JSON line per preset:
{"bench":"torch_speed", preset, device, ms_per_step, tokens_per_s, kiln_tokens_per_s,
kiln_over_torch}.
"""
import argparse
import contextlib
import json
import time

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import emit  # noqa: E402


class Block(nn.Module):
    def __init__(self, C, H, p):
        super().__init__()
        self.H, self.p = H, p
        self.drop = nn.Dropout(p)
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self, m):
        super().__init__()
        C = m["nEmbd"]
        self.wte = nn.Embedding(m["vocabSize"], C)
        self.wpe = nn.Embedding(m["blockSize"], C)
        p = m.get("dropout", 0.0)
        self.drop = nn.Dropout(p)
        self.h = nn.ModuleList(Block(C, m["nHead"], p) for _ in range(m["nLayer"]))
        self.ln_f = nn.LayerNorm(C)
        for p in self.parameters():
            nn.init.normal_(p, std=0.02) if p.dim() >= 2 else nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def time_preset(line, steps, dev, precision="f32", compile_model=False):
    m, B, A = line["model"], line["batch_size"], line["grad_accum"]
    T, V = m["blockSize"], m["vocabSize"]
    model = GPT({**m, "dropout": line.get("dropout", 0.0)}).to(dev)
    # nanoGPT's mixed precision: f32 master weights, bf16 autocast for the forward pass.
    autocast = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    fwd = torch.compile(model) if compile_model else model
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, **fused)
    g = torch.Generator(device="cpu").manual_seed(1)
    data = torch.randint(0, V, (steps + 1, A, B, T + 1), generator=g).to(dev)

    def step(i):
        opt.zero_grad(set_to_none=True)
        for a in range(A):
            seq = data[i, a]
            with autocast:
                loss = fwd(seq[:, :-1], seq[:, 1:]) / A
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    step(0)
    if compile_model:  # compilation happens over the first steps; time what follows
        step(0)
    sync()
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    sync()
    ms = (time.perf_counter() - t0) * 1000 / steps
    tok = B * T * A * 1000 / ms
    out = {"bench": "torch_speed", "preset": line["preset"], "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": steps,
           "precision": precision, "mode": "compile" if compile_model else "eager",
           "ms_per_step": round(ms, 3), "tokens_per_s": round(tok, 1),
           "kiln_backend": line["backend"], "kiln_tokens_per_s": line["tokens_per_s"],
           "kiln_over_torch": round(line["tokens_per_s"] / tok, 4)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--backend", default="webgpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: autocast to bfloat16 (as nanoGPT), for Kiln's CUDA bf16 runs")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile after eager")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    seen = {}
    with open(a.results) as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if (line.get("bench") == "train" and line.get("backend") == a.backend and "model" in line
                    and "dawn_toggles" not in line and line["preset"] not in seen):
                seen[line["preset"]] = line
    if not seen:
        emit({"bench": "torch_speed", "skipped": f"no {a.backend} train lines with a model in {a.results}"}, a.json)
        return 0
    for line in seen.values():
        for compile_model in ([False, True] if a.compile else [False]):
            try:
                res = time_preset(line, a.steps, dev, a.precision, compile_model)
            except Exception as e:  # e.g. out of memory, no compiler: say so, go on
                res = {"bench": "torch_speed", "preset": line["preset"], "mode": "compile" if compile_model else "eager",
                       "error": f"{type(e).__name__}: {str(e)[:200]}"}
            emit(res, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
