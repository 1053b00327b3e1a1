#!/usr/bin/python3
"""Builds the demo images bundled in data/demo/ from licence-clean Debian packages.

usage: /usr/bin/python3 scripts/make_demo_data.py --data-root EXTDATA [--out data/demo]
                                                  [--tasks plane,lobe,lobe2] [--no-pretrain]

EXTDATA holds the packages unpacked with `dpkg -x` under EXTDATA/src/<package>/ (the layout
of the project's data recipes; only these three are read):
  mricron-data              (BSD-3)      Colin27 T1 MRI 1 mm (ch2), brain-extracted (ch2bet),
                                         0.5 mm brain (ch2better), AAL atlas (aal)
  insighttoolkit5-examples  (Apache-2.0) MR slices (PNG) and a small T1 volume of another subject
  python3-skimage           (CC0 / public domain per docstring) cell, fundus, retina, IHC images
Needs Debian's python3-numpy, python3-nibabel and python3-pil. Output is deterministic.

Every image is 96 x 96 8-bit grayscale PNG. Slices of the single Colin27 brain are split
into train and test by world position along the slice axis (see slab()): 20 mm slabs, the
first 4 mm of each slab dropped as a guard band, every third slab is test. ch2, ch2bet and
ch2better share the same MNI grid, so a test slab is test in every variant, and no test slice
is within 4 mm of a training slice of the same orientation. The unlabeled pretraining set
takes its Colin27 slices from training slabs only.
"""
import argparse
import io
import os
import shutil
import sys

import numpy as np

SIZE = 96
MRICRON = "src/mricron-data/usr/share/mricron/templates"
ITKDATA = "src/insighttoolkit5-examples/usr/share/doc/insighttoolkit5-examples/examples/Data"
SKDATA = "src/python3-skimage/usr/lib/python3/dist-packages/skimage/data"
PLANES = ("axial", "coronal", "sagittal")
# AAL lobe code (third column of aal.nii.txt, divided by 1000) -> class name; others unused.
LOBES = {2: "frontal", 5: "occipital", 6: "parietal", 8: "temporal", 9: "cerebellum"}


def load_volume(path):
    """Volume in RAS orientation (x: left->right, y: posterior->anterior, z: inferior->superior),
    its voxel size and the world coordinate of voxel 0 along each axis (axis-aligned grids)."""
    import nibabel as nib
    img = nib.as_closest_canonical(nib.load(path))
    aff = img.affine
    if np.abs(aff[:3, :3] - np.diag(np.diag(aff[:3, :3]))).max() > 1e-6:
        sys.exit("%s: oblique grid not supported" % path)
    return np.asanyarray(img.dataobj), np.diag(aff)[:3].copy(), aff[:3, 3].copy()


def cut(vol, plane, i):
    """2D slice shown radiologically upright: anterior (axial) or superior (others) at the top."""
    if plane == "axial":
        return np.rot90(vol[:, :, i])
    if plane == "coronal":
        return np.rot90(vol[:, i, :])
    return np.rot90(vol[i, :, :])


AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def slab(world_mm):
    """'train', 'test' or None (guard band) for a slice at world_mm along its axis."""
    b, r = divmod(world_mm + 200.0, 20.0)
    if r < 4.0:
        return None
    return "test" if int(b) % 3 == 2 else "train"


def position(plane, world_mm):
    """File-name prefix of a slice: axis letter and MNI coordinate + 100 mm, fixed width, so
    that names sort by position (and `lvmmed probe`'s cross-validation folds, contiguous in
    name order, are slabs rather than variants of the same slices)."""
    return "%s%05.1f" % ("xyz"[AXIS[plane]], world_mm + 100.0)


