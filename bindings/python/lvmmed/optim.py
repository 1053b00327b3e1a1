"""Optimizer: Python owner of an ``lvmmed_optimizer`` (SGD, Adam/AdamW, LARS + LR schedules).

Parameters are float32 numpy arrays updated in place; the optimizer keeps a
reference to every registered array (data and gradient) so the memory the C
side points to stays alive::

    opt = lvmmed.Optimizer(ctx, "adam", lr=2e-3, schedule="step", step_every=1000)
    opt.add_param("w", w, grad_w)      # w, grad_w: C-contiguous float32 arrays
    ...compute grad_w...
    opt.step()
"""

import ctypes

from ._handle import Handle
from ._lib import OptimizerPtr, lib

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

METHODS = {"sgd": 1, "adam": 2, "lars": 3}
SCHEDULES = {"constant": 0, "cosine": 1, "step": 2}
OPTIONS = {
    "lr": 1, "weight_decay": 2, "momentum": 3, "nesterov": 4, "beta1": 5, "beta2": 6, "eps": 7,
    "decoupled": 8, "trust": 9, "schedule": 10, "warmup_steps": 11, "total_steps": 12,
    "min_lr_ratio": 13, "step_every": 14, "gamma": 15,
}
NO_WEIGHT_DECAY, NO_ADAPT = 1, 2


class Optimizer(Handle):
    """An optimizer over float32 numpy arrays (see include/lvmmed/optim.h for the rules).

    Lifetime (close, context manager, no copies) comes from :class:`~lvmmed._handle.Handle`;
    options are read and written by name with ``opt["lr"]``.
    """

    _c_free = lib.lvmmed_optimizer_free

    def __init__(self, context, method="adam", **options):
        if np is None:
            raise ImportError("lvmmed.Optimizer needs numpy")
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
        ptr = OptimizerPtr()
        lib.lvmmed_optimizer_create(context._handle(), METHODS[method], ctypes.byref(ptr))
        self._ptr = ptr
        self._context = context  # the C object holds a reference; keep the Python owner too
        self._arrays = []
        self.method = method
        for name, value in options.items():
            self[name] = value

    def _handle(self):
        return self._h()

    # -- options -------------------------------------------------------------------
    def __setitem__(self, name, value):
        if name == "schedule" and isinstance(value, str):
            value = SCHEDULES[value]
        lib.lvmmed_optimizer_set_option(self._handle(), OPTIONS[name], float(value))

    def __getitem__(self, name):
        out = ctypes.c_double()
        lib.lvmmed_optimizer_get_option(self._handle(), OPTIONS[name], ctypes.byref(out))
        return out.value

    @staticmethod
    def option_bounds(name):
        lo, hi = ctypes.c_double(), ctypes.c_double()
        lib.lvmmed_optim_option_bounds(OPTIONS[name], ctypes.byref(lo), ctypes.byref(hi))
        return lo.value, hi.value

    # -- parameters ----------------------------------------------------------------
    def add_param(self, name, data, grad, flags=0):
        """Registers data (updated in place) and grad (read at each step); both float32, C-contiguous."""
        for what, a in (("data", data), ("grad", grad)):
            if not isinstance(a, np.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous:
                raise TypeError(f"{what} must be a C-contiguous float32 numpy array")
        if data.shape != grad.shape:
            raise ValueError(f"data shape {data.shape} != grad shape {grad.shape}")
        if not data.flags.writeable:
            raise ValueError("data must be writeable")
        lib.lvmmed_optimizer_add_param(self._handle(), name.encode(), data.ctypes.data_as(ctypes.c_void_p),
                                       grad.ctypes.data_as(ctypes.c_void_p), data.size, flags)
        self._arrays.append((data, grad))

    def step(self):
        lib.lvmmed_optimizer_step(self._handle())

    @property
    def lr(self):
        out = ctypes.c_double()
        lib.lvmmed_optimizer_lr(self._handle(), ctypes.byref(out))
        return out.value

    def lr_at(self, step):
        out = ctypes.c_double()
        lib.lvmmed_optimizer_lr_at(self._handle(), step, ctypes.byref(out))
        return out.value

    @property
    def steps(self):
        return lib.lvmmed_optimizer_steps(self._handle())

    @steps.setter
    def steps(self, value):
        lib.lvmmed_optimizer_set_steps(self._handle(), value)

    def state(self):
        """{name: float32 array view} of the optimizer state (views into C memory)."""
        out = {}
        for i in range(lib.lvmmed_optimizer_state_count(self._handle())):
            name, data, count = ctypes.c_char_p(), ctypes.c_void_p(), ctypes.c_size_t()
            lib.lvmmed_optimizer_state(self._handle(), i, ctypes.byref(name), ctypes.byref(data),
                                       ctypes.byref(count))
            buf = (ctypes.c_float * count.value).from_address(data.value)
            out[name.value.decode()] = np.frombuffer(buf, dtype=np.float32)
        return out
