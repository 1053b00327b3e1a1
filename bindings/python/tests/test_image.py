"""Image and Augmenter through the bindings, against PIL / tifffile decoding and numpy formulas.

Fixtures are written at test time into a temporary folder (PIL for PNG and
JPEG, tifffile for TIFF); the JPEG reference is PIL's own decode.
"""

import gc
import io
import os
import tempfile
import unittest
import weakref

import numpy as np

import _support
import lvmmed
from lvmmed import image as limage

try:
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover - CI installs python3-pil
    PILImage = None
try:
    import tifffile
except ImportError:  # pragma: no cover - CI installs python3-tifffile
    tifffile = None

DATA = os.path.join(_support.REPO_ROOT, "tests", "image", "data")


def planar(a):
    """PIL/tifffile (H, W[, C]) to (C, H, W) float32."""
    a = np.asarray(a)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return a.astype(np.float32)


def png_bytes(a, mode=None):
    buf = io.BytesIO()
    PILImage.fromarray(a, mode).save(buf, format="PNG")
    return buf.getvalue()


@unittest.skipIf(PILImage is None or tifffile is None, "needs python3-pil and python3-tifffile")
class ImageDecodeTest(unittest.TestCase):
    def setUp(self):
        self.ctx = lvmmed.Context(seed=1)
        self.addCleanup(self.ctx.close)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.rng = np.random.default_rng(3)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def open(self, path, **kw):
        img = lvmmed.Image.open(self.ctx, path, **kw)
        self.addCleanup(img.close)
        return img

    def test_png_variants_match_pil(self):
        gray = self.rng.integers(0, 256, (17, 23), dtype=np.uint8)
        rgb = self.rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
        rgba = self.rng.integers(0, 256, (8, 5, 4), dtype=np.uint8)
        deep = self.rng.integers(0, 65536, (13, 7)).astype(np.uint16)
        for name, arr, depth, alpha in (("g.png", gray, 8, False), ("rgb.png", rgb, 8, False),
                                        ("rgba.png", rgba, 8, True), ("d.png", deep, 16, False)):
            with open(self.path(name), "wb") as f:
                f.write(png_bytes(arr))
            img = self.open(self.path(name))
            ref = planar(arr)
            self.assertEqual(img.shape, ref.shape, name)
            self.assertEqual((img.format, img.sample_format, img.bit_depth, img.has_alpha, img.pages, img.page),
                             ("png", "uint", depth, alpha, 1, 0), name)
            np.testing.assert_array_equal(img.to_numpy(), ref, name)
            self.assertEqual(img.nominal_range(), (0.0, 2.0 ** depth - 1))
            np.testing.assert_array_equal(np.asarray(img), ref)
        lo, hi = img.range()
        self.assertEqual((lo, hi), (float(deep.min()), float(deep.max())))

    def test_tiff_pages_and_sample_types(self):
        pages = [(self.rng.integers(-3000, 3000, (6, 9)) + k).astype(np.int16) for k in range(3)]
        with tifffile.TiffWriter(self.path("stack.tif")) as w:
            for p in pages:
                w.write(p, photometric="minisblack")
        img = self.open(self.path("stack.tif"), page=2)
        self.assertEqual((img.pages, img.page, img.sample_format, img.bit_depth), (3, 2, "int", 16))
        np.testing.assert_array_equal(img.to_numpy()[0], pages[2])
        self.assertEqual(img.nominal_range(), (-32768.0, 32767.0))
        img.read(self.path("stack.tif"), page=0)
        np.testing.assert_array_equal(img.to_numpy()[0], pages[0])
        self.assertEqual(img.read_page, 0)
        with self.assertRaises(lvmmed.OutOfRangeError) as cm:
            img.read(self.path("stack.tif"), page=3)
        self.assertIn("stack.tif", str(cm.exception))
        self.assertTrue(img.empty)  # a failed read leaves the image empty
        f32 = self.rng.standard_normal((2, 5, 7)).astype(np.float32)
        tifffile.imwrite(self.path("f.tif"), f32, photometric="minisblack", planarconfig="separate")
        img2 = self.open(self.path("f.tif"))
        self.assertEqual((img2.shape, img2.sample_format, img2.bit_depth), ((2, 5, 7), "float", 32))
        np.testing.assert_array_equal(img2.to_numpy(), f32)
        for fixture in ("ct_stent_i16.tif", "mr_inia19_f32.tif"):
            ref = planar(tifffile.imread(os.path.join(DATA, fixture)))
            np.testing.assert_array_equal(self.open(os.path.join(DATA, fixture)).to_numpy(), ref)

    def test_jpeg_and_memory_reads(self):
        path = os.path.join(DATA, "fundus_retina.jpg")
        img = self.open(path)
        with PILImage.open(path) as p:
            ref = planar(p.convert("RGB"))
        self.assertEqual((img.format, img.shape), ("jpeg", ref.shape))
        diff = np.abs(img.to_numpy() - ref)
        self.assertLessEqual(diff.max(), 2.0)  # both decode with libjpeg-turbo; allow rounding differences
        with open(path, "rb") as f:
            data = f.read()
        for buf in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8).copy()):
            mem = lvmmed.Image.from_bytes(self.ctx, buf, name="retina")
            np.testing.assert_array_equal(mem.to_numpy(), img.to_numpy())
            mem.close()
        self.assertEqual(limage.detect_format(data), "jpeg")
        self.assertEqual(limage.detect_format(png_bytes(np.zeros((2, 2), np.uint8))), "png")
        self.assertEqual(limage.detect_format(b"not an image"), "none")
        for fmt in ("png", "tiff", "jpeg"):
            self.assertTrue(limage.format_available(fmt))
        self.assertEqual(limage.format_name(4), "raw")
        self.assertEqual(limage.sample_format_name(2), "int")
        with self.assertRaises(lvmmed.FileFormatError) as cm:
            lvmmed.Image.from_bytes(self.ctx, data[:600], name="cut.jpg")
        self.assertIn("cut.jpg", str(cm.exception))

    def test_errors(self):
        with open(self.path("junk.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        with self.assertRaises(lvmmed.FileFormatError) as cm:
            lvmmed.Image.open(self.ctx, self.path("junk.png"))
        self.assertIn("junk.png", str(cm.exception))
        with self.assertRaises(lvmmed.LvmmedError) as cm:
            lvmmed.Image.open(self.ctx, self.path("missing.png"))
        self.assertIn("missing.png", str(cm.exception))
        with open(self.path("big.png"), "wb") as f:
            f.write(png_bytes(np.zeros((40, 40), np.uint8)))
        with self.assertRaises(lvmmed.LimitError):
            lvmmed.Image.open(self.ctx, self.path("big.png"), max_pixels=1000)
        img = lvmmed.Image(self.ctx)
        self.addCleanup(img.close)
        self.assertEqual((img.shape, img.format, img.empty), ((0, 0, 0), "none", True))
        self.assertEqual(img.to_numpy().shape, (0, 0, 0))
        with self.assertRaises(lvmmed.StateError):
            img.range()
        with self.assertRaises(lvmmed.OutOfRangeError):
            img.max_pixels = 0
        with self.assertRaises(ValueError):
            img.set_pixels(np.zeros((1, 2, 3, 4), np.float32))
        with self.assertRaises(TypeError):
            img.set_pixels(np.zeros((2, 2), complex))
        with self.assertRaises(KeyError):
            img.get("depth")
        with self.assertRaises(ValueError):
            img.apply_intensity("gamma")

    def test_lifetime(self):
        with lvmmed.Image(self.ctx) as img:
            img.set_pixels(np.ones((2, 3), np.float32))
        self.assertTrue(img.closed)
        with self.assertRaises(ValueError):
            img.to_numpy()
        img.close()
        # A view keeps its Image alive (and is read-only).
        img2 = lvmmed.Image.from_array(self.ctx, np.arange(6, dtype=np.float32).reshape(2, 3))
        view = img2.view()
        self.assertFalse(view.flags.writeable)
        ref = weakref.ref(img2)
        del img2
        gc.collect()
        self.assertIsNotNone(ref())
        np.testing.assert_array_equal(view[0], np.arange(6).reshape(2, 3))
        ref().close()
        del view


class ImageTransformTest(unittest.TestCase):
    def setUp(self):
        self.ctx = lvmmed.Context(seed=1)
        self.addCleanup(self.ctx.close)
        self.rng = np.random.default_rng(4)

    def image(self, pixels):
        img = lvmmed.Image.from_array(self.ctx, pixels)
        self.addCleanup(img.close)
        return img

    def test_set_pixels_view_and_copy(self):
        px = self.rng.standard_normal((3, 4, 5)).astype(np.float32)
        img = self.image(px)
        self.assertEqual((img.shape, img.format, img.sample_format, img.bit_depth), ((3, 4, 5), "raw", "float", 32))
        view = img.view()
        copy = img.to_numpy()
        np.testing.assert_array_equal(view, px)
        self.assertFalse(np.shares_memory(view, px))  # the library copies the pixels in
        self.assertFalse(np.shares_memory(view, copy))
        self.assertEqual(view.ctypes.data, lvmmed._lib.lib.lvmmed_image_data(img._h()))
        out = np.empty((3, 4, 5), np.float32)
        self.assertIs(img.to_numpy(out=out), out)
        with self.assertRaises(ValueError):
            img.to_numpy(out=np.empty((3, 4, 4), np.float32))
        self.assertEqual(self.image(np.zeros((4, 6))).shape, (1, 4, 6))

    def test_intensity_policies(self):
        px = self.rng.uniform(-100, 300, (1, 9, 8)).astype(np.float32)
        x = px.astype(np.float64)
        cases = [("minmax", 0, 0, (x - x.min()) / (x.max() - x.min())),
                 ("percentile", 5, 95, np.clip((x - np.percentile(x, 5)) / (np.percentile(x, 95) - np.percentile(x, 5)), 0, 1)),
                 ("window", 40, 200, np.clip((x - (40 - 100)) / 200, 0, 1))]
        for policy, a, b, ref in cases:
            img = self.image(px)
            img.apply_intensity(policy, a, b)
            np.testing.assert_allclose(img.to_numpy(), ref, rtol=1e-5, atol=1e-6, err_msg=policy)
        img = self.image(px)
        with self.assertRaises(lvmmed.InvalidArgumentError) as cm:
            img.apply_intensity("percentile", 90, 10)
        self.assertIn("lvmmed_image_apply_intensity", str(cm.exception))
        with self.assertRaises(lvmmed.InvalidArgumentError):
            img.apply_intensity("window", 0, -1)

    def test_convert_channels(self):
        rgb = self.rng.uniform(0, 255, (3, 5, 6)).astype(np.float32)
        img = self.image(rgb)
        img.convert_channels(1)
        luma = 0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        np.testing.assert_allclose(img.to_numpy()[0], luma, rtol=1e-5)
        img.convert_channels(3)
        np.testing.assert_array_equal(img.to_numpy(), np.repeat(img.to_numpy()[:1], 3, 0))
        with self.assertRaises(lvmmed.UnsupportedError):
            self.image(np.zeros((5, 2, 2), np.float32)).convert_channels(3)


class AugmenterTest(unittest.TestCase):
    def setUp(self):
        self.ctx = lvmmed.Context(seed=9)
        self.addCleanup(self.ctx.close)
        rng = np.random.default_rng(5)
        self.img = lvmmed.Image.from_array(self.ctx, rng.uniform(0, 255, (3, 40, 52)).astype(np.float32))
        self.addCleanup(self.img.close)

    def augmenter(self, **kw):
        aug = lvmmed.Augmenter(self.ctx, **kw)
        self.addCleanup(aug.close)
        return aug

    def test_options_and_seed(self):
        aug = self.augmenter(size=24, grid=3, intensity="minmax", gray_output=False)
        self.assertEqual(aug.seed, 9)  # the context's seed
        aug.seed = 2**64 - 1
        self.assertEqual(aug.seed, 2**64 - 1)
        with self.assertRaises(OverflowError):
            aug.seed = -1
        self.assertEqual((aug.size, aug.grid, aug.intensity, aug.gray_output), (24, 3, "minmax", False))
        self.assertEqual(aug.view_size(), (3 * 24 * 24, 3 * 3 * 2))
        self.assertEqual((aug.view_shape, aug.grid_shape), ((3, 24, 24), (3, 3, 2)))
        self.assertAlmostEqual(aug.flip_p, 0.5)
        self.assertEqual(lvmmed.Augmenter.option_bounds("size"), (1.0, 4096.0))
        with self.assertRaises(lvmmed.OutOfRangeError) as cm:
            aug.flip_p = 2
        self.assertIn("lvmmed_augmenter_set_option", str(cm.exception))
        with self.assertRaises(TypeError):
            lvmmed.Augmenter(self.ctx, zoom=2)

    def test_shapes_and_determinism(self):
        aug = self.augmenter(size=20, grid=4)
        v = aug.views(self.img, index=3, epoch=1, count=3)
        self.assertEqual((v.pixels.shape, v.grids.shape, v.params.shape), ((3, 3, 20, 20), (3, 4, 4, 2), (3, 5)))
        self.assertEqual((v.pixels.dtype, v.grids.dtype, v.params.dtype), (np.float32, np.float32, np.int32))
        again = aug.views(self.img, index=3, epoch=1, count=3)
        for a, b in zip(v, again):
            np.testing.assert_array_equal(a, b)
        one = aug.views(self.img, index=3, epoch=1, first_view=2, count=1)  # views are independent
        np.testing.assert_array_equal(one.pixels[0], v.pixels[2])
        np.testing.assert_array_equal(one.params[0], v.params[2])
        other = aug.views(self.img, index=3, epoch=2, count=3)
        self.assertFalse(np.array_equal(other.params, v.params))
        twin = self.augmenter(size=20, grid=4, seed=9)
        np.testing.assert_array_equal(twin.views(self.img, 3, 1, count=3).pixels, v.pixels)
        lite = aug.views(self.img, 3, 1, count=3, grids=False, params=False)
        self.assertIsNone(lite.grids)
        self.assertIsNone(lite.params)
        np.testing.assert_array_equal(lite.pixels, v.pixels)
        outs = (np.empty((3, 3, 20, 20), np.float32), np.empty((3, 4, 4, 2), np.float32), np.empty((3, 5), np.int32))
        res = aug.views(self.img, 3, 1, count=3, out=outs)
        for r, o, ref in zip(res, outs, v):
            self.assertIs(r, o)
            np.testing.assert_array_equal(o, ref)

    def test_identity_view_matches_numpy(self):
        # A full-image crop of a square image at its own size, no random operation: the view is
        # the minmax-scaled, normalised image (bilinear resize at scale 1 is the identity).
        h, n = 40, 4
        crop = self.img.to_numpy()[:, :, :h]
        img = lvmmed.Image.from_array(self.ctx, crop)
        self.addCleanup(img.close)
        x = crop.astype(np.float64)
        ref = (x - x.min()) / (x.max() - x.min())
        ref = (ref - np.array([0.5, 0.25, 0])[:, None, None]) / np.array([2, 1, 0.5])[:, None, None]
        for flip in (0, 1):
            aug = self.augmenter(size=h, grid=n, scale_min=1, scale_max=1, ratio_min=1, ratio_max=1,
                                 flip_p=flip, jitter_p=0, grayscale_p=0, blur_p=0, gray_output=False,
                                 intensity="minmax", mean_r=0.5, mean_g=0.25, mean_b=0, std_r=2, std_g=1,
                                 std_b=0.5)
            v = aug.views(img, index=0, epoch=0, count=1)
            np.testing.assert_array_equal(v.params[0], [0, 0, h, h, flip])
            want = ref[:, :, ::-1] if flip else ref
            np.testing.assert_allclose(v.pixels[0], want, rtol=1e-5, atol=1e-5)
            centres = (np.arange(n) + 0.5) * h / n
            np.testing.assert_allclose(v.grids[0, :, 0, 0], centres, rtol=1e-6)  # rows
            cols = centres[::-1] if flip else centres  # mirrored with the view
            np.testing.assert_allclose(v.grids[0, 0, :, 1], cols, rtol=1e-6)

    def test_errors(self):
        aug = self.augmenter(size=8)
        with lvmmed.Image(self.ctx) as empty:
            with self.assertRaises(lvmmed.StateError):
                aug.views(empty)
        with self.assertRaises(ValueError):
            aug.views(self.img, count=0)
        with self.assertRaises(ValueError):
            aug.views(self.img, first_view=7, count=2)
        with self.assertRaises(ValueError):
            aug.views(self.img, index=2**40)
        with self.assertRaises(TypeError):
            aug.views(np.zeros((3, 8, 8)))
        with self.assertRaises(ValueError):
            aug.views(self.img, count=1, out=(np.empty((2, 3, 8, 8), np.float32), None, None))
        with self.assertRaises(TypeError):
            aug.views(self.img, count=1, out=(np.empty((1, 3, 8, 8), np.float64), None, None))
        aug.scale_min, aug.scale_max = 0.9, 0.5  # checked when views are made
        with self.assertRaises(lvmmed.InvalidArgumentError) as cm:
            aug.views(self.img)
        self.assertIn("scale", str(cm.exception))
        aug.close()
        with self.assertRaises(ValueError):
            aug.views(self.img)


if __name__ == "__main__":
    unittest.main()
