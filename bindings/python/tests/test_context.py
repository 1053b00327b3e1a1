"""Context creation, options, bounds, backends, reference counting, lifetime."""

import copy
import ctypes
import gc
import unittest

import _support
from _support import lvmmed
from lvmmed import Backend, Context, CtxOption, LogLevel, errors

_c = lvmmed._c


class EnumTest(unittest.TestCase):
    def test_enums_match_ctx_h(self):
        path = _support.header("ctx.h")
        if path is None:
            self.skipTest("ctx.h not available")
        text = _support.read(path)
        for cls, prefix in ((LogLevel, "LVMMED_LOG_"), (Backend, "LVMMED_BACKEND_"),
                            (CtxOption, "LVMMED_CTX_OPT_")):
            self.assertEqual({m.name: m.value for m in cls}, _support.c_enum(text, prefix), cls.__name__)


class OptionTest(unittest.TestCase):
    def setUp(self):
        self.ctx = Context()

    def tearDown(self):
        self.ctx.close()

    def test_defaults(self):
        lo, hi = Context.option_bounds("threads")
        self.assertTrue(lo <= self.ctx.threads <= hi)
        self.assertEqual(self.ctx.seed, 0)
        self.assertEqual(self.ctx.log_level, LogLevel.WARN)
        self.assertIn(self.ctx.backend, ("reference", "openblas"))

    def test_bounds(self):
        for option in CtxOption:
            lo, hi = Context.option_bounds(option)
            self.assertLessEqual(lo, hi, option.name)
            self.assertEqual(Context.option_bounds(option.name.lower()), (lo, hi))
        self.assertEqual(Context.option_bounds("threads")[0], 1)
        self.assertEqual(Context.option_bounds("log_level"), (LogLevel.DEBUG, LogLevel.NONE))

    def test_threads_edges(self):
        lo, hi = Context.option_bounds(CtxOption.THREADS)
        for n in (lo, hi, 2):
            self.ctx.threads = n
            self.assertEqual(self.ctx.threads, n)
        with self.assertRaises(errors.OutOfRangeError):
            self.ctx.threads = hi + 1
        self.assertEqual(self.ctx.threads, 2)

    def test_seed(self):
        lo, hi = Context.option_bounds("seed")
        for s in (12345, lo, hi):
            self.ctx.seed = s
            self.assertEqual(self.ctx.seed, s)
        with self.assertRaises(OverflowError):
            self.ctx.seed = 2**64  # would wrap to 0 if it reached ctypes
        with self.assertRaises(TypeError):
            self.ctx.seed = 1.5

    def test_log_level(self):
        self.ctx.log_level = "debug"
        self.assertIs(self.ctx.log_level, LogLevel.DEBUG)
        self.ctx.log_level = LogLevel.ERROR
        self.assertEqual(self.ctx.get_option("log_level"), 3)
        with self.assertRaises(ValueError):
            self.ctx.log_level = "chatty"

    def test_generic_set_get(self):
        self.ctx.set_option("seed", 7)
        self.assertEqual(self.ctx.get_option(CtxOption.SEED), 7)
        self.assertEqual(self.ctx.get_option(2), 7)

    def test_constructor_options(self):
        with Context(threads=3, seed=9, backend="reference", log_level="info") as ctx:
            self.assertEqual((ctx.threads, ctx.seed, ctx.backend, ctx.log_level),
                             (3, 9, "reference", LogLevel.INFO))
            self.assertIn("threads=3", repr(ctx))

    def test_constructor_failure_releases(self):
        with self.assertRaises(errors.OutOfRangeError):
            Context(threads=0)


class BackendTest(unittest.TestCase):
    def test_availability(self):
        self.assertTrue(lvmmed.backend_available("auto"))
        self.assertTrue(lvmmed.backend_available(Backend.REFERENCE))
        self.assertFalse(lvmmed.backend_available("cuda"))
        self.assertIsInstance(lvmmed.backend_available(2), bool)
        with self.assertRaises(ValueError):
            lvmmed.backend_available("tpu")

    def test_names(self):
        for b in Backend:
            self.assertEqual(lvmmed.backend_name(b), b.name.lower())
        self.assertEqual(lvmmed.backend_name(99), "unknown")

    def test_select(self):
        with Context() as ctx:
            ctx.backend = "reference"
            self.assertEqual(ctx.backend, "reference")
            self.assertEqual(ctx.get_option("backend"), Backend.REFERENCE)
            ctx.backend = "auto"  # reading gives the resolved backend
            expected = "openblas" if lvmmed.backend_available("openblas") else "reference"
            self.assertEqual(ctx.backend, expected)
            if lvmmed.backend_available("openblas"):
                ctx.backend = Backend.OPENBLAS
                self.assertEqual(ctx.backend, "openblas")

    def test_unavailable_backend(self):
        with Context() as ctx:
            before = ctx.backend
            with self.assertRaises(errors.BackendUnavailableError) as cm:
                ctx.backend = "cuda"
            self.assertTrue(cm.exception.message)
            self.assertEqual(ctx.backend, before)


