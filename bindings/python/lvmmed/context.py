"""The Context: Python owner of one reference on an ``lvmmed_ctx``."""

import ctypes
import operator
import warnings

from ._lib import CtxPtr, LogFn, lib, text
from .enums import Backend, CtxOption, LogLevel, Status, _coerce

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NO_LOG_FN = LogFn()  # a NULL lvmmed_log_fn: ctypes refuses None for function-pointer arguments


def _option(option):
    """CtxOption from a member, int, or name ('threads', 'log_level', ...)."""
    return _coerce(CtxOption, option, "context option")


def _int64(value, what):
    # ctypes silently wraps out-of-range ints, so check here rather than let 2**64 become 0.
    value = operator.index(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError(f"{what} = {value} does not fit in int64_t")
    return value


class _LogState:
    """What the C-side trampoline needs; kept apart from Context to avoid a reference cycle."""

    __slots__ = ("callback", "error")

    def __init__(self, callback):
        self.callback = callback
        self.error = None


def _make_trampoline(state):
    """A LogFn that forwards to state.callback and never lets an exception reach C."""

    def trampoline(_user, level, message):
        try:
            try:
                level = LogLevel(level)
            except ValueError:  # a level newer than these bindings: pass the int
                pass
            state.callback(level, text(message) or "")
        except BaseException as exc:  # noqa: BLE001 -- unwinding into C is never an option
            state.error = exc
            try:
                warnings.warn(
                    f"lvmmed log callback raised {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=1,
                )
            except BaseException:  # noqa: BLE001 -- e.g. warnings turned into errors
                pass

    return LogFn(trampoline)


class Context:
    """An lvmmed context: allocator, log callback, threads, seed, backend, last error.

    ``Context(threads=4, seed=1, backend='reference', log_level='info')``;
    any option left as None keeps the library default. Use it as a context
    manager or call :meth:`close`; objects created from it keep the C context
    alive on their own (it is reference counted in C).
    """

    # Bound at class creation so __del__ still works while modules are torn down at exit.
    _c_release = lib.lvmmed_ctx_release
    _ptr = None

    def __init__(self, threads=None, seed=None, backend=None, log_level=None, log_callback=None):
        ptr = CtxPtr()
        lib.lvmmed_ctx_create(ctypes.byref(ptr))
        self._ptr = ptr
        self._log_fn = None  # the CFUNCTYPE object C holds: must outlive C's use of it
        self._log_state = None
        try:
            if log_callback is not None:
                self.set_log_callback(log_callback)
            # Log level first so messages about the options below reach the callback;
            # backend before anything that could make a handle hold the context.
            if log_level is not None:
                self.log_level = log_level
            if backend is not None:
                self.backend = backend
            if threads is not None:
                self.threads = threads
            if seed is not None:
                self.seed = seed
        except BaseException:
            self.close()
            raise

    # --- handle plumbing -----------------------------------------------------------

    def _handle(self):
        if not self._ptr:
            raise ValueError("operation on a closed lvmmed Context")
        return self._ptr

    @property
    def _as_parameter_(self):
        """Lets a Context be passed wherever ctypes expects an ``lvmmed_ctx *``."""
        return self._handle()

    @property
    def closed(self):
        return not self._ptr

    def close(self):
        """Drop this object's reference; the C context lives on while handles hold it."""
        ptr, self._ptr = self._ptr, None
        if not ptr:
            return
        if self._log_fn is not None and lib.lvmmed_ctx_refcount(ptr) > 1:
            # Someone else keeps the C context: detach our callback so C never calls
            # a trampoline that Python is about to free.
            try:
                lib.lvmmed_ctx_set_log_callback(ptr, _NO_LOG_FN, None)
            finally:
                self._c_release(ptr)
        else:
            self._c_release(ptr)
        self._log_fn = None
        self._log_state = None

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown may have cleared globals
            pass

    def __copy__(self):
        raise TypeError("an lvmmed Context cannot be copied; share the object instead")

    __deepcopy__ = __copy__

    def __reduce__(self):
        raise TypeError("an lvmmed Context cannot be pickled")

    def __repr__(self):
        if self.closed:
            return "<lvmmed.Context closed>"
        return (
            f"<lvmmed.Context threads={self.threads} seed={self.seed} "
            f"backend={self.backend!r} log_level={self.log_level.name}>"
        )

    # --- options ---------------------------------------------------------------------

    def set_option(self, option, value):
        """Set an option by CtxOption, int or name; raises OutOfRangeError etc."""
        option = _option(option)
        lib.lvmmed_ctx_set_option(self._handle(), option, _int64(value, option.name.lower()))

    def get_option(self, option):
        """Read an option (an int) by CtxOption, int or name."""
        value = ctypes.c_int64()
        lib.lvmmed_ctx_get_option(self._handle(), _option(option), ctypes.byref(value))
        return value.value

    @classmethod
    def option_bounds(cls, option):
        """Inclusive ``(min, max)`` accepted for an option."""
        lo, hi = ctypes.c_int64(), ctypes.c_int64()
        lib.lvmmed_ctx_option_bounds(_option(option), ctypes.byref(lo), ctypes.byref(hi))
        return lo.value, hi.value

    @property
    def threads(self):
        """Threads for intra-op parallelism (OpenBLAS's included)."""
        return self.get_option(CtxOption.THREADS)

    @threads.setter
    def threads(self, value):
        self.set_option(CtxOption.THREADS, value)

    @property
    def seed(self):
        """Seed of every random stream the context hands out."""
        return self.get_option(CtxOption.SEED)

    @seed.setter
    def seed(self, value):
        self.set_option(CtxOption.SEED, value)

    @property
    def backend(self):
        """Name of the resolved backend ('reference', 'openblas', ...); set by name or Backend."""
        return backend_name(self.get_option(CtxOption.BACKEND))

    @backend.setter
    def backend(self, value):
        self.set_option(CtxOption.BACKEND, _coerce(Backend, value, "backend"))

    @property
    def log_level(self):
        """Lowest LogLevel passed to the log callback."""
        return LogLevel(self.get_option(CtxOption.LOG_LEVEL))

    @log_level.setter
    def log_level(self, value):
        self.set_option(CtxOption.LOG_LEVEL, _coerce(LogLevel, value, "log level"))

    # --- logging and errors -------------------------------------------------------------

    def set_log_callback(self, callback):
        """Install ``callback(level: LogLevel, message: str)``, or remove it with None.

        Exceptions raised by the callback are caught (they must never unwind
        into C), stored in :attr:`callback_error` and reported as a
        RuntimeWarning. The callback may run on a worker thread of the context.
        """
        handle = self._handle()
        if callback is None:
            lib.lvmmed_ctx_set_log_callback(handle, _NO_LOG_FN, None)
            self._log_fn = self._log_state = None
            return
        if not callable(callback):
            raise TypeError("log callback must be callable or None")
        state = _LogState(callback)
        fn = _make_trampoline(state)
        lib.lvmmed_ctx_set_log_callback(handle, fn, None)
        # Only now drop the old trampoline: C no longer points at it.
        self._log_fn, self._log_state = fn, state

    @property
    def callback_error(self):
        """The last exception the log callback raised (None if none)."""
        return self._log_state.error if self._log_state else None

    @property
    def last_error(self):
        """Message of the last failed call made with this context ('' if none)."""
        return text(lib.lvmmed_ctx_last_error(self._handle()))

    @property
    def last_status(self):
        """Status of the last failed call made with this context (Status.OK if none)."""
        status = lib.lvmmed_ctx_last_status(self._handle())
        try:
            return Status(status)
        except ValueError:
            return status

    def clear_error(self):
        """Forget the last error."""
        lib.lvmmed_ctx_clear_error(self._handle())

    @property
    def refcount(self):
        """References held on the C context (this object's included); 0 once closed."""
        return lib.lvmmed_ctx_refcount(self._ptr) if self._ptr else 0


def backend_name(backend):
    """Lower-case name of a backend value ('unknown' for values the library does not know)."""
    return text(lib.lvmmed_backend_name(int(backend)))


def backend_available(backend):
    """True if this build can run the backend (name, Backend or int). AUTO always can."""
    return bool(lib.lvmmed_backend_available(_coerce(Backend, backend, "backend")))
