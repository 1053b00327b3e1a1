"""Convert a PyTorch checkpoint of a torchvision ResNet to safetensors for liblvmmed.

    python3 -m lvmmed.convert IN.pth|IN.torch OUT.safetensors [--arch resnet50]
                              [--in-channels 3] [--keep-unexpected] [--quiet]

Reads a ``torch.save``'d state_dict (torchvision's ``resnet*`` keys, as in
LVM-Med's released ``lvmmed_resnet.torch``), or a checkpoint dictionary that
holds one under "state_dict", "model", "backbone" or "encoder"; strips the
prefixes "module.", "backbone.", "encoder." and "model." when every key has
them. Reports with PyTorch's ``load_state_dict(strict=False)`` semantics
which keys the architecture expects but the file lacks ("missing") and which
the file has but the architecture does not use ("unexpected", e.g. the
classifier's fc.weight), then writes every tensor the architecture uses
(float tensors as F32, counters as I64) — add --keep-unexpected to copy the
others too. Needs torch only here; liblvmmed itself never does.

The module also offers :func:`save_safetensors` and :func:`load_safetensors`,
small numpy-only implementations of the format.
"""

import argparse
import json
import struct
import sys

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
           np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
_BY_NAME = {v: k for k, v in _DTYPES.items()}
PREFIXES = ("module.", "backbone.", "encoder.", "model.")


def save_safetensors(path, tensors, metadata=None):
    """Write {name: numpy array} (F32/F16/F64/I64/I32/U8, little-endian) to path."""
    header, blobs, at = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr)
        if a.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {a.dtype} is not supported")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """Read a safetensors file into ({name: numpy array}, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        dtype = _BY_NAME[e["dtype"]].newbyteorder("<")
        out[name] = np.frombuffer(data[base + begin:base + end], dtype=dtype).reshape(e["shape"])
    return out, meta


def expected_keys(arch, in_channels=3):
    """{name: shape} of the state_dict liblvmmed's backbone of arch uses (no classifier)."""
    import torchvision

    model = getattr(torchvision.models, arch)()
    if in_channels != 3:
        import torch.nn as nn
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("fc.")}


def _unwrap(obj):
    for key in ("state_dict", "model", "backbone", "encoder"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return _unwrap(obj[key])
    return obj


def _strip_prefixes(sd):
    changed = True
    while changed and sd:
        changed = False
        for p in PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return sd


def convert(src, dst, arch="resnet50", in_channels=3, keep_unexpected=False, log=print):
    """Convert src (a torch checkpoint) to dst; returns (missing, unexpected) key lists."""
    import torch

    obj = torch.load(src, map_location="cpu")
    sd = _strip_prefixes(_unwrap(obj))
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{src}: no state_dict of tensors found")
    want = expected_keys(arch, in_channels)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    out = {}
    for k, v in sd.items():
        if k not in want and not keep_unexpected:
            continue
        t = v.detach().cpu()
        if t.is_floating_point():
            t = t.float()
        elif t.dtype not in (torch.int64, torch.int32, torch.uint8):
            t = t.long()
        if k in want and tuple(t.shape) != want[k] and not (
                k == "conv1.weight" and in_channels == 1 and t.shape[1] == 3):
            raise ValueError(f"{src}: {k} has shape {tuple(t.shape)}, {arch} needs {want[k]}")
        out[k] = t.numpy()
    save_safetensors(dst, out, {"format": "pt", "lvmmed_arch": arch, "source": str(src)})
    log(f"{src} -> {dst}: {len(out)} tensors written for {arch}")
    log(f"missing keys ({len(missing)}): {', '.join(missing) if missing else '-'}")
    log(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected) if unexpected else '-'}"
        + (" (copied)" if keep_unexpected and unexpected else ""))
    return missing, unexpected


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m lvmmed.convert", description=__doc__.split("\n")[0])
    ap.add_argument("src", help="torch checkpoint (.pth / .torch)")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--in-channels", type=int, default=3, choices=[1, 3])
    ap.add_argument("--keep-unexpected", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        convert(args.src, args.dst, args.arch, args.in_channels, args.keep_unexpected,
                log=(lambda *a: None) if args.quiet else print)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"lvmmed.convert: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
