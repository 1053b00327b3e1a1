#!/bin/sh
# The exported dynamic symbols of liblvmmed must equal, name for name, the
# functions declared LVMMED_API in include/lvmmed/ and listed in lib/lvmmed.map.
# usage: check_exports.sh LIBRARY SOURCE_ROOT
set -eu
lib=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {sub(/@.*/, "", $3); print $3}' |
  grep -v '^LVMMED_' | sort -u >"$tmp/exported"
# Declarations look like: LVMMED_API <type> *?lvmmed_name(
cat "$root"/include/lvmmed/*.h "$root"/include/lvmmed/*.h.in |
  tr '\n' ' ' | grep -o 'LVMMED_API[^;(]*(' |
  grep -o 'lvmmed_[a-z0-9_]*[[:space:]]*($' | tr -d ' (' | sort -u >"$tmp/declared"
sed -n 's/^[[:space:]]*\(lvmmed_[a-z0-9_]*\);.*/\1/p' "$root/lib/lvmmed.map" | sort -u >"$tmp/mapped"

status=0
if ! diff -u "$tmp/declared" "$tmp/exported" >"$tmp/d1"; then
  echo "exported symbols differ from the LVMMED_API declarations (- declared, + exported):"
  cat "$tmp/d1"
  status=1
fi
if ! diff -u "$tmp/declared" "$tmp/mapped" >"$tmp/d2"; then
  echo "lib/lvmmed.map differs from the LVMMED_API declarations (- declared, + map):"
  cat "$tmp/d2"
  status=1
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
if [ "$soname" != "liblvmmed.so.0" ]; then
  echo "SONAME is '$soname', expected liblvmmed.so.0"
  status=1
fi
echo "$(wc -l <"$tmp/exported") exported symbols, $(wc -l <"$tmp/declared") declared, SONAME $soname"
exit $status
