"""Status codes, their names, and the exceptions built from them."""

import pickle
import re
import unittest

import _support
from _support import lvmmed
from lvmmed import Context, Status, errors


def _header_statuses():
    path = _support.header("status.h")
    if path is None:
        return None
    return {m.group(1): (int(m.group(2)), m.group(3))
            for m in re.finditer(r'X\((\w+),\s*(-?\d+),\s*"([^"]*)"\)', _support.read(path))}


class StatusTest(unittest.TestCase):
    def test_enum_matches_header(self):
        expected = _header_statuses()
        if expected is None:
            self.skipTest("status.h not available")
        self.assertEqual({m.name: m.value for m in Status}, {k: v for k, (v, _) in expected.items()})
        for name, (value, description) in expected.items():
            self.assertEqual(lvmmed._c.lvmmed_status_describe(value).decode(), description, name)

    def test_names_round_trip(self):
        self.assertEqual(Status.OK, 0)
        self.assertEqual(Status.ERR_OUT_OF_RANGE, -7)
        for member in Status:
            self.assertEqual(lvmmed._c.lvmmed_status_name(member).decode(), "LVMMED_" + member.name)
            self.assertEqual(Status[member.name], member)

    def test_unknown_status(self):
        self.assertEqual(lvmmed._c.lvmmed_status_name(-63).decode(), "LVMMED_UNKNOWN_STATUS")
        self.assertEqual(lvmmed._c.lvmmed_status_name(5).decode(), "LVMMED_UNKNOWN_STATUS")
        self.assertTrue(lvmmed._c.lvmmed_status_describe(-63))

    def test_every_mapped_class_names_a_real_status(self):
        names = {"LVMMED_" + m.name for m in Status}
        for name, cls in errors._BY_NAME.items():
            self.assertIn(name, names)
            self.assertTrue(issubclass(cls, errors.LvmmedError))


class ErrorTest(unittest.TestCase):
    def test_out_of_range_carries_status_and_context_message(self):
        with Context() as ctx:
            before = ctx.threads
            with self.assertRaises(errors.OutOfRangeError) as cm:
                ctx.threads = 0
            e = cm.exception
            self.assertIsInstance(e, ValueError)
            self.assertEqual(e.status, Status.ERR_OUT_OF_RANGE)
            self.assertEqual(e.status_name, "LVMMED_ERR_OUT_OF_RANGE")
            self.assertIn("threads", e.message)
            self.assertEqual(str(e), "LVMMED_ERR_OUT_OF_RANGE: " + e.message)
            self.assertEqual(e.function, "lvmmed_ctx_set_option")
            self.assertEqual(ctx.threads, before, "a rejected value must leave the option unchanged")
            self.assertEqual(ctx.last_status, Status.ERR_OUT_OF_RANGE)
            self.assertIn("threads", ctx.last_error)
            ctx.clear_error()
            self.assertEqual(ctx.last_error, "")
            self.assertEqual(ctx.last_status, Status.OK)

    def test_unknown_option_through_c(self):
        with Context() as ctx:
            with self.assertRaises(errors.InvalidArgumentError) as cm:
                lvmmed._c.lvmmed_ctx_set_option(ctx, 99, 1)
            self.assertEqual(cm.exception.status_name, "LVMMED_ERR_INVALID_ARGUMENT")
            self.assertTrue(cm.exception.message)

    def test_error_without_context(self):
        import ctypes
        lo, hi = ctypes.c_int64(), ctypes.c_int64()
        with self.assertRaises(errors.InvalidArgumentError) as cm:
            lvmmed._c.lvmmed_ctx_option_bounds(99, ctypes.byref(lo), ctypes.byref(hi))
        e = cm.exception
        self.assertEqual(e.status, Status.ERR_INVALID_ARGUMENT)
        self.assertIn("lvmmed_ctx_option_bounds", e.message)
        self.assertIn(lvmmed._c.lvmmed_status_describe(e.status).decode(), e.message)

    def test_unknown_option_name_is_python_error(self):
        with self.assertRaises(ValueError):
            Context.option_bounds("no_such_option")

    def test_class_per_status_and_generic_fallback(self):
        self.assertIs(errors.error_class(Status.ERR_OUT_OF_MEMORY), errors.OutOfMemoryError)
        self.assertIs(errors.error_class(Status.ERR_FORMAT), errors.FileFormatError)
        self.assertIs(errors.error_class(Status.ERR_UNSUPPORTED), errors.UnsupportedError)
        generic = errors.error_from_status(-63)
        self.assertIs(type(generic), errors.LvmmedError)
        self.assertEqual(generic.status_name, "LVMMED_UNKNOWN_STATUS")
        self.assertTrue(str(generic).startswith("LVMMED_UNKNOWN_STATUS: "))

    def test_builtin_bases(self):
        self.assertIsInstance(errors.error_from_status(Status.ERR_OUT_OF_MEMORY), MemoryError)
        io = errors.error_from_status(Status.ERR_IO, function="lvmmed_x")
        self.assertIsInstance(io, OSError)
        self.assertEqual(str(io), "LVMMED_ERR_IO: lvmmed_x: input/output error")
        self.assertIsInstance(errors.error_from_status(Status.ERR_NOT_FOUND), LookupError)

    def test_check_helper(self):
        self.assertEqual(errors.check(0), 0)
        with self.assertRaises(errors.ShapeError):
            errors.check(Status.ERR_SHAPE)

    def test_pickle(self):
        e = errors.error_from_status(Status.ERR_IO, function="lvmmed_x")
        e2 = pickle.loads(pickle.dumps(e))
        self.assertIs(type(e2), errors.LvmmedIOError)
        self.assertEqual((e2.status, e2.message, str(e2)), (e.status, e.message, str(e)))


if __name__ == "__main__":
    unittest.main()
