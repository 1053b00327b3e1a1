#!/usr/bin/python3
"""LVM-Med pretraining from Python: a few hundred steps, then pictures.

Trains a ResNet-18 on the bundled MRI slices, saves the loss curve (loss.png) and a
2-D PCA of the frozen embeddings of a labeled task coloured by label (pca.png), for
the pretrained and the randomly initialised backbone side by side.

usage: pretrain_demo.py [--steps 300] [--size 64] [--out DIR] [--data data/demo/pretrain]
                        [--task data/demo/probe_plane/test]
Run from the repository root with PYTHONPATH=bindings/python (and LVMMED_LIBRARY for a
build tree); needs numpy and matplotlib (Debian: python3-matplotlib).
"""

import argparse
import os

import lvmmed  # first: it picks the OpenBLAS kernels before numpy loads OpenBLAS

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def eval_augmenter(ctx, size):
    """The whole image, resized: no crop, flip, colour or blur."""
    return lvmmed.Augmenter(ctx, size=size, scale_min=1.0, scale_max=1.0, ratio_min=1.0, ratio_max=1.0,
                            flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


def embed(ctx, backbone, folder, size):
    """Pooled features and labels (sub-folder names) of every image under folder."""
    aug = eval_augmenter(ctx, size)
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    feats, labels = [], []
    backbone.set_option(1, 0)  # eval mode: running statistics
    for k, c in enumerate(classes):
        ds = lvmmed.Dataset(ctx, aug, workers=0, shuffle=False)
        ds.add_folder(os.path.join(folder, c))
        for batch in ds.iter_epoch(0, 64):
            pooled, _ = backbone.forward(batch.views_s, feature_map=False)
            feats.append(pooled.copy())
            labels += [k] * len(pooled)
        ds.close()
    backbone.set_option(1, 1)
    return np.concatenate(feats), np.array(labels), classes


def pca2(x):
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--data", default="data/demo/pretrain")
    p.add_argument("--task", default="data/demo/probe_plane/test")
    p.add_argument("--out", default="demo-python")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    with lvmmed.Context(threads=a.threads, seed=0) as ctx:
        pt = lvmmed.Pretrainer(ctx, arch="resnet18", batch=a.batch)
        # the settings of scripts/main.sh: they learn within minutes on two cores
        pt.affinity.gcn_layers = 0
        pt.imle.noise_scale = 0.1
        pt.optimizer["lr"] = 1e-3
        random_bb = lvmmed.Backbone(ctx, "resnet18")  # same seed: the same initial weights
        gh, _ = pt.grid_shape(a.size, a.size)
        aug = lvmmed.Augmenter(ctx, size=a.size, grid=gh, scale_min=0.3, jitter_p=0.0, grayscale_p=0.0)
        ds = lvmmed.Dataset(ctx, aug, workers=1)
        ds.add_folder(a.data)
        losses = []
        for step in range(a.steps):
            losses.append(pt.step_dataset(ds))
            if (step + 1) % 25 == 0:
                print(f"step {step + 1}/{a.steps}  loss {np.mean(losses[-25:]):.2f}", flush=True)
        pt.save(os.path.join(a.out, "pretrained.safetensors"))

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(losses, lw=0.6, alpha=0.5, label="step")
        w = min(25, len(losses))
        ax.plot(np.arange(w - 1, len(losses)), np.convolve(losses, np.ones(w) / w, "valid"), label=f"mean of {w}")
        ax.set_xlabel("step")
        ax.set_ylabel("Hamming loss")
        ax.set_title(f"LVM-Med pretraining, resnet18 at {a.size}px")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "loss.png"), dpi=120)

        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, (name, bb) in zip(axes, (("LVM-Med pretrained", pt.backbone), ("random init", random_bb))):
            x, y, classes = embed(ctx, bb, a.task, a.size)
            xy = pca2(x)
            for k, c in enumerate(classes):
                ax.scatter(xy[y == k, 0], xy[y == k, 1], s=6, label=c)
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0].legend(markerscale=3, fontsize=8)
        fig.suptitle("PCA of frozen embeddings, coloured by label")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "pca.png"), dpi=120)
        print(f"wrote {a.out}/loss.png, {a.out}/pca.png and {a.out}/pretrained.safetensors")
        random_bb.close()
        pt.close()


if __name__ == "__main__":
    main()
