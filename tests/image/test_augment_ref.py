#!/usr/bin/python3
"""Augmentation parity with torchvision.transforms.functional for fixed parameters.

Inputs are real images from data/ (IHC histology and fundus RGB, a 16-bit MR
slice as gray). Each job runs our kernel (through augment_ref_helper) and the
torchvision op on the same float32 tensor; a gray image is given to
torchvision replicated to RGB, which is what our 1-channel path stands for.

usage: test_augment_ref.py HELPER DATA_DIR
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

torch.set_num_threads(1)

# Largest |ours - torchvision| allowed, per op (values in [0, 1]; views are normalised, x ~4.4).
TOL = {"crop": 1e-5, "brightness": 1e-6, "contrast": 1e-5, "saturation": 1e-6, "hue": 1e-5, "gray": 1e-6,
       "blur": 1e-5, "normalize": 1e-6, "view": 5e-5, "grid": 0.0}
MEAN, STD = [0.485, 0.456, 0.406], [0.228, 0.224, 0.225]


def sources(data):
    ihc = np.array(Image.open(os.path.join(data, "ihc_rgb.png")).convert("RGB"), np.float32) / 255.0
    ret = np.array(Image.open(os.path.join(data, "fundus_retina.jpg")).convert("RGB"), np.float32) / 255.0
    mr = np.array(Image.open(os.path.join(data, "mr_s1045_u16.png"))).astype(np.float32)
    mr = (mr - mr.min()) / (mr.max() - mr.min())
    return {"ihc": np.ascontiguousarray(np.moveaxis(ihc, -1, 0)),
            "retina": np.ascontiguousarray(np.moveaxis(ret, -1, 0)),
            "mr": np.ascontiguousarray(mr[None].astype(np.float32))}


class Jobs:
    def __init__(self, tmp):
        self.tmp, self.lines, self.checks, self.n = tmp, [], [], 0

    def file(self, arr=None):
        self.n += 1
        path = os.path.join(self.tmp, f"a{self.n}.f32")
        if arr is not None:
            np.ascontiguousarray(arr, dtype="<f4").tofile(path)
        return path

    def add(self, kind, line, out, expect, name):
        self.lines.append(line)
        self.checks.append((kind, name, out, np.asarray(expect, np.float32)))


def rgb3(x):
    t = torch.from_numpy(x.copy())
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t


def crop_ref(x, top, left, h, w, S, flip):
    t = TF.resized_crop(torch.from_numpy(x.copy()), top, left, h, w, [S, S], InterpolationMode.BILINEAR,
                        antialias=False)
    return TF.hflip(t) if flip else t


def torch_view(x, p, S, grayout):
    t = crop_ref(x, p["top"], p["left"], p["h"], p["w"], S, p["flip"])
    t = rgb3(t.numpy())
    if p["jitter"]:
        for o in p["order"]:
            if o == 0:
                t = TF.adjust_brightness(t, p["b"])
            elif o == 1:
                t = TF.adjust_contrast(t, p["c"])
            elif o == 2:
                t = TF.adjust_saturation(t, p["s"])
            else:
                t = TF.adjust_hue(t, p["hue"])
    if p["gray"]:
        t = TF.rgb_to_grayscale(t, num_output_channels=3)
    if p["blur"]:
        t = TF.gaussian_blur(t, [p["ks"], p["ks"]], [p["sigma"], p["sigma"]])
    if grayout:
        t = TF.rgb_to_grayscale(t, num_output_channels=3)
    return TF.normalize(t, MEAN, STD)


def build(J, src):
    f32 = np.float32
    for name, x in src.items():
        C, H, W = x.shape
        xin = J.file(x)
        boxes = [(0, 0, H, W, 224, 0), (5, 9, H // 3, W // 2, 224, 1), (H // 4, W // 5, H // 2, W // 2, 96, 0),
                 (1, 2, H - 3, W - 7, 96, 1), (H - 40, W - 61, 40, 61, 224, 0), (0, 0, 224 if H >= 224 else H,
                                                                                 224 if W >= 224 else W, 224, 0)]
        for (top, left, h, w, S, flip) in boxes:
            out = J.file()
            J.add("crop", f"crop {xin} {C} {H} {W} {top} {left} {h} {w} {S} {flip} {out}", out,
                  crop_ref(x, top, left, h, w, S, flip).numpy(), f"{name} box {top},{left},{h}x{w} -> {S} flip {flip}")
        N = H * W
        x3 = rgb3(x)
        for op, factors in (("brightness", [0.2, 0.93, 1.7]), ("contrast", [0.2, 1.0001, 1.8]),
                            ("saturation", [0.0, 0.55, 1.8]), ("hue", [-0.5, -0.2, 0.013, 0.2, 0.5])):
            for fv in factors:
                fv = float(f32(fv))
                fn = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
                      "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}[op]
                ref = fn(x3, fv).numpy()
                if C == 1:
                    assert np.array_equal(ref[0], ref[1]) and np.array_equal(ref[0], ref[2])
                    ref = ref[:1]
                out = J.file()
                J.add(op, f"{op} {xin} {C} {N} {fv!r} {out}", out, ref, f"{name} {op} {fv}")
        out = J.file()
        ref = TF.rgb_to_grayscale(x3, num_output_channels=1).numpy()
        J.add("gray", f"gray {xin} {C} {N} {out}", out, ref, f"{name} grayscale")
        for sigma, ks in ((0.1, 3), (0.7, 5), (1.3, 9), (2.0, 13), (2.0, 23)):
            sigma = float(f32(sigma))
            out = J.file()
            ref = TF.gaussian_blur(torch.from_numpy(x.copy()), [ks, ks], [sigma, sigma]).numpy()
            J.add("blur", f"blur {xin} {C} {H} {W} {sigma!r} {ks} {out}", out, ref, f"{name} blur sigma {sigma} k {ks}")
        out = J.file()
        ref = TF.normalize(x3, MEAN, STD).numpy()
        J.add("normalize", f"normalize {xin} {C} {N} {' '.join(map(str, MEAN))} {' '.join(map(str, STD))} {out}", out,
              ref, f"{name} normalize")
        rng = np.random.default_rng(11)
        for k in range(6):
            h = int(rng.integers(H // 4, H + 1))
            w = int(rng.integers(W // 4, W + 1))
            p = dict(top=int(rng.integers(0, H - h + 1)), left=int(rng.integers(0, W - w + 1)), h=h, w=w,
                     flip=k % 2, jitter=int(k != 3), order=[int(v) for v in rng.permutation(4)],
                     b=float(f32(rng.uniform(0.2, 1.8))), c=float(f32(rng.uniform(0.2, 1.8))),
                     s=float(f32(rng.uniform(0.2, 1.8))), hue=float(f32(rng.uniform(-0.2, 0.2))),
                     gray=int(k == 2), blur=int(k % 3 != 1), sigma=float(f32(rng.uniform(0.1, 2.0))))
            p["ks"] = 2 * int(np.ceil(3 * p["sigma"])) + 1
            S = 224 if k < 4 else 96
            grayout = int(k >= 4)
            out = J.file()
            line = (f"view {xin} {C} {H} {W} {p['top']} {p['left']} {p['h']} {p['w']} {p['flip']} {p['jitter']} "
                    f"{' '.join(map(str, p['order']))} {p['b']!r} {p['c']!r} {p['s']!r} {p['hue']!r} {p['gray']} "
                    f"{p['blur']} {p['sigma']!r} {p['ks']} {S} {grayout} {out}")
            J.add("view", line, out, torch_view(x, p, S, grayout).numpy(), f"{name} view {k} {p}")
    for (top, left, h, w, N, flip, mirror) in ((0, 0, 224, 224, 7, 0, 1), (13, 40, 97, 151, 7, 1, 1),
                                               (13, 40, 97, 151, 7, 1, 0), (3, 5, 50, 41, 5, 1, 1)):
        out = J.file()
        k = np.arange(N, dtype=np.float64)
        rows = top + (k + 0.5) * h / N
        cols = left + (k + 0.5) * w / N
        if flip and mirror:
            cols = cols[::-1]
        grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).astype(np.float32)
        J.add("grid", f"grid {top} {left} {h} {w} {N} {flip} {mirror} {out}", out, grid,
              f"grid {top},{left},{h}x{w} N {N} flip {flip} mirror {mirror}")


def main():
    helper, data = sys.argv[1], sys.argv[2]
    src = sources(data)
    with tempfile.TemporaryDirectory(prefix="lvmmed_aug_") as tmp:
        J = Jobs(tmp)
        build(J, src)
        manifest = os.path.join(tmp, "jobs.txt")
        with open(manifest, "w") as f:
            f.write("\n".join(J.lines) + "\n")
        r = subprocess.run([helper, manifest], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return 1
        worst, failures = {}, 0
        for kind, name, out, expect in J.checks:
            got = np.fromfile(out, dtype="<f4").reshape(expect.shape)
            err = float(np.max(np.abs(got.astype(np.float64) - expect.astype(np.float64))))
            worst[kind] = max(worst.get(kind, 0.0), err)
            if not err <= TOL[kind]:
                failures += 1
                print(f"FAIL {kind}: {name}: max |ours - torchvision| = {err:.3g} > {TOL[kind]:g}")
    print(f"{len(J.checks)} parity checks against torchvision {__import__('torchvision').__version__}, "
          f"{failures} failures")
    for kind in TOL:
        if kind in worst:
            print(f"  {kind:10s} worst |ours - torchvision| = {worst[kind]:.3g} (tolerance {TOL[kind]:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
