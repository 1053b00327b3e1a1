#!/bin/sh
# The test command (README "Run the tests"; .ci/run calls it). On a fresh
# Debian 12 machine it installs what is missing, then builds and runs, in order:
#   1. the Check suites and script tests (meson test -v), warnings as errors
#   2. the Python binding tests under /usr/bin/python3
#   3. the ABI check against scripts/abi/liblvmmed.so.0.abi
#   4. install into a temporary prefix + out-of-tree example build via pkg-config
#   5. everything of step 1 and 2 again under AddressSanitizer + UBSan
#   6. each fuzz target (image decoders, safetensors, .npy, QAPLIB) for 20 s with libFuzzer
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sh scripts/install_deps.sh

section() { printf '\n==== %s ====\n' "$*"; }

setup() { # setup DIR [meson options...]
  dir=$1; shift
  if [ -d "$dir/meson-private" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

run_python_tests() { # run_python_tests LIBRARY [env...]
  lib=$1; shift
  env "$@" LVMMED_LIBRARY="$lib" PYTHONPATH="$root/bindings/python" \
    /usr/bin/python3 -m unittest discover -s "$root/bindings/python/tests" -v
}

section "build (release checks, -Werror)"
setup build --werror -Dbuildtype=debugoptimized
ninja -C build

section "unit tests"
meson test -C build -v --print-errorlogs

section "python tests"
run_python_tests "$root/build/liblvmmed.so.0"

section "ABI check"
sh scripts/abi_check.sh build

section "install + pkg-config + out-of-tree examples"
sh scripts/install_test.sh build

section "AddressSanitizer + UndefinedBehaviorSanitizer build"
setup build-asan --werror -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
  -Dc_args=-fno-sanitize-recover=all -Dcpp_args=-fno-sanitize-recover=all \
  -Dc_link_args=-fno-sanitize-recover=all -Dcpp_link_args=-fno-sanitize-recover=all
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  meson test -C build-asan -v --print-errorlogs

section "python tests under ASan + UBSan"
asan_rt=$(gcc -print-file-name=libasan.so)
ubsan_rt=$(gcc -print-file-name=libubsan.so)
# CPython itself leaks by design at exit: leak detection off for the interpreter.
run_python_tests "$root/build-asan/liblvmmed.so.0" LD_PRELOAD="$asan_rt $ubsan_rt" \
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1

section "fuzzing (libFuzzer + ASan/UBSan, 20 s per target)"
sh scripts/fuzz.sh 20

section "all tests passed"
