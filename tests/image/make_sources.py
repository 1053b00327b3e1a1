#!/usr/bin/python3
"""Regenerates the committed source fixtures in tests/image/data/ from Debian packages.

Not run by the tests: the outputs are committed (see data/README.md for
provenance and licences). To rebuild them, fetch the packages with the
project's data recipes and point this script at the folder:

    DATA_ROOT=extdata bash ../shared/data-recipes/fetch_sources.sh
    /usr/bin/python3 tests/image/make_sources.py --data-root extdata

Only sources whose licences allow redistribution are used (BSD, Apache-2.0,
CC0, matplotlib's PSF-style licence); the GPL head CT of invesalius is not.
"""
import argparse
import gzip
import os
import shutil

import numpy as np
import tifffile
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ITK = "src/insighttoolkit5-examples/usr/share/doc/insighttoolkit5-examples/examples/Data"
SK = "src/python3-skimage/usr/lib/python3/dist-packages/skimage/data"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    args = ap.parse_args()
    R, out = args.data_root, args.out
    os.makedirs(out, exist_ok=True)

    # 16-bit MR slice (matplotlib sample data, s1045.ima: 256 x 256 uint16).
    raw = gzip.open(os.path.join(R, "src/python-matplotlib-data/usr/share/matplotlib/mpl-data/sample_data/s1045.ima.gz")).read()
    mr16 = np.frombuffer(raw, dtype="<u2").reshape(256, 256)
    Image.fromarray(mr16.astype(np.uint16), mode="I;16").save(os.path.join(out, "mr_s1045_u16.png"), optimize=True)

    # Signed 16-bit CT slice in HU (imageio's stent CT, stored 0..2000; minus 1024 gives HU-like values).
    st = np.load(os.path.join(R, "src/python3-imageio/usr/lib/python3/dist-packages/imageio/resources/images/stent.npz"))["arr_0"]
    ct = (st[120].astype(np.int32) - 1024).astype(np.int16)
    tifffile.imwrite(os.path.join(out, "ct_stent_i16.tif"), ct, compression="zlib")

    # 8-bit MR (Colin27, mricron-data): one axial slice in RAS orientation.
    import nibabel as nib
    img = nib.as_closest_canonical(nib.load(os.path.join(R, "src/mricron-data/usr/share/mricron/templates/ch2.nii.gz")))
    vol = np.asanyarray(img.dataobj)
    sl = np.rot90(vol[:, :, 90]).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(sl), mode="L").save(os.path.join(out, "mr_colin27_u8.png"), optimize=True)

    # float32 MR (INIA19 macaque template, mricron-data): a 128 x 128 crop of one slice.
    img = nib.as_closest_canonical(nib.load(os.path.join(R, "src/mricron-data/usr/share/mricron/templates/inia19-t1-brain.nii.gz")))
    f = np.rot90(np.asanyarray(img.dataobj)[:, :, 64]).astype(np.float32)
    h, w = f.shape
    f = np.ascontiguousarray(f[(h - 128) // 2:(h - 128) // 2 + 128, (w - 128) // 2:(w - 128) // 2 + 128])
    tifffile.imwrite(os.path.join(out, "mr_inia19_f32.tif"), f, compression="zlib")

    # RGB histology (skimage ihc.png, no known restrictions): 128 x 128 crop.
    ihc = np.array(Image.open(os.path.join(R, SK, "ihc.png")).convert("RGB"))[192:320, 192:320]
    Image.fromarray(np.ascontiguousarray(ihc)).save(os.path.join(out, "ihc_rgb.png"), optimize=True)

    # Fundus photograph (skimage retina.jpg, CC0): 256 x 256, re-encoded as JPEG.
    ret = Image.open(os.path.join(R, SK, "retina.jpg")).convert("RGB").resize((256, 256), Image.BILINEAR)
    ret.save(os.path.join(out, "fundus_retina.jpg"), quality=90)

    # Files from other encoders, copied byte for byte: an 8-bit palette MR slice, a 1-bit
    # mask (ITK examples, Apache-2.0) and a gray fundus detail (skimage, CC0).
    shutil.copy(os.path.join(R, ITK, "BrainProtonDensitySlice.png"), os.path.join(out, "itk_palette_mr.png"))
    shutil.copy(os.path.join(R, ITK, "BrainProtonDensitySliceBorder20Mask.png"), os.path.join(out, "itk_mask_1bit.png"))
    shutil.copy(os.path.join(R, SK, "microaneurysms.png"), os.path.join(out, "fundus_microaneurysms.png"))
    for name in sorted(os.listdir(out)):
        print(f"{name:28s} {os.path.getsize(os.path.join(out, name)):8d} bytes")


if __name__ == "__main__":
    main()
