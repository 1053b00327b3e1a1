#!/usr/bin/python3
"""Pretraining step: lvmmed_pretrainer vs a PyTorch step of the same network, side by side.

Ours: one lvmmed.Pretrainer.step (two views → backbone → projector → kNN/GCN/c_v/c_e →
I-MLE with the default solver → backward → Adam) on random views. Reference: PyTorch
(torchvision ResNet, channels_last, same threads) doing the same backbone + projector
forward/backward over the 2B views, a GCN and the cosine affinities of every group with
a surrogate loss, and Adam. The solver has no PyTorch counterpart; its time is inside
ours only. Prints steps/s, images/s, the share of our step spent outside the backbone,
and each side's peak resident memory (measured in a child process per side).

usage: bench_pretrain.py [--arch resnet18] [--size 96] [--batch 32] [--steps 5] [--threads 2]
Needs LVMMED_LIBRARY (or an installed liblvmmed), python3-torch and python3-torchvision.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))


def run_ours(a):
    import numpy as np
    import lvmmed
    ctx = lvmmed.Context(threads=a.threads, seed=1)
    pt = lvmmed.Pretrainer(ctx, arch=a.arch)
    gh, gw = pt.grid_shape(a.size, a.size)
    rng = np.random.default_rng(0)
    vs = rng.standard_normal((a.batch, 3, a.size, a.size), dtype=np.float32)
    vt = rng.standard_normal((a.batch, 3, a.size, a.size), dtype=np.float32)
    gs = rng.random((a.batch, gh, gw, 2), dtype=np.float32)
    gt = rng.random((a.batch, gh, gw, 2), dtype=np.float32)
    pt.step(vs, vt, gs, gt)  # warm-up: workspaces, registration
    times, outside = [], []
    for _ in range(a.steps):
        t = time.perf_counter()
        pt.step(vs, vt, gs, gt)
        dt = time.perf_counter() - t
        st = pt.stats()
        times.append(dt)
        outside.append((dt - st["seconds_backbone"]) / dt)
    return {"step_s": statistics.median(times), "outside_share": statistics.median(outside)}


def run_torch(a):
    import torch
    import torchvision
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    make = getattr(torchvision.models, a.arch)
    net = make(weights=None)
    dim = net.fc.in_features
    net.fc = torch.nn.Identity()
    proj = torch.nn.Linear(dim, 128)
    gcn = [torch.nn.Parameter(torch.randn(128, 128) * 0.1) for _ in range(2)]
    net = net.to(memory_format=torch.channels_last).train()
    params = list(net.parameters()) + list(proj.parameters()) + gcn
    opt = torch.optim.Adam(params, lr=2e-3)
    x = torch.randn(2 * a.batch, 3, a.size, a.size).to(memory_format=torch.channels_last)
    n, groups = 16, a.batch // 16

    def step():
        opt.zero_grad(set_to_none=False)
        z = proj(net(x))
        zs, zt = z[: a.batch], z[a.batch:]
        loss = 0
        for g in range(groups):
            hs, ht = zs[g * n:(g + 1) * n], zt[g * n:(g + 1) * n]
            for w in gcn:  # dense stand-in for the normalised kNN adjacency
                hs, ht = torch.relu(hs @ w), torch.relu(ht @ w)
            cv = torch.nn.functional.normalize(hs, dim=1) @ torch.nn.functional.normalize(ht, dim=1).T
            es = (hs[:, None] - hs[None])[:, :5].reshape(-1, 128)
            et = (ht[:, None] - ht[None])[:, :5].reshape(-1, 128)
            ce = torch.nn.functional.normalize(es, dim=1) @ torch.nn.functional.normalize(et, dim=1).T
            loss = loss + cv.diagonal().sum() + ce.mean()
        loss.backward()
        opt.step()

    step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"step_s": statistics.median(times)}


def child(a, side):
    """Runs one side in a fresh process and returns its result with its peak RSS."""
    cmd = [sys.executable, __file__, "--side", side, "--arch", a.arch, "--size", str(a.size), "--batch",
           str(a.batch), "--steps", str(a.steps), "--threads", str(a.threads)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(a.threads))
    # numpy (ours) and torch (reference) load the same OpenBLAS before our library: give
    # both sides the kernels the C loader would pick on this CPU (see lvmmed/_cpu.py)
    from lvmmed._cpu import _AVX512, _cpu_flags
    if "OPENBLAS_CORETYPE" not in env and _AVX512 <= _cpu_flags():
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--side", choices=["ours", "torch"])
    a = p.parse_args()
    if a.side:
        r = run_ours(a) if a.side == "ours" else run_torch(a)
        r["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return
    ours, ref = child(a, "ours"), child(a, "torch")
    imgs = a.batch  # image pairs per step
    print(f"pretraining step, {a.arch} at {a.size}x{a.size}, batch {a.batch} image pairs, "
          f"{a.threads} threads, median of {a.steps}")
    print(f"{'':10} {'s/step':>8} {'steps/s':>8} {'images/s':>9} {'peak MB':>8}")
    for name, r in (("lvmmed", ours), ("pytorch", ref)):
        print(f"{name:10} {r['step_s']:8.3f} {1 / r['step_s']:8.3f} {imgs / r['step_s']:9.1f} {r['peak_mb']:8.0f}")
    print(f"ratio (pytorch time / lvmmed time): {ref['step_s'] / ours['step_s']:.2f}")
    print(f"share of the lvmmed step outside the backbone: {100 * ours['outside_share']:.1f}% (target < 5%)")


if __name__ == "__main__":
    main()
