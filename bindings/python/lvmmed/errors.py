"""Exceptions raised for failing liblvmmed calls.

Every negative ``lvmmed_status`` becomes an :class:`LvmmedError` subclass
chosen from ``_BY_STATUS``; codes without an entry (for example ones a newer
library appends) raise the generic :class:`LvmmedError`. Some subclasses also
derive from the matching built-in exception so ``except ValueError`` or
``except MemoryError`` keep working for callers who do not know this package.
"""

import ctypes

from ._lib import CtxPtr, lib, text


class LvmmedError(Exception):
    """A liblvmmed call failed.

    Attributes: ``status`` (int), ``status_name`` (e.g.
    ``"LVMMED_ERR_OUT_OF_RANGE"``), ``message`` (the context's last error text
    when a context was involved, else the status description) and
    ``function`` (the C function, when known).
    """

    def __init__(self, status, message=None, function=None):
        self.status = int(status)
        self.status_name = text(lib.lvmmed_status_name(self.status))
        if not message:
            message = text(lib.lvmmed_status_describe(self.status))
            if function:
                message = f"{function}: {message}"
        self.message = message
        self.function = function
        super().__init__(f"{self.status_name}: {self.message}")

    def __str__(self):
        return f"{self.status_name}: {self.message}"

    def __reduce__(self):
        # Rebuild from the fields: the default reduce would pass str(self) as status.
        return (type(self), (self.status, self.message, self.function))


class InvalidArgumentError(LvmmedError, ValueError):
    """LVMMED_ERR_INVALID_ARGUMENT."""


class OutOfMemoryError(LvmmedError, MemoryError):
    """LVMMED_ERR_OUT_OF_MEMORY."""


class UnsupportedError(LvmmedError):
    """LVMMED_ERR_UNSUPPORTED: not supported by this build."""


class LvmmedIOError(LvmmedError, OSError):
    """LVMMED_ERR_IO (``errno`` is not meaningful: the cause is in ``message``)."""

    def __init__(self, status, message=None, function=None):
        LvmmedError.__init__(self, status, message, function)


class FileFormatError(LvmmedError, ValueError):
    """LVMMED_ERR_FORMAT: malformed or unsupported file contents."""


class ShapeError(LvmmedError, ValueError):
    """LVMMED_ERR_SHAPE: tensor shape mismatch."""


class OutOfRangeError(LvmmedError, ValueError):
    """LVMMED_ERR_OUT_OF_RANGE."""


class AbiMismatchError(LvmmedError):
    """LVMMED_ERR_ABI_MISMATCH."""


class BackendUnavailableError(LvmmedError):
    """LVMMED_ERR_BACKEND_UNAVAILABLE."""


class InternalError(LvmmedError):
    """LVMMED_ERR_INTERNAL: a library bug; please report it."""


class NotFoundError(LvmmedError, LookupError):
    """LVMMED_ERR_NOT_FOUND."""


class StateError(LvmmedError):
    """LVMMED_ERR_STATE: call not valid in the object's current state."""


class LimitError(LvmmedError):
    """LVMMED_ERR_LIMIT: input exceeds a configured limit."""


class NumericError(LvmmedError, ArithmeticError):
    """LVMMED_ERR_NUMERIC: non-finite value encountered."""


class ThreadError(LvmmedError):
    """LVMMED_ERR_THREAD."""


# Keyed by status *name* so a renumbering bug in C cannot silently remap classes.
_BY_NAME = {
    "LVMMED_ERR_INVALID_ARGUMENT": InvalidArgumentError,
    "LVMMED_ERR_OUT_OF_MEMORY": OutOfMemoryError,
    "LVMMED_ERR_UNSUPPORTED": UnsupportedError,
    "LVMMED_ERR_IO": LvmmedIOError,
    "LVMMED_ERR_FORMAT": FileFormatError,
    "LVMMED_ERR_SHAPE": ShapeError,
    "LVMMED_ERR_OUT_OF_RANGE": OutOfRangeError,
    "LVMMED_ERR_ABI_MISMATCH": AbiMismatchError,
    "LVMMED_ERR_BACKEND_UNAVAILABLE": BackendUnavailableError,
    "LVMMED_ERR_INTERNAL": InternalError,
    "LVMMED_ERR_NOT_FOUND": NotFoundError,
    "LVMMED_ERR_STATE": StateError,
    "LVMMED_ERR_LIMIT": LimitError,
    "LVMMED_ERR_NUMERIC": NumericError,
    "LVMMED_ERR_THREAD": ThreadError,
}


def error_class(status):
    """The exception class for a status code (LvmmedError when it has none of its own)."""
    return _BY_NAME.get(text(lib.lvmmed_status_name(int(status))), LvmmedError)


def _ctx_pointer(ctx):
    """A CtxPtr from a Context (anything with _as_parameter_) or a pointer; None if closed/NULL."""
    if ctx is None:
        return None
    try:
        ptr = getattr(ctx, "_as_parameter_", ctx)
    except Exception:  # a closed Context refuses _as_parameter_
        return None
    return ptr if ptr else None


def error_from_status(status, ctx=None, function=None):
    """Build (not raise) the exception for a failed call; ctx may be a Context, pointer or None."""
    message = None
    ptr = _ctx_pointer(ctx)
    if ptr is not None:
        # Read before anything else calls into ctx: the text is valid until then.
        if not isinstance(ptr, CtxPtr):
            ptr = ctypes.cast(ptr, CtxPtr)
        message = text(lib.lvmmed_ctx_last_error(ptr))
    return error_class(status)(status, message or None, function)


def check(status, ctx=None, function=None):
    """Raise for a negative status (for calls declared without the STATUS errcheck)."""
    if status < 0:
        raise error_from_status(status, ctx, function)
    return status
