#!/bin/sh
# Runs an example the way a user would and checks what it printed or wrote
# (examples/meson.build and scripts/install_test.sh call it).
#   check_examples.sh pretrain PRETRAIN_EXE EMBED_EXE IMAGE_DIR WORK_DIR
#       3 training steps (32 px, batch 16): each step prints a finite loss;
#       the saved weights then load into embed, which writes a valid CSV
#   check_examples.sh embed EMBED_EXE IMAGE_DIR WORK_DIR
#       embed --random: a header and one row of 512 numbers per image
#   check_examples.sh usage EXE...
#       each program without arguments prints its usage and exits with 2
#   check_examples.sh qaplib MATCH_QAPLIB_EXE FILE.dat FILE.sln
#       solves the instance; a missing file fails with status 1 naming it
set -eu

fail() { echo "check_examples: $*" >&2; exit 1; }

check_csv() { # check_csv FILE EMBED_OUTPUT: header + rows of path and 512 numbers
  rows=$(sed -n 's/.*: \([0-9][0-9]*\) images x 512 features.*/\1/p' "$2")
  [ -n "$rows" ] && [ "$rows" -gt 0 ] || fail "embed did not report its rows: $(cat "$2")"
  awk -F, -v rows="$rows" '
    NR == 1 { if ($1 != "path" || NF != 513) { print "bad header"; exit 1 } next }
    NF != 513 { print "line " NR ": " NF " fields"; exit 1 }
    { for (i = 2; i <= NF; i++)
        if ($i !~ /^-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$/) { print "line " NR ": not a number: " $i; exit 1 } }
    END { if (NR != rows + 1) { print NR - 1 " rows, expected " rows; exit 1 } }' "$1" ||
    fail "$1 is not the expected CSV"
}

mode=$1; shift
case $mode in
pretrain)
  pretrain=$1 embed=$2 images=$3 work=$4
  mkdir -p "$work"
  rm -f "$work/pretrained.safetensors"
  "$pretrain" "$images" 3 32 16 "$work/pretrained.safetensors" >"$work/pretrain.out" ||
    fail "pretrain_minimal failed: $(cat "$work/pretrain.out")"
  cat "$work/pretrain.out"
  # "step N  loss X  R images/s" with X a finite number, for N = 1, 2, 3.
  awk '$1 == "step" && $3 == "loss" && $4 ~ /^[0-9]+(\.[0-9]+)?$/ { n++ } END { exit n == 3 ? 0 : 1 }' \
    "$work/pretrain.out" || fail "pretrain_minimal did not print 3 steps with a finite loss"
  [ -s "$work/pretrained.safetensors" ] || fail "pretrain_minimal saved no weights"
  "$embed" --arch resnet18 --size 32 "$work/pretrained.safetensors" "$images" "$work/pretrained.csv" \
    >"$work/embed.out" || fail "embed of the saved weights failed"
  cat "$work/embed.out"
  check_csv "$work/pretrained.csv" "$work/embed.out"
  ;;
embed)
  embed=$1 images=$2 work=$3
  mkdir -p "$work"
  "$embed" --arch resnet18 --size 64 --random "$images" "$work/random.csv" >"$work/embed_random.out" ||
    fail "embed --random failed"
  cat "$work/embed_random.out"
  check_csv "$work/random.csv" "$work/embed_random.out"
  ;;
usage)
  for exe in "$@"; do
    rc=0
    msg=$("$exe" 2>&1) || rc=$?
    case $msg in usage:*) ;; *) fail "$exe printed no usage: $msg" ;; esac
    [ "$rc" -eq 2 ] || fail "$exe without arguments exited with $rc, not 2"
  done
  ;;
qaplib)
  exe=$1 dat=$2 sln=$3
  out=$("$exe" "$dat" "$sln") || fail "match_qaplib failed on $dat"
  printf '%s\n' "$out"
  printf '%s\n' "$out" | grep -q '^auto  ' || fail "no result of the default method"
  rc=0
  msg=$("$exe" "$dat.missing" 2>&1) || rc=$?
  [ "$rc" -eq 1 ] || fail "a missing file gave status $rc, not 1"
  case $msg in *"$dat.missing"*) ;; *) fail "the error does not name the file: $msg" ;; esac
  ;;
*)
  fail "unknown mode $mode"
  ;;
esac
echo "check_examples $mode: OK"
