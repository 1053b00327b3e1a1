"""float32 buffer helpers, with numpy (skipped without) and without it (subprocess)."""

import array
import ctypes
import textwrap
import unittest

import _support
from lvmmed import _buffers

try:
    import numpy
except ImportError:
    numpy = None


@unittest.skipIf(numpy is None, "numpy is not installed")
class NumpyBufferTest(unittest.TestCase):
    def test_float32_input_is_borrowed(self):
        a = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
        buf = _buffers.as_input(a)
        self.assertIs(buf.owner, a)
        self.assertEqual(buf.shape, (2, 3))
        self.assertEqual(ctypes.cast(buf.pointer, ctypes.c_void_p).value, a.ctypes.data)
        self.assertEqual(buf.pointer[5], 5.0)

    def test_dtype_converted_or_refused(self):
        a = numpy.arange(4, dtype=numpy.float64)
        buf = _buffers.as_input(a)
        self.assertEqual(buf.owner.dtype, numpy.float32)
        self.assertEqual([buf.pointer[i] for i in range(4)], [0.0, 1.0, 2.0, 3.0])
        with self.assertRaises(TypeError):
            _buffers.as_input(a, copy=False)
        self.assertEqual(_buffers.as_input([1, 2, 3]).pointer[2], 3.0)
        for bad in (numpy.array([1 + 2j]), numpy.array([True]), numpy.array(["x"]),
                    numpy.array([object()])):
            with self.assertRaises(TypeError, msg=str(bad.dtype)):
                _buffers.as_input(bad)

    def test_contiguity_converted_or_refused(self):
        base = numpy.arange(12, dtype=numpy.float32).reshape(3, 4)
        for view in (base.T, base[:, ::2]):
            buf = _buffers.as_input(view)
            self.assertTrue(buf.owner.flags.c_contiguous)
            self.assertTrue(numpy.array_equal(buf.owner, view))
            with self.assertRaises(ValueError):
                _buffers.as_input(view, copy=False)

    def test_output_checks(self):
        with self.assertRaises(TypeError):
            _buffers.as_output(numpy.zeros(4, dtype=numpy.float64))
        with self.assertRaises(ValueError):
            _buffers.as_output(numpy.zeros((4, 4), dtype=numpy.float32).T)
        ro = numpy.zeros(4, dtype=numpy.float32)
        ro.flags.writeable = False
        with self.assertRaises(ValueError):
            _buffers.as_output(ro)
        out = numpy.zeros((2, 2), dtype=numpy.float32)
        buf = _buffers.as_output(out)
        buf.pointer[3] = 7.5
        self.assertEqual(out[1, 1], 7.5)

    def test_shape_argument(self):
        a = numpy.zeros(6, dtype=numpy.float32)
        self.assertEqual(_buffers.as_input(a, (2, 3)).shape, (2, 3))
        with self.assertRaises(ValueError):
            _buffers.as_input(a, (4, 2))

    def test_new_output(self):
        arr, buf = _buffers.new_output((2, 3))
        self.assertEqual((arr.shape, arr.dtype), ((2, 3), numpy.float32))
        self.assertFalse(arr.any())
        buf.pointer[0] = 1.0
        self.assertEqual(arr[0, 0], 1.0)

    def test_raw_bytes_and_array_module(self):
        raw = array.array("f", [1.5, 2.5]).tobytes()
        self.assertEqual(_buffers.as_input(raw).pointer[1], 2.5)
        with self.assertRaises(ValueError):
            _buffers.as_input(b"abc")
        af = array.array("f", [1, 2, 3])
        buf = _buffers.as_input(af)
        self.assertEqual(ctypes.cast(buf.pointer, ctypes.c_void_p).value, af.buffer_info()[0])


class NoNumpyTest(unittest.TestCase):
    def test_package_works_without_numpy(self):
        code = textwrap.dedent("""
            import sys
            sys.modules["numpy"] = None  # any `import numpy` now raises ImportError
            import array, ctypes
            import lvmmed
            from lvmmed import _buffers
            assert not _buffers.HAVE_NUMPY
            with lvmmed.Context(threads=1, seed=3) as ctx:
                assert ctx.seed == 3
            a = array.array("f", [1.0, 2.0, 3.0, 4.0])
            buf = _buffers.as_input(a, (2, 2))
            assert buf.shape == (2, 2) and buf.pointer[3] == 4.0
            assert ctypes.cast(buf.pointer, ctypes.c_void_p).value == a.buffer_info()[0]
            assert _buffers.as_input(memoryview(a)).pointer[0] == 1.0
            assert _buffers.as_input(a.tobytes()).pointer[2] == 3.0    # read-only: copied
            out = _buffers.empty((2, 3))
            assert isinstance(out, array.array) and out.typecode == "f" and len(out) == 6
            arr, ob = _buffers.new_output((2, 3))
            ob.pointer[4] = 5.0
            assert arr[4] == 5.0 and ob.shape == (2, 3)
            for bad, exc in ((array.array("d", [1.0]), TypeError), ([1.0], TypeError),
                             (b"abc", ValueError)):
                try:
                    _buffers.as_input(bad)
                except exc:
                    pass
                else:
                    raise AssertionError(f"{bad!r} accepted")
            try:
                _buffers.as_output(bytes(8))
            except ValueError:
                pass
            else:
                raise AssertionError("read-only output accepted")
            try:
                _buffers.as_input(a.tobytes(), copy=False)
            except ValueError:
                pass
            else:
                raise AssertionError("copy=False copied")
            print("ok")
        """)
        r = _support.run_python(code)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "ok")


if __name__ == "__main__":
    unittest.main()
