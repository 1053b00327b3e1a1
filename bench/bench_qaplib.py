#!/usr/bin/python3
"""QAPLIB benchmark: gap to the optimum and time of every lvmmed solver and of
scipy.optimize.quadratic_assignment (faq, and faq followed by 2opt).

Usage: bench/bench_qaplib.py QAPLIB_DIR [--restarts K] [--extra-restarts K]
                             [--only NAME ...] [--no-scipy] [--scipy-2opt-max-n N]
                             [--json OUT]

QAPLIB_DIR holds NAME.dat instances and NAME.sln optimal/best-known values
(not shipped with liblvmmed; see the README of your QAPLIB copy). The library
is found like the Python bindings find it (LVMMED_LIBRARY, else the build
tree). Prints one line per instance (gap % and seconds per method), then the
mean gap and total time per method. Gap = (objective - optimum) / |optimum|.
--extra-restarts K adds a column "autoK": AUTO with K random restarts.
SciPy runs single-threaded numpy code; our solvers run on one thread too.
"""
import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np
from scipy.optimize import quadratic_assignment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
from lvmmed._lib import lib, CtxPtr, GmSolverPtr  # noqa: E402

METHODS = [("lap", 1), ("sm", 3), ("rrwm", 4), ("ipfp", 5), ("2opt", 6), ("auto", 0)]
OPT_METHOD, OPT_RESTARTS = 1, 3


def read_numbers(path):
    with open(path, encoding="ascii") as f:
        return f.read().split()


def read_instance(path):
    tok = read_numbers(path)
    n = int(tok[0])
    vals = np.array(tok[1:], dtype=np.float64)
    if vals.size == 2 * n * n + 1:  # "n value" header
        vals = vals[1:]
    return n, vals[: n * n].reshape(n, n), vals[n * n:].reshape(n, n)


def read_optimum(path):
    tok = read_numbers(path)
    return float(tok[1])


def gap(obj, opt):
    return 100.0 * (obj - opt) / abs(opt) if opt != 0 else obj - opt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("qaplib_dir")
    ap.add_argument("--restarts", type=int, default=0, help="extra random starts of auto and 2opt")
    ap.add_argument("--extra-restarts", type=int, default=0, help="also run auto with this many restarts")
    ap.add_argument("--only", nargs="*", help="instance names (without .dat)")
    ap.add_argument("--no-scipy", action="store_true")
    ap.add_argument("--scipy-2opt-max-n", type=int, default=1 << 30,
                    help="skip SciPy's (slow, pure Python) 2opt above this n")
    ap.add_argument("--json", help="write per-instance results here")
    args = ap.parse_args()

    names = sorted(f[:-4] for f in os.listdir(args.qaplib_dir) if f.endswith(".dat"))
    if args.only:
        names = [n for n in names if n in set(args.only)]
    ctx = CtxPtr()
    lib.lvmmed_ctx_create(ctypes.byref(ctx))
    lib.lvmmed_ctx_set_option(ctx, 1, 1)  # one thread
    solver = GmSolverPtr()
    lib.lvmmed_gm_solver_create(ctx, ctypes.byref(solver))
    lib.lvmmed_gm_solver_set_option(solver, OPT_RESTARTS, args.restarts)

    methods = list(METHODS)
    if args.extra_restarts:
        methods.append((f"auto{args.extra_restarts}", 0))
    cols = [m for m, _ in methods] + ([] if args.no_scipy else ["faq", "faq+2opt"])
    sums = {c: [0.0, 0.0, 0] for c in cols}
    rows = []
    print(f"{'instance':10s} {'n':>3s} {'optimum':>11s} " + " ".join(f"{c:>17s}" for c in cols))
    print(f"{'':10s} {'':3s} {'':11s} " + " ".join(f"{'gap%':>8s} {'time_s':>8s}" for _ in cols))
    for name in names:
        dat = os.path.join(args.qaplib_dir, name + ".dat")
        opt = read_optimum(os.path.join(args.qaplib_dir, name + ".sln"))
        lib.lvmmed_gm_load_qaplib(solver, dat.encode())
        n = lib.lvmmed_gm_problem_size(solver)
        perm = (ctypes.c_int32 * n)()
        obj = ctypes.c_double()
        res = {"name": name, "n": n, "optimum": opt}
        for m, code in methods:
            lib.lvmmed_gm_solver_set_option(solver, OPT_METHOD, code)
            restarts = args.extra_restarts if m.startswith("auto") and m != "auto" else args.restarts
            lib.lvmmed_gm_solver_set_option(solver, OPT_RESTARTS, restarts)
            t0 = time.perf_counter()
            lib.lvmmed_gm_solve(solver, perm, ctypes.byref(obj))
            res[m] = (obj.value, time.perf_counter() - t0)
        if not args.no_scipy:
            _, a, b = read_instance(dat)
            t0 = time.perf_counter()
            r = quadratic_assignment(a, b, method="faq", options={"rng": 0})
            res["faq"] = (float(r.fun), time.perf_counter() - t0)
            if n <= args.scipy_2opt_max_n:
                guess = np.column_stack([np.arange(n), r.col_ind])
                t1 = time.perf_counter()
                r2 = quadratic_assignment(a, b, method="2opt", options={"rng": 0, "partial_guess": guess})
                res["faq+2opt"] = (float(r2.fun), res["faq"][1] + time.perf_counter() - t1)
        line = f"{name:10s} {n:3d} {opt:11.0f} "
        for c in cols:
            if c in res:
                g = gap(res[c][0], opt)
                sums[c][0] += g
                sums[c][1] += res[c][1]
                sums[c][2] += 1
                line += f" {g:8.2f} {res[c][1]:8.4f}"
            else:
                line += f" {'-':>8s} {'-':>8s}"
        print(line, flush=True)
        rows.append(res)
    print()
    print(f"{'method':10s} {'instances':>9s} {'mean gap %':>11s} {'total time s':>13s}")
    for c in cols:
        g, t, k = sums[c]
        if k:
            print(f"{c:10s} {k:9d} {g / k:11.3f} {t:13.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    lib.lvmmed_gm_solver_free(solver)
    lib.lvmmed_ctx_release(ctx)


if __name__ == "__main__":
    main()
