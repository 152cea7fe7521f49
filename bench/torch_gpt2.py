#!/usr/bin/env python3
"""The peer for sagerun's GPU trainer: the same GPT-2 model and step in
PyTorch, as a PyTorch user would write it (bf16 autocast, fused AdamW,
scaled_dot_product_attention), in eager mode and under torch.compile.

Prints one JSON object per mode: tokens/s and ms per step, the median over
timed steps after warm-up (torch.compile's compilation happens in warm-up).
Usage: torch_gpt2.py --batch B --seq T [--layers 12 --heads 12 --width 768
--vocab 50257] [--steps 20 --warmup 5] [--modes eager,compile]"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.fcproj = nn.Linear(4 * width, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, seq, layers, heads, width):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(seq, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.lnf = nn.LayerNorm(width)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.lnf(x), self.wte.weight)  # tied head, as sagerun's
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def run(mode, args):
    torch.manual_seed(0)
    model = GPT(args.vocab, args.seq, args.layers, args.heads, args.width).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_fn = torch.compile(model) if mode == "compile" else model
    idx = torch.randint(0, args.vocab, (args.batch, args.seq), device="cuda")
    tgt = torch.randint(0, args.vocab, (args.batch, args.seq), device="cuda")
    times = []
    for i in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"framework": "pytorch " + torch.__version__, "mode": mode, "device": torch.cuda.get_device_name(),
            "batch": args.batch, "seq": args.seq, "params": sum(p.numel() for p in model.parameters()),
            "step_ms": round(step_s * 1e3, 2), "tokens_per_sec": round(args.batch * args.seq / step_s, 1),
            "final_loss": round(loss.item(), 4)}


def main():
    p = argparse.ArgumentParser()
    for name, default in [("batch", 8), ("seq", 1024), ("layers", 12), ("heads", 12), ("width", 768),
                          ("vocab", 50257), ("steps", 20), ("warmup", 5)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--modes", default="eager,compile")
    args = p.parse_args()
    for mode in args.modes.split(","):
        print(json.dumps(run(mode, args)), flush=True)


if __name__ == "__main__":
    main()
