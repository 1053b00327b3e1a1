#!/usr/bin/python3
"""`lvmmed probe` and `lvmmed embed --data` against independent numpy/SciPy references.

usage: test_probe_cli.py PATH/TO/lvmmed

The probe's maths runs on synthetic features given as .npy (--features-npy):
  - the logistic-regression probe against scipy.optimize.minimize on the same objective
    (loss value, probabilities, predictions, accuracy);
  - k-NN against a numpy implementation (cosine similarity, stable order, vote ties broken
    by summed similarity);
  - the AUC against the Mann-Whitney statistic of the printed probabilities (with ties).
Images: a tiny folder task with a random-weight ResNet-18 written here as safetensors,
`embed --data` against the same backbone on numpy-preprocessed pixels (`embed --input`),
file order and error paths (missing folder, one class, unknown test class, bad image).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import rankdata

LVMMED = None
MEAN = np.array([0.485, 0.456, 0.406])  # augment.h defaults (LVMMED_AUG_MEAN_*, STD_*)
STD = np.array([0.228, 0.224, 0.225])


def run(*args):
    return subprocess.run([LVMMED, *args], capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------- references
def ref_logreg(x, y, k, l2):
    """Minimises the probe's objective with SciPy; returns (loss, probability function)."""
    x = x.astype(np.float64)
    mu, sd = x.mean(0), x.std(0)
    inv = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 1.0)
    z = (x - mu) * inv
    n, d = z.shape
    onehot = np.eye(k)[y]

    def f(theta):
        w, b = theta[:d * k].reshape(k, d), theta[d * k:]
        logits = z @ w.T + b
        lse = logsumexp(logits, axis=1)
        p = np.exp(logits - lse[:, None])
        loss = (lse - logits[np.arange(n), y]).mean() + 0.5 * l2 * (w ** 2).sum()
        g = p - onehot
        return loss, np.concatenate([(g.T @ z / n + l2 * w).ravel(), g.mean(0)])

    res = minimize(f, np.zeros((d + 1) * k), jac=True, method="L-BFGS-B",
                   options={"maxiter": 50000, "gtol": 1e-12, "ftol": 1e-16})
    w, b = res.x[:d * k].reshape(k, d), res.x[d * k:]

    def proba(xt):
        logits = ((xt.astype(np.float64) - mu) * inv) @ w.T + b
        return np.exp(logits - logsumexp(logits, axis=1)[:, None])

    return res.fun, proba


def ref_knn(xtr, ytr, xte, k, ncls, ties_to_lowest=False):
    def unit(a):
        a = a.astype(np.float64)
        nrm = np.linalg.norm(a, axis=1, keepdims=True)
        return np.where(nrm > 0, a / np.where(nrm > 0, nrm, 1.0), 0.0)

    sim = unit(xte) @ unit(xtr).T
    k = min(k, len(ytr))
    out = []
    for s in sim:
        idx = np.argsort(-s, kind="stable")[:k]
        votes = np.bincount(ytr[idx], minlength=ncls)
        sums = np.bincount(ytr[idx], weights=s[idx], minlength=ncls)
        if ties_to_lowest:  # the rule the probe must NOT follow (proves ties occur)
            sums = np.zeros(ncls)
        out.append(max(range(ncls), key=lambda c: (votes[c], sums[c], -c)))
    return np.array(out)


