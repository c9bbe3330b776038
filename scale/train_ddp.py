#!/usr/bin/env python3
"""Kiln's run, trained with plain PyTorch: DistributedDataParallel, or FSDP with --fsdp.

Written into a folder by `kiln scale`; run it through torchrun (see run.sh):
    torchrun --standalone --nproc_per_node 8 --max_restarts 3 train_ddp.py   (run.sh's form is safer)

It trains exactly what `kiln train` trains (src/ in the Kiln repository is the reference):
- the model: GPT-2, pre-LN, causal attention, GELU (tanh), LayerNorm eps 1e-5, the LM head
  tied to the token embedding, weights named and laid out as Hugging Face's GPT-2 (Conv1D:
  y = x @ W + b with W of shape (in, out)) (src/core/model-spec.ts, src/reference/gpt.ts);
- AdamW with decay on the parameters of two or more dimensions only, bias correction,
  global-norm gradient clipping (src/reference/adamw.ts, src/train/trainer.ts);
- the schedule: linear warmup, cosine to minLr at decaySteps (src/core/schedule.ts);
- the batches: Kiln's sampler (sfc32 seeded through splitmix32, src/core/rng.ts and
  src/core/data.ts), so step k sees the same sequences as Kiln's CPU backend. Every rank
  draws the whole step's batchSize x gradAccum sequences and trains on its share, so the
  global batch is the RunSpec's whatever the world size.
Rank 0 writes metrics.jsonl (Kiln's format) and checkpoints/step_N/ (a Hugging Face GPT-2
folder: model.safetensors, config.json, kiln_tokenizer.json, plus train_state.pt with the
optimizer moments and the sampler's state), each written to a temporary folder and
renamed into place. A run starts from the newest complete checkpoint in its --out folder
when there is one (so a job that torchrun restarts after a process died continues where it
was saved, on the same curve), after cutting metrics.jsonl back to that step.

- --fsdp (torch >= 2.2): FullyShardedDataParallel with each transformer block its own unit,
  so each process holds 1/world of the weights, gradients and AdamW moments, for a model
  that does not fit one GPU. The same steps as DDP (the losses agree to float rounding) and
  the same checkpoint files (weights and optimizer state gathered whole, by parameter name),
  so a run saved in one mode continues in the other, on any number of processes.
- dropout: Kiln's masks (src/core/dropout.ts: a hash of the run's seed, the step, the
  micro-batch, the site and the element), numbered by each sequence's place in the step's
  global batch, so they do not depend on the number of processes.
Not matched bit for bit: the float summation order (losses agree with Kiln's CPU backend to
about 1e-5 over the first steps).
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

M32 = 0xFFFFFFFF


# ---- Kiln's random numbers (src/core/rng.ts) ---------------------------------------------

def _imul(a, b):
    return (a * b) & M32


class Rng:
    """sfc32 seeded through splitmix32; next() and int(n) draw exactly as Kiln's Rng."""

    def __init__(self, seed=None, state=None):
        if state is not None:
            self.a, self.b, self.c, self.d = [int(x) & M32 for x in state]
            return
        s = seed & M32

        def sm():
            nonlocal s
            s = (s + 0x9E3779B9) & M32
            z = s
            z = _imul(z ^ (z >> 16), 0x85EBCA6B)
            z = _imul(z ^ (z >> 13), 0xC2B2AE35)
            return (z ^ (z >> 16)) & M32

        self.a, self.b, self.c, self.d = sm(), sm(), sm(), sm()
        for _ in range(12):
            self.next_u32()

    @staticmethod
    def derive(seed, stream):
        h = 0x811C9DC5
        for ch in stream.encode('utf-16-le')[::2]:  # charCodeAt of ASCII names
            h = _imul(h ^ ch, 0x01000193)
        return Rng(seed=(seed & M32) ^ h)

    def next_u32(self):
        t = (self.a + self.b + self.d) & M32
        self.d = (self.d + 1) & M32
        self.a = self.b ^ (self.b >> 9)
        self.b = (self.c + (self.c << 3)) & M32
        self.c = ((self.c << 21) | (self.c >> 11)) & M32
        self.c = (self.c + t) & M32
        return t

    def int(self, n):
        return math.floor((self.next_u32() / 4294967296.0) * n)

    def state(self):
        return [self.a, self.b, self.c, self.d]


