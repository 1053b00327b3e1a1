"""Shared helpers for the lvmmed binding tests (standard library only)."""

import os
import re
import shutil
import subprocess
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
BINDINGS_DIR = os.path.dirname(TESTS_DIR)
REPO_ROOT = os.path.dirname(os.path.dirname(BINDINGS_DIR))

# Let `python3 -m unittest discover -s bindings/python/tests` work without PYTHONPATH.
if BINDINGS_DIR not in sys.path:
    sys.path.insert(0, BINDINGS_DIR)

import lvmmed  # noqa: E402,F401  (needs the path above; re-exported to the tests)
from lvmmed import _lib  # noqa: E402


def header(name):
    """Path of a public header in the source tree, or None (e.g. testing an installed copy)."""
    path = os.path.join(REPO_ROOT, "include", "lvmmed", name)
    return path if os.path.isfile(path) else None


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def generated_version_header():
    """The meson-generated version.h next to the loaded library, else in build/."""
    candidates = []
    if _lib.LIBRARY_PATH:
        candidates.append(os.path.join(os.path.dirname(_lib.LIBRARY_PATH), "include", "lvmmed", "version.h"))
    candidates.append(os.path.join(REPO_ROOT, "build", "include", "lvmmed", "version.h"))
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def c_enum(text, prefix):
    """{SUFFIX: value} for `PREFIX_SUFFIX = value` enumerators in C text."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(rf"\b{prefix}(\w+)\s*=\s*(-?\d+)", text)}


def exported_symbols(path):
    """Defined dynamic symbols of a shared object, version suffixes stripped (needs nm)."""
    nm = shutil.which("nm")
    if nm is None:
        return None
    out = subprocess.run([nm, "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split("@")[0])
    return names


def run_python(code, env_extra=None, env_remove=()):
    """Run code in a fresh interpreter (this one) with the bindings importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = BINDINGS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    for key in env_remove:
        env.pop(key, None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
