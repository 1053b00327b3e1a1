#!/usr/bin/python3
"""`lvmmed lap` against scipy.optimize.linear_sum_assignment.

usage: test_lap_scipy.py PATH/TO/lvmmed

Random and degenerate dense instances (fixed seeds) up to n = 1024, square
and rectangular, minimised and maximised, float64 and float32 .npy files;
plus malformed files and bad usage. Objectives must agree with SciPy to
1e-9 relative; every assignment must be valid and cost what it reports.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from scipy.optimize import linear_sum_assignment

LVMMED = None


def run(*args):
    return subprocess.run([LVMMED, *args], capture_output=True, text=True, timeout=300)


class LapVsScipy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.count = 0

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def solve(self, cost, maximize=False):
        """Runs `lvmmed lap --json` on cost; checks the answer; returns the objective."""
        LapVsScipy.count += 1
        path = os.path.join(self.tmp.name, f"c{LapVsScipy.count}.npy")
        np.save(path, cost)
        args = ["lap", "--json"] + (["--maximize"] if maximize else []) + [path]
        p = run(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)  # exactly one JSON document
        self.assertEqual(set(out), {"objective", "time_s", "assignment"})
        rows, cols = cost.shape
        a = np.array(out["assignment"], dtype=np.int64)
        self.assertEqual(a.shape, (rows,))
        used = a[a >= 0]
        self.assertTrue(np.all(a >= -1) and np.all(a < max(cols, 1)))
        self.assertEqual(len(np.unique(used)), len(used), "a column is used twice")
        self.assertEqual(len(used), min(rows, cols))
        c64 = cost.astype(np.float64)
        total = float(c64[np.nonzero(a >= 0)[0], used].sum()) if len(used) else 0.0
        self.assertAlmostEqual(out["objective"], total, delta=1e-9 * max(1.0, abs(total)))
        r, c = linear_sum_assignment(c64, maximize=maximize)
        ref = float(c64[r, c].sum())
        self.assertLessEqual(abs(out["objective"] - ref), 1e-9 * max(1.0, abs(ref)),
                             f"{cost.shape} max={maximize}: lvmmed {out['objective']!r}, scipy {ref!r}")
        return out["objective"]

    def test_random_square(self):
        rng = np.random.default_rng(1)
        for n in [1, 2, 3, 5, 8, 16, 31, 64, 100, 257, 512, 1024]:
            with self.subTest(n=n):
                self.solve(rng.random((n, n)))

    def test_degenerate_square(self):
        rng = np.random.default_rng(2)
        cases = {
            "constant": np.full((300, 300), 3.5),
            "zeros": np.zeros((64, 64)),
            "small integers (ties)": rng.integers(0, 4, (400, 400)).astype(np.float64),
            "binary": rng.integers(0, 2, (256, 256)).astype(np.float64),
            "negative": -rng.random((200, 200)) * 1e3,
            "mixed sign integers": rng.integers(-5, 6, (333, 333)).astype(np.float64),
            "large magnitude": rng.random((128, 128)) * 1e12,
            "tiny magnitude": rng.random((128, 128)) * 1e-12,
            "rank one": np.outer(rng.random(150), rng.random(150)),
            "row constant": np.repeat(rng.random((180, 1)), 180, axis=1),
            "column constant": np.repeat(rng.random((1, 180)), 180, axis=0),
        }
        for name, c in cases.items():
            with self.subTest(case=name):
                self.solve(c)

    def test_rectangular(self):
        rng = np.random.default_rng(3)
        for shape in [(1, 50), (50, 1), (2, 3), (3, 2), (100, 300), (300, 100), (513, 1024), (1024, 513)]:
            with self.subTest(shape=shape):
                self.solve(rng.random(shape))
                self.solve(rng.integers(0, 3, shape).astype(np.float64))

    def test_maximize(self):
        rng = np.random.default_rng(4)
        for shape in [(7, 7), (200, 200), (50, 80), (80, 50)]:
            with self.subTest(shape=shape):
                self.solve(rng.random(shape), maximize=True)
                self.solve(rng.integers(-3, 3, shape).astype(np.float64), maximize=True)

    def test_float32(self):
        rng = np.random.default_rng(5)
        self.solve(rng.random((200, 200)).astype(np.float32))
        self.solve(rng.random((40, 90)).astype(np.float32), maximize=True)

    def test_empty(self):
        p = run("lap", "--json", self._save(np.zeros((0, 5))))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["assignment"], [])

    def _save(self, arr, name="x.npy"):
        path = os.path.join(self.tmp.name, name)
        np.save(path, arr)
        return path

    def _raw(self, data, name):
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_bad_files(self):
        good = self._save(np.random.default_rng(6).random((20, 20)), "good.npy")
        with open(good, "rb") as f:
            blob = f.read()
        bad = {
            "truncated.npy": (blob[: len(blob) // 2], None),
            "header_only.npy": (blob[:40], None),
            "garbage.npy": (b"this is not a numpy file at all\n" * 10, None),
            "empty.npy": (b"", None),
        }
        def npy_with_header(header):
            h = header.encode("latin1")
            pad = 64 - (10 + len(h) + 1) % 64
            h += b" " * pad + b"\n"
            return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + b"\0" * 64

        bad["huge_shape.npy"] = (npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }"), None)
        bad["overflow_shape.npy"] = (npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"), None)
        bad["negative_shape.npy"] = (npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 8), }"), None)
        for name, (data, _) in bad.items():
            path = self._raw(data, name)
            with self.subTest(file=name):
                p = run("lap", path)
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertIn(path, p.stderr)
        for name, arr, cause in [
            ("three_d.npy", np.zeros((2, 3, 4)), "2-D"),
            ("one_d.npy", np.zeros(5), "2-D"),
            ("int.npy", np.zeros((3, 3), dtype=np.int64), ""),
            ("nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]), "not finite"),
            ("inf.npy", np.array([[1.0, np.inf], [0.0, 1.0]]), "not finite"),
        ]:
            path = self._save(arr, name)
            with self.subTest(file=name):
                p = run("lap", path)
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertIn(path, p.stderr)
                self.assertIn(cause, p.stderr)
        p = run("lap", os.path.join(self.tmp.name, "missing.npy"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.npy", p.stderr)

    def test_usage(self):
        self.assertEqual(run("lap").returncode, 2)
        self.assertEqual(run("lap", "--bogus", "x.npy").returncode, 2)
        self.assertEqual(run("lap", "a.npy", "b.npy").returncode, 2)
        p = run("lap", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: lvmmed lap", p.stdout)


if __name__ == "__main__":
    LVMMED = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0], "-v"])
