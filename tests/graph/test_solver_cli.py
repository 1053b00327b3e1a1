#!/usr/bin/python3
"""`lvmmed match` on QAPLIB files: JSON output, objectives, errors.

usage: test_solver_cli.py PATH/TO/lvmmed DATA_DIR

DATA_DIR holds small QAPLIB instances with their .sln optimum. Objectives
printed by every solver are recomputed with numpy from the file; brute force
on generated n = 7 instances must equal numpy's exhaustive optimum.
"""
import itertools
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

LVMMED = None
DATA = None
SOLVERS = ["auto", "lap", "sm", "rrwm", "ipfp", "2opt"]


def run(*args):
    return subprocess.run([LVMMED, *args], capture_output=True, text=True, timeout=300)


def read_dat(path):
    tok = open(path, encoding="ascii").read().split()
    n = int(tok[0])
    v = np.array(tok[1:], dtype=np.float64)
    return n, v[: n * n].reshape(n, n), v[n * n:].reshape(n, n)


def objective(a, b, perm0):
    return float((a * b[np.ix_(perm0, perm0)]).sum())


class MatchCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def match(self, *args):
        p = run("match", "--json", *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)  # exactly one JSON document
        self.assertEqual(list(out), ["n", "solver", "objective", "time_s", "permutation"])
        return out

    def test_qaplib_files(self):
        names = sorted(f[:-4] for f in os.listdir(DATA) if f.endswith(".dat"))
        self.assertGreaterEqual(len(names), 2)
        for name in names:
            path = os.path.join(DATA, name + ".dat")
            n, a, b = read_dat(path)
            opt = float(open(os.path.join(DATA, name + ".sln")).read().split()[1])
            for solver in SOLVERS:
                with self.subTest(instance=name, solver=solver):
                    out = self.match("--solver", solver, path)
                    self.assertEqual(out["n"], n)
                    self.assertEqual(out["solver"], solver)
                    perm = out["permutation"]
                    self.assertEqual(sorted(perm), list(range(1, n + 1)))
                    self.assertEqual(out["objective"], objective(a, b, np.array(perm) - 1))
                    self.assertGreaterEqual(out["objective"], opt)
                    self.assertGreaterEqual(out["time_s"], 0)
            # Brute force is refused above n = 9, with a clear message.
            p = run("match", "--solver", "brute", path)
            self.assertEqual(p.returncode, 1)
            self.assertIn("n <= 9", p.stderr)

    def test_brute_force_is_optimal(self):
        rng = np.random.default_rng(7)
        for trial in range(3):
            n = 7
            a = rng.integers(0, 10, (n, n))
            b = rng.integers(-4, 10, (n, n))
            path = os.path.join(self.tmp.name, f"gen{trial}.dat")
            with open(path, "w") as f:
                f.write(f"{n}\n")
                for m in (a, b):
                    f.write("\n".join(" ".join(str(x) for x in row) for row in m) + "\n\n")
            values = [objective(a, b, np.array(p)) for p in itertools.permutations(range(n))]
            self.assertEqual(self.match("--solver", "brute", path)["objective"], min(values))
            self.assertEqual(self.match("--solver", "brute", "--maximize", path)["objective"], max(values))
            self.assertGreaterEqual(self.match(path)["objective"], min(values))
            self.assertLessEqual(self.match("--maximize", path)["objective"], max(values))

    def test_same_seed_same_answer(self):
        path = os.path.join(DATA, sorted(f for f in os.listdir(DATA) if f.endswith(".dat"))[0])
        x = self.match("--restarts", "5", "--seed", "11", path)
        y = self.match("--restarts", "5", "--seed", "11", path)
        self.assertEqual(x["permutation"], y["permutation"])
        self.assertEqual(x["objective"], y["objective"])

    def test_text_output(self):
        path = os.path.join(DATA, sorted(f for f in os.listdir(DATA) if f.endswith(".dat"))[0])
        p = run("match", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("objective:", p.stdout)
        self.assertIn("permutation (1-based):", p.stdout)

    def test_bad_files(self):
        cases = {
            "truncated.dat": ("3\n1 2 3\n4 5 6\n", "truncated"),
            "garbage.dat": ("2\n1 2 x 4\n5 6 7 8\n", "not a finite number"),
            "huge.dat": ("100000\n1 2\n", "not an integer"),
            "negative.dat": ("-4\n", "not an integer"),
            "empty.dat": ("", "empty"),
        }
        for name, (text, cause) in cases.items():
            path = os.path.join(self.tmp.name, name)
            with open(path, "w") as f:
                f.write(text)
            with self.subTest(file=name):
                p = run("match", "--json", path)
                self.assertEqual(p.returncode, 1)
                self.assertEqual(p.stdout, "")
                self.assertIn(path, p.stderr)
                self.assertIn(cause, p.stderr)
        p = run("match", os.path.join(self.tmp.name, "missing.dat"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.dat", p.stderr)

    def test_usage(self):
        self.assertEqual(run("match").returncode, 2)
        self.assertEqual(run("match", "--solver", "magic", "x.dat").returncode, 2)
        self.assertEqual(run("match", "--restarts", "-1", "x.dat").returncode, 2)
        self.assertEqual(run("match", "--restarts", "3x", "x.dat").returncode, 2)
        self.assertEqual(run("match", "--solver").returncode, 2)
        self.assertEqual(run("match", "a.dat", "b.dat").returncode, 2)
        p = run("match", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: lvmmed match", p.stdout)


if __name__ == "__main__":
    LVMMED = os.path.abspath(sys.argv[1])
    DATA = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v"])