def mann_whitney_auc(score, positive):
    r = rankdata(score)  # midranks for ties
    n1, n0 = positive.sum(), (~positive).sum()
    return (r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


# ----------------------------------------------------------------------------- weights
def resnet18_state(rng):
    """A torchvision-layout ResNet-18 state dict with random weights and BN statistics."""
    t = {}

    def conv(p, o, i, k):
        t[p + ".weight"] = rng.normal(0, np.sqrt(2.0 / (i * k * k)), (o, i, k, k))

    def bn(p, c):
        t[p + ".weight"] = rng.uniform(0.5, 1.5, c)
        t[p + ".bias"] = rng.normal(0, 0.1, c)
        t[p + ".running_mean"] = rng.normal(0, 0.1, c)
        t[p + ".running_var"] = rng.uniform(0.5, 2.0, c)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for layer, c in enumerate([64, 128, 256, 512], 1):
        for blk in range(2):
            p = "layer%d.%d" % (layer, blk)
            conv(p + ".conv1", c, cin if blk == 0 else c, 3)
            bn(p + ".bn1", c)
            conv(p + ".conv2", c, c, 3)
            bn(p + ".bn2", c)
            if blk == 0 and layer > 1:
                conv(p + ".downsample.0", c, cin, 1)
                bn(p + ".downsample.1", c)
        cin = c
    return t


def write_safetensors(path, tensors, metadata=None):
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(a)), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ----------------------------------------------------------------------------- eval transform
def resize_bilinear(a, size):
    """Half-pixel-centre bilinear resize without antialiasing (torch's align_corners=False)."""
    def axis(n_in):
        src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0
    r0, r1, fr = axis(a.shape[0])
    c0, c1, fc = axis(a.shape[1])
    rows = a[r0] * (1 - fr)[:, None] + a[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


def eval_view(path, size):
    a = np.asarray(Image.open(path), dtype=np.float64) / 255.0
    if a.ndim == 3:
        a = 0.2989 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    h, w = a.shape
    s = min(h, w)
    a = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if s != size:
        a = resize_bilinear(a, size)
    a = a * (0.2989 + 0.587 + 0.114)  # the views' final grayscale of replicated gray (torchvision's)
    return np.stack([(a - MEAN[c]) / STD[c] for c in range(3)])


class ProbeMaths(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def save(self, name, a):
        p = os.path.join(self.tmp.name, name)
        np.save(p, a)
        return p

    def probe(self, xtr, ytr, xte, yte, *opts, rc=0):
        files = [self.save(n, a) for n, a in (("xtr.npy", xtr), ("ytr.npy", ytr), ("xte.npy", xte), ("yte.npy", yte))]
        p = run("probe", "--json", "--predictions", "--features-npy", *files, *opts)
        self.assertEqual(p.returncode, rc, p.stderr)
        return json.loads(p.stdout) if rc == 0 else p

    @staticmethod
    def clusters(rng, n, d, k, spread=1.0):
        centres = rng.normal(0, 1, (k, d))
        y = rng.integers(0, k, n)
        return (centres[y] + spread * rng.normal(0, 1, (n, d))).astype(np.float32), y

    def check_logreg(self, xtr, ytr, xte, yte, labels, l2, ptol):
        k = len(labels)
        out = self.probe(xtr, labels[ytr].astype(np.float64), xte, labels[yte].astype(np.float64),
                         "--l2", repr(l2), "--knn", "5")
        self.assertEqual(out["classes"], [str(v) for v in labels])
        self.assertTrue(out["linear_converged"])
        loss, proba = ref_logreg(xtr, ytr, k, l2)
        self.assertAlmostEqual(out["linear_loss"], loss, delta=1e-9 * max(1.0, abs(loss)))
        ours = np.array(out["proba"]).reshape(-1, k)
        ref = proba(xte)
        self.assertLess(np.abs(ours - ref).max(), ptol)
        pred = np.array(out["linear_pred"])
        top2 = np.sort(ref, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 10 * ptol  # no near-tie: the argmax must agree
        np.testing.assert_array_equal(pred[clear], ref.argmax(1)[clear])
        self.assertAlmostEqual(out["linear_accuracy"], float((pred == yte).mean()), places=12)
        return out

    def test_logreg_matches_scipy(self):
        rng = np.random.default_rng(1)
        x, y = self.clusters(rng, 200, 12, 3, spread=1.3)
        out = self.check_logreg(x[:140], y[:140], x[140:], y[140:], np.array([0, 3, 7]), 0.05, 1e-5)
        self.assertEqual(out["n_train"], 140)
        self.assertEqual(out["n_test"], 60)
        self.assertGreater(out["linear_accuracy"], 0.6)

    def test_logreg_more_features_than_rows(self):
        rng = np.random.default_rng(2)
        x, y = self.clusters(rng, 90, 64, 2, spread=2.0)
        x[:, 5] = 3.0  # a constant feature: standardised with scale 1
        self.check_logreg(x[:50], y[:50], x[50:], y[50:], np.array([1, 2]), 0.01, 1e-4)

    def test_knn_matches_numpy(self):
        rng = np.random.default_rng(3)
        x, y = self.clusters(rng, 160, 10, 4, spread=1.5)
        x[120] = 0.0  # a zero row: similarity 0 to everything
        for knn in (1, 4, 7, 500):
            out = self.probe(x[:100], y[:100].astype(np.float64), x[100:], y[100:].astype(np.float64),
                             "--knn", str(knn), "--l2", "0.1")
            ref = ref_knn(x[:100], y[:100], x[100:], knn, 4)
            np.testing.assert_array_equal(np.array(out["knn_pred"]), ref, "k = %d" % knn)
            self.assertAlmostEqual(out["knn_accuracy"], float((ref == y[100:]).mean()), places=12)
            self.assertEqual(out["knn"], min(knn, 100))
        # two classes and an even k: tied votes, decided by the summed similarity (the data
        # must contain ties that the lowest class would decide otherwise)
        y2 = y % 2
        for knn in (2, 4):
            out = self.probe(x[:100], y2[:100].astype(np.float64), x[100:], y2[100:].astype(np.float64),
                             "--knn", str(knn), "--l2", "0.1")
            ref = ref_knn(x[:100], y2[:100], x[100:], knn, 2)
            np.testing.assert_array_equal(np.array(out["knn_pred"]), ref, "k = %d" % knn)
            self.assertTrue((ref != ref_knn(x[:100], y2[:100], x[100:], knn, 2, ties_to_lowest=True)).any())

    def test_auc_matches_mann_whitney(self):
        rng = np.random.default_rng(4)
        x, y = self.clusters(rng, 150, 6, 2, spread=2.5)
        xte, yte = x[100:], y[100:]
        # duplicated rows, some with the other label: tied scores within and across classes
        xte = np.concatenate([xte, xte[:20], xte[:5]])
        yte = np.concatenate([yte, yte[:20], 1 - yte[:5]])
        out = self.probe(x[:100], y[:100].astype(np.float64), xte, yte.astype(np.float64), "--l2", "0.02")
        score = np.array(out["proba"]).reshape(-1, 2)[:, 1]
        self.assertAlmostEqual(out["auc"], mann_whitney_auc(score, yte == 1), delta=1e-12)
        rect = sum(((score[yte == 1] > v) + 0.0).sum() for v in score[yte == 0])
        self.assertNotAlmostEqual(out["auc"], rect / ((yte == 1).sum() * (yte == 0).sum()), delta=1e-6)
        _, proba = ref_logreg(x[:100], y[:100], 2, 0.02)
        self.assertAlmostEqual(out["auc"], mann_whitney_auc(proba(xte)[:, 1], yte == 1), delta=1e-9)
        self.assertTrue(0.5 < out["auc"] <= 1.0)
        # one class in the test set: no AUC
        out = self.probe(x[:100], y[:100].astype(np.float64), xte[yte == 0], np.zeros((yte == 0).sum()))
        self.assertIsNone(out["auc"])

    def test_auto_l2_is_deterministic(self):
        rng = np.random.default_rng(5)
        x, y = self.clusters(rng, 120, 16, 3, spread=1.5)
        a = self.probe(x[:80], y[:80].astype(np.float64), x[80:], y[80:].astype(np.float64))
        b = self.probe(x[:80], y[:80].astype(np.float64), x[80:], y[80:].astype(np.float64))
        self.assertEqual(a, b)
        self.assertTrue(a["l2_auto"])
        self.assertIn(a["l2"], [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
        self.assertTrue(0.0 <= a["cv_accuracy"] <= 1.0)

    def test_bad_features(self):
        rng = np.random.default_rng(6)
        x, y = self.clusters(rng, 40, 5, 2)
        yf = y.astype(np.float64)
        bad = yf.copy()
        bad[3] = 0.5
        p = self.probe(x, bad, x, yf, rc=1)
        self.assertIn("not a non-negative integer", p.stderr)
        p = self.probe(x, yf[:-1], x, yf, rc=1)
        self.assertIn("labels", p.stderr)
        p = self.probe(x, np.zeros(40), x, yf, rc=1)
        self.assertIn("only one class", p.stderr)
        p = self.probe(x, yf, x, yf + 5, rc=1)
        self.assertIn("not a class of the training set", p.stderr)
        p = self.probe(x, yf, x[:, :3], yf, rc=1)
        self.assertIn("features per row", p.stderr)


class ProbeImages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.tmp.name
        rng = np.random.default_rng(7)
        cls.weights = os.path.join(root, "w.safetensors")
        state = resnet18_state(rng)
        state["lvmmed.optimizer.step"] = np.array([3.0])  # a checkpoint's own state: ignored
        # no lvmmed_arch: inferred from the names; the view size of a training checkpoint
        write_safetensors(cls.weights, state, {"image_height": "32", "image_width": "32"})
        cls.data = os.path.join(root, "set")
        # class 'bright': a bright disc; class 'dark': a dark disc; sizes vary (non-square too)
        for split, n in (("train", 4), ("test", 2)):
            for cls_name, level in (("bright", 220), ("dark", 60)):
                d = os.path.join(cls.data, split, cls_name)
                os.makedirs(d)
                for i in range(n):
                    h, w = [(32, 40), (48, 48), (36, 30)][i % 3]
                    yy, xx = np.mgrid[:h, :w]
                    img = rng.integers(0, 40, (h, w))
                    img[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2] = level
                    Image.fromarray(img.astype(np.uint8)).save(os.path.join(d, "im%02d.png" % i))
        # an RGB image in a sub-folder: found recursively, converted to gray
        sub = os.path.join(cls.data, "train", "bright", "more")
        os.makedirs(sub)
        Image.fromarray(rng.integers(0, 255, (34, 34, 3)).astype(np.uint8), "RGB").save(os.path.join(sub, "rgb.png"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, *p):
        return os.path.join(self.data, *p)

    def test_probe_on_folders(self):
        args = ["probe", "--weights", self.weights, "--train", self.path("train"), "--test",
                self.path("test"), "--knn", "3", "--threads", "2"]  # image size: the file's
        p = run(*args, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")  # the checkpoint's lvmmed.* tensor is not reported
        out = json.loads(p.stdout)
        self.assertEqual(out["classes"], ["bright", "dark"])
        self.assertEqual((out["n_train"], out["n_test"]), (9, 4))
        self.assertEqual(out["train_counts"], [5, 4])
        self.assertEqual((out["arch"], out["image_size"], out["feature_dim"]), ("resnet18", 32, 512))
        for key in ("linear_accuracy", "knn_accuracy", "auc"):
            self.assertTrue(0.0 <= out[key] <= 1.0, key)
        # a random backbone, and the summary instead of JSON
        p = run("probe", "--random", "--arch", "resnet18", "--seed", "3", "--train", self.path("train"),
                "--test", self.path("test"), "--image-size", "32", "--knn", "3")
        self.assertEqual(p.returncode, 0, p.stderr)
        for line in ("backbone   resnet18 (random initialisation), 32 x 32 input, 512 features",
                     "train      9 images: bright 5, dark 4", "test       4 images: bright 2, dark 2"):
            self.assertIn(line, p.stdout)
        for word in ("linear     accuracy", "k-NN       accuracy", "AUC        "):
            self.assertIn(word, p.stdout)

    def test_embed_data_matches_input(self):
        out = os.path.join(self.tmp.name, "f.npy")
        p = run("embed", "--weights", self.weights, "--data", self.path("train"), "--out", out,
                "--image-size", "32")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.tmp.name, "f.txt")) as f:
            files = [line.rstrip("\n") for line in f]
        expect = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(self.path("train")) for f in fs)
        self.assertEqual(sorted(files), expect)
        self.assertEqual(files, sorted(files))  # sorted by path
        feat = np.load(out)
        self.assertEqual(feat.shape, (9, 512))
        self.assertEqual(feat.dtype, np.float32)
        x = np.stack([eval_view(f, 32) for f in files]).astype(np.float32)
        xin = os.path.join(self.tmp.name, "x.npy")
        np.save(xin, x)
        ref = os.path.join(self.tmp.name, "r.npy")
        p = run("embed", "--weights", self.weights, "--input", xin, "--out", ref)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = np.load(ref)
        self.assertLess(np.abs(feat - r).max(), 1e-5 * np.abs(r).max())
        # --csv: index,path rows
        csv = os.path.join(self.tmp.name, "f.csv")
        p = run("embed", "--weights", self.weights, "--data", self.path("train"), "--out", out, "--csv", csv,
                "--image-size", "32")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(csv) as f:
            rows = f.read().splitlines()
        self.assertEqual(rows[0], "index,path")
        self.assertEqual(rows[1:], ["%d,%s" % (i, f) for i, f in enumerate(files)])
        np.testing.assert_array_equal(np.load(out), feat)

    def test_folder_errors(self):
        base = ["--random", "--image-size", "32"]
        p = run("probe", *base, "--train", self.path("nope"), "--test", self.path("test"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope", p.stderr)
        one = os.path.join(self.tmp.name, "one")
        os.makedirs(os.path.join(one, "only"))
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(os.path.join(one, "only", "a.png"))
        p = run("probe", *base, "--train", one, "--test", self.path("test"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("only one class", p.stderr)
        p = run("probe", *base, "--train", self.path("train"), "--test", one)
        self.assertEqual(p.returncode, 1)
        self.assertIn("'only' is not a class of the training set", p.stderr)
        empty = os.path.join(self.tmp.name, "empty")
        os.makedirs(os.path.join(empty, "bright"))
        p = run("probe", *base, "--train", self.path("train"), "--test", empty)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no images", p.stderr)
        p = run("embed", "--data", empty, "--out", os.path.join(self.tmp.name, "e.npy"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("no image files", p.stderr)
        bad = os.path.join(self.tmp.name, "bad")  # the first image is broken: fails at once
        os.makedirs(os.path.join(bad, "bright"))
        os.makedirs(os.path.join(bad, "dark"))
        with open(os.path.join(bad, "bright", "broken.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(os.path.join(bad, "dark", "a.png"))
        p = run("probe", *base, "--train", bad, "--test", self.path("test"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("broken.png", p.stderr)
        p = run("probe", "--weights", os.path.join(self.tmp.name, "missing.safetensors"),
                "--train", self.path("train"), "--test", self.path("test"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.safetensors", p.stderr)
        p = run("probe", "--weights", self.weights, "--arch", "resnet50", "--train", self.path("train"),
                "--test", self.path("test"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("resnet18", p.stderr)

    def test_usage(self):
        t, s = self.path("train"), self.path("test")
        for args in ([], ["--train", t, "--test", s], ["--random", "--weights", "w", "--train", t, "--test", s],
                     ["--random", "--train", t], ["--random", "--train", t, "--test", s, "--l2", "-1"],
                     ["--random", "--train", t, "--test", s, "--knn", "0"],
                     ["--random", "--train", t, "--test", s, "--bogus"],
                     ["--random", "--train", t, "--test", s, "--predictions"],
                     ["--features-npy", "a", "b"]):
            self.assertEqual(run("probe", *args).returncode, 2, args)
        p = run("probe", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--features-npy", p.stdout)
        self.assertEqual(run("embed", "--data", t, "--input", "x.npy", "--out", "f.npy").returncode, 2)
        self.assertEqual(run("embed", "--data", t, "--out", "f.npy", "--feature-map", "m.npy").returncode, 2)
        self.assertIn("--csv", run("embed", "--help").stdout)


if __name__ == "__main__":
    LVMMED = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0], "-v"])
