#!/bin/sh
# Builds the image-decoder fuzz targets with clang (libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer, the library instrumented for coverage) in build-fuzz/
# (or $FUZZ_BUILD_DIR),
# then runs each for a bounded time on a copy of its seed corpus (tests/fuzz/corpus/<fmt>).
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET]      (default: $FUZZ_SECONDS or 20)
# FUZZ_TARGETS picks targets (default: png tiff jpeg safetensors npy qaplib checkpoint, those present).
# Needs clang and its libFuzzer runtime (Debian: clang-14, libclang-rt-14-dev).
# A crash leaves its reproducer in build-fuzz/fuzz-artifacts/ and fails the script;
# copy it into tests/fuzz/corpus/<fmt>/ once fixed, so every build replays it.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-${FUZZ_SECONDS:-20}}
cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
  for c in clang-14 clang; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
[ -n "$cc" ] || { echo "fuzz.sh: clang not found (apt-get install clang-14 libclang-rt-14-dev)"; exit 1; }
cxx=$(echo "$cc" | sed 's/clang/clang++/')
command -v "$cxx" >/dev/null 2>&1 || cxx=clang++

dir=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -d "$dir/meson-private" ]; then
  CC=$cc CXX=$cxx meson setup "$dir" -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=all' \
    -Dc_link_args=-fno-sanitize-recover=all >/dev/null
fi
# Every target with a source and a seed corpus (the image decoders; safetensors if present).
targets=""
for t in ${FUZZ_TARGETS:-png tiff jpeg safetensors npy qaplib checkpoint}; do
  if [ -f "tests/fuzz/fuzz_$t.c" ] && [ -d "tests/fuzz/corpus/$t" ]; then targets="$targets $t"; fi
done
# shellcheck disable=SC2086
ninja -C "$dir" $(for t in $targets; do printf 'tests/fuzz/fuzz_%s ' "$t"; done)

mkdir -p "$dir/fuzz-artifacts"
status=0
for fmt in $targets; do
  work="$dir/fuzz-corpus/$fmt"
  rm -rf "$work"
  mkdir -p "$work"
  cp tests/fuzz/corpus/"$fmt"/* "$work"/
  echo "==== fuzz_$fmt: ${secs}s on $(ls "$work" | wc -l) seeds"
  # -rss_limit_mb bounds memory; -max_len bounds inputs; leaks are reported at exit.
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$dir/tests/fuzz/fuzz_$fmt" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/$fmt-" "$work" 2>"$dir/fuzz-$fmt.log"; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|cov: ' "$dir/fuzz-$fmt.log" | tail -4
  else
    status=1
    echo "fuzz_$fmt FAILED; last lines of $dir/fuzz-$fmt.log:"
    tail -40 "$dir/fuzz-$fmt.log"
  fi
done
exit $status
