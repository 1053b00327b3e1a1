"""A small independent PNG encoder for test fixtures PIL cannot write.

Covers every colour type and bit depth of the PNG specification, tRNS,
PLTE, Adam7 interlacing, and all five row filters (cycled per row, so a
decoder's unfiltering is exercised). Written from the PNG specification
(ISO/IEC 15948); nothing here is optimised.
"""
import struct
import zlib

import numpy as np

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
# Adam7 passes as (x0, y0, dx, dy)
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _pack_row(samples, depth):
    """Samples (1-D uint array) -> bytes, MSB first for depths below 8, big-endian for 16."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    out = bytearray((len(samples) * depth + 7) // 8)
    for i, v in enumerate(samples):
        out[i // per] |= (int(v) & ((1 << depth) - 1)) << (8 - depth * (i % per + 1))
    return bytes(out)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter(row, prev, bpp, ftype):
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev is not None else 0
        c = prev[i - bpp] if (prev is not None and i >= bpp) else 0
        pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
        out[i] = (x - pred) & 0xFF
    return bytes([ftype]) + bytes(out)


def _image_data(pix, depth, ctype, rows_start=0):
    """Filtered scanlines of pix (H x W x C); filter type cycles with the row number."""
    h, w, c = pix.shape
    bpp = max(1, c * depth // 8)
    out, prev = bytearray(), None
    for y in range(h):
        row = _pack_row(pix[y].reshape(-1), depth)
        out += _filter(row, prev, bpp, (y + rows_start) % 5)
        prev = row
    return bytes(out)


def encode(pix, depth, ctype, palette=None, trns=None, interlace=False):
    """pix: H x W x C integer samples (palette indices for colour type 3).

    palette: list of (r, g, b); trns: bytes of palette alphas (type 3), a gray value
    (type 0) or an (r, g, b) triple (type 2).
    """
    pix = np.asarray(pix)
    if pix.ndim == 2:
        pix = pix[:, :, None]
    h, w, c = pix.shape
    assert c == CHANNELS[ctype]
    png = b"\x89PNG\r\n\x1a\n"
    png += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += _chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns is not None:
        if ctype == 3:
            data = bytes(trns)
        elif ctype == 0:
            data = struct.pack(">H", trns)
        else:
            data = struct.pack(">HHH", *trns)
        png += _chunk(b"tRNS", data)
    if interlace:
        raw = bytearray()
        for x0, y0, dx, dy in ADAM7:
            sub = pix[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += _image_data(sub, depth, ctype, rows_start=y0)
        raw = bytes(raw)
    else:
        raw = _image_data(pix, depth, ctype)
    comp = zlib.compress(raw, 9)
    # Two IDAT chunks: decoders must concatenate them.
    half = len(comp) // 2
    png += _chunk(b"IDAT", comp[:half]) + _chunk(b"IDAT", comp[half:])
    png += _chunk(b"IEND", b"")
    return png
