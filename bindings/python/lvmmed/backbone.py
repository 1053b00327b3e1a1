"""The Backbone: Python owner of an ``lvmmed_backbone`` (torchvision ResNet in C).

Needs numpy. Arrays in and out are float32 numpy arrays in NCHW order::

    with lvmmed.Context(threads=2) as ctx:
        bb = lvmmed.Backbone(ctx, "resnet50")
        bb.load("lvmmed_resnet.safetensors")
        pooled, fmap = bb.forward(images)        # (N, 2048), (N, 2048, h, w)
"""

import ctypes

from ._handle import Handle
from ._lib import BackbonePtr, lib, text

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is a hard requirement of this module
    np = None

ARCHS = {"resnet18": 1, "resnet34": 2, "resnet50": 3}
_OPT_TRAIN, _OPT_GRAD, _OPT_PROJ_OUT, _OPT_PROJ_HIDDEN, _OPT_FROZEN = 1, 2, 3, 4, 5
LOAD_STRICT, LOAD_IGNORE_PROJECTOR = 1, 2
_KIND = {0: "parameter", 1: "buffer"}


def _need_numpy():
    if np is None:
        raise ImportError("lvmmed.Backbone needs numpy")


def _f32(array, shape=None, name="array"):
    """A C-contiguous float32 copy-or-view of array, checked against shape."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    return a


def _ptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


class Backbone(Handle):
    """A ResNet-18/34/50 (torchvision layout) with its projector, gradients and state.

    Lifetime (close, context manager, ``closed``, no copies) comes from
    :class:`~lvmmed._handle.Handle`; options are set by their enum value.
    """

    _c_free = lib.lvmmed_backbone_free
    _ptr = None

    def __init__(self, context, arch="resnet50", in_channels=3, *, proj_out=None,
                 proj_hidden=None):
        _need_numpy()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, not {arch!r}")
        ptr = BackbonePtr()
        lib.lvmmed_backbone_create(context._handle(), ARCHS[arch], in_channels, ctypes.byref(ptr))
        self._ptr = ptr
        self.arch = arch
        self.in_channels = in_channels
        self._batch = None
        self._input_shape = None
        self._map_shape = None
        self._proj_batch = None
        if proj_hidden is not None:
            self.set_option(_OPT_PROJ_HIDDEN, proj_hidden)
        if proj_out is not None:
            self.set_option(_OPT_PROJ_OUT, proj_out)

    # -- options --------------------------------------------------------------------
    def set_option(self, option, value):
        lib.lvmmed_backbone_set_option(self._h(), int(option), int(value))

    def get_option(self, option):
        v = ctypes.c_int64()
        lib.lvmmed_backbone_get_option(self._h(), int(option), ctypes.byref(v))
        return v.value

    train = property(lambda self: bool(self.get_option(_OPT_TRAIN)),
                     lambda self, v: self.set_option(_OPT_TRAIN, bool(v)),
                     doc="True: batch statistics (train mode); False: running statistics")
    grad_enabled = property(lambda self: bool(self.get_option(_OPT_GRAD)),
                            lambda self, v: self.set_option(_OPT_GRAD, bool(v)),
                            doc="False: forward keeps nothing for backward (inference)")
    frozen = property(lambda self: bool(self.get_option(_OPT_FROZEN)),
                      lambda self, v: self.set_option(_OPT_FROZEN, bool(v)),
                      doc="True: weights packed once and reused (set again after changing them)")

    @property
    def feature_dim(self):
        d = ctypes.c_size_t()
        lib.lvmmed_backbone_info(self._h(), None, None, ctypes.byref(d))
        return d.value

    @property
    def projector_dim(self):
        return lib.lvmmed_backbone_projector_dim(self._h())

    def map_shape(self, height, width):
        """(D, h, w) of the feature map for a height×width input."""
        c, h, w = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        lib.lvmmed_backbone_map_shape(self._h(), height, width, ctypes.byref(c), ctypes.byref(h),
                                      ctypes.byref(w))
        return c.value, h.value, w.value

    # -- passes ---------------------------------------------------------------------
    def forward(self, images, feature_map=True):
        """images (N, C, H, W) → (pooled (N, D), feature map (N, D, h, w) or None)."""
        x = _f32(images, name="images")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"images must be (N, {self.in_channels}, H, W), not {x.shape}")
        n, _, height, width = x.shape
        d, h, w = self.map_shape(height, width)
        pooled = np.empty((n, d), np.float32)
        fmap = np.empty((n, d, h, w), np.float32) if feature_map else None
        lib.lvmmed_backbone_forward(self._h(), _ptr(x), n, height, width, _ptr(pooled), _ptr(fmap))
        self._batch, self._input_shape, self._map_shape = n, x.shape, (n, d, h, w)
        return pooled, fmap

    def backward(self, d_pooled=None, d_feature_map=None, input_grad=False):
        """Adds parameter gradients; returns dL/d(images) when input_grad, else None."""
        if self._batch is None:
            raise ValueError("backward before forward")
        n, d = self._map_shape[0], self._map_shape[1]
        dp = None if d_pooled is None else _f32(d_pooled, (n, d), "d_pooled")
        dm = None if d_feature_map is None else _f32(d_feature_map, self._map_shape, "d_feature_map")
        dx = np.empty(self._input_shape, np.float32) if input_grad else None
        lib.lvmmed_backbone_backward(self._h(), _ptr(dp), _ptr(dm), _ptr(dx))
        return dx

    def zero_grad(self):
        lib.lvmmed_backbone_zero_grad(self._h())

    def project(self, pooled):
        p = _f32(pooled, name="pooled")
        if p.ndim != 2 or p.shape[1] != self.feature_dim:
            raise ValueError(f"pooled must be (N, {self.feature_dim}), not {p.shape}")
        out = np.empty((p.shape[0], self.projector_dim), np.float32)
        lib.lvmmed_backbone_project(self._h(), _ptr(p), p.shape[0], _ptr(out))
        self._proj_batch = p.shape[0]
        return out

    def project_backward(self, d_out):
        n = self._proj_batch
        g = _f32(d_out, (n, self.projector_dim), "d_out")
        dp = np.empty((n, self.feature_dim), np.float32)
        lib.lvmmed_backbone_project_backward(self._h(), _ptr(g), _ptr(dp))
        return dp

    # -- tensors --------------------------------------------------------------------
    def _tensor(self, index):
        name, kind = ctypes.c_char_p(), ctypes.c_int()
        ndim, numel = ctypes.c_size_t(), ctypes.c_size_t()
        shape = (ctypes.c_size_t * 4)()
        data, grad = ctypes.c_void_p(), ctypes.c_void_p()
        lib.lvmmed_backbone_tensor(self._h(), index, ctypes.byref(name), ctypes.byref(kind),
                                   ctypes.byref(ndim), shape, ctypes.byref(numel),
                                   ctypes.byref(data), ctypes.byref(grad))
        return text(name.value), _KIND.get(kind.value, kind.value), tuple(shape[: ndim.value]), \
            data.value, grad.value

    def _view(self, addr, shape):
        n = 1
        for s in shape:
            n *= s
        buf = (ctypes.c_float * n).from_address(addr)
        return np.frombuffer(buf, dtype=np.float32).reshape(shape)

    def names(self):
        """Tensor names in state_dict order (parameters and buffers)."""
        return [self._tensor(i)[0] for i in range(lib.lvmmed_backbone_tensor_count(self._h()))]

    def tensors(self):
        """[(name, kind, shape)] in state_dict order."""
        return [self._tensor(i)[:3] for i in range(lib.lvmmed_backbone_tensor_count(self._h()))]

    def _find(self, name):
        idx = ctypes.c_size_t()
        lib.lvmmed_backbone_find_tensor(self._h(), name.encode(), ctypes.byref(idx))
        return self._tensor(idx.value)

    def get(self, name):
        """A copy of tensor name's values."""
        _, _, shape, data, _ = self._find(name)
        return self._view(data, shape).copy()

    def set(self, name, value):
        """Overwrites tensor name's values."""
        _, _, shape, data, _ = self._find(name)
        self._view(data, shape)[...] = _f32(value, shape, name)

    def grad(self, name):
        """A copy of tensor name's gradient (None for buffers)."""
        _, _, shape, _, grad = self._find(name)
        return None if not grad else self._view(grad, shape).copy()

    def state_dict(self):
        return {n: self.get(n) for n in self.names()}

    # -- weights --------------------------------------------------------------------
    def load(self, path, strict=False, ignore_projector=False):
        """Loads a safetensors file; returns (missing, unexpected) counts."""
        flags = (LOAD_STRICT if strict else 0) | (LOAD_IGNORE_PROJECTOR if ignore_projector else 0)
        m, u = ctypes.c_size_t(), ctypes.c_size_t()
        lib.lvmmed_backbone_load(self._h(), str(path).encode(), flags, ctypes.byref(m),
                                 ctypes.byref(u))
        return m.value, u.value

    def load_bytes(self, data, strict=False, ignore_projector=False):
        flags = (LOAD_STRICT if strict else 0) | (LOAD_IGNORE_PROJECTOR if ignore_projector else 0)
        m, u = ctypes.c_size_t(), ctypes.c_size_t()
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        lib.lvmmed_backbone_load_memory(self._h(), buf, len(data), flags, ctypes.byref(m),
                                        ctypes.byref(u))
        return m.value, u.value

    def save(self, path):
        lib.lvmmed_backbone_save(self._h(), str(path).encode())
