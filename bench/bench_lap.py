#!/usr/bin/python3
"""Exact linear assignment: lvmmed_lap_solve vs scipy.optimize.linear_sum_assignment.

Usage: bench/bench_lap.py [--sizes 64 128 ...] [--reps R] [--seed S]

Uniform random float64 square matrices (numpy default_rng(seed)); both
solvers see the same matrices in the same process, one after the other, and
run single-threaded. Prints the median time of each side, the ratio
scipy/lvmmed (> 1: lvmmed is faster) and checks that the objectives agree.
The library is found like the Python bindings find it (LVMMED_LIBRARY, else
the build tree).
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
from lvmmed._lib import lib, CtxPtr  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256, 512, 1024, 2048])
    ap.add_argument("--reps", type=int, default=0, help="matrices per size (default: by size)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ctx = CtxPtr()
    lib.lvmmed_ctx_create(ctypes.byref(ctx))
    rng = np.random.default_rng(args.seed)
    print(f"{'n':>6s} {'reps':>5s} {'scipy ms':>10s} {'lvmmed ms':>10s} {'ratio':>7s}  objectives")
    for n in args.sizes:
        reps = args.reps or max(3, min(41, int(2e8 / n**3) | 1))
        ts, tl, worst = [], [], 0.0
        out = (ctypes.c_int32 * n)()
        obj = ctypes.c_double()
        for _ in range(reps):
            c = rng.random((n, n))
            cp = c.ctypes.data_as(ctypes.c_void_p)
            t0 = time.perf_counter()
            r, col = linear_sum_assignment(c)
            ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lib.lvmmed_lap_solve(ctx, n, n, cp, 0, out, ctypes.byref(obj))
            tl.append(time.perf_counter() - t0)
            ref = float(c[r, col].sum())
            worst = max(worst, abs(obj.value - ref) / max(1.0, abs(ref)))
        ms, ml = statistics.median(ts) * 1e3, statistics.median(tl) * 1e3
        print(f"{n:6d} {reps:5d} {ms:10.3f} {ml:10.3f} {ms / ml:7.2f}  max rel diff {worst:.1e}", flush=True)
    lib.lvmmed_ctx_release(ctx)


if __name__ == "__main__":
    main()
