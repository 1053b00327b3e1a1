"""Version and ABI answers of the library against the C headers / meson.build."""

import re
import unittest

import _support
from _support import lvmmed


def _expected_from_header():
    path = _support.generated_version_header()
    if path is None:
        return None
    text = _support.read(path)

    def macro(name):
        m = re.search(rf"#define\s+LVMMED_{name}\s+(\S+)", text)
        return m.group(1).strip('"') if m else None

    return {
        "string": macro("VERSION_STRING"),
        "number": int(macro("VERSION_MAJOR")) * 10000 + int(macro("VERSION_MINOR")) * 100
        + int(macro("VERSION_PATCH")),
        "abi": int(macro("ABI_VERSION")),
    }


def _expected_from_meson():
    text = _support.read(f"{_support.REPO_ROOT}/meson.build")
    version = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", text, re.S).group(1)
    abi = int(re.search(r"^abi_version\s*=\s*(\d+)", text, re.M).group(1))
    major, minor, patch = (int(x) for x in version.split("."))
    return {"string": version, "number": major * 10000 + minor * 100 + patch, "abi": abi}


class VersionTest(unittest.TestCase):
    def setUp(self):
        self.expected = _expected_from_header()
        if self.expected is None:
            try:
                self.expected = _expected_from_meson()
            except OSError:
                self.skipTest("neither a generated version.h nor meson.build is available")

    def test_version_string(self):
        self.assertEqual(lvmmed.version(), self.expected["string"])
        self.assertEqual(lvmmed.__version__, self.expected["string"])

    def test_version_number(self):
        self.assertEqual(lvmmed.version_number(), self.expected["number"])

    def test_string_and_number_agree(self):
        major, minor, patch = (int(x) for x in lvmmed.version().split("."))
        self.assertEqual(lvmmed.version_number(), major * 10000 + minor * 100 + patch)

    def test_abi(self):
        self.assertEqual(lvmmed.abi_version(), self.expected["abi"])
        self.assertEqual(lvmmed.ABI_VERSION, self.expected["abi"])

    def test_abi_check(self):
        lvmmed._check_abi(lvmmed.ABI_VERSION)  # must not raise
        with self.assertRaises(ImportError) as cm:
            lvmmed._check_abi(lvmmed.ABI_VERSION + 1)
        self.assertIn("ABI", str(cm.exception))
        self.assertEqual(lvmmed._c.lvmmed_abi_check(lvmmed.ABI_VERSION + 1), lvmmed.Status.ERR_ABI_MISMATCH)

    def test_soname_major_is_abi(self):
        path = lvmmed.LIBRARY_PATH
        if path and ".so." in path:
            self.assertEqual(int(path.split(".so.")[1].split(".")[0]), lvmmed.abi_version())


if __name__ == "__main__":
    unittest.main()
