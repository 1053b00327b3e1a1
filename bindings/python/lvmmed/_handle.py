"""Base class of the binding objects that own one C handle, and their enum-keyed options.

A subclass names its C destructor in ``_c_free`` and stores the handle in
``_ptr``; it gets close() / context manager / ``__del__`` safety, a
``closed`` flag, and refusal to be copied or pickled (two owners of one
handle would free it twice).

Options: a subclass lists ``_OPTIONS = {name: Option(key, kind)}`` and the
C accessors ``_c_set``, ``_c_get``, ``_c_bounds`` and the C value type
``_c_value`` (``ctypes.c_int64`` or ``ctypes.c_double``). ``kind`` is
``int``, ``float``, ``bool`` or a dict {name: enum value} (the getter then
returns the name). :func:`option_properties` turns the table into
properties.
"""

import ctypes
import operator
from collections import namedtuple

#: key: the C enum value; kind: int, float, bool or {name: int} for an enum.
Option = namedtuple("Option", ["key", "kind"])

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _enum_value(table, value, what):
    if isinstance(value, str):
        try:
            return table[value.strip().lower()]
        except KeyError:
            names = ", ".join(sorted(table))
            raise ValueError(f"unknown {what} {value!r} (expected one of: {names})") from None
    return operator.index(value)


def _enum_name(table, value):
    for name, v in table.items():  # the first name of a value is its canonical one
        if v == value:
            return name
    return int(value)


class Handle:
    """Owner of one C handle (see the module documentation)."""

    _c_free = None
    _ptr = None
    _OPTIONS = {}
    _c_set = _c_get = _c_bounds = None
    _c_value = ctypes.c_int64

    # -- lifetime ---------------------------------------------------------------------------
    def _h(self):
        if not self._ptr:
            raise ValueError(f"operation on a closed lvmmed {type(self).__name__}")
        return self._ptr

    @property
    def _as_parameter_(self):
        """Lets the object be passed wherever ctypes expects its handle."""
        return self._h()

    @property
    def closed(self):
        """True once close() ran (or creation failed)."""
        return not self._ptr

    def close(self):
        """Free the C object now (later calls raise ValueError). Safe to repeat."""
        ptr, self._ptr = self._ptr, None
        if ptr:
            type(self)._c_free(ptr)

    def __enter__(self):
        self._h()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown may have cleared globals
            pass

    def __copy__(self):
        raise TypeError(f"an lvmmed {type(self).__name__} cannot be copied")

    __deepcopy__ = __copy__

    def __reduce__(self):
        raise TypeError(f"an lvmmed {type(self).__name__} cannot be pickled")

    def __repr__(self):
        try:
            state = "closed" if self.closed else " ".join(f"{k}={v!r}" for k, v in self.options().items())
        except Exception:  # noqa: BLE001 -- repr must never raise
            state = "?"
        return f"<lvmmed.{type(self).__name__} {state}>"

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def _option(cls, name):
        try:  # "lambda_" (a keyword-safe spelling) names option "lambda"
            return cls._OPTIONS[name[:-1] if name.endswith("_") and name not in cls._OPTIONS else name]
        except KeyError:
            raise KeyError(f"{cls.__name__} has no option {name!r} (options: {', '.join(cls._OPTIONS)})") from None

    @classmethod
    def _to_c(cls, name, value):
        opt = cls._option(name)
        if isinstance(opt.kind, dict):
            value = _enum_value(opt.kind, value, name)
        elif opt.kind is bool:
            value = int(bool(value))
        if cls._c_value is ctypes.c_int64:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            value = operator.index(value)
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise OverflowError(f"{name} = {value} does not fit in int64_t")
            return value
        return float(value)

    @classmethod
    def _from_c(cls, name, value):
        kind = cls._option(name).kind
        if isinstance(kind, dict):
            return _enum_name(kind, int(value))
        if kind is bool:
            return bool(value)
        if kind is int:
            return int(value)
        return float(value)

    def set_option(self, name, value):
        """Set an option by name; enum options also take their names. Raises OutOfRangeError etc."""
        type(self)._c_set(self._h(), self._option(name).key, self._to_c(name, value))

    def get_option(self, name):
        """Read an option by name (enum options as their name, flags as bool)."""
        out = self._c_value()
        type(self)._c_get(self._h(), self._option(name).key, ctypes.byref(out))
        return self._from_c(name, out.value)

    @classmethod
    def option_bounds(cls, name):
        """Inclusive ``(min, max)`` the library accepts for option name (raw numbers)."""
        lo, hi = cls._c_value(), cls._c_value()
        cls._c_bounds(cls._option(name).key, ctypes.byref(lo), ctypes.byref(hi))
        return lo.value, hi.value

    def options(self):
        """{name: value} of every option."""
        return {name: self.get_option(name) for name in self._OPTIONS}

    def _set_options(self, options):
        for name, value in options.items():
            if value is not None:
                self.set_option(name, value)

    __getitem__ = get_option
    __setitem__ = set_option


def option_properties(cls, docs=None):
    """Add a property per entry of cls._OPTIONS (names that are not Python keywords)."""
    docs = docs or {}
    for name in cls._OPTIONS:
        attr = name + "_" if name in ("lambda",) else name
        if hasattr(cls, attr):
            continue
        setattr(cls, attr, property(
            lambda self, n=name: self.get_option(n),
            lambda self, v, n=name: self.set_option(n, v),
            doc=docs.get(name, f"option {name!r} (see set_option)")))
    return cls
