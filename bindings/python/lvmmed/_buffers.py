"""float32 buffers between Python and liblvmmed (numpy optional).

The rule, for every module that passes arrays to C:

* **Inputs** (``as_input``) are borrowed for one call, so converting them is
  harmless. With numpy, anything ``numpy.asarray`` accepts with a real
  numeric dtype is turned into a C-contiguous float32 array, copying only if
  it is not one already; ``copy=False`` raises instead of copying. Without
  numpy, buffer-protocol objects of format ``'f'`` (``array.array('f')``,
  ``memoryview``) are used as they are, and bytes-like objects of format
  ``'B'`` are read as raw native float32.
* **Outputs** (``as_output``) are written by C, so they are never copied: a
  copy would silently drop the results. An output that is not writable,
  C-contiguous float32 raises TypeError (wrong dtype) or ValueError (layout,
  read-only, size).

Helpers return a :class:`FloatBuffer`; keep it alive until the C call returns
(its ``owner`` holds the memory the pointer refers to).
"""

import array
import ctypes
import math
from collections import namedtuple

try:
    import numpy
except ImportError:  # the package works without numpy
    numpy = None

HAVE_NUMPY = numpy is not None

c_float_p = ctypes.POINTER(ctypes.c_float)

#: pointer: ``float *`` for C; shape: tuple of ints; owner: keeps the memory alive.
FloatBuffer = namedtuple("FloatBuffer", ["pointer", "shape", "owner"])


def _size(shape):
    return math.prod(shape)


def _normalise_shape(shape):
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return shape


def _reshape_check(have, shape, name):
    """The shape to report: the requested one if sizes agree, else have."""
    if shape is None:
        return have
    shape = _normalise_shape(shape)
    if _size(shape) != _size(have):
        raise ValueError(f"{name}: {_size(have)} elements cannot have shape {shape}")
    return shape


# --- numpy path -------------------------------------------------------------------------


def _raw_bytes_as_float32(obj, name):
    """bytes-like objects (format 'B') read as raw float32, as without numpy; else None."""
    try:
        mv = memoryview(obj)
    except TypeError:
        return None
    if mv.format not in ("B", "b", "c"):
        return None
    if not mv.c_contiguous:
        raise ValueError(f"{name}: buffer must be C-contiguous")
    if mv.nbytes % 4:
        raise ValueError(f"{name}: {mv.nbytes} bytes is not a whole number of float32")
    return numpy.frombuffer(mv, dtype=numpy.float32)


def _numpy_input(obj, shape, name, copy):
    if isinstance(obj, numpy.ndarray):
        arr = obj
    else:
        arr = _raw_bytes_as_float32(obj, name)
        if arr is None:
            arr = numpy.asarray(obj)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers (float32), got dtype {arr.dtype}")
    if arr.dtype != numpy.float32 or not (arr.flags.c_contiguous and arr.flags.aligned):
        if not copy:
            what = f"dtype {arr.dtype}" if arr.dtype != numpy.float32 else "a non-C-contiguous or misaligned array"
            raise (TypeError if arr.dtype != numpy.float32 else ValueError)(
                f"{name}: expected C-contiguous float32, got {what} (pass copy=True to convert)"
            )
        arr = numpy.ascontiguousarray(arr, dtype=numpy.float32)
    shape = _reshape_check(arr.shape, shape, name)
    return FloatBuffer(arr.ctypes.data_as(c_float_p), shape, arr)


def _numpy_output(arr, shape, name):
    if arr.dtype != numpy.float32:
        raise TypeError(f"{name}: output must be float32, got dtype {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name}: output must be C-contiguous (numpy.ascontiguousarray would copy it)")
    if not arr.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")
    shape = _reshape_check(arr.shape, shape, name)
    return FloatBuffer(arr.ctypes.data_as(c_float_p), shape, arr)


# --- plain buffer-protocol path ------------------------------------------------------------


def _float_view(obj, name):
    """A 1-D memoryview of format 'f' over obj, and obj's own shape."""
    try:
        mv = memoryview(obj)
    except TypeError:
        raise TypeError(
            f"{name}: expected a float32 buffer (array.array('f'), memoryview, bytes; "
            f"numpy is not installed), got {type(obj).__name__}"
        ) from None
    if not mv.c_contiguous:
        raise ValueError(f"{name}: buffer must be C-contiguous")
    if mv.format in ("f", "<f", "=f", "@f") and mv.itemsize == 4:
        shape = tuple(mv.shape) if mv.ndim else ()
        return mv.cast("B").cast("f"), shape
    if mv.format in ("B", "b", "c"):
        if mv.nbytes % 4:
            raise ValueError(f"{name}: {mv.nbytes} bytes is not a whole number of float32")
        flat = mv.cast("B").cast("f")
        return flat, (len(flat),)
    raise TypeError(f"{name}: expected float32 data (buffer format 'f'), got format {mv.format!r}")


def _plain_input(obj, shape, name, copy):
    flat, have = _float_view(obj, name)
    shape = _reshape_check(have, shape, name)
    n = len(flat)
    if flat.readonly:
        # ctypes can only point into writable buffers; bytes and friends are copied.
        if not copy:
            raise ValueError(f"{name}: read-only buffer needs a copy (pass copy=True)")
        owner = (ctypes.c_float * n).from_buffer_copy(flat)
    else:
        owner = (ctypes.c_float * n).from_buffer(flat)
    return FloatBuffer(ctypes.cast(owner, c_float_p), shape, (owner, flat, obj))


def _plain_output(obj, shape, name):
    flat, have = _float_view(obj, name)
    if flat.readonly:
        raise ValueError(f"{name}: output buffer is read-only")
    shape = _reshape_check(have, shape, name)
    owner = (ctypes.c_float * len(flat)).from_buffer(flat)
    return FloatBuffer(ctypes.cast(owner, c_float_p), shape, (owner, flat, obj))


# --- public helpers ----------------------------------------------------------------------------


def as_input(obj, shape=None, *, name="array", copy=True):
    """A FloatBuffer over obj for C to read (see the module doc for the conversion rule).

    shape, if given, must have the same number of elements and is what the
    result reports (obj's own shape otherwise; 1-D for flat buffers).
    """
    if numpy is not None:
        return _numpy_input(obj, shape, name, copy)
    return _plain_input(obj, shape, name, copy)


def as_output(obj, shape=None, *, name="out"):
    """A FloatBuffer over obj for C to write; never copies (raises instead)."""
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return _numpy_output(obj, shape, name)
    return _plain_output(obj, shape, name)


def empty(shape):
    """A zero-filled float32 array of shape: numpy.ndarray, or a flat C-order array.array('f')."""
    shape = _normalise_shape(shape)
    if numpy is not None:
        return numpy.zeros(shape, dtype=numpy.float32)
    out = array.array("f", bytes(4 * _size(shape)))
    if out.itemsize != 4:  # array 'f' is C float; liblvmmed needs IEEE binary32
        raise RuntimeError("array.array('f') is not 4 bytes on this platform")
    return out


def new_output(shape):
    """Allocate an output array of shape and return ``(array, FloatBuffer)`` ready for C."""
    shape = _normalise_shape(shape)
    arr = empty(shape)
    return arr, as_output(arr, shape)
