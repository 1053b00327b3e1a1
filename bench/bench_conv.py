#!/usr/bin/python3
"""Per-layer convolution times of a ResNet training step: ours (bench_conv) and PyTorch.

Usage: bench/bench_conv.py [--bench build/bench/bench_conv] [--arch 50] [--size 224]
                           [--batch 16] [--threads 2] [--reps 5] [--rounds 2]

For every distinct convolution of the ResNet (with its multiplicity) it prints
forward and backward (input gradient + weight gradient; no input gradient for
the stem) in milliseconds for both sides and the ratio PyTorch / ours (> 1:
ours is faster). Ours comes from the C program bench_conv (the backend slots,
best of --reps); PyTorch runs F.conv2d and aten.convolution_backward in
channels_last, float32, torch.set_num_threads(--threads), best of --reps. The
two alternate --rounds times and each keeps its best round: the machine this
runs on is shared, and one round can be 20-40% off.
"""
import argparse
import os
import re
import subprocess
import sys
import time

LINE = re.compile(r"conv (\S+)\s+n=(\d+)\s+fwd_ms=\s*([\d.]+) bwd_data_ms=\s*([\d.]+) "
                  r"bwd_weight_ms=\s*([\d.]+).*infer_ms=\s*([\d.]+)")


def resnet_layers(arch, size):
    """(name, cin, cout, kernel, stride, input side, count) as bench_conv.c lists them."""
    layers, seen = [], {}

    def add(name, cin, cout, k, stride, h):
        key = (cin, cout, k, stride, h)
        if key in seen:
            layers[seen[key]][6] += 1
        else:
            seen[key] = len(layers)
            layers.append([name, cin, cout, k, stride, h, 1])

    add("stem7x7", 3, 64, 7, 2, size)
    h = (size + 6 - 7) // 2 + 1
    h = (h + 2 - 3) // 2 + 1
    blocks = [3, 4, 6, 3] if arch == 50 else [2, 2, 2, 2]
    cin = 64
    for s in range(4):
        width = 64 << s
        for b in range(blocks[s]):
            stride = 2 if (s > 0 and b == 0) else 1
            oh = (h + 2 - 3) // stride + 1
            if arch == 50:
                out = 4 * width
                add("l%d.1x1in.%d-%d" % (s + 1, cin, width), cin, width, 1, 1, h)
                add("l%d.3x3s%d.%d" % (s + 1, stride, width), width, width, 3, stride, h)
                add("l%d.1x1out.%d-%d" % (s + 1, width, out), width, out, 1, 1, oh)
                if b == 0:
                    add("l%d.down.s%d" % (s + 1, stride), cin, out, 1, stride, h)
                cin = out
            else:
                add("l%d.3x3s%d.%d-%d" % (s + 1, stride, cin, width), cin, width, 3, stride, h)
                add("l%d.3x3s1.%d" % (s + 1, width), width, width, 3, 1, oh)
                if b == 0 and s > 0:
                    add("l%d.down.s%d" % (s + 1, stride), cin, width, 1, stride, h)
                cin = width
            h = oh
    return layers


def torch_times(args):
    """{name: (fwd_ms, bwd_ms)} of PyTorch, each the best of args.reps times count."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    out = {}
    for name, cin, cout, k, stride, h, count in resnet_layers(args.arch, args.size):
        x = torch.randn(args.batch, cin, h, h).to(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, k, k).to(memory_format=torch.channels_last)
        best_f = best_b = float("inf")
        for rep in range(args.reps + 1):
            t0 = time.perf_counter()
            y = F.conv2d(x, w, stride=stride, padding=k // 2)
            t1 = time.perf_counter()
            torch.ops.aten.convolution_backward(y, x, w, None, [stride, stride], [k // 2, k // 2],
                                                [1, 1], False, [0, 0], 1,
                                                [name != "stem7x7", True, False])
            t2 = time.perf_counter()
            if rep:  # the first is a warm-up
                best_f, best_b = min(best_f, t1 - t0), min(best_b, t2 - t1)
        out[name] = (best_f * count * 1e3, best_b * count * 1e3)
    return out


def ours_times(args):
    cmd = [args.bench, str(args.arch), str(args.size), str(args.batch), str(args.threads),
           str(args.reps)]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {m.group(1): (float(m.group(3)), float(m.group(4)) + float(m.group(5)),
                         float(m.group(6)))
            for m in LINE.finditer(text)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=None, help="the bench_conv program")
    ap.add_argument("--arch", type=int, default=50, choices=(18, 50))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        for name, (f, b) in torch_times(args).items():
            print(name, f, b)
        return
    if args.bench is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        args.bench = os.path.join(root, "build", "bench", "bench_conv")
    worker = [sys.executable, os.path.abspath(__file__), "--torch-worker"] + \
        ["--%s=%s" % (k, getattr(args, k)) for k in ("arch", "size", "batch", "threads", "reps")]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    ours, theirs = {}, {}
    for _ in range(args.rounds):
        for name, t in ours_times(args).items():
            old = ours.get(name, t)
            ours[name] = tuple(min(a, b) for a, b in zip(old, t))
        text = subprocess.run(worker, check=True, capture_output=True, text=True, env=env).stdout
        for line in text.splitlines():
            name, f, b = line.split()
            t = (float(f), float(b))
            theirs[name] = min(theirs.get(name, t), t, key=sum)
    print(f"resnet{args.arch} {args.size}x{args.size} batch {args.batch}, {args.threads} threads, "
          f"best of {args.reps} x {args.rounds} rounds (ms, x count)")
    print("ours fwd packs the weights in every call (a training step); ours infer runs on "
          "weights packed once (frozen inference)")
    print(f"{'layer':22} {'n':>2} | {'ours fwd':>8} {'torch fwd':>9} {'ratio':>5} | "
          f"{'ours infer':>10} {'ratio':>5} | {'ours bwd':>8} {'torch bwd':>9} {'ratio':>5}")
    tot = [0.0] * 5
    for name, *_rest, count in resnet_layers(args.arch, args.size):
        (of, ob, oi), (tf, tb) = ours[name], theirs[name]
        tot = [a + b for a, b in zip(tot, (of, tf, oi, ob, tb))]
        print(f"{name:22} {count:2d} | {of:8.2f} {tf:9.2f} {tf / of:5.2f} | "
              f"{oi:10.2f} {tf / oi:5.2f} | {ob:8.2f} {tb:9.2f} {tb / ob:5.2f}")
    print(f"{'total':22} {'':2} | {tot[0]:8.1f} {tot[1]:9.1f} {tot[1] / tot[0]:5.2f} | "
          f"{tot[2]:10.1f} {tot[1] / tot[2]:5.2f} | "
          f"{tot[3]:8.1f} {tot[4]:9.1f} {tot[4] / tot[3]:5.2f}")


if __name__ == "__main__":
    main()
