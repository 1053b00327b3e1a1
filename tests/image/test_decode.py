#!/usr/bin/python3
"""Decoding parity: every PNG/TIFF/JPEG variant of real medical pixels, decoded by
`lvmmed image decode`, must equal the known source values exactly (lossless
formats) and agree with an independent decoder (PIL / tifffile); JPEG data must
match PIL's libjpeg decode within JPEG_TOL. Metadata comes from `lvmmed image info --json`.

Variants are written at test time from the committed sources in data/ with
PIL, tifffile, tiffcp (libtiff-tools, optional), and two tiny independent
encoders (pngwrite.py; raw_tiff below) for what those cannot write.

usage: test_decode.py LVMMED_EXE DATA_DIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import tifffile
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pngwrite  # noqa: E402

JPEG_TOL = 1  # largest |ours - PIL| allowed for JPEG data (same libjpeg, same settings: 0 expected)


def chw(a):
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    else:
        a = np.moveaxis(a, -1, 0)
    return np.ascontiguousarray(a.astype(np.float32))


class Variant:
    def __init__(self, name, data, expect, meta, ref=None, tol=0.0, page=0):
        self.name, self.data, self.expect, self.meta = name, data, expect, meta
        self.ref = ref          # independent decoder's result (CHW float32) or None
        self.tol, self.page = tol, page


def meta(fmt, depth, sample, channels=None, pages=1, alpha=False, palette=False):
    return dict(format=fmt, bit_depth=depth, sample_format=sample, channels=channels, pages=pages,
                alpha=alpha, palette=palette)


# ---------------------------------------------------------------- sources


def load_sources(data):
    S = {}
    S["mr16"] = np.array(Image.open(os.path.join(data, "mr_s1045_u16.png"))).astype(np.uint16)
    S["ct"] = tifffile.imread(os.path.join(data, "ct_stent_i16.tif"))
    S["colin"] = np.array(Image.open(os.path.join(data, "mr_colin27_u8.png")))
    S["inia"] = tifffile.imread(os.path.join(data, "mr_inia19_f32.tif"))
    S["ihc"] = np.array(Image.open(os.path.join(data, "ihc_rgb.png")).convert("RGB"))
    S["retina"] = np.array(Image.open(os.path.join(data, "fundus_retina.jpg")).convert("RGB"))
    S["mask"] = np.array(Image.open(os.path.join(data, "itk_mask_1bit.png"))).astype(np.uint8)
    assert S["mr16"].dtype == np.uint16 and S["mr16"].max() > 255
    assert S["ct"].dtype == np.int16 and S["ct"].min() < 0
    assert S["inia"].dtype == np.float32
    return S


def crop(a, h=83, w=97, y=40, x=50):
    """Odd-sized crops exercise partial bytes, Adam7 pass edges and partial tiles."""
    return np.ascontiguousarray(a[y:y + h, x:x + w])


# ---------------------------------------------------------------- PNG


def png_variants(S, data):
    V = []
    # Files written by other encoders, as shipped.
    for f in ["itk_palette_mr.png", "itk_mask_1bit.png", "fundus_microaneurysms.png", "mr_s1045_u16.png",
              "mr_colin27_u8.png", "ihc_rgb.png"]:
        path = os.path.join(data, f)
        im = Image.open(path)
        if im.mode == "P":
            exp, m = chw(np.array(im.convert("RGB"))), meta("png", 8, "uint", 3, palette=True)
        elif im.mode == "1":
            exp, m = chw(np.array(im).astype(np.uint8)), meta("png", 1, "uint", 1)
        elif im.mode in ("I;16", "I"):
            exp, m = chw(np.array(im).astype(np.uint16)), meta("png", 16, "uint", 1)
        else:
            exp, m = chw(np.array(im)), meta("png", 8, "uint", len(im.getbands()))
        with open(path, "rb") as fh:
            V.append(Variant("png/shipped/" + f, fh.read(), exp, m, ref=exp))

    colin, mr16, ihc = crop(S["colin"]), crop(S["mr16"]), crop(S["ihc"], y=20, x=10)
    mask = crop(S["mask"], y=60, x=60)
    rng = np.random.default_rng(5)
    for interlace in (False, True):
        tag = "adam7" if interlace else "plain"
        for depth in (1, 2, 4, 8):
            g = (colin >> (8 - depth)).astype(np.uint16)
            V.append(Variant(f"png/own/gray{depth}_{tag}", pngwrite.encode(g, depth, 0, interlace=interlace), chw(g),
                             meta("png", depth, "uint", 1)))
        V.append(Variant(f"png/own/gray16_{tag}", pngwrite.encode(mr16, 16, 0, interlace=interlace), chw(mr16),
                         meta("png", 16, "uint", 1)))
        # gray + tRNS: the transparent value becomes alpha 0
        t = int(mr16[0, 0])
        exp = np.stack([mr16, np.where(mr16 == t, 0, 65535)], -1)
        V.append(Variant(f"png/own/gray16_trns_{tag}", pngwrite.encode(mr16, 16, 0, trns=t, interlace=interlace),
                         chw(exp), meta("png", 16, "uint", 2, alpha=True)))
        g4 = (colin >> 4).astype(np.uint16)
        t4 = int(np.bincount(g4.ravel()).argmax())
        exp = np.stack([g4, np.where(g4 == t4, 0, 15)], -1)
        V.append(Variant(f"png/own/gray4_trns_{tag}", pngwrite.encode(g4, 4, 0, trns=t4, interlace=interlace),
                         chw(exp), meta("png", 4, "uint", 2, alpha=True)))
        ga = np.stack([colin, mask * 255], -1)
        V.append(Variant(f"png/own/ga8_{tag}", pngwrite.encode(ga, 8, 4, interlace=interlace), chw(ga),
                         meta("png", 8, "uint", 2, alpha=True)))
        ga16 = np.stack([mr16, (mask * 40000).astype(np.uint16)], -1)
        V.append(Variant(f"png/own/ga16_{tag}", pngwrite.encode(ga16, 16, 4, interlace=interlace), chw(ga16),
                         meta("png", 16, "uint", 2, alpha=True)))
        V.append(Variant(f"png/own/rgb8_{tag}", pngwrite.encode(ihc, 8, 2, interlace=interlace), chw(ihc),
                         meta("png", 8, "uint", 3), ref=chw(ihc)))
        rgb16 = (ihc.astype(np.uint32) * 257 + rng.integers(0, 200, ihc.shape)).clip(0, 65535).astype(np.uint16)
        V.append(Variant(f"png/own/rgb16_{tag}", pngwrite.encode(rgb16, 16, 2, interlace=interlace), chw(rgb16),
                         meta("png", 16, "uint", 3)))
        tr = tuple(int(v) for v in ihc[0, 0])
        hit = np.all(ihc == np.array(tr), axis=-1)
        exp = np.concatenate([ihc, np.where(hit, 0, 255)[..., None]], -1)
        V.append(Variant(f"png/own/rgb8_trns_{tag}", pngwrite.encode(ihc, 8, 2, trns=tr, interlace=interlace),
                         chw(exp), meta("png", 8, "uint", 4, alpha=True)))
        rgba = np.concatenate([ihc, (mask * 200 + 55)[..., None]], -1).astype(np.uint8)
        V.append(Variant(f"png/own/rgba8_{tag}", pngwrite.encode(rgba, 8, 6, interlace=interlace), chw(rgba),
                         meta("png", 8, "uint", 4, alpha=True), ref=chw(rgba)))
        rgba16 = np.concatenate([rgb16, (mask * 65535)[..., None].astype(np.uint16)], -1)
        V.append(Variant(f"png/own/rgba16_{tag}", pngwrite.encode(rgba16, 16, 6, interlace=interlace), chw(rgba16),
                         meta("png", 16, "uint", 4, alpha=True)))
        for depth in (1, 2, 4, 8):
            n = 1 << depth
            pal = [tuple(int(x) for x in rng.integers(0, 256, 3)) for _ in range(n)]
            idx = (colin >> (8 - depth)).astype(np.uint8)
            lut = np.array(pal, dtype=np.uint8)
            V.append(Variant(f"png/own/pal{depth}_{tag}", pngwrite.encode(idx, depth, 3, palette=pal, interlace=interlace),
                             chw(lut[idx]), meta("png", 8, "uint", 3, palette=True)))
            alphas = bytes(int(a) for a in rng.integers(0, 256, max(1, n // 2)))  # shorter than the palette
            amap = np.array(list(alphas) + [255] * (n - len(alphas)), dtype=np.uint8)
            exp = np.concatenate([lut[idx], amap[idx][..., None]], -1)
            V.append(Variant(f"png/own/pal{depth}_trns_{tag}",
                             pngwrite.encode(idx, depth, 3, palette=pal, trns=alphas, interlace=interlace), chw(exp),
                             meta("png", 8, "uint", 4, alpha=True, palette=True)))
    # PIL-written PNGs (and PIL decodes of the own-encoded ones where PIL keeps original values)
    def pil_png(im, **kw):
        import io
        b = io.BytesIO()
        im.save(b, format="PNG", **kw)
        return b.getvalue()
    V.append(Variant("png/pil/L", pil_png(Image.fromarray(colin)), chw(colin), meta("png", 8, "uint", 1)))
    V.append(Variant("png/pil/I16", pil_png(Image.fromarray(mr16, mode="I;16")), chw(mr16), meta("png", 16, "uint", 1)))
    V.append(Variant("png/pil/RGB", pil_png(Image.fromarray(ihc)), chw(ihc), meta("png", 8, "uint", 3)))
    V.append(Variant("png/pil/1bit", pil_png(Image.fromarray(mask.astype(bool))), chw(mask), meta("png", 1, "uint", 1)))
    p = Image.fromarray((colin >> 4).astype(np.uint8), mode="P")
    p.putpalette([v for i in range(16) for v in (i * 17, 255 - i * 17, (i * 40) % 256)])
    lut = np.array([(i * 17, 255 - i * 17, (i * 40) % 256) for i in range(16)], np.uint8)
    V.append(Variant("png/pil/P4_transparency", pil_png(p, bits=4, transparency=3),
                     chw(np.concatenate([lut[colin >> 4], np.where((colin >> 4) == 3, 0, 255)[..., None]], -1)),
                     meta("png", 8, "uint", 4, alpha=True, palette=True)))
    return V


# ---------------------------------------------------------------- TIFF


def raw_tiff(samples, bits, signed=False, big_endian=False):
    """Uncompressed one-strip min-is-black TIFF with any bit depth <= 32 (MSB-first packing)."""
    h, w = samples.shape
    bo = ">" if big_endian else "<"
    rows = []
    if bits % 8 == 0:  # whole-byte samples are integers in the file's byte order
        nb = bits // 8
        for y in range(h):
            rows.append(b"".join((int(v) & ((1 << bits) - 1)).to_bytes(nb, "big" if big_endian else "little")
                                 for v in samples[y]))
    for y in range(h if bits % 8 else 0):
        acc, nbits, out = 0, 0, bytearray()
        for v in samples[y]:
            acc = (acc << bits) | (int(v) & ((1 << bits) - 1))
            nbits += bits
            while nbits >= 8:
                nbits -= 8
                out.append((acc >> nbits) & 0xFF)
        if nbits:
            out.append((acc << (8 - nbits)) & 0xFF)
        rows.append(bytes(out))
    pixels = b"".join(rows)
    entries = [(256, 4, w), (257, 4, h), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
               (278, 4, h), (279, 4, len(pixels)), (339, 3, 2 if signed else 1)]
    ifd_off = 8
    data_off = ifd_off + 2 + 12 * len(entries) + 4
    out = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(bo + "I", ifd_off)
    out += struct.pack(bo + "H", len(entries))
    for tag, typ, val in entries:
        if tag == 273:
            val = data_off
        if typ == 3:
            out += struct.pack(bo + "HHIHH", tag, typ, 1, val, 0)
        else:
            out += struct.pack(bo + "HHII", tag, typ, 1, val)
    out += struct.pack(bo + "I", 0)
    return out + pixels


def tiff_bytes(arr, **kw):
    import io
    b = io.BytesIO()
    tifffile.imwrite(b, arr, **kw)
    return b.getvalue()


def tiff_variants(S, tmp):
    V = []
    colin, mr16, ct, inia, ihc = S["colin"], S["mr16"], S["ct"], S["inia"], S["ihc"]
    mask = S["mask"]

    def add(name, arr, depth, sample, channels=1, ref_from_tifffile=True, page=0, pages=1, write=None, **kw):
        data = tiff_bytes(arr if write is None else write, **kw)
        exp = chw(arr)
        ref = tifffile.imread(_write(tmp, name, data), key=page) if ref_from_tifffile else None
        if ref is not None:  # tifffile returns planar data samples-first already
            ref = ref.astype(np.float32) if kw.get("planarconfig") == "separate" else chw(ref)
        V.append(Variant("tiff/tifffile/" + name, data, exp, meta("tiff", depth, sample, channels, pages=pages),
                         ref=ref, page=page))

    add("u8", colin, 8, "uint")
    add("u16_zlib", mr16, 16, "uint", compression="zlib")
    add("u32", mr16.astype(np.uint32) * 65537, 32, "uint")
    add("i8", (colin.astype(np.int16) - 128).astype(np.int8), 8, "int")
    add("i16", ct, 16, "int")
    add("i32", ct.astype(np.int32) * 1000, 32, "int")
    add("f32", inia, 32, "float")
    add("f32_zlib_be", inia, 32, "float", compression="zlib", byteorder=">")
    add("u16_be", mr16, 16, "uint", byteorder=">")
    add("i16_be", ct, 16, "int", byteorder=">")
    add("u16_tiled32", mr16, 16, "uint", tile=(32, 32), compression="zlib")
    add("u16_tiled48_partial_be", mr16, 16, "uint", tile=(48, 48), byteorder=">")
    add("u16_strips7", mr16, 16, "uint", rowsperstrip=7)
    add("rgb8_contig", ihc, 8, "uint", 3, photometric="rgb")
    # planar data is written from a samples-first array
    add("rgb8_planar", ihc, 8, "uint", 3, write=np.moveaxis(ihc, -1, 0), photometric="rgb", planarconfig="separate")
    rgb16 = (ihc.astype(np.uint16) * 257)
    add("rgb16_planar_tiled_be", rgb16, 16, "uint", 3, write=np.moveaxis(rgb16, -1, 0), photometric="rgb",
        planarconfig="separate", tile=(32, 32), byteorder=">", compression="zlib")
    # f64 samples come out as float32 (rounded)
    f64 = inia.astype(np.float64) * (1 + 1e-9)
    data = tiff_bytes(f64)
    V.append(Variant("tiff/tifffile/f64", data, chw(f64.astype(np.float32)), meta("tiff", 64, "float", 1),
                     ref=chw(tifffile.imread(_write(tmp, "f64", data)).astype(np.float32))))
    # alpha as an extra sample
    rgba = np.concatenate([ihc, (mask[:128, :128] * 255)[..., None]], -1).astype(np.uint8)
    data = tiff_bytes(rgba, photometric="rgb", extrasamples=["unassalpha"])
    V.append(Variant("tiff/tifffile/rgba8_unassalpha", data, chw(rgba), meta("tiff", 8, "uint", 4, alpha=True),
                     ref=chw(rgba)))
    # min-is-white is shown inverted (as PIL does)
    data = tiff_bytes(colin, photometric="miniswhite")
    V.append(Variant("tiff/tifffile/u8_miniswhite", data, chw(255 - colin), meta("tiff", 8, "uint", 1),
                     ref=chw(np.array(Image.open(_write(tmp, "mw", data))))))
    # bilevel (tifffile writes bool as 1-bit min-is-white)
    data = tiff_bytes(mask.astype(bool))
    photo = tifffile.TiffFile(_write(tmp, "bool", data)).pages[0].photometric
    exp = 1 - mask if int(photo) == 0 else mask
    V.append(Variant("tiff/tifffile/bool_1bit", data, chw(exp), meta("tiff", 1, "uint", 1)))
    # palette with a 16-bit colour map
    cmap = np.zeros((3, 256), np.uint16)
    cmap[0] = np.arange(256) * 257
    cmap[1] = (255 - np.arange(256)) * 257
    cmap[2] = (np.arange(256) * 97 % 256) * 251
    data = tiff_bytes(colin, photometric="palette", colormap=cmap)
    V.append(Variant("tiff/tifffile/palette16", data, chw(np.moveaxis(cmap[:, colin], 0, -1)),
                     meta("tiff", 16, "uint", 3, palette=True)))
    # CMYK goes through libtiff's RGBA interface: R = (255 - K) * (255 - C) / 255, truncated
    cmyk = np.concatenate([ihc, (255 - colin[:128, :128])[..., None] // 3], -1).astype(np.uint8)
    data = tiff_bytes(cmyk, photometric="separated")
    k = 255 - cmyk[..., 3].astype(np.int32)
    rgb = np.stack([(k * (255 - cmyk[..., c].astype(np.int32))) // 255 for c in range(3)], -1)
    V.append(Variant("tiff/tifffile/cmyk_to_rgb", data, chw(rgb), meta("tiff", 8, "uint", 3)))
    # multi-page: three slices of different types
    import io
    b = io.BytesIO()
    with tifffile.TiffWriter(b) as tw:
        tw.write(mr16, compression="zlib")
        tw.write(colin)
        tw.write(ct, tile=(32, 32))
    data = b.getvalue()
    for k, (arr, depth, sample) in enumerate([(mr16, 16, "uint"), (colin, 8, "uint"), (ct, 16, "int")]):
        V.append(Variant(f"tiff/tifffile/multipage_p{k}", data, chw(arr), meta("tiff", depth, sample, 1, pages=3),
                         ref=chw(tifffile.imread(_write(tmp, "mp", data), key=k)), page=k))
    # odd depths through the generic bit unpacker
    rng = np.random.default_rng(7)
    for bits in (2, 4, 12, 24):
        base = crop(mr16).astype(np.int64)
        vals = (base * ((1 << bits) - 1) // 65535).astype(np.int64)
        vals[0, : min(5, vals.shape[1])] = (1 << bits) - 1
        V.append(Variant(f"tiff/raw/u{bits}", raw_tiff(vals, bits), chw(vals.astype(np.float64)),
                         meta("tiff", bits, "uint", 1)))
    for bits in (12, 24):
        vals = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(37, 29))
        V.append(Variant(f"tiff/raw/i{bits}_be", raw_tiff(vals, bits, signed=True, big_endian=True),
                         chw(vals.astype(np.float64)), meta("tiff", bits, "int", 1)))
    # PIL (libtiff) compressions
    for comp in ("tiff_lzw", "packbits", "tiff_adobe_deflate"):
        for arr, mode, depth, ch in ((colin, "L", 8, 1), (mr16, "I;16", 16, 1), (ihc, "RGB", 8, 3)):
            if comp == "packbits" and mode == "I;16":
                continue
            b = io.BytesIO()
            Image.fromarray(arr, mode=mode).save(b, format="TIFF", compression=comp)
            data = b.getvalue()
            V.append(Variant(f"tiff/pil/{mode}_{comp}", data, chw(arr), meta("tiff", depth, "uint", ch),
                             ref=chw(np.array(Image.open(io.BytesIO(data))).astype(arr.dtype))))
    b = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(b, format="TIFF", compression="group4")
    V.append(Variant("tiff/pil/1bit_group4", b.getvalue(), chw(mask), meta("tiff", 1, "uint", 1),
                     ref=chw(np.array(Image.open(io.BytesIO(b.getvalue()))).astype(np.uint8))))
    p = Image.fromarray((colin >> 4).astype(np.uint8), mode="P")
    p.putpalette([v for i in range(16) for v in (i * 17, 255 - i * 17, (i * 40) % 256)] + [0] * 720)
    b = io.BytesIO()
    p.save(b, format="TIFF")
    # PIL stores the 8-bit palette scaled to 16 bits: the values are the colour map's
    cm = tifffile.TiffFile(io.BytesIO(b.getvalue())).pages[0].colormap
    exp = np.moveaxis(cm[:, colin >> 4], 0, -1)
    depth = 16 if cm.max() > 255 else 8
    V.append(Variant("tiff/pil/P_palette", b.getvalue(), chw(exp), meta("tiff", depth, "uint", 3, palette=True)))
    for arr, mode in ((colin, "L"), (ihc, "RGB")):
        b = io.BytesIO()
        Image.fromarray(arr, mode=mode).save(b, format="TIFF", compression="jpeg", quality=90)
        ref = chw(np.array(Image.open(io.BytesIO(b.getvalue()))))
        V.append(Variant(f"tiff/pil/{mode}_jpeg", b.getvalue(), ref, meta("tiff", 8, "uint", ref.shape[0]), ref=ref,
                         tol=JPEG_TOL))
    V += tiffcp_variants(S, tmp)
    return V


def independent(path):
    """tifffile's decode, or PIL's (libtiff) where tifffile lacks the codec; None if neither can."""
    try:
        return chw(tifffile.imread(path))
    except Exception:
        pass
    try:
        im = Image.open(path)
        a = np.array(im)
        return chw(a.astype(np.uint8) if a.dtype == bool else a)
    except Exception:
        return None


def _write(tmp, name, data):
    path = os.path.join(tmp, name.replace("/", "_") + ".src")
    with open(path, "wb") as f:
        f.write(data)
    return path


def tiffcp_variants(S, tmp):
    tiffcp = shutil.which("tiffcp")
    if not tiffcp:
        print("note: tiffcp (libtiff-tools) not found: tiled LZW, predictor, BigTIFF and JPEG-YCbCr variants skipped")
        return []
    V = []
    mr16, ihc, inia, mask = S["mr16"], S["ihc"], S["inia"], S["mask"]
    bases = {
        "u16": (_write(tmp, "base_u16", tiff_bytes(mr16)), mr16, meta("tiff", 16, "uint", 1)),
        "rgb8": (_write(tmp, "base_rgb8", tiff_bytes(ihc, photometric="rgb")), ihc, meta("tiff", 8, "uint", 3)),
        "f32": (_write(tmp, "base_f32", tiff_bytes(inia)), inia, meta("tiff", 32, "float", 1)),
        "bilevel": (_write(tmp, "base_bilevel", raw_tiff(mask.astype(np.int64), 1)), mask, meta("tiff", 1, "uint", 1)),
    }
    jobs = [
        ("u16", ["-t", "-w", "64", "-l", "64", "-c", "lzw"], "u16_tiled_lzw"),
        ("u16", ["-c", "lzw:2"], "u16_lzw_predictor2"),
        ("u16", ["-B", "-c", "packbits"], "u16_packbits_be"),
        ("u16", ["-8", "-c", "zip"], "u16_bigtiff_zip"),
        ("u16", ["-r", "5", "-c", "lzw"], "u16_strips5_lzw"),
        ("rgb8", ["-p", "separate", "-c", "lzw"], "rgb8_planar_lzw"),
        ("rgb8", ["-c", "lzw:2"], "rgb8_lzw_predictor2"),
        ("rgb8", ["-t", "-w", "32", "-l", "32", "-B", "-c", "zip"], "rgb8_tiled_zip_be"),
        ("f32", ["-c", "zip:3"], "f32_zip_float_predictor"),
        ("f32", ["-B", "-t", "-w", "32", "-l", "32", "-c", "lzw"], "f32_tiled_lzw_be"),
        ("bilevel", ["-f", "lsb2msb"], "bilevel_lsb2msb"),
        ("bilevel", ["-c", "g3"], "bilevel_g3"),
        ("rgb8", ["-r", "16", "-c", "jpeg"], "rgb8_jpeg_ycbcr"),
        ("rgb8", ["-r", "32", "-c", "jpeg:r"], "rgb8_jpeg_rgb"),
        ("rgb8", ["-t", "-w", "32", "-l", "32", "-c", "jpeg"], "rgb8_jpeg_ycbcr_tiled"),
    ]
    for base, args, name in jobs:
        src, arr, m = bases[base]
        out = os.path.join(tmp, name + ".tif")
        r = subprocess.run([tiffcp] + args + [src, out], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"tiffcp {args} failed: {r.stderr}")
        with open(out, "rb") as f:
            data = f.read()
        if "jpeg" in name:
            import io
            ref = chw(np.array(Image.open(io.BytesIO(data)).convert("RGB")))
            V.append(Variant("tiff/tiffcp/" + name, data, ref, m, ref=ref, tol=JPEG_TOL))
        else:
            # PIL 9.4 does not swap big-endian float samples: no independent decoder for that one
            ref = None if name == "f32_tiled_lzw_be" else independent(out)
            V.append(Variant("tiff/tiffcp/" + name, data, chw(arr), m, ref=ref))
    return V


# ---------------------------------------------------------------- JPEG


def jpeg_variants(S, data):
    import io
    V = []
    path = os.path.join(data, "fundus_retina.jpg")
    with open(path, "rb") as f:
        raw = f.read()
    ref = chw(np.array(Image.open(path)))
    V.append(Variant("jpeg/shipped/fundus_retina", raw, ref, meta("jpeg", 8, "uint", 3), ref=ref, tol=JPEG_TOL))
    rgb, gray = S["retina"], S["colin"]
    cases = [("rgb_q90_420", rgb, dict(quality=90)), ("rgb_q95_444", rgb, dict(quality=95, subsampling=0)),
             ("rgb_q75_422_optimized", rgb, dict(quality=75, subsampling=1, optimize=True)),
             ("rgb_progressive", rgb, dict(quality=85, progressive=True)),
             ("gray_q90", gray, dict(quality=90)), ("gray_progressive", gray, dict(quality=80, progressive=True)),
             ("odd_size_rgb", crop(rgb, 37, 53), dict(quality=88))]
    for name, arr, kw in cases:
        b = io.BytesIO()
        Image.fromarray(arr).save(b, format="JPEG", **kw)
        d = b.getvalue()
        ref = chw(np.array(Image.open(io.BytesIO(d))))
        V.append(Variant("jpeg/pil/" + name, d, ref, meta("jpeg", 8, "uint", ref.shape[0]), ref=ref, tol=JPEG_TOL))
    return V


# ---------------------------------------------------------------- running


def run_one(exe, tmp, v, stats):
    src = _write(tmp, v.name, v.data)
    out = os.path.join(tmp, "out.npy")
    cmd = [exe, "image", "decode", src, "--out", out] + (["--page", str(v.page)] if v.page else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return f"decode failed ({r.returncode}): {r.stderr.strip()}"
    got = np.load(out)
    if got.dtype != np.float32 or got.shape != v.expect.shape:
        return f"shape/dtype {got.shape} {got.dtype}, expected {v.expect.shape} float32"
    err = float(np.max(np.abs(got.astype(np.float64) - v.expect.astype(np.float64))))
    if not err <= v.tol:  # NaN fails too
        return f"max |ours - expected| = {err} > {v.tol}"
    if v.ref is not None:
        rerr = float(np.max(np.abs(got.astype(np.float64) - v.ref.astype(np.float64))))
        if not rerr <= v.tol:
            return f"max |ours - independent decoder| = {rerr} > {v.tol}"
        kind = v.name.split("/")[0]
        stats[kind] = max(stats.get(kind, 0.0), rerr)
    info = subprocess.run([exe, "image", "info", src, "--json"] + (["--page", str(v.page)] if v.page else []),
                          capture_output=True, text=True)
    if info.returncode != 0:
        return f"info failed: {info.stderr.strip()}"
    j = json.loads(info.stdout)
    want = dict(v.meta, width=v.expect.shape[2], height=v.expect.shape[1], page=v.page)
    if want["channels"] is None:
        want["channels"] = v.expect.shape[0]
    for k, val in want.items():
        if j[k] != val:
            return f"info {k} = {j[k]!r}, expected {val!r}"
    if (np.isfinite(got).all() and not j["alpha"] and
            (np.float32(j["min"]) != got.min() or np.float32(j["max"]) != got.max())):
        return f"info range {j['min']}..{j['max']} != data {got.min()}..{got.max()}"
    return None


def main():
    exe, data = sys.argv[1], sys.argv[2]
    S = load_sources(data)
    failures, stats, cli_checks = [], {}, 0
    with tempfile.TemporaryDirectory(prefix="lvmmed_decode_") as tmp:
        variants = png_variants(S, data) + tiff_variants(S, tmp) + jpeg_variants(S, data)
        for v in variants:
            why = run_one(exe, tmp, v, stats)
            print(("FAIL " if why else "ok   ") + v.name + (": " + why if why else ""))
            if why:
                failures.append(v.name)
        # page past the end: a clean error naming the file and the page
        mp = [v for v in variants if v.name.endswith("multipage_p0")][0]
        src = _write(tmp, "pages", mp.data)
        r = subprocess.run([exe, "image", "decode", src, "--out", os.path.join(tmp, "x.npy"), "--page", "3"],
                           capture_output=True, text=True)
        ok = r.returncode == 1 and "page 3" in r.stderr and src in r.stderr
        print(("ok   " if ok else "FAIL ") + "tiff/page_past_end: " + r.stderr.strip())
        if not ok:
            failures.append("page_past_end")
        # usage errors exit 2, unreadable files exit 1 with the file named, --help exits 0
        any_file = os.path.join(data, "mr_colin27_u8.png")
        missing = os.path.join(tmp, "missing.png")
        for code, args in ((0, ["--help"]), (0, ["info", "--help"]), (2, []), (2, ["frob"]), (2, ["info"]),
                           (2, ["decode", any_file]), (2, ["info", any_file, "--page", "x"]),
                           (2, ["info", any_file, "--bogus"]), (2, ["info", any_file, any_file]),
                           (1, ["info", missing]), (1, ["decode", missing, "--out", os.path.join(tmp, "m.npy")]),
                           (1, ["decode", any_file, "--out", os.path.join(tmp, "no", "dir.npy")]),
                           (0, ["info", any_file])):
            r = subprocess.run([exe, "image"] + args, capture_output=True, text=True)
            ok = r.returncode == code and (code != 1 or "missing.png" in r.stderr or "dir.npy" in r.stderr)
            print(("ok   " if ok else "FAIL ") + f"cli image {' '.join(args)} -> {r.returncode}")
            if not ok:
                failures.append("cli " + " ".join(args))
                print(r.stdout, r.stderr)
            cli_checks += 1
    print(f"\n{len(variants) + 1} decode checks, {cli_checks} CLI usage checks, {len(failures)} failures; worst |ours - independent decoder| by "
          f"format: " + ", ".join(f"{k} {v:g}" for k, v in sorted(stats.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
