#!/usr/bin/env python3
"""Kiln's training steps replayed in PyTorch: the optimizer side of the independent
check (torch_reference.py checks one gradient; this checks what is done with them).

  python3 bench/gpu/torch_train.py --dir DIR [--json FILE] [--device cpu|cuda]

DIR is what bench/gpu/dump-steps.ts wrote. From params0.safetensors the same GPT-2
(torch_reference.gpt2_loss: plain torch ops) trains the same batches in float64 with
PyTorch's own pieces, none of them Kiln's:
  - torch.optim.AdamW, two parameter groups by nanoGPT's rule (tensors of 2 or more
    dimensions decay, biases and LayerNorm do not);
  - the learning rate of each step from nanoGPT's get_lr (linear warmup, cosine to
    min_lr) on the dumped schedule fields;
  - micro-batch losses divided by their count and backpropagated in turn;
  - torch.nn.utils.clip_grad_norm_ (its return value: the norm before clipping).
Compared, per Kiln run in steps.json:
  - cpu64 (Kiln's reference in float64): loss and grad norm of every step within 1e-8
    relative, final parameters within 1e-6 of their largest (they are stored as f32);
    this is the tight check: any difference in semantics shows far above rounding;
  - cpu, webgpu (float32): every step's loss within 1e-3 relative (DESIGN.md's parity
    tolerance for training curves), reported with the grad norms and final parameters;
  - the learning rates Kiln used against get_lr's, 1e-12 relative.
Prints one JSON line (also appended to --json); exit 0 when every check passes.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import emit, gpt2_loss, load  # noqa: E402

TOL_F64 = 1e-8
TOL_PARAMS_F64 = 1e-6
TOL_F32 = 1e-3
TOL_LR = 1e-12


def get_lr(it, s):
    """nanoGPT's get_lr (train.py), on Kiln's schedule fields."""
    if it < s["warmupSteps"]:
        return s["lr"] * (it + 1) / (s["warmupSteps"] + 1)
    if it >= s["decaySteps"]:
        return s["minLr"]
    ratio = (it - s["warmupSteps"]) / max(1, s["decaySteps"] - s["warmupSteps"])
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return s["minLr"] + coeff * (s["lr"] - s["minLr"])


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)

    with open(os.path.join(a.dir, "steps.json")) as f:
        d = json.load(f)
    model, B, T, micro, steps, sched = d["model"], d["B"], d["T"], d["micro"], d["steps"], d["schedule"]
    raw, _ = load(os.path.join(a.dir, "params0.safetensors"))
    names = list(raw.keys())
    params = {k: raw[k].to(device=dev, dtype=torch.float64).requires_grad_(True) for k in names}
    decay = [params[k] for k in names if params[k].dim() >= 2]
    no_decay = [params[k] for k in names if params[k].dim() < 2]
    h0 = d["hyper"][0]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": h0["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=get_lr(0, sched), betas=(h0["beta1"], h0["beta2"]), eps=h0["eps"], foreach=False)

    losses, norms, lr_rel = [], [], 0.0
    for s in range(steps):
        lr = get_lr(s, sched)
        lr_rel = max(lr_rel, rel(d["hyper"][s]["lr"], lr))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        x = torch.tensor(d["inputs"][s], dtype=torch.long, device=dev).view(micro, B, T)
        y = torch.tensor(d["targets"][s], dtype=torch.long, device=dev).view(micro, B, T)
        total = 0.0
        for k in range(micro):
            loss = gpt2_loss(params, model, x[k], y[k]) / micro
            loss.backward()
            total += loss.item()
        clip = d["hyper"][s]["gradClip"]  # Kiln: 0 turns clipping off; clip_grad_norm_(0) would zero the gradients
        norm = torch.nn.utils.clip_grad_norm_([params[k] for k in names], clip if clip > 0 else math.inf)
        opt.step()
        losses.append(total)
        norms.append(norm.item())

    res = {"bench": "torch_train", "device": str(dev), "torch": torch.__version__, "model": model,
           "B": B, "T": T, "micro": micro, "steps": steps, "lr_max_rel": lr_rel,
           "loss_first": losses[0], "loss_last": losses[-1],
           "clipped_steps": sum(1 for s in range(steps) if 0 < d["hyper"][s]["gradClip"] < norms[s])}
    ok = lr_rel < TOL_LR
    for name, run in d["runs"].items():
        if "skipped" in run:
            res[name] = {"skipped": run["skipped"]}
            continue
        if "error" in run:  # the backend failed mid-run: a failed check
            res[name] = {"error": run["error"], "ok": False}
            ok = False
            continue
        final, _ = load(os.path.join(a.dir, f"final-{name}.safetensors"))
        pmax = max(params[k].detach().abs().max().item() for k in names)
        pdiff = max((final[k].to(device=dev, dtype=torch.float64) - params[k].detach()).abs().max().item() for k in names)
        r = {
            "device": run["device"],
            "loss_max_rel": max(rel(run["loss"][s], losses[s]) for s in range(steps)),
            "grad_norm_max_rel": max(rel(run["grad_norm"][s], norms[s]) for s in range(steps)),
            "params_max_diff": pdiff / pmax,
        }
        if name == "cpu64":
            r["ok"] = r["loss_max_rel"] < TOL_F64 and r["grad_norm_max_rel"] < TOL_F64 and r["params_max_diff"] < TOL_PARAMS_F64
        else:
            r["ok"] = r["loss_max_rel"] < TOL_F32
        ok = ok and r["ok"]
        res[name] = r
    res["ok"] = bool(ok)
    emit(res, a.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