class LifetimeTest(unittest.TestCase):
    def test_refcount_retain_release(self):
        with Context() as ctx:
            self.assertEqual(ctx.refcount, 1)
            extra = _c.lvmmed_ctx_retain(ctx)
            self.assertEqual(ctypes.addressof(extra.contents), ctypes.addressof(ctx._as_parameter_.contents))
            self.assertEqual(ctx.refcount, 2)
            _c.lvmmed_ctx_release(extra)
            self.assertEqual(ctx.refcount, 1)

    def test_null_handling(self):
        self.assertFalse(_c.lvmmed_ctx_retain(None))
        self.assertEqual(_c.lvmmed_ctx_refcount(None), 0)
        _c.lvmmed_ctx_release(None)  # no-op
        self.assertEqual(_c.lvmmed_ctx_last_error(None), b"")

    def test_close_keeps_c_context_for_other_holders(self):
        ctx = Context(threads=2)
        extra = _c.lvmmed_ctx_retain(ctx)
        ctx.close()
        self.assertEqual(_c.lvmmed_ctx_refcount(extra), 1)
        value = ctypes.c_int64()
        _c.lvmmed_ctx_get_option(extra, CtxOption.THREADS, ctypes.byref(value))
        self.assertEqual(value.value, 2)
        _c.lvmmed_ctx_release(extra)

    def test_context_manager_closes(self):
        with Context() as ctx:
            self.assertFalse(ctx.closed)
        self.assertTrue(ctx.closed)
        self.assertEqual(ctx.refcount, 0)
        ctx.close()  # idempotent
        with self.assertRaises(ValueError):
            ctx.threads
        with self.assertRaises(ValueError):
            with ctx:
                pass
        self.assertIn("closed", repr(ctx))

    def test_del_and_gc(self):
        for _ in range(50):
            ctx = Context()
            ctx.set_log_callback(lambda level, msg: None)
            del ctx
        gc.collect()

    def test_not_copyable(self):
        with Context() as ctx:
            with self.assertRaises(TypeError):
                copy.copy(ctx)
            with self.assertRaises(TypeError):
                copy.deepcopy(ctx)

    def test_interpreter_shutdown_with_open_context(self):
        r = _support.run_python(
            "import lvmmed\n"
            "KEEP = lvmmed.Context(log_level='debug')\n"
            "KEEP.set_log_callback(lambda level, msg: None)\n"
            "CYCLE = [lvmmed.Context()]; CYCLE.append(CYCLE)\n"
        )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Exception", r.stderr)

    def test_allocator_hooks(self):
        # The struct layout and CFUNCTYPEs of lvmmed_allocator, exercised end to end.
        libc = ctypes.CDLL(None)
        libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        live = {}
        counts = {"alloc": 0, "free": 0, "bad_free": 0}

        def alloc(_user, size, alignment):
            p = ctypes.c_void_p()
            if libc.posix_memalign(ctypes.byref(p), alignment, max(size, 1)) != 0:
                return None
            counts["alloc"] += 1
            live[p.value] = size
            return p.value

        def free(_user, ptr, size):
            counts["free"] += 1
            if live.pop(ptr, None) != size:
                counts["bad_free"] += 1
            libc.free(ptr)

        hooks = _support._lib.lvmmed_allocator(_support._lib.AllocFn(alloc), _support._lib.FreeFn(free), None)
        ptr = _support._lib.CtxPtr()
        _c.lvmmed_ctx_create_with_allocator(ctypes.byref(ptr), ctypes.byref(hooks))
        try:
            _c.lvmmed_ctx_set_option(ptr, CtxOption.THREADS, 2)
        finally:
            _c.lvmmed_ctx_release(ptr)
        self.assertGreater(counts["alloc"], 0)
        self.assertEqual(counts["alloc"], counts["free"])
        self.assertEqual(counts["bad_free"], 0)
        self.assertEqual(live, {})

    def test_default_allocator_with_null(self):
        ptr = _support._lib.CtxPtr()
        _c.lvmmed_ctx_create_with_allocator(ctypes.byref(ptr), None)
        self.assertEqual(_c.lvmmed_ctx_refcount(ptr), 1)
        _c.lvmmed_ctx_release(ptr)


if __name__ == "__main__":
    unittest.main()
