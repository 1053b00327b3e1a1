"""OpenBLAS kernel choice for the Python process (imported first by the package).

Debian 12's OpenBLAS misdetects some AVX-512 CPUs and falls back to generic kernels.
The C library loads OpenBLAS with OPENBLAS_CORETYPE=SkylakeX on such CPUs, but in a
Python process numpy (or torch) usually loads the same libopenblas.so.0 first, and the
library then has to use that copy as it was configured. So, when nothing has loaded
OpenBLAS yet and the host has not chosen, set the same core type for the whole process,
as the C loader would (lib/backend/cpu/blas_loader.c).
"""

import os
import sys

_AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"}


def _cpu_flags():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def prefer_openblas_core():
    """Sets OPENBLAS_CORETYPE=SkylakeX if unset, nothing imported OpenBLAS yet, and the CPU has AVX-512."""
    if "OPENBLAS_CORETYPE" in os.environ or "numpy" in sys.modules or "torch" in sys.modules:
        return
    if _AVX512 <= _cpu_flags():
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
