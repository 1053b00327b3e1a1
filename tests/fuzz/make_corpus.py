#!/usr/bin/python3
"""Regenerates the committed seed corpus tests/fuzz/corpus/{png,tiff,jpeg}/.

Small crops of the real images in tests/image/data/, encoded in the variants the
decoders support (bit depths, palettes, tRNS, interlacing, strips/tiles,
planar, byte orders, compressions, multi-page, progressive JPEG). Small inputs
keep libFuzzer fast. Not run by the tests; run it after changing the decoders'
scope:  /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import io
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tifffile
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "image", "data")
sys.path.insert(0, os.path.join(HERE, "..", "image"))
import pngwrite  # noqa: E402


def main():
    out = os.path.join(HERE, "corpus")
    for d in ("png", "tiff", "jpeg"):
        shutil.rmtree(os.path.join(out, d), ignore_errors=True)
        os.makedirs(os.path.join(out, d))

    def put(kind, name, data):
        with open(os.path.join(out, kind, name), "wb") as f:
            f.write(data)

    mr16 = np.array(Image.open(os.path.join(DATA, "mr_s1045_u16.png"))).astype(np.uint16)[100:118, 90:111]
    colin = np.array(Image.open(os.path.join(DATA, "mr_colin27_u8.png")))[80:97, 70:89]
    ihc = np.array(Image.open(os.path.join(DATA, "ihc_rgb.png")).convert("RGB"))[40:56, 30:49]
    ct = tifffile.imread(os.path.join(DATA, "ct_stent_i16.tif"))[50:66, 40:57]
    inia = tifffile.imread(os.path.join(DATA, "mr_inia19_f32.tif"))[60:76, 50:65]
    retina = np.array(Image.open(os.path.join(DATA, "fundus_retina.jpg")).convert("RGB"))[100:132, 90:130]

    # PNG
    for il in (False, True):
        t = "i" if il else "p"
        for depth in (1, 2, 4, 8):
            put("png", f"gray{depth}{t}.png", pngwrite.encode(colin >> (8 - depth), depth, 0, interlace=il))
        put("png", f"gray16{t}.png", pngwrite.encode(mr16, 16, 0, trns=int(mr16[0, 0]), interlace=il))
        put("png", f"ga16{t}.png", pngwrite.encode(np.stack([mr16, mr16 // 2], -1), 16, 4, interlace=il))
        put("png", f"rgb8trns{t}.png", pngwrite.encode(ihc, 8, 2, trns=tuple(int(v) for v in ihc[0, 0]), interlace=il))
        put("png", f"rgba16{t}.png", pngwrite.encode(np.concatenate([ihc, ihc[..., :1]], -1).astype(np.uint16) * 257,
                                                     16, 6, interlace=il))
        pal = [(i * 60 % 256, i * 15, 255 - i * 15) for i in range(16)]
        put("png", f"pal4trns{t}.png", pngwrite.encode(colin >> 4, 4, 3, palette=pal, trns=bytes(range(0, 255, 40)),
                                                       interlace=il))
    shutil.copy(os.path.join(DATA, "itk_mask_1bit.png"), os.path.join(out, "png", "shipped_mask_1bit.png"))

    # TIFF
    def tf(name, arr, **kw):
        b = io.BytesIO()
        tifffile.imwrite(b, arr, **kw)
        put("tiff", name, b.getvalue())

    tf("u8.tif", colin)
    tf("u16_be_zlib.tif", mr16, byteorder=">", compression="zlib")
    tf("i16_tiled.tif", ct, tile=(16, 16))
    tf("f32_be.tif", inia, byteorder=">")
    tf("rgb_planar.tif", np.moveaxis(ihc, -1, 0), photometric="rgb", planarconfig="separate")
    tf("rgba.tif", np.concatenate([ihc, ihc[..., :1]], -1), photometric="rgb", extrasamples=["unassalpha"])
    cmap = (np.arange(3 * 256).reshape(3, 256) * 85 % 65536).astype(np.uint16)
    tf("palette.tif", colin, photometric="palette", colormap=cmap)
    tf("bilevel.tif", colin > 100)
    b = io.BytesIO()
    with tifffile.TiffWriter(b) as tw:
        tw.write(mr16)
        tw.write(colin, compression="zlib")
        tw.write(ct, tile=(16, 16))
    put("tiff", "multipage.tif", b.getvalue())
    for comp in ("tiff_lzw", "packbits", "jpeg"):
        b = io.BytesIO()
        Image.fromarray(ihc if comp == "jpeg" else colin).save(b, format="TIFF", compression=comp)
        put("tiff", f"pil_{comp}.tif", b.getvalue())
    b = io.BytesIO()
    Image.fromarray(colin > 90).save(b, format="TIFF", compression="group4")
    put("tiff", "pil_group4.tif", b.getvalue())
    if shutil.which("tiffcp"):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "rgb.tif")
            tifffile.imwrite(src, np.ascontiguousarray(np.pad(ihc, ((0, 16), (0, 13), (0, 0)))), photometric="rgb")
            for name, args in (("tiffcp_jpeg_ycbcr.tif", ["-r", "16", "-c", "jpeg"]),
                               ("tiffcp_lzw_pred2_tiled.tif", ["-t", "-w", "16", "-l", "16", "-c", "lzw:2"])):
                dst = os.path.join(tmp, name)
                subprocess.run(["tiffcp"] + args + [src, dst], check=True)
                shutil.copy(dst, os.path.join(out, "tiff", name))

    # JPEG
    for name, arr, kw in (("baseline.jpg", retina, dict(quality=80)), ("q95_444.jpg", retina, dict(quality=95, subsampling=0)),
                          ("progressive.jpg", retina, dict(quality=70, progressive=True)),
                          ("gray.jpg", colin, dict(quality=85)),
                          ("gray_progressive.jpg", colin, dict(quality=60, progressive=True))):
        b = io.BytesIO()
        Image.fromarray(arr).save(b, format="JPEG", **kw)
        put("jpeg", name, b.getvalue())

    total = 0
    for d in ("png", "tiff", "jpeg"):
        files = os.listdir(os.path.join(out, d))
        size = sum(os.path.getsize(os.path.join(out, d, f)) for f in files)
        total += size
        print(f"{d}: {len(files)} files, {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