def to_u8(a, lo_pct=0.5, hi_pct=99.5):
    a = np.asarray(a, dtype=np.float64)
    lo, hi = np.percentile(a, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((a - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def pad_square(a):
    h, w = a.shape
    n = max(h, w)
    out = np.zeros((n, n), a.dtype)
    out[(n - h) // 2:(n - h) // 2 + h, (n - w) // 2:(n - w) // 2 + w] = a
    return out


def resize(a, size=SIZE):
    from PIL import Image
    return np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR, reducing_gap=None))


def jitter(a, rng, max_rot=12.0, scale=(0.85, 1.15), shift=0.06):
    """A fixed random similarity transform (rotation, zoom, shift) of a square 8-bit image,
    drawn once per image, so that classes cannot be told apart by pixel alignment."""
    from PIL import Image
    n = a.shape[0]
    ang = np.deg2rad(rng.uniform(-max_rot, max_rot))
    s = rng.uniform(*scale)
    tx, ty = rng.uniform(-shift, shift, 2) * n
    c = (n - 1) / 2.0
    # PIL maps each output pixel (x, y) to the input pixel (a x + b y + c0, d x + e y + f0).
    ca, sa = np.cos(ang) / s, np.sin(ang) / s
    coeffs = (ca, sa, c - ca * (c + tx) - sa * (c + ty), -sa, ca, c + sa * (c + tx) - ca * (c + ty))
    im = Image.fromarray(a).transform((n, n), Image.AFFINE, coeffs, resample=Image.BILINEAR)
    return np.asarray(im)


def save_png(path, a):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8), "L").save(buf, "PNG", optimize=True)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def brain_fraction(mask2d):
    return float(np.count_nonzero(mask2d)) / mask2d.size


class Colin:
    """Colin27 variants on their grids plus a brain mask and AAL lobe labels on each grid."""

    def __init__(self, root):
        t = os.path.join(root, MRICRON)
        self.vols = {}
        for name in ("ch2", "ch2bet", "ch2better"):
            self.vols[name] = load_volume(os.path.join(t, name + ".nii.gz"))
        aal, avox, aorg = load_volume(os.path.join(t, "aal.nii.gz"))
        lut = np.zeros(int(aal.max()) + 1, np.uint8)
        for line in open(os.path.join(t, "aal.nii.txt")):
            p = line.split()
            if len(p) >= 3:
                lut[int(p[0])] = int(p[2]) // 1000
        lobe = lut[aal]
        bet = self.vols["ch2bet"][0] > 0
        self.lobe, self.mask = {}, {}
        for name, (vol, vox, org) in self.vols.items():
            self.lobe[name] = resample_nn(lobe, avox, aorg, vol.shape, vox, org)
            self.mask[name] = (vol > 0) if name != "ch2" else bet
            # ch2better is already brain-only; ch2 (head) uses ch2bet's mask (same grid).

    def slices(self, name, plane, step_mm):
        """(world_mm, index) of the slices of a variant along plane, every step_mm."""
        vol, vox, org = self.vols[name]
        ax = AXIS[plane]
        step = max(1, int(round(step_mm / vox[ax])))
        for i in range(0, vol.shape[ax], step):
            yield org[ax] + vox[ax] * i, i


def resample_nn(lab, lvox, lorg, shape, vox, org):
    """Nearest-neighbour label volume on another axis-aligned grid (world coordinates)."""
    idx = []
    for a in range(3):
        w = org[a] + vox[a] * np.arange(shape[a])
        j = np.rint((w - lorg[a]) / lvox[a]).astype(np.int64)
        idx.append(j)
    ok = [(j >= 0) & (j < lab.shape[a]) for a, j in enumerate(idx)]
    out = np.zeros(shape, lab.dtype)
    sub = lab[np.ix_(np.clip(idx[0], 0, lab.shape[0] - 1), np.clip(idx[1], 0, lab.shape[1] - 1),
                     np.clip(idx[2], 0, lab.shape[2] - 1))]
    keep = ok[0][:, None, None] & ok[1][None, :, None] & ok[2][None, None, :]
    out[keep] = sub[keep]
    return out


def reset(folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)


