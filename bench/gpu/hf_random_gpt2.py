#!/usr/bin/env python3
"""A small random GPT-2 saved by transformers itself, for checking `kiln import --hf`
on the layout transformers writes today (its key names, tied head, config.json).

  python3 bench/gpu/hf_random_gpt2.py OUT_DIR [--vocab 50257] [--seed 0]

The GPT-2 vocabulary by default, so Kiln takes the GPT-2 tokenizer for it. The
webgpu.sh visit imports it, dumps Kiln's loss on a batch (dump-grads) and has
torch_reference.py --hf OUT_DIR compare with transformers' loss from this folder.
"""
import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--vocab", type=int, default=50257)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.manual_seed(a.seed)
cfg = GPT2Config(vocab_size=a.vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4)
GPT2LMHeadModel(cfg).save_pretrained(a.out)
print(f'{{"bench": "hf_random_gpt2", "out": "{a.out}", "vocab": {a.vocab}}}', flush=True)
