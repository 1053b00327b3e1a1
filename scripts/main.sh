#!/bin/sh
# The main job (README "Run the main job"). Today: build liblvmmed, show what
# the build provides, run the examples and the backend benchmark. Later
# releases grow this into LVM-Med pretraining on the bundled images.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sh scripts/install_deps.sh
if [ -d build-release/meson-private ]; then
  meson setup --reconfigure build-release -Dbuildtype=release >/dev/null
else
  meson setup build-release -Dbuildtype=release >/dev/null
fi
ninja -C build-release
./build-release/tools/lvmmed version
./build-release/examples/example_context_info
if [ -x build-release/bench/bench_gemm ]; then
  /usr/bin/python3 bench/bench_gemm.py --binary build-release/bench/bench_gemm
fi
