"""Dataset through the bindings: listing, epochs, batches equal to the Augmenter's views, bad files.

Fixtures: small PNGs written with PIL into a temporary folder.
"""

import os
import tempfile
import unittest

import numpy as np

import _support  # noqa: F401  (puts the bindings on sys.path)
import lvmmed

try:
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover - CI installs python3-pil
    PILImage = None

SIZE, GRID = 12, 3


@unittest.skipIf(PILImage is None, "needs python3-pil")
class DatasetTest(unittest.TestCase):
    def setUp(self):
        self.messages = []
        self.ctx = lvmmed.Context(threads=2, seed=4, log_level="warn",
                                  log_callback=lambda level, msg: self.messages.append((level, msg)))
        self.addCleanup(self.ctx.close)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        root = self.tmp.name
        rng = np.random.default_rng(8)
        os.makedirs(os.path.join(root, "sub"))
        self.files = []
        for name in ("b.png", "a.png", "sub/c.png", "sub/d.png", "e.PNG"):
            path = os.path.join(root, name)
            shape = (int(rng.integers(14, 30)), int(rng.integers(14, 30)))
            PILImage.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, format="PNG")
            self.files.append(path)
        with open(os.path.join(root, "notes.txt"), "w") as f:
            f.write("not an image\n")
        with open(os.path.join(root, ".hidden.png"), "wb") as f:
            f.write(b"junk")
        self.aug = lvmmed.Augmenter(self.ctx, size=SIZE, grid=GRID)
        self.addCleanup(self.aug.close)

    def dataset(self, **kw):
        ds = lvmmed.Dataset(self.ctx, self.aug, **kw)
        self.addCleanup(ds.close)
        return ds

    def reference_views(self, ds, epoch):
        """{item: (view 0, view 1, grid 0, grid 1)} made by the Augmenter from each file."""
        out = {}
        for i, path in enumerate(ds.paths()):
            with lvmmed.Image.open(self.ctx, path) as img:
                v = self.aug.views(img, index=i, epoch=epoch, count=2)
            out[i] = (v.pixels[0], v.pixels[1], v.grids[0], v.grids[1])
        return out

    def test_listing(self):
        ds = self.dataset(shuffle=False)
        self.assertEqual(ds.add_folder(self.tmp.name), 5)
        self.assertEqual(len(ds), 5)
        self.assertEqual(ds.paths(), sorted(os.path.join(self.tmp.name, n) for n in
                                            ("a.png", "b.png", "e.PNG", "sub/c.png", "sub/d.png")))
        with self.assertRaises(IndexError):
            ds.item_path(5)
        with self.assertRaises(IndexError):
            ds.item_path(-1)
        lst = os.path.join(self.tmp.name, "list.txt")
        with open(lst, "w") as f:
            f.write("# two files\nsub/d.png\n\n" + self.files[0] + "\r\n")
        self.assertEqual(ds.add_list(lst), 2)
        self.assertEqual(ds.item_path(5), os.path.join(self.tmp.name, "sub/d.png"))
        self.assertEqual(ds.add_file(self.files[1]), 1)
        self.assertEqual(ds.stats(), {"items": 8, "delivered": 0, "skipped": 0, "epoch": -1, "position": 0})
        flat = self.dataset(recursive=False)
        self.assertEqual(flat.add_folder(self.tmp.name), 3)
        self.assertEqual(flat.options()["recursive"], False)
        with self.assertRaises(lvmmed.LvmmedError) as cm:
            ds.add_folder(os.path.join(self.tmp.name, "nowhere"))
        self.assertIn("nowhere", str(cm.exception))
        with self.assertRaises(lvmmed.LvmmedError):
            ds.add_list(os.path.join(self.tmp.name, "missing.txt"))

    def test_batches_equal_augmenter_views(self):
        ds = self.dataset(shuffle=False, workers=0)
        ds.add_folder(self.tmp.name)
        ref = self.reference_views(ds, epoch=2)
        ds.start_epoch(2)
        self.assertEqual((ds.epoch, ds.position), (2, 0))
        sizes, seen = [], []
        while True:
            b = ds.next_batch(2)
            if len(b.items) == 0:
                break
            sizes.append(len(b.items))
            self.assertEqual((b.views_s.shape[1:], b.grids_t.shape[1:]), ((3, SIZE, SIZE), (GRID, GRID, 2)))
            self.assertEqual(b.items.dtype, np.int64)
            for k, item in enumerate(b.items):
                for got, want in zip((b.views_s[k], b.views_t[k], b.grids_s[k], b.grids_t[k]), ref[int(item)]):
                    np.testing.assert_array_equal(got, want)
            seen.extend(b.items.tolist())
        self.assertEqual(sizes, [2, 2, 1])
        self.assertEqual(seen, [0, 1, 2, 3, 4])
        self.assertEqual((ds.delivered, ds.skipped, ds.position), (5, 0, 5))

    def test_shuffle_workers_and_resume(self):
        ds = self.dataset(workers=0)
        ds.add_folder(self.tmp.name)
        epoch = list(ds.iter_epoch(3, batch_size=2))
        order = np.concatenate([b.items for b in epoch]).tolist()
        self.assertEqual(sorted(order), list(range(5)))
        self.assertEqual(np.concatenate([b.items for b in ds.iter_epoch(3, 4)]).tolist(), order)  # same epoch, same order
        threaded = self.dataset(workers=2, queue=3)
        threaded.add_folder(self.tmp.name)
        for a, b in zip(epoch, threaded.iter_epoch(3, batch_size=2)):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
        # Resuming at position 3 delivers the tail of the uninterrupted epoch.
        tail = list(threaded.iter_epoch(3, batch_size=5, position=3))
        self.assertEqual(len(tail), 1)
        self.assertEqual(tail[0].items.tolist(), order[3:])
        full_s = np.concatenate([b.views_s for b in epoch])
        np.testing.assert_array_equal(tail[0].views_s, full_s[3:])
        lite = threaded.next_batch(2, grids=False, items=False)  # the epoch is over: empty
        self.assertEqual((len(lite.views_s), lite.grids_s, lite.items), (0, None, None))

    def test_out_buffers_and_config_copy(self):
        ds = self.dataset(shuffle=False, workers=1)
        self.aug.size = 40  # the dataset copied size 12 at creation
        ds.add_folder(self.tmp.name)
        outs = (np.empty((4, 3, SIZE, SIZE), np.float32), np.empty((4, 3, SIZE, SIZE), np.float32),
                np.empty((4, GRID, GRID, 2), np.float32), np.empty((4, GRID, GRID, 2), np.float32),
                np.empty(4, np.int64))
        ds.start_epoch(0)
        b = ds.next_batch(4, out=outs)
        for got, buf in zip(b, outs):
            self.assertTrue(np.shares_memory(got, buf))
            self.assertEqual(got.ctypes.data, buf.ctypes.data)
        self.assertEqual(b.items.tolist(), [0, 1, 2, 3])
        with self.assertRaises(ValueError):
            ds.next_batch(3, out=outs)
        with self.assertRaises(TypeError):
            ds.next_batch(4, out=(outs[0], outs[1], None, None, np.empty(4, np.int32)))

    def test_bad_files(self):
        with open(os.path.join(self.tmp.name, "broken.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
        ds = self.dataset(shuffle=False, workers=0)
        ds.add_folder(self.tmp.name)  # a.png, b.png, broken.png, e.PNG, sub/c.png, sub/d.png
        self.assertEqual(len(ds), 6)
        items = np.concatenate([b.items for b in ds.iter_epoch(0, 4)]).tolist()
        self.assertEqual(items, [0, 1, 3, 4, 5])
        self.assertEqual(ds.skipped, 1)
        warnings = [m for level, m in self.messages if level == lvmmed.LogLevel.WARN]
        self.assertTrue(any("broken.png" in m for m in warnings), self.messages)
        ds.strict = True
        ds.start_epoch(1)
        with self.assertRaises(lvmmed.FileFormatError) as cm:
            ds.next_batch(4)
        self.assertIn("broken.png", str(cm.exception))
        self.assertEqual(cm.exception.batch.items.tolist(), [0, 1])  # filled before the bad file
        self.assertEqual(ds.next_batch(4).items.tolist(), [3, 4, 5])  # continues after it

    def test_errors(self):
        ds = self.dataset()
        with self.assertRaises(lvmmed.StateError) as cm:
            ds.start_epoch(0)
        self.assertIn("no items", str(cm.exception))
        with self.assertRaises(lvmmed.StateError):
            ds.next_batch(2)
        ds.add_folder(self.tmp.name)
        with self.assertRaises(lvmmed.OutOfRangeError):
            ds.start_epoch(2**19)
        with self.assertRaises(lvmmed.OutOfRangeError) as cm:
            ds.start_epoch(0, position=6)
        self.assertIn("position", str(cm.exception))
        with self.assertRaises(OverflowError):
            ds.start_epoch(-1)
        ds.start_epoch(0)
        with self.assertRaises(lvmmed.StateError) as cm:
            ds.workers = 2
        self.assertIn("epoch is running", str(cm.exception))
        with self.assertRaises(ValueError):
            ds.next_batch(-1)
        with self.assertRaises(KeyError):
            ds.stat("batches")
        with self.assertRaises(lvmmed.OutOfRangeError):
            lvmmed.Dataset(self.ctx, self.aug, queue=0)
        with self.assertRaises(TypeError):
            lvmmed.Dataset(self.ctx, self.ctx)
        with self.assertRaises(TypeError):
            lvmmed.Dataset(self.ctx, self.aug, threads=2)

    def test_lifetime(self):
        with lvmmed.Dataset(self.ctx, self.aug, workers=2) as ds:
            ds.add_folder(self.tmp.name)
            ds.start_epoch(0)
            ds.next_batch(1)  # workers still running when it closes
        self.assertTrue(ds.closed)
        with self.assertRaises(ValueError):
            len(ds)
        ds.close()


if __name__ == "__main__":
    unittest.main()
