#!/bin/sh
# Installs a build into a temporary prefix, then builds examples/ out of tree
# with only `pkg-config --cflags --libs lvmmed` and runs them.
# usage: install_test.sh BUILD_DIR
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage="$tmp/stage"

# Stage the install (DESTDIR) so the build's configuration is left untouched;
# PKG_CONFIG_SYSROOT_DIR makes pkg-config point into the staged tree.
meson install -C "$build" --no-rebuild --quiet --destdir "$stage"
pc=$(find "$stage" -name lvmmed.pc | head -n 1)
[ -n "$pc" ] || { echo "install_test: lvmmed.pc was not installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
incdir=$(find "$stage" -path '*/include/lvmmed' -type d | head -n 1)
[ -e "$libdir/liblvmmed.so.0" ] || { echo "install_test: liblvmmed.so.0 missing"; exit 1; }
[ -e "$incdir/version.h" ] || { echo "install_test: version.h missing"; exit 1; }
bindir=$(dirname "$(find "$stage" -path '*/bin/lvmmed' | head -n 1)")
[ -x "$bindir/lvmmed" ] || { echo "install_test: lvmmed program missing"; exit 1; }

export PKG_CONFIG_SYSROOT_DIR="$stage"
export PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_LIBDIR="$(dirname "$pc")"
echo "pkg-config --cflags --libs lvmmed: $(pkg-config --cflags --libs lvmmed)"
cp -r "$root/examples" "$tmp/examples"
rm -f "$tmp/examples/meson.build"
make -s -C "$tmp/examples" CFLAGS="-O2 -Wall -Wextra -Werror -pedantic" \
  CXXFLAGS="-O2 -Wall -Wextra -Werror -pedantic"
# Run against the installed copy only: the build tree must not be what is found.
cd "$tmp/examples"
LD_LIBRARY_PATH="$libdir" make -s run IMAGES="$root/tests/image/data" QAPLIB="$root/tests/graph/data/chr12a"
# The same output checks as the in-tree tests (examples/check_examples.sh).
export LD_LIBRARY_PATH="$libdir"
sh ./check_examples.sh usage ./pretrain_minimal ./embed ./match_qaplib
sh ./check_examples.sh qaplib ./match_qaplib "$root/tests/graph/data/chr12a.dat" "$root/tests/graph/data/chr12a.sln"
sh ./check_examples.sh embed ./embed "$root/tests/image/data" "$tmp/work"
sh ./check_examples.sh pretrain ./pretrain_minimal ./embed "$root/tests/image/data" "$tmp/work"
unset LD_LIBRARY_PATH
for e in context_info context_info_cpp pretrain_minimal embed match_qaplib match_points_cpp; do
  LD_LIBRARY_PATH="$libdir" ldd "./$e" | grep -q "$libdir/liblvmmed.so.0" || { echo "install_test: $e did not load the installed library"; exit 1; }
done
LD_LIBRARY_PATH="$libdir" "$bindir/lvmmed" version
echo "install_test: OK"
