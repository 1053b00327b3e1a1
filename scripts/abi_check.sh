#!/bin/sh
# Compares the built liblvmmed.so against the committed ABI baseline.
#   scripts/abi_check.sh BUILD_DIR            check (fails on any difference)
#   scripts/abi_check.sh BUILD_DIR --update   rewrite the baseline after an intended change
# The baseline is dumped with the public headers only, so changes inside
# opaque (private) structs are not reported as ABI changes.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
mode=${2:-check}
baseline="$root/scripts/abi/liblvmmed.so.0.abi"
lib="$build/liblvmmed.so.0"
[ -e "$lib" ] || { echo "abi_check: $lib not found (build first)"; exit 2; }
command -v abidw >/dev/null || { echo "abi_check: abidw not found (apt-get install abigail-tools)"; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/include"
cp "$root"/include/lvmmed/*.h "$build"/include/lvmmed/version.h "$tmp/include/"
abidw --headers-dir "$tmp/include" --drop-private-types --no-corpus-path --no-comp-dir-path \
  --no-show-locs --out-file "$tmp/current.abi" "$lib"

if [ "$mode" = "--update" ]; then
  cp "$tmp/current.abi" "$baseline"
  echo "abi_check: baseline updated: scripts/abi/liblvmmed.so.0.abi"
  exit 0
fi
[ -e "$baseline" ] || { echo "abi_check: no baseline; run with --update and commit it"; exit 2; }
set +e
abidiff "$baseline" "$tmp/current.abi" >"$tmp/report"
rc=$?
set -e
cat "$tmp/report"
# abidiff's status is a bit field (4 = change, 8 = incompatible change); any non-zero
# status, or any added/removed/changed function, means the baseline must be updated on purpose.
# (Both dumps already dropped private types: abidiff 2.2 aborts when asked to do it itself.)
if [ $rc -ne 0 ] || grep -Eq '[1-9][0-9]* (Removed|Changed|Added)' "$tmp/report"; then
  echo "abi_check: FAILED (abidiff status $rc): the ABI differs from scripts/abi/liblvmmed.so.0.abi."
  echo "If the change is intended, run scripts/abi_check.sh $build --update and record it in CHANGELOG.md."
  exit 1
fi
echo "abi_check: OK — ABI identical to the baseline ($(grep -c '<elf-symbol name=.*type=.func-type' "$baseline") functions)"
