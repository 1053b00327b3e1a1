"""Pretrainer: Python owner of an ``lvmmed_pretrainer`` (the LVM-Med step and its checkpoints).

Needs numpy. The components are lent out as ordinary binding objects
(:class:`~lvmmed.Backbone`, :class:`~lvmmed.Affinity`, :class:`~lvmmed.IMLE`,
:class:`~lvmmed.Optimizer`, :class:`~lvmmed.GMSolver`) that stay valid while the
pretrainer is open and its structure is not replaced::

    with lvmmed.Context(threads=2, seed=1) as ctx, lvmmed.Pretrainer(ctx, arch="resnet18") as pt:
        pt.optimizer["lr"] = 1e-3
        pt.affinity["alpha"] = 0.8
        loss = pt.step(views_s, views_t, grids_s, grids_t)   # or pt.step_dataset(ds)
        pt.save("run.safetensors")
"""

import ctypes

from ._handle import Handle, Option, option_properties
from ._lib import PretrainerPtr, lib, text
from .backbone import ARCHS, Backbone
from .graph import IMLE, Affinity, GMSolver
from .optim import METHODS, Optimizer

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

#: lvmmed_pretrain_stat values by name.
STATS = {"step": 1, "loss": 2, "lr": 3, "epoch": 4, "position": 5, "images": 6, "graphs": 7,
         "seconds_data": 8, "seconds_backbone": 9, "seconds_graph": 10, "seconds_update": 11}

_BORROWED = {}


def _borrowed_class(cls):
    """A subclass of cls whose close() forgets the handle instead of freeing it."""
    sub = _BORROWED.get(cls)
    if sub is None:
        def close(self):
            self._ptr = None
            if hasattr(self, "_fwd"):
                self._fwd = None

        sub = type(cls.__name__, (cls,), {"close": close, "__doc__": cls.__doc__,
                                          "__module__": cls.__module__})
        _BORROWED[cls] = sub
    return sub


def _borrow(cls, ptr, owner, **attrs):
    obj = object.__new__(_borrowed_class(cls))
    obj._ptr = ptr
    obj._owner = owner  # keeps the pretrainer (and so the C object) alive
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


def _views(a, name):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"{name} must be (batch, 3, height, width), not {a.shape}")
    return a