# ----------------------------------------------------------------------------- pretraining set
def make_pretrain(colin, root, out, rng):
    d = os.path.join(out, "pretrain")
    reset(d)
    n = 0
    # Colin27, training slabs only: whole head 1 mm, brain 1 mm, brain 0.5 mm.
    for name, step in (("ch2", 1.0), ("ch2bet", 3.0), ("ch2better", 2.0)):
        vol = colin.vols[name][0]
        for plane in PLANES:
            for w, i in colin.slices(name, plane, step):
                if slab(w) != "train" or brain_fraction(cut(colin.mask[name], plane, i)) < 0.08:
                    continue
                img = resize(pad_square(to_u8(cut(vol, plane, i))))
                save_png(os.path.join(d, "colin27_%s_%s_%s.png" % (name, plane, position(plane, w))), img)
                n += 1
    # ITK: a T1 volume of another subject (2 x 3 x 2 mm), resampled to square pixels by PIL.
    t = os.path.join(root, ITKDATA)
    vol, vox, _ = load_volume(os.path.join(t, "KmeansTest_T1UCharRaw.nii.gz"))
    vol = vol.astype(np.float32)
    for plane in PLANES:
        ax = AXIS[plane]
        for i in range(0, vol.shape[ax], 2 if ax == 1 else 3):
            s = cut(vol, plane, i)
            if float((s > 0.1 * vol.max()).mean()) < 0.1:
                continue
            rows_mm = vox[2] if plane != "axial" else vox[1]
            cols_mm = vox[0] if plane != "sagittal" else vox[1]
            u8 = to_u8(s)
            from PIL import Image
            h, w_ = u8.shape
            u8 = np.asarray(Image.fromarray(u8).resize((int(round(w_ * cols_mm)), int(round(h * rows_mm))),
                                                      Image.BILINEAR))
            save_png(os.path.join(d, "itk_kmeans_t1_%s_%03d.png" % (plane, i)), resize(pad_square(u8)))
            n += 1
    # ITK 2D MR slices and skimage pictures: the whole image plus a few fixed random crops.
    from PIL import Image
    pics = [(os.path.join(t, f), "itk_" + f[:-4].lower()) for f in
            ("BrainProtonDensitySlice.png", "BrainT1Slice.png", "BrainMidSagittalSlice.png",
             "FatMRISlice.png")]
    pics += [(os.path.join(root, SKDATA, f), "skimage_" + f.split(".")[0]) for f in
             ("cell.png", "microaneurysms.png", "retina.jpg", "ihc.png")]
    for path, stem in pics:
        g = np.asarray(Image.open(path).convert("L"))
        save_png(os.path.join(d, stem + "_full.png"), resize(pad_square(g)))
        n += 1
        h, w_ = g.shape
        for k in range(8):
            side = int(min(h, w_) * rng.uniform(0.35, 0.7))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w_ - side + 1)
            save_png(os.path.join(d, "%s_crop%d.png" % (stem, k)), resize(g[y:y + side, x:x + side]))
            n += 1
    print("pretrain: %d images" % n)


# ----------------------------------------------------------------------------- probe tasks
class TaskWriter:
    def __init__(self, out, task):
        self.d = os.path.join(out, task)
        reset(self.d)
        self.counts = {}

    def add(self, split, cls, stem, img):
        save_png(os.path.join(self.d, split, cls, stem + ".png"), img)
        key = (split, cls)
        self.counts[key] = self.counts.get(key, 0) + 1

    def report(self):
        classes = sorted({c for _, c in self.counts})
        for split in ("train", "test"):
            print("%-12s %-5s %s" % (os.path.basename(self.d), split,
                                     " ".join("%s=%d" % (c, self.counts.get((split, c), 0)) for c in classes)))


def cap(items, limit, rng):
    """At most limit items, chosen by a fixed random draw, kept in their original order."""
    if len(items) <= limit:
        return items
    keep = np.sort(rng.choice(len(items), limit, replace=False))
    return [items[k] for k in keep]


def task_plane(colin, out, rng, per_class=(80, 40)):
    """Which orientation a whole slice was cut in: axial, coronal or sagittal."""
    tw = TaskWriter(out, "probe_plane")
    for plane in PLANES:
        for split, limit in zip(("train", "test"), per_class):
            items = []
            for name in ("ch2", "ch2bet", "ch2better"):
                for w, i in colin.slices(name, plane, 2.0):
                    if slab(w) == split and brain_fraction(cut(colin.mask[name], plane, i)) >= 0.08:
                        items.append((name, w, i))
            for name, w, i in cap(items, limit, rng):
                img = jitter(resize(pad_square(to_u8(cut(colin.vols[name][0], plane, i)))), rng)
                tw.add(split, plane, "%s_%s" % (position(plane, w), name), img)
    tw.report()


