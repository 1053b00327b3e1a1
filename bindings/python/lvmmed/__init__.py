"""lvmmed: Python bindings (ctypes) for liblvmmed, LVM-Med pretraining in C.

The shared library is found as described in :mod:`lvmmed._lib` (set
``LVMMED_LIBRARY`` to use an uninstalled build). numpy is optional: arrays
in and out are numpy arrays when it is installed, ``array.array('f')``
otherwise.
"""

from ._cpu import prefer_openblas_core as _prefer_openblas_core

_prefer_openblas_core()  # before numpy loads OpenBLAS (see _cpu.py)

from . import errors  # noqa: E402
from ._lib import LIBRARY_PATH, lib as _c, text as _text
from .backbone import Backbone
from .context import Context, backend_available, backend_name
from .optim import Optimizer
from .graph import IMLE, Affinity, GMSolver, gcn_adjacency, knn_graph, lap_solve
from .image import Augmenter, Image
from .dataset import Dataset
from .pretrain import Pretrainer, read_checkpoint_meta
from .enums import Backend, CtxOption, LogLevel, Status
from .errors import (
    AbiMismatchError,
    BackendUnavailableError,
    FileFormatError,
    InternalError,
    InvalidArgumentError,
    LimitError,
    LvmmedError,
    LvmmedIOError,
    NotFoundError,
    NumericError,
    OutOfMemoryError,
    OutOfRangeError,
    ShapeError,
    StateError,
    ThreadError,
    UnsupportedError,
)

#: The ABI generation these bindings are written for (LVMMED_ABI_VERSION, the SONAME major).
ABI_VERSION = 0


def version():
    """Version of the loaded library, "MAJOR.MINOR.PATCH"."""
    return _text(_c.lvmmed_version_string())


def version_number():
    """Version of the loaded library as MAJOR*10000 + MINOR*100 + PATCH."""
    return _c.lvmmed_version_number()


def abi_version():
    """ABI generation of the loaded library."""
    return _c.lvmmed_abi_version()


def _check_abi(expected):
    """Raise ImportError unless the loaded library serves ABI generation expected."""
    status = _c.lvmmed_abi_check(expected)
    if status != 0:
        raise ImportError(
            f"liblvmmed at {LIBRARY_PATH or '(unknown path)'} has ABI {abi_version()} "
            f"(version {version()}), but these bindings need ABI {expected} "
            f"({_text(_c.lvmmed_status_name(status))}); install matching versions"
        )


_check_abi(ABI_VERSION)

__version__ = version()

__all__ = [
    "Optimizer",
    "GMSolver", "Affinity", "IMLE", "knn_graph", "gcn_adjacency", "lap_solve", "Image", "Augmenter",
    "Dataset", "Pretrainer", "read_checkpoint_meta",
    "ABI_VERSION", "LIBRARY_PATH", "__version__", "version", "version_number", "abi_version",
    "Backbone", "Context", "backend_available", "backend_name",
    "Backend", "CtxOption", "LogLevel", "Status",
    "errors", "LvmmedError", "AbiMismatchError", "BackendUnavailableError", "FileFormatError",
    "InternalError", "InvalidArgumentError", "LimitError", "LvmmedIOError", "NotFoundError",
    "NumericError", "OutOfMemoryError", "OutOfRangeError", "ShapeError", "StateError",
    "ThreadError", "UnsupportedError",
]
