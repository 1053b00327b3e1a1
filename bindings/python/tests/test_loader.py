"""Finding the shared library: LVMMED_LIBRARY, the build tree, sanitizer builds."""

import json
import os
import shutil
import tempfile
import unittest

import _support
from _support import _lib


class LoaderTest(unittest.TestCase):
    def test_loaded_path(self):
        self.assertTrue(_lib.LIBRARY_PATH and os.path.isabs(_lib.LIBRARY_PATH))
        self.assertTrue(os.path.exists(_lib.LIBRARY_PATH))
        env = os.environ.get(_lib.ENV_VAR)
        if env and os.path.isfile(env):
            self.assertTrue(os.path.samefile(env, _lib.LIBRARY_PATH))

    def test_build_tree_order_and_sanitizer_skip(self):
        with tempfile.TemporaryDirectory() as root:
            open(os.path.join(root, "meson.build"), "w").close()
            os.makedirs(os.path.join(root, "include", "lvmmed"))
            pkg = os.path.join(root, "bindings", "python", "lvmmed")
            os.makedirs(pkg)
            for d in ("build-b", "build", "build-asan", "build-a", "build-san", "buildempty"):
                os.makedirs(os.path.join(root, d))
                if d != "buildempty":
                    open(os.path.join(root, d, _lib.SONAME), "w").close()
            os.makedirs(os.path.join(root, "build-san", "meson-info"))
            with open(os.path.join(root, "build-san", "meson-info", "intro-buildoptions.json"), "w") as f:
                json.dump([{"name": "b_sanitize", "value": "address,undefined"}], f)
            got = [os.path.basename(os.path.dirname(p)) for p in _lib.build_tree_candidates(pkg)]
            self.assertEqual(got, ["build", "build-a", "build-b"])

    def test_bad_env_path_is_reported_not_bypassed(self):
        r = _support.run_python("import lvmmed", env_extra={_lib.ENV_VAR: "/nonexistent/liblvmmed.so.0"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("LVMMED_LIBRARY", r.stderr)
        self.assertIn("/nonexistent/liblvmmed.so.0", r.stderr)

    def test_env_directory_accepted(self):
        if not _lib.LIBRARY_PATH or os.path.basename(_lib.LIBRARY_PATH) != _lib.SONAME:
            self.skipTest("loaded library is not named " + _lib.SONAME)
        r = _support.run_python("import lvmmed; print(lvmmed.LIBRARY_PATH)",
                                env_extra={_lib.ENV_VAR: os.path.dirname(_lib.LIBRARY_PATH)})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.samefile(r.stdout.strip(), _lib.LIBRARY_PATH))

    def test_mapped_path(self):
        mapped = _lib._mapped_path(_lib.lib)
        self.assertTrue(mapped and os.path.samefile(mapped, _lib.LIBRARY_PATH))

    def test_soname_fallback(self):
        # A copy of the package outside the source tree, the library only on LD_LIBRARY_PATH.
        libdir = os.path.dirname(_lib.LIBRARY_PATH)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.dirname(_lib.__file__), os.path.join(tmp, "lvmmed"))
            r = _support.run_python(
                f"import sys; sys.path.insert(0, {tmp!r})\n"
                "import lvmmed; print(lvmmed.LIBRARY_PATH)\n",
                env_extra={"LD_LIBRARY_PATH": libdir}, env_remove=(_lib.ENV_VAR,))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.samefile(r.stdout.strip(), _lib.LIBRARY_PATH))

    def test_not_found_message_lists_tries(self):
        # Run a copy of the package from a directory with no build tree above it.
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.dirname(_lib.__file__), os.path.join(tmp, "lvmmed"))
            r = _support.run_python(
                f"import sys; sys.path.insert(0, {tmp!r})\n"
                "import ctypes.util; ctypes.util.find_library = lambda name: None\n"
                "import ctypes; real = ctypes.CDLL\n"
                "def fake(name, *a, **k):\n"
                "    if 'lvmmed' in str(name): raise OSError('blocked by test')\n"
                "    return real(name, *a, **k)\n"
                "ctypes.CDLL = fake\n"
                "import lvmmed\n",
                env_remove=(_lib.ENV_VAR,))
        self.assertNotEqual(r.returncode, 0)
        for needle in ("LVMMED_LIBRARY (not set)", _lib.SONAME, "find_library"):
            self.assertIn(needle, r.stderr)


if __name__ == "__main__":
    unittest.main()