def patch_pools(colin, rng, step_mm=2.0, tries=16, patch_mm=(40.0, 56.0)):
    """Square patches of axial slices labeled by their dominant AAL lobe: the lobe holding at
    least 60% of the labeled voxels of the patch's central half, which must be at least 40%
    labeled. Returns {(split, lobe name): [(variant, world z, slice, top, left, side, slice8)]}."""
    pools = {(s, c): [] for s in ("train", "test") for c in LOBES.values()}
    for name in ("ch2", "ch2bet", "ch2better"):
        vol, vox, _ = colin.vols[name]
        for w, k in colin.slices(name, "axial", step_mm):
            split = slab(w)
            if split is None:
                continue
            lab = cut(colin.lobe[name], "axial", k)
            if np.count_nonzero(lab) < 500:
                continue
            img8 = to_u8(cut(vol, "axial", k))
            ys, xs = np.nonzero(lab)
            for _ in range(tries):
                side = int(round(rng.uniform(*patch_mm) / vox[0]))
                j = rng.integers(len(ys))
                y0, x0 = ys[j] - side // 2, xs[j] - side // 2
                if y0 < 0 or x0 < 0 or y0 + side > lab.shape[0] or x0 + side > lab.shape[1]:
                    continue
                q = side // 4
                centre = lab[y0 + q:y0 + side - q, x0 + q:x0 + side - q]
                vals, cnt = np.unique(centre[centre > 0], return_counts=True)
                if cnt.sum() < 0.4 * centre.size:
                    continue
                top = vals[np.argmax(cnt)]
                if top not in LOBES or cnt.max() < 0.6 * cnt.sum():
                    continue
                pools[(split, LOBES[top])].append((name, w, k, y0, x0, side, img8))
    return pools


def write_patches(tw, pools, classes, per_class, rng):
    for (split, cls), items in sorted(pools.items()):
        if cls not in classes:
            continue
        limit = per_class[0] if split == "train" else per_class[1]
        for n, (name, w, k, y0, x0, side, img8) in enumerate(cap(items, limit, rng)):
            img = resize(img8[y0:y0 + side, x0:x0 + side])
            tw.add(split, cls, "%s_%s_%03d" % (position("axial", w), name, n), img)
    tw.report()


def task_lobe(colin, out, rng, per_class=(50, 30)):
    """Dominant AAL lobe of a patch of an axial slice: five classes."""
    write_patches(TaskWriter(out, "probe_lobe"), patch_pools(colin, rng), set(LOBES.values()),
                  per_class, rng)


def task_lobe2(colin, out, rng, per_class=(110, 60)):
    """Frontal or parietal lobe patch: two classes with similar tissue, told apart by anatomy."""
    write_patches(TaskWriter(out, "probe_lobe2"), patch_pools(colin, rng), {"frontal", "parietal"},
                  per_class, rng)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", required=True, help="folder with src/<package>/ trees")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "data", "demo"))
    ap.add_argument("--tasks", default="plane,lobe,lobe2")
    ap.add_argument("--no-pretrain", action="store_true")
    ap.add_argument("--seed", type=int, default=20240601)
    a = ap.parse_args()
    colin = Colin(a.data_root)
    todo = [t for t in a.tasks.split(",") if t]
    makers = {"plane": task_plane, "lobe": task_lobe, "lobe2": task_lobe2}
    for t in todo:
        if t not in makers:
            sys.exit("unknown task %r (plane, lobe, lobe2)" % t)
    if not a.no_pretrain:
        make_pretrain(colin, a.data_root, a.out, np.random.default_rng(a.seed))
    for t in todo:  # each task its own stream: a subset of tasks gives the same images
        makers[t](colin, a.out, np.random.default_rng(a.seed + 1 + list(makers).index(t)))


if __name__ == "__main__":
    main()
