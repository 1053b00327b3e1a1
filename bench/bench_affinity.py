#!/usr/bin/python3
"""LVM-Med graph problems per graph: bench_affinity beside a PyTorch reference.

Usage: bench/bench_affinity.py [path/to/bench_affinity] [--graphs G] [--runs R]
       (default binary: build/bench/bench_affinity)

Ours: affinity forward (kNN, GCN 2×128, c_v, c_e), I-MLE forward (Gumbel noise +
solve), Hamming loss, I-MLE backward (target solve), affinity backward, for
N = 16, k = 5, 128-d node features, one thread. PyTorch (1 thread, float32,
batched over graphs): the same affinity forward and its autograd backward for
the gradients I-MLE produces. PyTorch has no graph-matching solver, so the
solver phases have no reference; they are printed for the 100 µs target.
Times are process CPU time (the machine may be shared), median over
repetitions, best of R runs.
"""
import os
import re
import subprocess
import sys
import time

LINE = re.compile(r"^(phase|total) (\S+) us_per_graph=([\d.]+) min=([\d.]+)", re.M)


def ours(binary, graphs, runs):
    best = {}
    for _ in range(runs):
        text = subprocess.run([binary, "--graphs", str(graphs), "--reps", "21"], check=True, capture_output=True,
                              text=True).stdout
        for _, name, us, _low in LINE.findall(text):
            best[name] = min(best.get(name, float("inf")), float(us))
    return best


def torch_reference(graphs, runs, n=16, k=5, f=128, width=128, alpha=0.8):
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(graphs, n, f, generator=g)
    zt = zs + 0.5 * torch.randn(graphs, n, f, generator=g)
    w0 = (torch.rand(f, width, generator=g) - 0.5) * 0.2
    w1 = (torch.rand(width, width, generator=g) - 0.5) * 0.2
    eye = torch.eye(n).expand(graphs, n, n)

    def knn_adj(z):
        d = torch.cdist(z, z)
        d = d + torch.diag_embed(torch.full((graphs, n), float("inf")))
        nb = d.topk(k, largest=False).indices  # G×N×k
        a = torch.zeros(graphs, n, n).scatter_(2, nb, 1.0)
        a = torch.maximum(a, a.transpose(1, 2)) + eye
        dinv = a.sum(2).rsqrt()
        src = torch.arange(n).repeat_interleave(k).expand(graphs, -1)
        return dinv[:, :, None] * a * dinv[:, None, :], torch.stack([src, nb.reshape(graphs, -1)], 2)

    def forward(zs_, zt_, w0_, w1_):
        outs, edges = [], []
        for z in (zs_, zt_):
            a, e = knn_adj(z.detach())
            h = torch.relu(a @ (z @ w0_))
            outs.append(torch.relu(a @ (h @ w1_)))
            edges.append(e)
        hs, ht = outs
        cv = torch.nn.functional.normalize(hs, dim=2) @ torch.nn.functional.normalize(ht, dim=2).transpose(1, 2)

        def edge_vec(h, e):
            gi = torch.gather(h, 1, e[:, :, 0:1].expand(-1, -1, width))
            gj = torch.gather(h, 1, e[:, :, 1:2].expand(-1, -1, width))
            return torch.nn.functional.normalize(gi - gj, dim=2)

        ce = edge_vec(hs, edges[0]) @ edge_vec(ht, edges[1]).transpose(1, 2)
        return cv, ce

    # I-MLE-like upstream gradients: ±1/λ on a few entries
    gu = torch.zeros(graphs, n, n)
    gu.view(graphs, -1)[:, ::9] = 1.0 / 80
    ge = torch.zeros(graphs, n * k, n * k)
    ge.view(graphs, -1)[:, ::41] = 1.0 / 80
    fwd, bwd = [], []
    for _ in range(runs * 21 + 1):
        leaves = [x.clone().requires_grad_(True) for x in (zs, zt, w0, w1)]
        t0 = time.process_time()
        cv, ce = forward(*leaves)
        t1 = time.process_time()
        ((gu * cv).sum() + (ge * ce).sum()).backward()
        t2 = time.process_time()
        fwd.append((t1 - t0) * 1e6 / graphs)
        bwd.append((t2 - t1) * 1e6 / graphs)
    med = lambda v: sorted(v[1:])[len(v[1:]) // 2]
    return {"affinity_forward": med(fwd), "affinity_backward": med(bwd)}


def main():
    args = sys.argv[1:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.join(root, "build", "bench", "bench_affinity")
    graphs, runs = 64, 3
    while args:
        a = args.pop(0)
        if a == "--graphs":
            graphs = int(args.pop(0))
        elif a == "--runs":
            runs = int(args.pop(0))
        else:
            binary = a
    o = ours(binary, graphs, runs)
    try:
        t = torch_reference(graphs, runs)
    except ImportError:
        t = {}
    print(f"LVM-Med graphs: N = 16, k = 5, 128-d features, GCN 2×128, {graphs} graphs, 1 thread, "
          "process CPU time per graph (median, best of %d runs)" % runs)
    print(f"{'phase':44s} {'ours µs':>10s} {'PyTorch µs':>11s} {'ratio':>7s}")
    for name in ("affinity_forward", "imle_forward", "imle_forward_solver", "hamming_loss", "imle_backward",
                 "imle_backward_solver", "affinity_backward", "forward_plus_imle_backward",
                 "forward_plus_imle_backward_without_solver", "full_step"):
        if name not in o:
            continue
        ref = t.get(name)
        cols = f"{o[name]:10.1f} " + (f"{ref:11.1f} {ref / o[name]:6.2f}x" if ref else f"{'-':>11s} {'-':>7s}")
        print(f"{name:44s} {cols}")
    if t:
        ours_aff = o["affinity_forward"] + o["affinity_backward"]
        ref_aff = t["affinity_forward"] + t["affinity_backward"]
        print(f"{'affinity forward + backward':44s} {ours_aff:10.1f} {ref_aff:11.1f} {ref_aff / ours_aff:6.2f}x")
    target = o.get("forward_plus_imle_backward")
    if target is not None:
        print(f"target: forward + I-MLE backward <= 100 µs per graph: {target:.1f} µs "
              f"({'met' if target <= 100 else 'not met'}; {o['forward_plus_imle_backward_without_solver']:.1f} µs "
              "outside the solver)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
