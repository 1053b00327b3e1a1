#!/usr/bin/python3
"""Compare the OpenBLAS backend's gemm (bench_gemm) with numpy.matmul float32.

Usage: bench/bench_gemm.py [path/to/bench_gemm]   (default: build/bench/bench_gemm)

Runs the C benchmark, then times numpy.matmul on the same shapes with numpy's
BLAS limited to 1 and to 2 threads (OPENBLAS_NUM_THREADS must be set before
numpy loads, so each thread count runs in a child process), and prints
GFLOP/s of both and the ratio ours / numpy (> 1: ours is faster).
"""
import os
import re
import subprocess
import sys
import time

LINE = re.compile(r"gemm m=(\d+) n=(\d+) k=(\d+) threads=(\d+) gflops=([\d.]+)")


def numpy_gflops(shapes):
    """Best-of GFLOP/s of numpy.matmul per shape, in this process's thread setting."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    for m, n, k in shapes:
        a = rng.random((m, k), dtype=np.float32) - 0.5
        b = rng.random((k, n), dtype=np.float32) - 0.5
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)  # warm-up
        best, start, reps = float("inf"), time.perf_counter(), 0
        while reps < 5 or time.perf_counter() - start < 0.5:
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
            reps += 1
        out.append(2.0 * m * n * k / best * 1e-9)
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--numpy":  # child: shapes as m,n,k;...
        shapes = [tuple(int(v) for v in s.split(",")) for s in sys.argv[2].split(";")]
        print(" ".join("%.2f" % g for g in numpy_gflops(shapes)))
        return 0

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "bench", "bench_gemm")
    text = subprocess.run([binary], check=True, capture_output=True, text=True).stdout
    ours = {}
    for m, n, k, t, g in LINE.findall(text):
        ours[(int(m), int(n), int(k), int(t))] = float(g)
    if not ours:
        sys.stdout.write(text)
        return 1
    shapes = sorted({key[:3] for key in ours}, key=lambda s: (s[0] * s[1] * s[2], s))
    arg = ";".join("%d,%d,%d" % s for s in shapes)

    theirs = {}
    for threads in (1, 2):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--numpy", arg],
                             check=True, capture_output=True, text=True, env=env)
        for shape, g in zip(shapes, res.stdout.split()):
            theirs[shape + (threads,)] = float(g)

    print("%-18s %7s %10s %10s %7s" % ("m x n x k", "threads", "ours", "numpy", "ratio"))
    for shape in shapes:
        for threads in (1, 2):
            key = shape + (threads,)
            if key not in ours:
                continue
            print("%-18s %7d %10.2f %10.2f %7.2f" % ("x".join(map(str, shape)), threads,
                                                    ours[key], theirs[key], ours[key] / theirs[key]))
    print("GFLOP/s, best of >= 5 runs; ratio = ours / numpy.matmul (float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