@option_properties
class Pretrainer(Handle):
    """The LVM-Med pretraining step over a backbone, affinity builder, solvers, I-MLE and optimizer.

    ``Pretrainer(ctx, arch="resnet50", optimizer="adam", frozen_bn=False,
    local_term=True, batch=32)``. See include/lvmmed/pretrain.h for the
    step, the life cycle and the checkpoint format.
    """

    _c_free = lib.lvmmed_pretrainer_free
    _c_set = lib.lvmmed_pretrainer_set_option
    _c_get = lib.lvmmed_pretrainer_get_option
    _c_bounds = lib.lvmmed_pretrainer_option_bounds
    _c_value = ctypes.c_double
    _OPTIONS = {"arch": Option(1, ARCHS), "optimizer": Option(2, METHODS), "frozen_bn": Option(3, bool),
                "local_term": Option(4, bool), "batch": Option(5, int)}

    def __init__(self, context, **options):
        if np is None:
            raise ImportError("lvmmed.Pretrainer needs numpy")
        unknown = set(options) - set(self._OPTIONS)
        if unknown:
            raise TypeError(f"Pretrainer() got unknown options {sorted(unknown)}")
        ptr = PretrainerPtr()
        lib.lvmmed_pretrainer_create(context._handle(), ctypes.byref(ptr))
        self._ptr = ptr
        self._context = context
        self._lent = {}
        try:
            # arch and optimizer replace components: set them before anything else
            for name in ("arch", "optimizer"):
                if options.get(name) is not None:
                    self.set_option(name, options.pop(name))
            self._set_options(options)
        except BaseException:
            self.close()
            raise

    # -- lifetime -------------------------------------------------------------------------
    def _forget_components(self):
        for obj in self._lent.values():
            obj.close()
        self._lent = {}

    def close(self):
        """Free the pretrainer and its components (lent objects become closed)."""
        self._forget_components()
        super().close()

    def set_option(self, name, value):
        if self._option(name).key in (1, 2):  # replaces the backbone or the optimizer
            self._forget_components()
        super().set_option(name, value)

    __setitem__ = set_option

    # -- components ------------------------------------------------------------------------
    def _component(self, key, make):
        obj = self._lent.get(key)
        if obj is None or not obj._ptr:
            obj = self._lent[key] = make()
        return obj

    @property
    def backbone(self):
        """The :class:`Backbone` (with its projector) being trained."""
        def make():
            return _borrow(Backbone, lib.lvmmed_pretrainer_backbone(self._h()), self,
                           arch=self.get_option("arch"), in_channels=3, _batch=None, _input_shape=None,
                           _map_shape=None, _proj_batch=None)
        return self._component("backbone", make)

    @property
    def affinity(self):
        """The :class:`Affinity` builder (group size, k, GCN, α, γ)."""
        return self._component("affinity", lambda: _borrow(
            Affinity, lib.lvmmed_pretrainer_affinity(self._h()), self, _fwd=None))

    @property
    def imle(self):
        """The :class:`IMLE` estimator (λ, noise)."""
        return self._component("imle", lambda: _borrow(
            IMLE, lib.lvmmed_pretrainer_imle(self._h()), self, _fwd=None))

    @property
    def optimizer(self):
        """The :class:`Optimizer` (its parameters are registered by the first step)."""
        return self._component("optimizer", lambda: _borrow(
            Optimizer, lib.lvmmed_pretrainer_optimizer(self._h()), self, _context=self._context,
            _arrays=[], method=self.get_option("optimizer")))

    @property
    def solver(self):
        """The :class:`GMSolver` whose options every solver lane follows."""
        return self._component("solver", lambda: _borrow(
            GMSolver, lib.lvmmed_pretrainer_solver(self._h()), self))

    # -- counters -------------------------------------------------------------------------
    def stat(self, name):
        """One counter or timing by name (see :data:`STATS`)."""
        if name not in STATS:
            raise KeyError(f"unknown stat {name!r} (expected one of: {', '.join(STATS)})")
        v = ctypes.c_double()
        lib.lvmmed_pretrainer_stat(self._h(), STATS[name], ctypes.byref(v))
        return v.value

    def stats(self):
        """{name: value} of every counter and timing."""
        return {name: self.stat(name) for name in STATS}

    @property
    def steps(self):
        """Optimizer updates done."""
        return int(self.stat("step"))

    def grid_shape(self, height, width):
        """(grid_h, grid_w) of the location grids a step expects for views of that size."""
        gh, gw = ctypes.c_size_t(), ctypes.c_size_t()
        lib.lvmmed_pretrainer_grid_shape(self._h(), height, width, ctypes.byref(gh), ctypes.byref(gw))
        return gh.value, gw.value

    # -- training -------------------------------------------------------------------------
    def _args(self, views_s, views_t, grids_s, grids_t):
        vs, vt = _views(views_s, "views_s"), _views(views_t, "views_t")
        if vs.shape != vt.shape:
            raise ValueError(f"views_s {vs.shape} and views_t {vt.shape} differ")
        b, _, h, w = vs.shape
        gs = gt = None
        if grids_s is not None or grids_t is not None:
            if grids_s is None or grids_t is None:
                raise ValueError("give both grids or neither")
            want = (b,) + self.grid_shape(h, w) + (2,)
            gs = np.ascontiguousarray(grids_s, dtype=np.float32)
            gt = np.ascontiguousarray(grids_t, dtype=np.float32)
            for g, name in ((gs, "grids_s"), (gt, "grids_t")):
                if g.shape != want:
                    raise ValueError(f"{name} has shape {g.shape}, expected {want}")
        ptr = lambda a: None if a is None else a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
        return (b, h, w, ptr(vs), ptr(vt), ptr(gs), ptr(gt)), (vs, vt, gs, gt)

    def forward_backward(self, views_s, views_t, grids_s=None, grids_t=None):
        """Loss of one step; leaves this step's gradients in every parameter (no update)."""
        args, _keep = self._args(views_s, views_t, grids_s, grids_t)
        loss = ctypes.c_double()
        lib.lvmmed_pretrainer_forward_backward(self._h(), *args, ctypes.byref(loss))
        return loss.value

    def update(self):
        """Apply the optimizer to the gradients of the last forward_backward."""
        lib.lvmmed_pretrainer_update(self._h())

    def step(self, views_s, views_t, grids_s=None, grids_t=None):
        """forward_backward + update; returns the loss."""
        args, _keep = self._args(views_s, views_t, grids_s, grids_t)
        loss = ctypes.c_double()
        lib.lvmmed_pretrainer_step(self._h(), *args, ctypes.byref(loss))
        return loss.value

    def step_dataset(self, dataset):
        """One step on the next ``batch`` images of a :class:`Dataset`; returns the loss."""
        loss = ctypes.c_double()
        lib.lvmmed_pretrainer_step_dataset(self._h(), dataset._h(), ctypes.byref(loss))
        return loss.value

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path):
        """Write a checkpoint (atomically: temporary file, fsync, rename)."""
        lib.lvmmed_pretrainer_save(self._h(), str(path).encode())

    def load(self, path):
        """Restore a checkpoint; lent components are replaced (fetch them again)."""
        lib.lvmmed_pretrainer_load(self._h(), str(path).encode())
        self._forget_components()


def read_checkpoint_meta(context, path, key):
    """Metadata value key of a checkpoint (e.g. "step", "lvmmed_arch", "lvmmed_config")."""
    size = 1 << 16
    while True:
        buf = ctypes.create_string_buffer(size)
        try:
            lib.lvmmed_checkpoint_read_meta(context._handle(), str(path).encode(), key.encode(), buf, size)
            return text(buf.value)
        except Exception as e:  # LimitError: grow and retry
            if getattr(e, "status_name", "") != "LVMMED_ERR_LIMIT" or size > (1 << 26):
                raise
            size *= 4
