#!/usr/bin/python3
"""Decode + two augmented 224 x 224 views per image: our dataset reader vs PIL + torchvision.

Usage: bench/bench_image.py [path/to/bench_image] [--images N] [--epochs E] [--resnet]
       (default: build/bench/bench_image, 48 images, 3 timed epochs)

Writes N 512 x 512 16-bit images (real MR and CT slices from tests/image/data,
upsampled, with a little noise so they compress like scanner data) as PNG,
uncompressed TIFF and Deflate TIFF, then times per format:

  ours     bench_image (lvmmed_dataset): 1 and 2 worker threads, context threads 1;
  PIL+tv   PIL decode, then the same per-image work in torch/torchvision
           (percentile intensity window, 2 x [RandomResizedCrop 224, flip, colour
           jitter p=0.8, grayscale p=0.2, Gaussian blur p=0.5 with the same kernel
           rule, gray output, normalise]); in the main process (torch 1 thread), and
           through a DataLoader with 2 worker processes (1 thread each).

All numbers are medians over interleaved rounds, measured in this same run; CPU
milliseconds per image are also printed, since wall-clock rates on a shared
machine swing with its load. With
--resnet it also times one torch ResNet-50 training step (forward + backward
on both views, batch 8 pairs, 2 threads) to show how many images per second a
CPU training step consumes.
"""
import argparse
import io
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "image", "data")


def make_images(folder, n):
    import tifffile
    mr = np.array(Image.open(os.path.join(DATA, "mr_s1045_u16.png"))).astype(np.float32)
    ct = tifffile.imread(os.path.join(DATA, "ct_stent_i16.tif")).astype(np.float32) + 1024.0
    rng = np.random.default_rng(0)
    lists = {"png": [], "tiff": [], "tiff-deflate": []}
    for i in range(n):
        src = mr if i % 2 == 0 else ct
        im = Image.fromarray(src, mode="F").resize((512, 512), Image.BICUBIC)
        a = np.asarray(im, np.float32)
        a = np.roll(a, (i * 37) % 512, axis=i % 2)  # a different slice layout per image
        a = a + rng.normal(0, 0.01 * max(1.0, float(a.max())), a.shape)
        a = np.clip(a, 0, 65535).astype(np.uint16)
        p = os.path.join(folder, f"img{i:03d}.png")
        Image.fromarray(a, mode="I;16").save(p)
        lists["png"].append(p)
        p = os.path.join(folder, f"img{i:03d}.tif")
        tifffile.imwrite(p, a)
        lists["tiff"].append(p)
        p = os.path.join(folder, f"img{i:03d}_deflate.tif")
        tifffile.imwrite(p, a, compression="zlib")
        lists["tiff-deflate"].append(p)
    return lists


# ---------------------------------------------------------------- the reference pipeline


def make_reference():
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    class Blur:
        """GaussianBlur with the kernel rule ours uses: 2 * ceil(3 sigma) + 1."""

        def __call__(self, t):
            sigma = float(torch.empty(1).uniform_(0.1, 2.0))
            k = 2 * math.ceil(3 * sigma) + 1
            return TF.gaussian_blur(t, [k, k], [sigma, sigma])

    view = T.Compose([
        T.RandomResizedCrop(224, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BILINEAR, antialias=False),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([Blur()], p=0.5),
        T.Grayscale(num_output_channels=3),
        T.Normalize([0.485, 0.456, 0.406], [0.228, 0.224, 0.225]),
    ])

    def load(path):
        a = np.array(Image.open(path)).astype(np.float32)
        lo, hi = np.percentile(a, [0.5, 99.5])
        a = np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)
        t = torch.from_numpy(a)[None].expand(3, -1, -1)
        return view(t), view(t)

    return load


class Files:
    def __init__(self, paths, load):
        self.paths, self.load = paths, load

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.load(self.paths[i])


def _init_worker(_):
    import torch
    torch.set_num_threads(1)


