"""The log callback: delivery, threshold, removal, and exceptions kept out of C."""

import gc
import unittest
import warnings

import _support  # noqa: F401  (sets sys.path)
from lvmmed import Context, LogLevel


class LogCallbackTest(unittest.TestCase):
    def setUp(self):
        self.messages = []
        self.ctx = Context()

    def tearDown(self):
        self.ctx.close()

    def record(self, level, message):
        self.messages.append((level, message))

    def test_receives_threads_message(self):
        self.ctx.set_log_callback(self.record)
        self.ctx.log_level = LogLevel.DEBUG
        self.ctx.threads = 3
        hits = [(lvl, m) for lvl, m in self.messages if "threads" in m]
        self.assertTrue(hits, f"no message mentioning threads in {self.messages!r}")
        for level, message in self.messages:
            self.assertIsInstance(level, LogLevel)
            self.assertIsInstance(message, str)
            self.assertFalse(message.endswith("\n"))

    def test_threshold(self):
        self.ctx.set_log_callback(self.record)
        self.ctx.log_level = LogLevel.NONE
        self.ctx.threads = 2
        self.assertEqual(self.messages, [])

    def test_constructor_callback(self):
        with Context(log_callback=self.record, log_level="debug", threads=2):
            pass
        self.assertTrue(any("threads" in m for _, m in self.messages), self.messages)

    def test_removal(self):
        self.ctx.set_log_callback(self.record)
        self.ctx.log_level = LogLevel.DEBUG
        self.ctx.set_log_callback(None)
        self.ctx.threads = 2
        self.assertEqual(self.messages, [])

    def test_callback_kept_alive(self):
        seen = []
        self.ctx.set_log_callback(lambda level, message: seen.append(message))
        gc.collect()
        self.ctx.log_level = "debug"
        self.ctx.threads = 2
        self.assertTrue(seen)

    def test_raising_callback_does_not_crash(self):
        def bad(level, message):
            raise RuntimeError("boom from a log callback")

        self.ctx.set_log_callback(bad)
        self.ctx.log_level = LogLevel.DEBUG
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.ctx.threads = 4
            self.ctx.threads = 5
        self.assertEqual(self.ctx.threads, 5)
        self.assertIsInstance(self.ctx.callback_error, RuntimeError)
        self.assertTrue(any(issubclass(w.category, RuntimeWarning) and "boom" in str(w.message)
                            for w in caught))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # even a warning turned into an error stays in Python
            self.ctx.threads = 6
        self.assertEqual(self.ctx.threads, 6)

    def test_not_callable(self):
        with self.assertRaises(TypeError):
            self.ctx.set_log_callback(42)

    def test_close_with_other_holder_detaches_callback(self):
        from lvmmed import _c
        self.ctx.set_log_callback(self.record)
        self.ctx.log_level = LogLevel.DEBUG
        extra = _c.lvmmed_ctx_retain(self.ctx)
        self.ctx.close()
        gc.collect()
        self.messages.clear()
        _c.lvmmed_ctx_set_option(extra, 1, 2)  # must not call the freed trampoline
        _c.lvmmed_ctx_release(extra)
        self.assertEqual(self.messages, [])


if __name__ == "__main__":
    unittest.main()
