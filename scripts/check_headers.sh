#!/bin/sh
# Every public header must compile on its own as C99 -pedantic and as C++,
# with warnings as errors.
# usage: check_headers.sh SOURCE_ROOT BUILD_ROOT CC CXX
set -eu
root=$1
build=$2
cc=$3
cxx=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The generated version.h lives in the build tree; assemble one include dir.
mkdir -p "$tmp/include/lvmmed"
cp "$root"/include/lvmmed/*.h "$tmp/include/lvmmed/"
cp "$build/include/lvmmed/version.h" "$tmp/include/lvmmed/"
n=0
for h in "$tmp"/include/lvmmed/*.h; do
  name=$(basename "$h")
  printf '#include <lvmmed/%s>\nint lvmmed_header_check_%s;\n' "$name" "$(echo "$name" | tr '.' '_')" >"$tmp/t.c"
  "$cc" -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$tmp/include" "$tmp/t.c"
  "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$tmp/include" "$tmp/t.c"
  cp "$tmp/t.c" "$tmp/t.cpp"
  "$cxx" -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$tmp/include" "$tmp/t.cpp"
  "$cxx" -std=c++17 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$tmp/include" "$tmp/t.cpp"
  n=$((n + 1))
done
echo "$n public headers compile as C99, C11, C++11 and C++17 (-pedantic -Werror)"
