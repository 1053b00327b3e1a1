#!/bin/sh
# Smoke test of the lvmmed program: help, version, unknown input.
# usage: check_cli.sh PATH_TO_LVMMED
set -u
exe=$1
fail=0
expect() { # expect CODE DESCRIPTION -- command...
  code=$1; what=$2; shift 3
  "$@" >/tmp/lvmmed_cli_out.$$ 2>&1
  got=$?
  if [ "$got" -ne "$code" ]; then
    echo "FAIL: $what: exit $got, expected $code"; cat /tmp/lvmmed_cli_out.$$; fail=1
  else
    echo "ok: $what"
  fi
}
expect 0 "--help" -- "$exe" --help
expect 0 "version" -- "$exe" version
expect 0 "--version" -- "$exe" --version
expect 0 "version --help" -- "$exe" version --help
expect 0 "version --json" -- "$exe" version --json
expect 2 "no command" -- "$exe"
expect 2 "unknown command" -- "$exe" frobnicate
expect 2 "unknown option" -- "$exe" version --bogus
"$exe" --help | grep -q '^  version' || { echo "FAIL: --help does not list 'version'"; fail=1; }
"$exe" version --json | grep -q '^{"version":"[0-9]*\.[0-9]*\.[0-9]*","headers":' ||
  { echo "FAIL: version --json is not the expected object"; fail=1; }
rm -f /tmp/lvmmed_cli_out.$$
exit $fail
