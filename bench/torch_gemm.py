#!/usr/bin/env python3
"""The peer for `sagerun bench gemm` on a GPU: cuBLAS's matrix-product rate
as PyTorch reaches it (torch.matmul), measured the way sagerun measures its
own: size^3 products on random data, warm-up runs, then each timed run
between its own CUDA events; the median run's TFLOP/s.

Prints one JSON object: {"device", "torch", "size", "tflops": {type: x}}.
Usage: torch_gemm.py [--size 8192] [--repeats 10] [--warmup 2]"""
import argparse
import json
import statistics

import torch


def rate(dtype, size, repeats, warmup, tf32=False):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.rand(size, size, device="cuda", dtype=dtype) * 2 - 1
    b = torch.rand(size, size, device="cuda", dtype=dtype) * 2 - 1
    for _ in range(warmup):
        torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return 2.0 * size**3 / statistics.median(times) / 1e12


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    tflops = {
        "bf16": rate(torch.bfloat16, a.size, a.repeats, a.warmup),
        "fp16": rate(torch.float16, a.size, a.repeats, a.warmup),
        "tf32": rate(torch.float32, a.size, a.repeats, a.warmup, tf32=True),
    }
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "size": a.size,
                      "tflops": tflops}))


if __name__ == "__main__":
    main()
