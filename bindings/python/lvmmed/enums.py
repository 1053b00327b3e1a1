"""Python IntEnums mirroring the C enums (values match status.h and ctx.h).

``Status`` is built at import from the loaded library (``lvmmed_status_name``
for 0 down to -64), so a library that appends status codes is mirrored
without a bindings change; the others are declared because C offers no way
to enumerate them, and the tests check them against the headers.
"""

import enum

from ._lib import lib, text

_UNKNOWN_STATUS = "LVMMED_UNKNOWN_STATUS"
_PROBE_DEPTH = 64  # status codes are small negatives; -64 leaves ample room


def _probe_statuses():
    members = {}
    for value in range(0, -_PROBE_DEPTH - 1, -1):
        name = text(lib.lvmmed_status_name(value))
        if name and name != _UNKNOWN_STATUS and name.startswith("LVMMED_"):
            members[name[len("LVMMED_"):]] = value
    return members


#: ``lvmmed_status``: members named as in C without the prefix (OK, ERR_IO, ...).
Status = enum.IntEnum("Status", _probe_statuses(), module=__name__)
Status.__doc__ = "lvmmed_status values, as reported by the loaded library."


class LogLevel(enum.IntEnum):
    """``lvmmed_log_level``; NONE as a threshold delivers nothing."""

    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3
    NONE = 4


class Backend(enum.IntEnum):
    """``lvmmed_backend``; CUDA is reserved and not available in this version."""

    AUTO = 0
    REFERENCE = 1
    OPENBLAS = 2
    CUDA = 3


class CtxOption(enum.IntEnum):
    """``lvmmed_ctx_option``: keys for Context.set_option / get_option / option_bounds."""

    THREADS = 1
    SEED = 2
    BACKEND = 3
    LOG_LEVEL = 4


def _coerce(enum_cls, value, what):
    """Accept a member, its int value, or its name in any case ('openblas', 'DEBUG')."""
    if isinstance(value, str):
        try:
            return enum_cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in enum_cls)
            raise ValueError(f"unknown {what} {value!r} (expected one of: {names})") from None
    try:
        return enum_cls(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}") from None