class BatchSampler:
    """Kiln's BatchSampler (src/core/data.ts): random windows of the training tokens."""

    def __init__(self, tokens, seed=None, state=None):
        self.tokens = tokens
        self.rng = Rng(state=state) if state is not None else Rng.derive(seed, 'data')

    def starts(self, n, T):
        max_start = len(self.tokens) - T - 1
        return [self.rng.int(max_start + 1) for _ in range(n)]


def val_batches(val, B, T, count):
    """Kiln's valBatches: `count` batches of B evenly spread, non-overlapping windows."""
    windows = max(1, (len(val) - 1) // T)
    total = min(count * B, max(B, windows))

    def window_at(i):
        return ((i % total) * windows) // total if total <= windows else i % windows

    out = []
    for w0 in range(0, total, B):
        starts = [window_at(w0 + b) * T for b in range(B)]
        out.append(starts)
    return out


def lr_at(it, c):
    """src/core/schedule.ts: the learning rate for 0-based optimizer step `it`."""
    if it < c['warmupSteps']:
        return c['lr'] * (it + 1) / (c['warmupSteps'] + 1)
    if it >= c['decaySteps']:
        return c['minLr']
    ratio = (it - c['warmupSteps']) / max(1, c['decaySteps'] - c['warmupSteps'])
    coeff = 0.5 * (1 + math.cos(math.pi * ratio))
    return c['minLr'] + coeff * (c['lr'] - c['minLr'])


# ---- Kiln's dropout masks (src/core/dropout.ts) --------------------------------------------

def lowbias32(x):
    x = (x ^ (x >> 16)) & M32
    x = _imul(x, 0x7FEB352D)
    x = (x ^ (x >> 15)) & M32
    x = _imul(x, 0x846CA68B)
    return (x ^ (x >> 16)) & M32


def _imul_t(x, c):
    """(x * c) mod 2^32 for int64 tensors holding uint32 values (no int64 overflow)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & M32


def lowbias32_t(x):
    x = x ^ (x >> 16)
    x = _imul_t(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _imul_t(x, 0x846CA68B)
    return x ^ (x >> 16)


def dropout_step_seed(run_seed, step):
    return lowbias32(lowbias32(run_seed & M32) ^ (step & M32))


def dropout_key(step_seed, micro_batch, site):
    return lowbias32(step_seed ^ lowbias32((((micro_batch & 0xFFFF) << 16) | (site & 0xFFFF)) & M32))


def dropout_keep(keys, idx, threshold):
    """Kiln's dropoutKeep for int64 tensors of keys and element indices (broadcast)."""
    return lowbias32_t((lowbias32_t((idx & M32) ^ keys) + keys) & M32) >= threshold


class KilnDropout:
    """The masks of one forward, as Kiln draws them: row r of the batch is sequence seqs[r] of
    the step (0 .. batchSize x gradAccum - 1, whichever rank trains it), that is sequence
    seqs[r] % B of micro-batch seqs[r] // B. A site's mask element is the flat index into the
    micro-batch's tensor: (b*T + t)*C + c for the embedding sum and the branch outputs,
    ((b*NH + h)*T + t)*T + t2 for the attention probabilities (src/reference/gpt.ts, attention.ts)."""

    def __init__(self, p, step_seed, seqs, B, device):
        self.threshold = min(M32, math.floor(p * 4294967296.0 + 0.5))  # Math.round(p * 2^32)
        self.scale = float(np.float32(1.0 / (1.0 - p)))  # Math.fround(1 / (1 - p))
        self.step_seed = step_seed
        self.micro = [g // B for g in seqs]
        self.b = torch.tensor([g % B for g in seqs], dtype=torch.int64, device=device).view(-1, 1)
        self.device = device

    def __call__(self, x, site):
        """x (rows, ...) times the mask of `site`: 0 where dropped, float32(1/(1-p)) where kept."""
        with torch.no_grad():
            n = x[0].numel()
            keys = torch.tensor([dropout_key(self.step_seed, mb, site) for mb in self.micro],
                                dtype=torch.int64, device=self.device).view(-1, 1)
            idx = self.b * n + torch.arange(n, dtype=torch.int64, device=self.device).view(1, -1)
            factor = dropout_keep(keys, idx, self.threshold).to(torch.float32) * self.scale
        return x * factor.to(x.dtype).view(x.shape)


# ---- the model (src/reference/gpt.ts) ------------------------------------------------------

class Conv1D(nn.Module):
    """GPT-2's linear layer: weight (in, out), y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)
        self.NH = NH

    def forward(self, x, drop, layer):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        HS = C // self.NH
        q, k, v = (t.view(B, T, self.NH, HS).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float('-inf')).softmax(dim=-1)
        if drop is not None:
            att = drop(att, 1 + 3 * layer)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        y = self.c_proj(y)
        return drop(y, 2 + 3 * layer) if drop is not None else y


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = Conv1D(C, 4 * C)
        self.c_proj = Conv1D(4 * C, C)

    def forward(self, x, drop, layer):
        y = self.c_proj(F.gelu(self.c_fc(x), approximate='tanh'))
        return drop(y, 3 + 3 * layer) if drop is not None else y


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = Attention(C, NH)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C)

    def forward(self, x, drop, layer):
        x = x + self.attn(self.ln_1(x), drop, layer)
        return x + self.mlp(self.ln_2(x), drop, layer)


class Transformer(nn.Module):
    def __init__(self, m):
        super().__init__()
        C = m['nEmbd']
        self.wte = nn.Embedding(m['vocabSize'], C)
        self.wpe = nn.Embedding(m['blockSize'], C)
        self.h = nn.ModuleList([Block(C, m['nHead']) for _ in range(m['nLayer'])])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)


class GPT(nn.Module):
    """State-dict names are Hugging Face GPT2LMHeadModel's (lm_head tied to wte, not stored)."""

    def __init__(self, m):
        super().__init__()
        self.transformer = Transformer(m)

    def forward(self, idx, targets, drop=None):
        """idx, targets (B, T) -> the sum of the token losses (cross-entropy, nats). `drop`, a
        KilnDropout for these rows, turns dropout on (training only), where nanoGPT has it:
        site 0 the embedding sum; per layer l, 1+3l the attention probabilities, 2+3l the
        attention branch's output, 3+3l the MLP branch's output."""
        tr = self.transformer
        T = idx.shape[1]
        drop = drop if self.training else None
        x = tr.wte(idx) + tr.wpe(torch.arange(T, device=idx.device))
        if drop is not None:
            x = drop(x, 0)
        for layer, block in enumerate(tr.h):
            x = block(x, drop, layer)
        logits = tr.ln_f(x) @ tr.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), reduction='sum')


