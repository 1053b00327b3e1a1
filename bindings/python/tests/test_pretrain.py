"""lvmmed.Pretrainer: options, lent components, steps, checkpoints and their errors."""

import os
import struct
import tempfile
import unittest

from _support import lvmmed

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None


def views(seed, batch=16, size=32, grid=1):
    rng = np.random.default_rng(seed)
    vs = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    vt = vs + 0.3 * rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    gs = rng.random((batch, grid, grid, 2), dtype=np.float32)
    gt = rng.random((batch, grid, grid, 2), dtype=np.float32)
    return vs, vt, gs, gt


@unittest.skipIf(np is None, "needs numpy")
class PretrainerTest(unittest.TestCase):
    def setUp(self):
        self.ctx = lvmmed.Context(threads=2, seed=7)
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()
        self.ctx.close()

    def make(self, **kw):
        kw.setdefault("arch", "resnet18")
        return lvmmed.Pretrainer(self.ctx, **kw)

    def test_defaults_and_options(self):
        with lvmmed.Pretrainer(self.ctx) as pt:
            self.assertEqual(pt.arch, "resnet50")
            self.assertEqual(pt["optimizer"], "adam")  # pt.optimizer is the Optimizer itself
            self.assertEqual(pt.batch, 32)
            self.assertTrue(pt.local_term)
            self.assertFalse(pt.frozen_bn)
            self.assertEqual(pt.affinity.group_size, 16)
            self.assertEqual(pt.affinity.knn, 5)
            self.assertAlmostEqual(pt.affinity.alpha, 0.8)
            self.assertEqual(pt.imle["lambda"], 80)
            self.assertAlmostEqual(pt.optimizer["lr"], 2e-3)
            self.assertEqual(pt.backbone.projector_dim, 128)
            self.assertEqual(pt.steps, 0)
            self.assertTrue(np.isnan(pt.stat("loss")))
            with self.assertRaises(lvmmed.OutOfRangeError):
                pt.batch = 1
            with self.assertRaises(lvmmed.OutOfRangeError):
                pt.set_option("arch", 7)
            with self.assertRaises(KeyError):
                pt.stat("nonsense")

    def test_replacing_arch_closes_lent_components(self):
        pt = self.make(arch="resnet50")
        old = pt.backbone
        pt.arch = "resnet18"
        self.assertTrue(old.closed)  # lent objects die with the component they lend
        self.assertEqual(pt.backbone.feature_dim, 512)
        pt.close()
        with self.assertRaises(ValueError):
            pt.step(*views(0))

    def test_step_trains_and_counts(self):
        with self.make() as pt:
            w0 = pt.backbone.get("conv1.weight").copy()
            loss = pt.step(*views(1))
            self.assertTrue(0 <= loss <= 32 and loss % 2 == 0)
            self.assertEqual(pt.steps, 1)
            st = pt.stats()
            self.assertEqual(st["images"], 16)
            self.assertEqual(st["graphs"], 1)
            self.assertGreater(st["seconds_backbone"], 0)
            self.assertFalse(np.array_equal(w0, pt.backbone.get("conv1.weight")))
            with self.assertRaises(lvmmed.StateError):  # the structure is fixed now
                pt.arch = "resnet34"
            with self.assertRaises(lvmmed.StateError):
                pt.update()  # no pending gradients

    def test_forward_backward_leaves_gradients(self):
        with self.make() as pt:
            w0 = pt.backbone.get("conv1.weight").copy()
            pt.forward_backward(*views(2))
            self.assertTrue(np.array_equal(w0, pt.backbone.get("conv1.weight")))
            self.assertGreater(np.abs(pt.backbone.grad("conv1.weight")).max(), 0)
            gcn = {p.name: p for p in pt.affinity.parameters()}
            self.assertGreater(np.abs(gcn["gcn.0.weight"].grad).max(), 0)
            pt.update()
            self.assertEqual(pt.steps, 1)

    def test_bad_inputs(self):
        with self.make() as pt:
            vs, vt, gs, gt = views(3)
            with self.assertRaises(ValueError):
                pt.step(vs[:, :1], vt[:, :1], gs, gt)
            with self.assertRaises(ValueError):
                pt.step(vs, vt[:8], gs, gt)
            with self.assertRaises(ValueError):
                pt.step(vs, vt, gs, None)
            with self.assertRaises(lvmmed.InvalidArgumentError) as cm:
                pt.step(vs, vt)  # local term without grids
            self.assertIn("grids", str(cm.exception))
            with self.assertRaises(lvmmed.ShapeError):
                pt.step(vs[:8], vt[:8], gs[:8], gt[:8])  # fewer images than one group
            bad = vs.copy()
            bad[0, 0, 0, 0] = np.nan
            with self.assertRaises(lvmmed.NumericError):
                pt.step(bad, vt, gs, gt)
            self.assertEqual(pt.steps, 0)
            pt.local_term = False
            self.assertTrue(np.isfinite(pt.step(vs, vt)))

    def test_checkpoint_roundtrip_continues_identically(self):
        path = os.path.join(self.tmp.name, "ck.safetensors")
        a = self.make(optimizer="sgd")
        a.optimizer["momentum"] = 0.8
        a.affinity.alpha = 0.7
        a.imle["noise_scale"] = 0.5
        for s in range(2):
            a.step(*views(10 + s))
        a.save(path)
        saved = a.backbone.get("layer1.0.conv1.weight").copy()
        self.assertEqual(lvmmed.read_checkpoint_meta(self.ctx, path, "step"), "2")
        self.assertEqual(lvmmed.read_checkpoint_meta(self.ctx, path, "lvmmed_arch"), "resnet18")
        with self.assertRaises(lvmmed.NotFoundError):
            lvmmed.read_checkpoint_meta(self.ctx, path, "nope")
        b = lvmmed.Pretrainer(self.ctx)  # resnet50 with defaults: the checkpoint replaces it all
        b.load(path)
        self.assertEqual(b.arch, "resnet18")
        self.assertEqual(b.optimizer.method, "sgd")
        self.assertAlmostEqual(b.optimizer["momentum"], 0.8)
        self.assertAlmostEqual(b.affinity.alpha, 0.7)
        self.assertEqual(b.imle.noise_counter, 2)
        self.assertEqual(b.steps, 2)
        for s in range(2):
            la, lb = a.step(*views(20 + s)), b.step(*views(20 + s))
            self.assertEqual(la, lb)
        for name in ("conv1.weight", "layer4.1.bn2.running_var", "projector.weight"):
            np.testing.assert_array_equal(a.backbone.get(name), b.backbone.get(name))
        ga = {p.name: p.value for p in a.affinity.parameters()}
        gb = {p.name: p.value for p in b.affinity.parameters()}
        for name in ga:
            np.testing.assert_array_equal(ga[name], gb[name])
        # the backbone part is a torchvision-named state dict: Backbone.load reads it
        with lvmmed.Backbone(self.ctx, "resnet18") as bb:
            bb.load(path)
            np.testing.assert_array_equal(bb.get("layer1.0.conv1.weight"), saved)
        a.close()
        b.close()

    def test_bad_checkpoints_change_nothing(self):
        good = os.path.join(self.tmp.name, "good.safetensors")
        with self.make() as a:
            a.step(*views(4))
            a.save(good)
        blob = open(good, "rb").read()
        n = struct.unpack("<Q", blob[:8])[0]
        cases = {
            "truncated": blob[: len(blob) // 2],
            "garbage": b"\x00" * 64,
            "bad_format": blob.replace(b'"lvmmed_checkpoint":"1"', b'"lvmmed_checkpoint":"9"'),
            "bad_config": blob.replace(b'"knn\\":5.0', b'"knn\\":-5.0'),
        }
        with lvmmed.Backbone(self.ctx, "resnet18") as plain:  # a backbone file is no checkpoint
            p = os.path.join(self.tmp.name, "plain.safetensors")
            plain.save(p)
            cases["plain"] = open(p, "rb").read()
        self.assertIn(b'"lvmmed_checkpoint":"9"', cases["bad_format"])
        self.assertIn(b'"knn\\":-5.0', cases["bad_config"], blob[:n + 8][-400:])
        with self.make(arch="resnet34") as pt:
            before = pt.backbone.get("conv1.weight").copy()
            for name, data in cases.items():
                path = os.path.join(self.tmp.name, name + ".safetensors")
                with open(path, "wb") as f:
                    f.write(data)
                with self.assertRaises(lvmmed.LvmmedError, msg=name) as cm:
                    pt.load(path)
                self.assertIn(name, str(cm.exception))
                self.assertEqual(pt.arch, "resnet34")
                np.testing.assert_array_equal(before, pt.backbone.get("conv1.weight"))
            with self.assertRaises(lvmmed.LvmmedIOError):
                pt.load(os.path.join(self.tmp.name, "missing.safetensors"))


if __name__ == "__main__":
    unittest.main()
