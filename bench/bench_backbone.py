#!/usr/bin/python3
"""liblvmmed's backbone against PyTorch, side by side, float32, same thread count.

Usage: bench/bench_backbone.py [--lvmmed build/tools/lvmmed] [--threads 2]
                               [--repeats 3] [--iters 3] [--rows PATTERN] [--json OUT]

For every row (ResNet-50 and ResNet-18 at 224 and 96 pixels; inference at
batch 1, 8, 32; a training step at batch 16, 32) it runs ours
(`lvmmed bench backbone --json`) and PyTorch (this file with --torch-worker:
torchvision's model without its classifier, channels_last memory format,
torch.set_num_threads(T)) in separate processes, alternating them `repeats`
times so both see the same machine load, and prints the medians of images/s
and the ratio ours / PyTorch (> 1: ours is faster). PyTorch runs each repeat
twice, with OpenMP's default (spinning) and OMP_WAIT_POLICY=PASSIVE threads,
and keeps the faster: on a machine shared with other work spinning threads
can be several times slower, on a quiet one they are the faster choice. Ours
also runs twice per repeat and keeps the faster, interleaved with PyTorch's
two, so both sides get the same number of draws from the machine's noise. A training step is
forward in train mode + backward from the mean of the pooled features + an
SGD update + zero_grad, in both. Peak memory is each process's peak RSS and
the increment above the RSS right after the model was built. "best" columns
use each side's fastest iteration (the least disturbed by other work on a
shared machine); the main columns use medians.

GFLOP/s counts 2 FLOPs per multiply-add of the convolutions and 3x the
forward for a training step.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

ROWS = [(arch, size, mode, batch)
        for arch in ("resnet50", "resnet18")
        for size in (224, 96)
        for mode, batch in (("infer", 1), ("infer", 8), ("infer", 32), ("train", 16), ("train", 32))]


def rss_mb():
    """Peak RSS in MB: VmHWM (ru_maxrss would keep the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_worker(args):
    """One PyTorch measurement: prints a JSON line like `lvmmed bench backbone --json`."""
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)()
    model.fc = torch.nn.Identity()
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(args.batch, 3, args.size, args.size).to(memory_format=torch.channels_last)
    train = args.mode == "train"
    model.train(train)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    base = rss_mb()
    secs = []
    for it in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        if train:
            loss = model(x).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
        else:
            with torch.inference_mode():
                model(x)
        if it >= args.warmup:
            secs.append(time.perf_counter() - t0)
    med = statistics.median(secs)
    print(json.dumps({"images_per_s": args.batch / med, "median_s": med, "best_s": min(secs),
                      "peak_rss_mb": rss_mb(), "base_rss_mb": base, "seconds": secs}))


def forward_flops(arch, size):
    """2 x multiply-adds of the convolutions (and linear layers) of one forward, one image."""
    import torch
    import torchvision

    model = getattr(torchvision.models, arch)()
    model.fc = torch.nn.Identity()
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2 * out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += 2 * out.numel() * mod.in_features

    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return total[0]


def run_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lvmmed", default=None, help="the lvmmed program (default: build*/tools/lvmmed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rows", default="", help="regex on 'arch size mode batch' to select rows")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arch"), ap.add_argument("--size", type=int), ap.add_argument("--mode")
    ap.add_argument("--batch", type=int)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = args.lvmmed or os.path.join(root, "build", "tools", "lvmmed")
    if not os.path.exists(exe):
        sys.exit(f"bench_backbone: {exe} not found (build first or pass --lvmmed)")
    pick = re.compile(args.rows)
    rows = [r for r in ROWS if pick.search("%s %d %s %d" % r)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    results = []
    print(f"threads={args.threads} repeats={args.repeats} iters={args.iters} (medians)")
    print(f"{'arch':9} {'size':>4} {'mode':5} {'batch':>5} | {'ours img/s':>10} {'torch img/s':>11} "
          f"{'ratio':>6} | {'best ratio':>10} | {'ours GFLOP/s':>12} {'best':>6} | {'ours MB':>8} "
          f"{'torch MB':>8} {'ours +MB':>8} {'torch +MB':>9}")
    flops = {}
    for arch, size, mode, batch in rows:
        common = ["--arch", arch, "--size", str(size), "--mode", mode, "--batch", str(batch),
                  "--threads", str(args.threads), "--iters", str(args.iters),
                  "--warmup", str(args.warmup)]
        ours, theirs = [], []
        for _ in range(args.repeats):
            # Both sides get two runs per repeat and keep the faster, interleaved: PyTorch
            # one per OpenMP wait policy, ours the same command twice.
            tw = [sys.executable, os.path.abspath(__file__), "--torch-worker"] + common
            mine = [exe, "bench", "backbone", "--json"] + common
            o1 = run_json(mine, env)
            t1 = run_json(tw, env)
            o2 = run_json(mine, env)
            t2 = run_json(tw, dict(env, OMP_WAIT_POLICY="PASSIVE"))
            ours.append(max((o1, o2), key=lambda r: r["images_per_s"]))
            theirs.append(max((t1, t2), key=lambda r: r["images_per_s"]))
        if (arch, size) not in flops:
            flops[(arch, size)] = forward_flops(arch, size)
        o = statistics.median(r["images_per_s"] for r in ours)
        t = statistics.median(r["images_per_s"] for r in theirs)
        ob = batch / min(r["best_s"] for r in ours)
        tb = batch / min(r["best_s"] for r in theirs)
        step_flops = flops[(arch, size)] * (3 if mode == "train" else 1)
        row = {"arch": arch, "size": size, "mode": mode, "batch": batch, "ours_images_per_s": o,
               "torch_images_per_s": t, "ratio": o / t, "ours_best_images_per_s": ob,
               "torch_best_images_per_s": tb, "best_ratio": ob / tb,
               "ours_best_gflops": ob * step_flops * 1e-9, "ours_gflops": o * step_flops * 1e-9,
               "torch_gflops": t * step_flops * 1e-9,
               "ours_peak_mb": max(r["peak_rss_mb"] for r in ours),
               "torch_peak_mb": max(r["peak_rss_mb"] for r in theirs),
               "ours_increment_mb": max(r["peak_rss_mb"] - r.get("base_rss_mb", 0) for r in ours),
               "torch_increment_mb": max(r["peak_rss_mb"] - r["base_rss_mb"] for r in theirs)}
        results.append(row)
        print(f"{arch:9} {size:4d} {mode:5} {batch:5d} | {o:10.2f} {t:11.2f} {o / t:6.2f} | "
              f"{ob / tb:10.2f} | {row['ours_gflops']:12.1f} {row['ours_best_gflops']:6.1f} | "
              f"{row['ours_peak_mb']:8.0f} {row['torch_peak_mb']:8.0f} "
              f"{row['ours_increment_mb']:8.0f} {row['torch_increment_mb']:9.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
