"""numpy arrays to and from C for the graph, image and dataset bindings.

Inputs (:func:`array_in`) are borrowed for one call: an array that already
is C-contiguous, aligned and of the C type is passed through (its own
memory, no copy); anything else numpy can convert without changing the kind
of number is converted once. Wrong kinds raise TypeError (float data for
int32 indices, complex, bool, strings, objects), wrong shapes ValueError,
both before any C call.

Outputs (:func:`array_out`) are allocated with ``numpy.empty`` and filled in
place by C; a caller's ``out=`` array must already be exactly right (dtype,
shape, C-contiguous, writable): it is never copied, since a copy would
silently lose the results.
"""

import ctypes

try:
    import numpy as np
except ImportError:  # pragma: no cover - these modules need numpy
    np = None

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def need_numpy(what):
    if np is None:
        raise ImportError(f"{what} needs numpy")


def _check_shape(shape, want, name):
    """want: a tuple of ints or None (any size); its length is the required ndim."""
    if want is None:
        return
    if len(shape) != len(want) or any(w is not None and s != w for s, w in zip(shape, want)):
        pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
        raise ValueError(f"{name} has shape {tuple(shape)}, expected {pretty}")


def array_in(obj, dtype, name, shape=None):
    """A C-contiguous array of dtype over obj (obj itself when it already is one).

    shape: required shape, None entries matching any size (None: any shape).
    float dtypes accept integer and float data; integer dtypes integer data only
    (values must fit: int64 indices are range-checked before narrowing).
    """
    dtype = np.dtype(dtype)
    arr = obj if isinstance(obj, np.ndarray) else np.asarray(obj)
    kinds = "iu" if dtype.kind in "iu" else "iuf"
    if arr.dtype.kind not in kinds:
        want = "integers" if dtype.kind in "iu" else "real numbers"
        raise TypeError(f"{name}: expected {want} ({dtype}), got dtype {arr.dtype}")
    _check_shape(arr.shape, shape, name)
    if arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    if dtype == np.int32 and arr.size and arr.dtype != np.int32:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < _INT32_MIN or hi > _INT32_MAX:
            raise ValueError(f"{name}: values [{lo}, {hi}] do not fit in int32")
    return np.ascontiguousarray(arr, dtype=dtype)


def optional_in(obj, dtype, name, shape=None):
    return None if obj is None else array_in(obj, dtype, name, shape)


def array_out(out, shape, dtype, name="out"):
    """out checked as a C-writable array of shape and dtype, or a new numpy.empty one."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: output must be {dtype}, got dtype {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"{name}: output has shape {out.shape}, expected {shape}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError(f"{name}: output must be C-contiguous (it is written in place, never copied)")
    if not out.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")
    return out


def out_tuple(out, count, what):
    """out= of a call with count outputs: None, or a sequence of count arrays-or-None."""
    if out is None:
        return (None,) * count
    out = tuple(out)
    if len(out) != count:
        raise ValueError(f"{what}: out must hold {count} entries (None to allocate), not {len(out)}")
    return out


def ptr(arr):
    """The data pointer of arr for a ``void *`` parameter (None → NULL)."""
    return None if arr is None else ctypes.c_void_p(arr.ctypes.data)


def c_view(address, shape, dtype, owner, readonly=False):
    """A numpy array over C memory at address; keeps owner alive while the array lives."""
    dtype = np.dtype(dtype)
    count = 1
    for s in shape:
        count *= int(s)
    if not address or count == 0:
        return np.empty(shape, dtype)
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    raw._lvmmed_owner = owner  # the numpy array's base chain ends here: owner stays alive
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if readonly:
        arr.flags.writeable = False
    return arr


def as_path(path):
    """bytes for a ``const char *`` path (str, bytes or os.PathLike)."""
    import os

    path = os.fspath(path)
    return path if isinstance(path, bytes) else os.fsencode(path)