# ---- safetensors (the `safetensors` package if present, else this reader/writer) --------

_DTYPES = {'F32': np.float32, 'F16': np.float16}


def load_safetensors(path):
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        if info['dtype'] == 'BF16':
            a, b = info['data_offsets']
            u16 = np.frombuffer(raw[base + a:base + b], dtype='<u2').astype(np.uint32) << 16
            arr = u16.view(np.float32)
        else:
            a, b = info['data_offsets']
            arr = np.frombuffer(raw[base + a:base + b], dtype=np.dtype(_DTYPES[info['dtype']]).newbyteorder('<'))
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info['shape']).copy())
    return out


def safetensors_bytes(tensors):
    """F32 tensors in the given order, header padded with spaces to 8 bytes (as Kiln writes)."""
    header = {'__metadata__': {'format': 'pt'}}
    blobs = []
    at = 0
    for name, t in tensors:
        b = t.detach().to('cpu', torch.float32).contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + b''.join(blobs)


# ---- checkpoints -------------------------------------------------------------------------

def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(run_dir, init_dir, step, sd, optimizer_state, extra):
    """checkpoints/step_N/: the model's full state dict `sd` as model.safetensors and the
    optimizer's moments by parameter name, written under a temporary name, then renamed into place."""
    ckdir = os.path.join(run_dir, 'checkpoints')
    os.makedirs(ckdir, exist_ok=True)
    final = os.path.join(ckdir, 'step_%d' % step)
    tmp = os.path.join(ckdir, '.tmp-step_%d-%d' % (step, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    _write(os.path.join(tmp, 'model.safetensors'), safetensors_bytes(list(sd.items())))
    for f in ('config.json', 'kiln_tokenizer.json'):
        shutil.copyfile(os.path.join(init_dir, f), os.path.join(tmp, f))
    torch.save({'optimizer': optimizer_state, **extra}, os.path.join(tmp, 'train_state.pt'))
    if os.path.exists(final):
        old = final + '.old-%d' % os.getpid()
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    try:
        fd = os.open(ckdir, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass
    return final


def latest_checkpoint(run_dir):
    """The newest complete checkpoints/step_N/ (one renamed into place: all its files there), or None."""
    ckdir = os.path.join(run_dir, 'checkpoints')
    if not os.path.isdir(ckdir):
        return None
    steps = [int(n[5:]) for n in os.listdir(ckdir) if n.startswith('step_') and n[5:].isdigit()
             and all(os.path.exists(os.path.join(ckdir, n, f)) for f in ('train_state.pt', 'model.safetensors'))]
    return os.path.join(ckdir, 'step_%d' % max(steps)) if steps else None


def remove_stale_temporaries(run_dir):
    """A process killed while saving leaves checkpoints/.tmp-step_N-PID/ behind: not a checkpoint."""
    ckdir = os.path.join(run_dir, 'checkpoints')
    if os.path.isdir(ckdir):
        for n in os.listdir(ckdir):
            if n.startswith('.tmp-step_'):
                shutil.rmtree(os.path.join(ckdir, n), ignore_errors=True)


def cut_metrics(path, step):
    """Keeps metrics.jsonl's rows up to `step` (none for 0), replacing the file atomically, so a
    resumed run appends no step twice (a row half-written by a killed process is dropped)."""
    kept = []
    if step > 0 and os.path.exists(path):
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                try:
                    if json.loads(line)['step'] <= step:
                        kept.append(line if line.endswith('\n') else line + '\n')
                except (ValueError, KeyError, TypeError):
                    pass
    tmp = '%s.tmp-%d' % (path, os.getpid())
    _write(tmp, ''.join(kept).encode('utf-8'))
    os.replace(tmp, path)


# ---- DDP or FSDP: a whole model per process, or a shard ------------------------------------

def optimizer_by_name(model, opt):
    """opt.state_dict() with parameter names in place of its indices: the form of
    torch.distributed.checkpoint's full optimizer state dict, which --fsdp saves, so a
    checkpoint does not depend on the mode or the number of processes that wrote it."""
    order = _param_names(model, opt)
    sd = opt.state_dict()
    return {'state': {order[i]: v for i, v in sd['state'].items()},
            'param_groups': [{**g, 'params': [order[i] for i in g['params']]} for g in sd['param_groups']]}


def load_optimizer_by_name(model, opt, named):
    """The inverse of optimizer_by_name: a checkpoint's optimizer state into `opt` (DDP, one process)."""
    index = {n: i for i, n in enumerate(_param_names(model, opt))}
    opt.load_state_dict({'state': {index[n]: v for n, v in named['state'].items()},
                         'param_groups': [{**g, 'params': [index[n] for n in g['params']]} for g in named['param_groups']]})


def _param_names(model, opt):
    """The parameter names of opt.state_dict()'s indices (its groups' parameters, in order)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for g in opt.param_groups for p in g['params']]


def _checkpoint_api():
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
    return StateDictOptions, get_state_dict, set_state_dict


def gather_checkpoint(model, opt, fsdp, keep):
    """The model's weights and the optimizer's state, whole and by parameter name, on the CPU
    where `keep` (None elsewhere). With FSDP every rank must call it at the same step: it
    gathers the shards to rank 0 one tensor at a time."""
    if fsdp:
        options, get_state_dict, _ = _checkpoint_api()
        # cpu_offload gathers to rank 0's CPU alone; on the CPU it is not needed, and torch 2.6
        # segfaults there (cloning the gathered weights in FSDP's state-dict hook).
        on_gpu = next(model.parameters()).device.type == 'cuda'
        sd, osd = get_state_dict(model, opt, options=options(full_state_dict=True, cpu_offload=on_gpu))
        return (sd, osd) if keep else None
    return (model.state_dict(), optimizer_by_name(model, opt)) if keep else None


def load_optimizer(model, opt, fsdp, named):
    """A checkpoint's optimizer state (by name, whole: either mode, any number of processes) into
    `opt`; with FSDP each rank keeps its shard."""
    if 'param_groups' not in named or any(not isinstance(k, str) for k in named.get('state', {})):
        sys.exit('train_ddp.py: this checkpoint\'s train_state.pt holds the optimizer state by index (an older '
                 'train_ddp.py wrote it): continue it with the train_ddp.py that wrote it, or start a new --out')
    if fsdp:
        options, _, set_state_dict = _checkpoint_api()
        set_state_dict(model, opt, model_state_dict={}, optim_state_dict=named,
                       options=options(full_state_dict=True, strict=False))
    else:
        load_optimizer_by_name(model, opt, named)


def clip_gradients(params, clip, sharded):
    """The global gradient norm (its square summed in double over every parameter; with FSDP over
    each rank's shards, then over the ranks), and Kiln's clipping: every gradient times
    min(1, clip / (norm + 1e-6)) when clip > 0 (src/reference/adamw.ts clipScale; torch's
    clip_grad_norm_)."""
    grads = [p.grad for p in params if p.grad is not None and p.grad.numel() > 0]
    # On the parameters' device even where this rank's shards hold no gradient: NCCL reduces GPU tensors only.
    sq = torch.zeros((), dtype=torch.float64, device=params[0].device)
    for g in grads:
        sq += g.double().pow(2).sum()
    if sharded:
        dist.all_reduce(sq)
    norm = math.sqrt(sq.item())
    if clip > 0:
        scale = min(1.0, clip / (norm + 1e-6))
        if scale < 1.0:
            for g in grads:
                g.mul_(scale)
    return norm


def shard_model(model, device):
    """FSDP (FullyShardedDataParallel, use_orig_params): each transformer block is its own unit,
    the rest (embeddings, final LayerNorm, the tied LM head) the root's. Each process keeps
    1/world of every weight, gradient and AdamW moment; a unit's weights are gathered for its
    forward and backward only. The model is loaded on the CPU first: FSDP moves one unit at a
    time to the GPU and shards it there."""
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        _checkpoint_api()
    except (ImportError, ValueError) as e:
        sys.exit('train_ddp.py: --fsdp needs torch >= 2.2 (FSDP with use_orig_params and '
                 'torch.distributed.checkpoint.state_dict); this is torch %s (%s). Run without --fsdp '
                 '(DDP: a whole model per process), or install a newer torch' % (torch.__version__, e))
    return FullyShardedDataParallel(model, auto_wrap_policy=ModuleWrapPolicy({Block}), device_id=device,
                                    use_orig_params=True)


# ---- training ------------------------------------------------------------------------------

def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description='Train a `kiln scale` folder with PyTorch DDP (launch through torchrun).')
    ap.add_argument('--dir', default=here, help='the kiln scale folder (default: this script\'s folder)')
    ap.add_argument('--out', default=None, help='where metrics.jsonl and checkpoints/ go (default: --dir)')
    ap.add_argument('--resume', action='store_true',
                    help='continue from the newest checkpoint in OUT/checkpoints (the default: a run, or a job '
                         'torchrun restarts after a failure, always continues from there when there is one)')
    ap.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    ap.add_argument('--precision', choices=['auto', 'fp32', 'bf16'], default='auto',
                    help='auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere (bf16 on the CPU '
                         'works, slowly: for checking a job before it goes to the GPUs)')
    ap.add_argument('--fsdp', action='store_true',
                    help='shard the weights, gradients and AdamW moments over the processes with FSDP (torch >= 2.2), '
                         'for a model that does not fit one GPU; the same steps and checkpoints as DDP')
    ap.add_argument('--stop-after', type=int, default=None, help='stop (with a checkpoint) after this many steps')
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run_dir = args.out or args.dir
    with open(os.path.join(args.dir, 'spec.json')) as f:
        spec_file = json.load(f)
    c = spec_file['spec']['config']
    m = spec_file['model']
    with open(os.path.join(args.dir, 'tokens.json')) as f:
        tok = json.load(f)
    tokens = np.fromfile(os.path.join(args.dir, 'tokens.bin'), dtype='<u4').astype(np.int64)
    train_tokens = torch.from_numpy(tokens[:tok['train']])
    val_tokens = torch.from_numpy(tokens[tok['train']:tok['train'] + tok['val']])

    distributed = 'WORLD_SIZE' in os.environ
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    if distributed:
        dist.init_process_group('nccl' if use_cuda else 'gloo')
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    device = torch.device('cuda', local_rank) if use_cuda else torch.device('cpu')
    if use_cuda:
        torch.cuda.set_device(device)
    bf16 = args.precision == 'bf16' or (args.precision == 'auto' and use_cuda and torch.cuda.is_bf16_supported())
    if args.fsdp and not distributed:
        sys.exit('train_ddp.py: --fsdp shards the model over torchrun\'s processes: launch it through run.sh '
                 '(./run.sh --fsdp) or torchrun')

    B, T, accum = c['batchSize'], c['blockSize'], c['gradAccum']
    N = B * accum  # sequences per optimizer step, whatever the world size
    if world > N:
        sys.exit('train_ddp.py: %d processes but only %d sequences per step (batchSize x gradAccum): use at most %d' % (world, N, N))
    # This rank's sequences of each step: a contiguous share, in micro-batches of at most B.
    share = np.array_split(np.arange(N), world)[rank]
    # FSDP gathers each block's weights in every forward, a collective: every rank must run as
    # many micro-batches as the rank with the most (shares differ by one sequence at most), so
    # the others add one whose loss counts zero.
    micro_steps = max(-(-len(r) // B) for r in np.array_split(np.arange(N), world))

    model = GPT(m)
    p_drop = c.get('dropout', 0.0) or 0.0
    init_dir = os.path.join(args.dir, 'init')
    start_step, state = 0, None
    # Resume from the newest complete checkpoint when there is one (a job that torchrun
    # restarts after a worker died continues from there), a fresh start when none. Rank 0
    # chooses and the others follow, so every rank loads the same step.
    ckpt = latest_checkpoint(run_dir) if rank == 0 else None
    if distributed:
        chosen = torch.tensor([int(os.path.basename(ckpt)[5:]) if ckpt else -1], dtype=torch.int64, device=device)
        dist.broadcast(chosen, 0)
        ckpt = os.path.join(run_dir, 'checkpoints', 'step_%d' % chosen.item()) if chosen.item() >= 0 else None
    if rank == 0:
        remove_stale_temporaries(run_dir)
        if ckpt:
            print('train_ddp.py: resuming from %s' % ckpt, file=sys.stderr)
        elif args.resume:
            print('train_ddp.py: --resume: no checkpoint in %s yet; starting at step 0' % os.path.join(run_dir, 'checkpoints'), file=sys.stderr)
    weights = load_safetensors(os.path.join(ckpt or init_dir, 'model.safetensors'))
    weights = {k if k.startswith('transformer.') else 'transformer.' + k: v for k, v in weights.items()
               if not k.endswith(('.attn.bias', '.attn.masked_bias')) and k != 'lm_head.weight'}
    model.load_state_dict(weights, strict=True)
    # Decay on the matrices (by name: FSDP's parameters are flat shards).
    matrices = {n for n, p in model.named_parameters() if p.dim() >= 2}
    if args.fsdp:
        model = shard_model(model, device)
    else:
        model.to(device)
    named = [(n.replace('_fsdp_wrapped_module.', ''), p) for n, p in model.named_parameters()]
    decay = [p for n, p in named if n in matrices]
    no_decay = [p for n, p in named if n not in matrices]
    assert len(decay) == len(matrices), 'the weight-decay groups lost a matrix: %s' % sorted(matrices - {n for n, _ in named})
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': c['weightDecay']}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=c['lr'], betas=(c['beta1'], c['beta2']), eps=c['eps'])
    if ckpt:
        state = torch.load(os.path.join(ckpt, 'train_state.pt'), map_location='cpu')
        load_optimizer(model, opt, args.fsdp, state['optimizer'])
        start_step = state['step']
    sampler = BatchSampler(train_tokens, seed=c['seed'], state=state['sampler'] if state else None)
    if args.fsdp:
        ddp = model  # FSDP gathers each unit's weights and reduce-scatters its gradients itself
    elif distributed:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None)
    else:
        ddp = model

    metrics_path = os.path.join(run_dir, 'metrics.jsonl')
    if rank == 0:
        os.makedirs(run_dir, exist_ok=True)
        cut_metrics(metrics_path, start_step)
        print('train_ddp.py: %d processes (%s, %s, %s), %d sequences of %d tokens per step, from step %d of %d' % (
            world, 'nccl' if use_cuda and distributed else ('gloo' if distributed else 'single'), 'bf16' if bf16 else 'fp32',
            'FSDP' if args.fsdp else 'DDP', N, T, start_step, c['steps']), file=sys.stderr)

    whole_split = len(val_tokens) - 1 <= 2 * c['evalBatches'] * B * T
    val_sets = None if whole_split else val_batches(val_tokens, B, T, c['evalBatches'])

    def autocast():
        # The matrix products in bf16, the weights, gradients, AdamW and the loss in fp32.
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    @torch.no_grad()
    def evaluate():
        """Kiln's val loss: every window of the split (as kiln eval) when cheap, else the fixed sample."""
        model.eval()
        if whole_split:
            windows = (len(val_tokens) - 1) // T
            per = max(1, min(64, 16384 // T, (64 * 1024 * 1024) // (T * max(1, m['vocabSize']))))
            total = 0.0
            for w0 in range(0, windows, per):
                nb = min(per, windows - w0)
                span = val_tokens[w0 * T:(w0 + nb) * T + 1].to(device)
                with autocast():
                    total += model(span[:nb * T].view(nb, T), span[1:nb * T + 1].view(nb, T)).item() / (nb * T) * nb
            loss = total / windows
        else:
            losses = []
            for starts in val_sets:
                x = torch.stack([val_tokens[s:s + T] for s in starts]).to(device)
                y = torch.stack([val_tokens[s + 1:s + T + 1] for s in starts]).to(device)
                with autocast():
                    losses.append(model(x, y).item() / (len(starts) * T))
            loss = sum(losses) / len(losses)
        model.train()
        return loss

    elapsed0 = state['elapsed_s'] if state else 0.0
    best = state.get('best_val_loss') if state else None
    t0 = time.time() - elapsed0
    stop_at = c['steps'] if args.stop_after is None else min(c['steps'], args.stop_after)
    window_s, window_tokens = 0.0, 0
    step = start_step
    params = list(model.parameters())
    # For tests: a pause after each step, so one can kill a rank mid-run (tests/unit/scale-restart.test.ts).
    step_delay = float(os.environ.get('KILN_SCALE_STEP_DELAY_S') or 0)
    while step < stop_at:
        t_step = time.time()
        lr = lr_at(step, c)
        for g in opt.param_groups:
            g['lr'] = lr
        starts = sampler.starts(N, T)  # every rank draws the whole step, in Kiln's order
        mine = [starts[i] for i in share]
        local = torch.zeros((), dtype=torch.float64)
        # DDP averages gradients over ranks: scale so the sum over ranks is the mean over all N*T tokens.
        scale = world / (N * T)
        chunks = [mine[i:i + B] for i in range(0, len(mine), B)]
        runs = micro_steps if args.fsdp else len(chunks)
        step_seed = dropout_step_seed(c['seed'], step) if p_drop > 0 else None
        for ci in range(runs):
            # Past this rank's share (FSDP only): its first micro-batch again, counting zero.
            chunk, weight = (chunks[ci], 1.0) if ci < len(chunks) else (chunks[0], 0.0)
            # Kiln's masks for these rows: their places in the step's global batch.
            drop = KilnDropout(p_drop, step_seed, [int(g) for g in share[ci * B:ci * B + len(chunk)]], B, device) \
                if p_drop > 0 and weight else None
            x = torch.stack([train_tokens[s:s + T] for s in chunk]).to(device)
            y = torch.stack([train_tokens[s + 1:s + T + 1] for s in chunk]).to(device)
            sync = ci == runs - 1 or not distributed
            ctx = ddp.no_sync() if not sync else _nullcontext()
            with ctx:
                with autocast():
                    loss_sum = ddp(x, y, drop)
                (loss_sum * (scale * weight)).backward()
            if weight:
                local += loss_sum.detach().double().cpu()
        if distributed:
            dist.all_reduce(local)
        loss = local.item() / (N * T)
        norm = clip_gradients(params, c['gradClip'], args.fsdp)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if use_cuda:
            torch.cuda.synchronize()
        window_s += time.time() - t_step
        window_tokens += N * T
        if not (math.isfinite(loss) and math.isfinite(norm)):
            if rank == 0:
                print('train_ddp.py: the loss became %s at step %d (gradient norm %s); lower lr or resume from the last checkpoint' % (loss, step, norm), file=sys.stderr)
            sys.exit(4)

        is_last = step == c['steps']
        stopping = step == stop_at
        val = None
        saving = is_last or stopping or step % c['checkpointEvery'] == 0
        # With FSDP every rank evaluates and gathers the checkpoint (collectives); with DDP rank 0 alone.
        if (rank == 0 or args.fsdp) and (step % c['evalEvery'] == 0 or is_last):
            val = evaluate()
            best = val if best is None or val < best else best
        gathered = gather_checkpoint(model, opt, args.fsdp, keep=rank == 0) if saving and (rank == 0 or args.fsdp) else None
        if rank == 0:
            if step % c['logEvery'] == 0 or val is not None or is_last:
                row = {'step': step, 'loss': loss}
                if val is not None:
                    row['val_loss'] = val
                row.update({'lr': lr_at(step - 1, c), 'grad_norm': norm,
                            'tokens_per_s': window_tokens / max(window_s, 1e-9), 'elapsed_s': time.time() - t0})
                window_s, window_tokens = 0.0, 0
                with open(metrics_path, 'a') as f:
                    f.write(json.dumps(row) + '\n')
            if saving:
                extra = {'step': step, 'sampler': sampler.rng.state(), 'elapsed_s': time.time() - t0, 'best_val_loss': best}
                path = save_checkpoint(run_dir, init_dir, step, gathered[0], gathered[1], extra)
                if is_last or stopping:
                    print('train_ddp.py: step %d; saved %s' % (step, path), file=sys.stderr)
        if step_delay > 0 and step < stop_at:
            time.sleep(step_delay)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


if __name__ == '__main__':
    sys.exit(main())