def time_reference(paths, epochs, workers):
    """(median images/s, CPU ms per image of this process or None) over `epochs` timed epochs."""
    import torch
    torch.set_num_threads(1)
    load = make_reference()
    loader = torch.utils.data.DataLoader(Files(paths, load), batch_size=16, shuffle=True, num_workers=workers,
                                         worker_init_fn=_init_worker if workers else None,
                                         persistent_workers=workers > 0)
    rates, cpu, n_total = [], 0.0, 0
    for e in range(epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        for s, t in loader:
            n += s.shape[0]
        dt = time.perf_counter() - t0
        if e:
            rates.append(n / dt)
            cpu += time.process_time() - c0
            n_total += n
    return float(np.median(rates)), (1e3 * cpu / n_total if workers == 0 else None)


def time_ours(exe, paths, epochs, workers, tmp):
    """(median images/s, CPU ms per image of all threads)."""
    lst = os.path.join(tmp, "list.txt")
    with open(lst, "w") as f:
        f.write("\n".join(paths) + "\n")
    r = subprocess.run([exe, lst, str(workers), "1", str(epochs), "16"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    m = re.search(r"median_images_per_s=([\d.]+) cpu_ms_per_image=([\d.]+)", r.stdout)
    return float(m.group(1)), float(m.group(2))


def resnet_step_images_per_s():
    import torch
    import torchvision
    torch.set_num_threads(2)
    model = torchvision.models.resnet50()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(16, 3, 224, 224)  # 8 pairs = both views of 8 images
    times = []
    for i in range(3):
        t0 = time.perf_counter()
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return 8 / float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exe", nargs="?", default=os.path.join(HERE, "..", "build", "bench", "bench_image"))
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (medians are reported)")
    ap.add_argument("--resnet", action="store_true")
    args = ap.parse_args()
    med = lambda xs: float(np.median(xs))  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="lvmmed_bench_") as tmp:
        lists = make_images(tmp, args.images)
        print(f"{args.images} images of 512 x 512 16-bit, decode + 2 views of 224 x 224 each; medians over "
              f"{args.rounds} interleaved rounds of {args.epochs} epochs; os.getloadavg() = "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'format':13s} {'ours 1w':>8s} {'ours 2w':>8s} {'PIL+tv':>8s} {'PIL+tv 2p':>9s} {'x 1w':>6s} {'x 2w':>6s}"
              f" {'ours ms':>8s} {'PIL+tv ms':>9s} {'x cpu':>6s}")
        last = None
        for fmt, paths in lists.items():
            o1, o2, r1, r2, oc, rc = [], [], [], [], [], []
            for _ in range(args.rounds):
                w, c = time_ours(args.exe, paths, args.epochs, 1, tmp)
                o1.append(w)
                oc.append(c)
                r, c = time_reference(paths, args.epochs, 0)
                r1.append(r)
                rc.append(c)
                o2.append(time_ours(args.exe, paths, args.epochs, 2, tmp)[0])
                r2.append(time_reference(paths, args.epochs, 2)[0])
            O1, O2, R1, R2, OC, RC = map(med, (o1, o2, r1, r2, oc, rc))
            last = (fmt, O1)
            print(f"{fmt:13s} {O1:8.1f} {O2:8.1f} {R1:8.1f} {R2:9.1f} {O1 / R1:5.1f}x {O2 / R2:5.1f}x"
                  f" {OC:8.2f} {RC:9.2f} {RC / OC:5.1f}x", flush=True)
        print("images/s: ours with 1 and 2 worker threads; PIL+tv in one process (torch 1 thread) and through a")
        print("DataLoader with 2 worker processes. x 1w, x 2w: ours / PIL+tv at equal parallelism. ms: CPU time per")
        print("image (all threads), the work each side does whatever the machine's load; x cpu = PIL+tv / ours.")
        if args.resnet:
            step = resnet_step_images_per_s()
            print(f"torch ResNet-50 training step (fwd+bwd on both views, 2 threads): {step:.2f} images/s; one "
                  f"worker of ours ({last[1]:.0f}/s on {last[0]}) feeds {last[1] / step:.0f}x that")


if __name__ == "__main__":
    sys.exit(main())
